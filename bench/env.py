"""Where the benchmark's databases come from.

SQLite: files in a temporary directory, each a copy of a template migrated by
handshake_storage. PostgreSQL: ``--postgres-url`` / ``HANDSHAKE_BENCH_POSTGRES_URL``
(a server where the user may create databases) or a throwaway server started
with ``pgserver``; each database is ``CREATE DATABASE ... TEMPLATE`` of a
migrated template. Every implementation runs on a schema migrated by
handshake_storage.
"""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
import tempfile
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit, urlunsplit

import psycopg

from handshake_storage import open_database


class PostgresServer:
    def __init__(self, url: str | None, workdir: Path) -> None:
        self._handle: Any = None
        if not url:
            import pgserver

            self._handle = pgserver.get_server(workdir / "pgdata", cleanup_mode="stop")
            url = self._handle.get_uri()
        self.url = url
        self._admin: psycopg.Connection[Any] | None = None

    def admin(self) -> psycopg.Connection[Any]:
        if self._admin is None or self._admin.closed:
            self._admin = psycopg.connect(self.url, autocommit=True)
        return self._admin

    def url_for(self, dbname: str) -> str:
        parts = urlsplit(self.url)
        return urlunsplit((parts.scheme, parts.netloc, "/" + dbname, parts.query, ""))

    def create(self, template: str | None = None) -> str:
        name = f"hs_bench_{uuid.uuid4().hex[:10]}"
        suffix = f' TEMPLATE "{template}"' if template else " TEMPLATE template0"
        self.admin().execute(f'CREATE DATABASE "{name}"{suffix}')
        return name

    def drop(self, name: str) -> None:
        self.admin().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def settings(self) -> dict[str, str]:
        rows = (
            self.admin()
            .execute(
                "SELECT name, setting FROM pg_settings WHERE name IN "
                "('fsync', 'synchronous_commit', 'full_page_writes', 'wal_sync_method', "
                "'server_version', 'shared_buffers')"
            )
            .fetchall()
        )
        return dict(rows)

    def pgloader_url(self, dbname: str) -> str:
        """The database as a pgloader connection string (TCP or unix socket)."""
        parts = urlsplit(self.url)
        query = parse_qs(parts.query)
        user = unquote(parts.username or "postgres")
        password = unquote(parts.password or "")
        cred = f"{user}:{password}@" if password else f"{user}@"
        host = query.get("host", [parts.hostname or "localhost"])[0]
        port = query.get("port", [str(parts.port or 5432)])[0]
        if host.startswith("/"):
            return f"postgresql://{cred}unix:{host}:{port}/{dbname}"
        return f"postgresql://{cred}{host}:{port}/{dbname}"

    def close(self) -> None:
        if self._admin is not None:
            self._admin.close()
        if self._handle is not None:
            self._handle.cleanup()


class Backend:
    """Fresh migrated (or empty) databases of one backend."""

    def __init__(self, name: str, workdir: Path, pg: PostgresServer | None = None) -> None:
        self.name = name
        self.workdir = workdir
        self.pg = pg
        self._template: Any = None
        self._created: list[str] = []

    def _ensure_template(self) -> Any:
        if self._template is None:
            if self.name == "sqlite":
                path = self.workdir / "template.db"
                with open_database(f"sqlite:///{path}") as db:
                    db.run_migrations()
                self._template = path
            else:
                assert self.pg is not None
                name = self.pg.create()
                with open_database(self.pg.url_for(name)) as db:
                    db.run_migrations()
                self._template = name
        return self._template

    def new_url(self, *, migrated: bool = True) -> str:
        if self.name == "sqlite":
            path = self.workdir / f"db-{uuid.uuid4().hex[:10]}.db"
            if migrated:
                shutil.copyfile(self._ensure_template(), path)
            return f"sqlite:///{path}"
        assert self.pg is not None
        name = self.pg.create(self._ensure_template() if migrated else None)
        self._created.append(name)
        return self.pg.url_for(name)

    def drop(self, url: str) -> None:
        if self.name == "sqlite":
            path = sqlite_path(url)
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    Path(f"{path}{suffix}").unlink()
        else:
            assert self.pg is not None
            name = urlsplit(url).path.lstrip("/")
            self.pg.drop(name)
            if name in self._created:
                self._created.remove(name)

    def raw_connect(self, url: str) -> Any:
        """A plain driver connection for checks (not for timing)."""
        if self.name == "sqlite":
            return sqlite3.connect(sqlite_path(url))
        return psycopg.connect(url, autocommit=True)

    def close(self) -> None:
        if self.pg is not None:
            for name in list(self._created):
                with contextlib.suppress(Exception):
                    self.pg.drop(name)
            if isinstance(self._template, str):
                with contextlib.suppress(Exception):
                    self.pg.drop(self._template)


def sqlite_path(url: str) -> str:
    assert url.startswith("sqlite:///")
    return url[len("sqlite:///") :]


def pg_dsn(url: str) -> str:
    """A URL psycopg accepts (handshake also accepts ``postgres://``)."""
    return url


def make_workdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="hs-bench-"))
