"""Fixtures: every storage test runs on SQLite and on a real PostgreSQL.

PostgreSQL comes from ``HANDSHAKE_TEST_POSTGRES_URL`` (a server where the
user may create databases) or, when unset, from a throwaway server started
with ``pgserver``. Under ``CI=true`` a PostgreSQL that cannot be had fails
the run instead of skipping. Each test gets its own database: a copy of a
migrated template (``CREATE DATABASE ... TEMPLATE`` / a file copy), so tests
are isolated and fast.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from handshake_storage import Database, open_database

BACKENDS = ("sqlite", "postgresql")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


class PostgresServer:
    """Creates and drops per-test databases on one server."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._admin = None

    def url_for(self, dbname: str) -> str:
        parts = urlsplit(self.url)
        return urlunsplit((parts.scheme, parts.netloc, "/" + dbname, parts.query, ""))

    def admin(self):
        import psycopg

        if self._admin is None or self._admin.closed:
            self._admin = psycopg.connect(self.url, autocommit=True)
        return self._admin

    def create(self, template: str | None = None) -> str:
        name = f"hs_test_{uuid.uuid4().hex[:12]}"
        suffix = f' TEMPLATE "{template}"' if template else " TEMPLATE template0"
        self.admin().execute(f'CREATE DATABASE "{name}"{suffix}')
        return name

    def drop(self, name: str) -> None:
        self.admin().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def close(self) -> None:
        if self._admin is not None:
            self._admin.close()


def _start_pgserver(tmp: Path) -> tuple[str, object]:
    import pgserver

    server = pgserver.get_server(tmp / "pgdata", cleanup_mode="stop")
    return server.get_uri(), server


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    url = os.environ.get("HANDSHAKE_TEST_POSTGRES_URL")
    handle = None
    # Not under pytest's basetemp: a concurrent pytest session resets the
    # permissions there, and the server (running as another user) would die.
    pgroot = Path(tempfile.mkdtemp(prefix="handshake-test-pg-"))
    if not url:
        try:
            url, handle = _start_pgserver(pgroot)
        except Exception as exc:  # pragma: no cover - depends on the machine
            message = f"no PostgreSQL available: {exc}"
            if IN_CI:
                pytest.fail(message)
            pytest.skip(message)
    server = PostgresServer(url)
    try:
        server.admin().execute("SELECT 1")
    except Exception as exc:  # pragma: no cover
        if IN_CI:
            pytest.fail(f"PostgreSQL at HANDSHAKE_TEST_POSTGRES_URL is unusable: {exc}")
        pytest.skip(f"PostgreSQL unusable: {exc}")
    yield server
    server.close()
    if handle is not None:
        handle.cleanup()  # type: ignore[attr-defined]
    shutil.rmtree(pgroot, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_template(postgres_server: PostgresServer) -> Iterator[str]:
    name = postgres_server.create()
    with open_database(postgres_server.url_for(name)) as db:
        db.run_migrations()
    yield name
    postgres_server.drop(name)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    with open_database(f"sqlite:///{path}") as db:
        db.run_migrations()
    return path


@pytest.fixture(scope="session")
def migrated_pair(
    postgres_server: PostgresServer,
    pg_template: str,
    sqlite_template: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Callable[[str], AbstractContextManager[tuple[Database, Database]]]:
    """``with migrated_pair(label) as (sqlite_db, pg_db)``: a migrated
    database of each backend, side by side, closed and dropped afterwards
    (for tests that apply the same operation to both and compare)."""

    @contextmanager
    def open_pair(label: str) -> Iterator[tuple[Database, Database]]:
        path = tmp_path_factory.mktemp(label) / f"{label}.db"
        shutil.copyfile(sqlite_template, path)
        name = postgres_server.create(pg_template)
        opened: list[Database] = []
        try:
            for url in (f"sqlite:///{path}", postgres_server.url_for(name)):
                opened.append(open_database(url))
            yield opened[0], opened[1]
        finally:
            for db in opened:
                db.close()
            postgres_server.drop(name)

    return open_pair


class DatabaseFactory:
    """Fresh databases of one backend for a test; dropped afterwards."""

    def __init__(self, backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
        self.backend = backend
        self._request = request
        self._tmp = tmp_path
        self._dropped: list[str] = []
        self._opened: list[Database] = []

    def url(self, *, migrated: bool = False) -> str:
        """The URL of a new database: empty, or migrated to the latest version."""
        if self.backend == "sqlite":
            path = self._tmp / f"db-{uuid.uuid4().hex[:8]}.db"
            if migrated:
                shutil.copyfile(self._request.getfixturevalue("sqlite_template"), path)
            return f"sqlite:///{path}"
        server: PostgresServer = self._request.getfixturevalue("postgres_server")
        template = self._request.getfixturevalue("pg_template") if migrated else None
        name = server.create(template)
        self._dropped.append(name)
        return server.url_for(name)

    def open(self, url: str | None = None, *, migrated: bool = True, **options: object) -> Database:
        db = open_database(url or self.url(migrated=migrated), **options)
        self._opened.append(db)
        return db

    def cleanup(self) -> None:
        for db in self._opened:
            db.close()
        if self._dropped:
            server: PostgresServer = self._request.getfixturevalue("postgres_server")
            for name in self._dropped:
                server.drop(name)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def databases(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[DatabaseFactory]:
    factory = DatabaseFactory(backend, request, tmp_path)
    yield factory
    factory.cleanup()


@pytest.fixture
def db(databases: DatabaseFactory) -> Database:
    """A migrated, empty database of the test's backend."""
    return databases.open()


@pytest.fixture
def database_url(databases: DatabaseFactory) -> str:
    """The URL of an empty, unmigrated database of the test's backend."""
    return databases.url()
