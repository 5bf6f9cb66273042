"""The embedded SQLite backend (stdlib ``sqlite3``).

Every connection runs in WAL mode with foreign keys on and a busy timeout,
so concurrent writers wait for the lock instead of failing. Writers take the
lock up front (``BEGIN IMMEDIATE``): a deferred transaction that upgrades
from read to write can fail with SQLITE_BUSY without waiting.
"""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ..declarations import PORTABLE_TYPES
from ..errors import BackendUnavailableError, MigrationError, StorageError, ValidationError
from ..schema import Column, ForeignKey, Index, SchemaObject, SchemaSnapshot, Table
from ..url import DatabaseURL
from . import base
from .base import SNAPSHOT, Adapter, Features, Mode, Options, Session, fulltext_name
from .base import quote_identifier as _quote

_DROP_TABLE = re.compile(r'^\s*DROP\s+TABLE\s+(?:IF\s+EXISTS\s+)?"?(\w+)"?', re.IGNORECASE)

_SYNCHRONOUS = {"off": "OFF", "normal": "NORMAL", "full": "FULL", "extra": "EXTRA"}

# Declared type (upper case, as written in the migrations) -> type family.
_FAMILIES = PORTABLE_TYPES


class SQLiteSession(sqlite3.Connection):
    """A connection whose ``execute`` and ``executemany`` reuse one cursor.

    ``sqlite3.Connection.execute`` creates a cursor per statement, which costs
    about as much as a primary-key read itself (measured for the benchmark
    suite, bench/). A statement's result is valid until the next statement on
    the session, so callers read it (fetchone, fetchall, rowcount) before
    running another one; code that needs several open results opens its own
    cursors (``stream`` does).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        shared = self.cursor()
        # Instance attributes shadow the methods: the call goes straight to
        # the cursor's C method, with no Python frame in between.
        self.execute = shared.execute  # type: ignore[method-assign]
        self.executemany = shared.executemany  # type: ignore[method-assign]


_VALUE = base.ErrorRule(ValidationError, "value rejected by SQLite: {detail}")
_LOCKED = base.ErrorRule(
    BackendUnavailableError,
    "{where} stayed locked past the busy timeout ({options.busy_timeout:g}s): {detail}",
)
_READ_ONLY = base.ErrorRule(BackendUnavailableError, "{where} is read-only: {detail}")
_CORRUPT = base.ErrorRule(StorageError, "{where} is corrupt or not a database: {detail}")
_IO = base.ErrorRule(BackendUnavailableError, "I/O error on {where}: {detail}")

#: SQLite extended result code name (or a pseudo code of diagnose()) -> rule.
ERROR_RULES: dict[str, base.ErrorRule] = {
    **base.Rules.constraints(
        unique=("SQLITE_CONSTRAINT_UNIQUE", "SQLITE_CONSTRAINT_PRIMARYKEY"),
        foreign_key="SQLITE_CONSTRAINT_FOREIGNKEY",
        not_null="SQLITE_CONSTRAINT_NOTNULL",
        check="SQLITE_CONSTRAINT_CHECK",
        other="SQLITE_CONSTRAINT",
    ),
    "SQLITE_BUSY": _LOCKED,
    "SQLITE_LOCKED": _LOCKED,
    "SQLITE_READONLY": _READ_ONLY,
    "HS_QUERY_ONLY": _READ_ONLY,
    "SQLITE_FULL": base.ErrorRule(BackendUnavailableError, "{where} cannot grow: the disk is full"),
    "SQLITE_IOERR": _IO,
    "SQLITE_CANTOPEN": _IO,
    "SQLITE_TOOBIG": _VALUE,
    "SQLITE_RANGE": _VALUE,
    "SQLITE_MISMATCH": _VALUE,
    "HS_UNBINDABLE": _VALUE,
    "SQLITE_CORRUPT": _CORRUPT,
    "SQLITE_NOTADB": _CORRUPT,
    "HS_NO_SUCH_TABLE": base.Rules.NO_SCHEMA,
    "HS_CLOSED": base.Rules.CLOSED,
}

#: "UNIQUE constraint failed: blocks.id, blocks.x" / "NOT NULL constraint failed: t.c"
_FAILED_COLUMNS = re.compile(r"constraint failed: ((?:\w+\.\w+(?:, )?)+)$")
_FAILED_CHECK = re.compile(r"CHECK constraint failed: (\w+)")


class SQLiteAdapter(Adapter):
    features = Features(name="sqlite", binary_collation="", native_bulk_load=False)
    error_rules = ERROR_RULES

    def __init__(self, url: DatabaseURL, options: Options) -> None:
        super().__init__(url, options)
        assert url.path is not None
        self.path: Path = url.path.expanduser()
        self._synchronous = _SYNCHRONOUS[options.synchronous.lower()]
        self.pool = self._make_pool()

    @property
    def where(self) -> str:
        return f"SQLite database {self.path}"

    # -- the database file ------------------------------------------------

    def exists(self) -> bool:
        return self.path.exists()

    def identity(self) -> object:
        return self.path.resolve()

    def discard_created(self) -> None:
        for suffix in ("", "-wal", "-shm", "-journal"):
            candidate = Path(f"{self.path}{suffix}")
            if candidate.exists():
                candidate.unlink()

    # -- connections ------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        path = self.path
        parent = path.absolute().parent
        if not parent.is_dir():
            raise BackendUnavailableError(
                f"cannot open SQLite database {path}: directory {parent} does not exist"
            )
        if (self.options.read_only or not self.options.create) and not path.exists():
            raise BackendUnavailableError(f"cannot open SQLite database {path}: no such file")
        if self.options.read_only:
            target = f"file:{quote(str(path.absolute()))}?mode=ro"
        else:
            target = str(path)
        try:
            conn = sqlite3.connect(
                target,
                timeout=self.options.busy_timeout,
                isolation_level=None,
                check_same_thread=False,
                cached_statements=512,
                uri=self.options.read_only,
                factory=SQLiteSession,
            )
        except sqlite3.Error as exc:
            raise BackendUnavailableError(f"cannot open SQLite database {path}: {exc}") from None
        try:
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute(f"PRAGMA synchronous = {self._synchronous}")
            if not self.options.read_only:
                self._enable_wal(conn)
            else:
                conn.execute("PRAGMA query_only = ON")
        except sqlite3.Error as exc:
            conn.close()
            raise self.translate_error(exc) from None
        return conn

    def _usable(self, conn: sqlite3.Connection) -> bool:
        """Open and with no transaction open (the state a pooled one must be in)."""
        try:
            return not conn.in_transaction  # raises on a closed connection
        except sqlite3.ProgrammingError:
            return False

    def is_broken(self, conn: sqlite3.Connection) -> bool:
        try:
            conn.in_transaction  # noqa: B018 - raises on a closed connection
        except sqlite3.ProgrammingError:
            return True
        return False

    def _enable_wal(self, conn: sqlite3.Connection) -> None:
        """Switch to WAL, waiting out other connections like any writer does.

        Changing the journal mode needs an exclusive lock, and SQLite returns
        SQLITE_BUSY at once, without the busy handler, when another connection
        opens or converts the same new file at that moment (two processes
        migrating a fresh database). So retry until the busy timeout.
        """
        deadline = time.monotonic() + self.options.busy_timeout
        while True:
            try:
                conn.execute("PRAGMA journal_mode = WAL").fetchone()
                return
            except sqlite3.OperationalError as exc:
                busy = (getattr(exc, "sqlite_errorname", "") or "").startswith("SQLITE_BUSY")
                if not busy or time.monotonic() >= deadline:
                    raise
            time.sleep(0.005)

    def begin(self, conn: sqlite3.Connection, mode: Mode) -> None:
        conn.execute("BEGIN" if mode is SNAPSHOT else "BEGIN IMMEDIATE")

    def commit(self, conn: sqlite3.Connection) -> None:
        conn.execute("COMMIT")

    def rollback(self, conn: sqlite3.Connection) -> None:
        if conn.in_transaction:
            conn.execute("ROLLBACK")

    # -- values -------------------------------------------------------------

    def encode_timestamp(self, value: datetime) -> str:
        if value.tzinfo is not UTC:
            value = value.astimezone(UTC)
        return value.isoformat(" ", "microseconds")

    def decode_timestamp(self, value: str) -> datetime:
        parsed = datetime.fromisoformat(value)
        return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)

    # -- errors ---------------------------------------------------------------

    def is_driver_error(self, exc: BaseException) -> bool:
        # sqlite3 raises these two itself while binding a value it cannot store.
        return isinstance(exc, sqlite3.Error | OverflowError | UnicodeEncodeError)

    def diagnose(self, exc: BaseException) -> base.Diagnostic:
        if isinstance(exc, OverflowError | UnicodeEncodeError):
            return base.Diagnostic("HS_UNBINDABLE", str(exc))
        name = getattr(exc, "sqlite_errorname", "") or ""
        detail = self.scrub(str(exc))
        if name.startswith("SQLITE_CONSTRAINT"):
            columns = _FAILED_COLUMNS.search(detail)
            check = _FAILED_CHECK.search(detail)
            if columns:
                pairs = [p.split(".", 1) for p in columns.group(1).split(", ")]
                return base.Diagnostic(name, detail, pairs[0][0], ", ".join(c for _, c in pairs))
            return base.Diagnostic(name, detail, constraint=check.group(1) if check else None)
        if not name.startswith("SQLITE_READONLY") and "query_only" in detail:
            name = "HS_QUERY_ONLY"
        elif "no such table" in detail:
            name = "HS_NO_SUCH_TABLE"
        elif isinstance(exc, sqlite3.ProgrammingError) and "closed" in detail:
            name = "HS_CLOSED"
        return base.Diagnostic(name, detail)

    # -- introspection ------------------------------------------------------

    def introspect(self, session: Session) -> SchemaSnapshot:
        tables: dict[str, Table] = {}
        indexes: dict[str, Index] = {}
        # FTS5 tables (virtual) and their storage (shadow) are the engine's
        # full-text machinery, not part of the portable schema.
        names = sorted(
            r[1]
            for r in session.execute("PRAGMA main.table_list").fetchall()
            if r[2] == "table" and not r[1].startswith("sqlite_")
        )
        for table in names:
            info = session.execute(f"PRAGMA table_info({_quote(table)})").fetchall()
            columns = tuple(
                sorted(
                    Column(name, _FAMILIES.get(decl.upper(), decl.lower()), not notnull)
                    for _cid, name, decl, notnull, _dflt, _pk in info
                )
            )
            pk = tuple(r[1] for r in sorted(info, key=lambda r: r[5]) if r[5])
            fk_rows = session.execute(f"PRAGMA foreign_key_list({_quote(table)})").fetchall()
            grouped: dict[int, list[Any]] = {}
            for row in fk_rows:
                grouped.setdefault(row[0], []).append(row)
            fks = tuple(
                sorted(
                    ForeignKey(
                        tuple(r[3] for r in sorted(rows, key=lambda r: r[1])),
                        rows[0][2],
                        tuple(r[4] for r in sorted(rows, key=lambda r: r[1])),
                        rows[0][6].upper(),
                    )
                    for rows in grouped.values()
                )
            )
            tables[table] = Table(table, columns, pk, fks)
        for name, table in session.execute(
            "SELECT name, tbl_name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
        ).fetchall():
            cols = tuple(
                r[2]
                for r in sorted(
                    session.execute(f"PRAGMA index_info({_quote(name)})").fetchall(),
                    key=lambda r: r[0],
                )
            )
            unique = any(
                r[1] == name and r[2]
                for r in session.execute(f"PRAGMA index_list({_quote(table)})").fetchall()
            )
            indexes[name] = Index(name, table, cols, bool(unique))
        return SchemaSnapshot(tables, indexes)

    def other_objects(self, session: Session, fulltext: Collection[str]) -> list[SchemaObject]:
        """Views, triggers and virtual tables, less each full-text table's
        FTS5 table and the triggers that keep it current (create_fulltext)."""
        machinery = {fulltext_name(t) for t in fulltext}
        found = []
        for kind, name, table in session.execute(
            "SELECT type, name, tbl_name FROM sqlite_master "
            "WHERE type IN ('view', 'trigger') OR (type = 'table' AND sql LIKE 'CREATE VIRTUAL%')"
        ).fetchall():
            if (kind == "table" and name in machinery) or (
                kind == "trigger" and table in fulltext and name.startswith(fulltext_name(table))
            ):
                continue  # the engine's full-text index of a declared table
            if kind == "table":
                found.append(SchemaObject("virtual table", name))
            else:
                found.append(SchemaObject(kind, name, table if kind == "trigger" else None))
        return sorted(found)

    def has_table(self, session: Session, name: str) -> bool:
        row = session.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
        ).fetchone()
        return row is not None

    # -- migrations -----------------------------------------------------------

    @contextmanager
    def migration_lock(self) -> Iterator[Session]:
        """The database write lock, held for the whole run.

        Each migration is a savepoint inside it, applied whole or rolled back
        whole; what was applied before a failure is committed, as on
        PostgreSQL. A process waiting for the lock sees the finished run.
        """
        conn = self._connect()
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self.options.lock_timeout * 1000)}")
            with self.errors():
                conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            finally:
                if conn.in_transaction:
                    try:
                        conn.execute("COMMIT")
                    except sqlite3.Error as exc:
                        conn.execute("ROLLBACK")
                        raise self.translate_error(exc) from None
        finally:
            conn.close()

    @contextmanager
    def migration_step(self, session: Session) -> Iterator[None]:
        session.execute("SAVEPOINT hs_migration")
        try:
            yield
        except BaseException:
            try:
                session.execute("ROLLBACK TO hs_migration")
                session.execute("RELEASE hs_migration")
            except sqlite3.Error:
                session.execute("ROLLBACK")  # nothing of this run is committed
            raise
        session.execute("RELEASE hs_migration")

    def execute_script_statement(self, session: Session, statement: str) -> None:
        dropped = _DROP_TABLE.match(statement)
        if dropped:  # a table's full-text index goes with it, as on PostgreSQL
            self.drop_fulltext(session, dropped.group(1))
        session.execute(statement)

    # -- full text: FTS5 ----------------------------------------------------

    def create_fulltext(self, session: Session, table: str, column: str) -> None:
        """An external-content FTS5 table over ``table`` (the words are stored
        once, in ``table``), filled from its rows, and triggers that keep it
        current in the writing transaction, cascading deletes included. The
        ``ascii`` tokenizer splits the encoded stream exactly at its spaces."""
        self._require_fts5(session)
        name, t, c = _quote(fulltext_name(table)), _quote(table), _quote(column)
        session.execute(
            f"CREATE VIRTUAL TABLE {name} USING fts5({c}, content={t}, content_rowid=rowid, "
            "tokenize=ascii, detail=full, columnsize=0)"
        )
        session.execute(f"INSERT INTO {name}({name}) VALUES ('rebuild')")
        insert = f"INSERT INTO {name}(rowid, {c}) VALUES (new.rowid, new.{c});"
        delete = f"INSERT INTO {name}({name}, rowid, {c}) VALUES ('delete', old.rowid, old.{c});"
        base = fulltext_name(table)
        for suffix, event, body in (
            ("ai", "INSERT", insert),
            ("ad", "DELETE", delete),
            ("au", "UPDATE", delete + " " + insert),
        ):
            session.execute(
                f"CREATE TRIGGER {_quote(base + '_' + suffix)} AFTER {event} ON {t} "
                f"BEGIN {body} END"
            )

    def _require_fts5(self, session: Session) -> None:
        options = {r[0] for r in session.execute("PRAGMA compile_options").fetchall()}
        if "ENABLE_FTS5" not in options:
            raise MigrationError(
                f"the SQLite library in use ({sqlite3.sqlite_version}) was built without FTS5, "
                "which block search needs; use a Python whose sqlite3 has it "
                "(PRAGMA compile_options lists ENABLE_FTS5)"
            )

    def drop_fulltext(self, session: Session, table: str) -> None:
        base = fulltext_name(table)
        for suffix in ("ai", "ad", "au"):
            session.execute(f"DROP TRIGGER IF EXISTS {_quote(base + '_' + suffix)}")
        session.execute(f"DROP TABLE IF EXISTS {_quote(base)}")

    def fulltext_match(self, alias: str, table: str, column: str) -> str:
        name = _quote(fulltext_name(table))
        return f"{alias}.rowid IN (SELECT rowid FROM {name} WHERE {name} MATCH ?)"

    def fulltext_query(self, clauses: Sequence[Sequence[Any]], excluded: Sequence[Any]) -> str:
        def atom(a: Any) -> str:
            return '"' + " ".join(a.terms) + '"' + (" *" if a.prefix else "")

        text = " AND ".join("(" + " OR ".join(map(atom, c)) + ")" for c in clauses)
        if excluded:
            text = f"({text}) NOT ({' OR '.join(map(atom, excluded))})"
        return text

    def lock_for_rebuild(self, session: Session, sources: Sequence[str], table: str) -> None:
        """Nothing to add: the rebuild's BEGIN IMMEDIATE already holds the one
        database write lock, and readers keep their WAL snapshot."""

    def fulltext_fingerprint(self, session: Session, table: str) -> object:
        name = fulltext_name(table)
        row = session.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
        ).fetchone()
        if row is None:
            return None
        q = _quote(name)
        try:  # rank 1: compare the index with the rows of the content table
            session.execute(f"INSERT INTO {q}({q}, rank) VALUES ('integrity-check', 1)")
            state = "agrees with its rows"
        except sqlite3.DatabaseError as exc:
            state = f"disagrees with its rows ({exc})"
        triggers = session.execute(
            "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND name LIKE ?",
            (name + "_a_",),
        ).fetchone()[0]
        return (row[0], f"{triggers} triggers", state)

    # -- bulk work ----------------------------------------------------------

    def bulk_insert(
        self, session: Session, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]
    ) -> int:
        sql = (
            f"INSERT INTO {_quote(table)} ({', '.join(map(_quote, columns))}) "
            f"VALUES ({', '.join('?' for _ in columns)})"
        )
        count = 0
        batch: list[Sequence[Any]] = []
        for row in rows:
            batch.append(row)
            if len(batch) >= 5000:
                session.executemany(sql, batch)
                count += len(batch)
                batch.clear()
        if batch:
            session.executemany(sql, batch)
            count += len(batch)
        return count

    def stream(
        self, session: Session, sql: str, params: Sequence[Any] = (), batch: int = 2000
    ) -> Iterator[Sequence[Any]]:
        # Its own cursor: the caller may run statements on the session while
        # it reads (the session's execute() reuses one cursor).
        cursor: Any = session.cursor().execute(self.compile(sql), params)  # type: ignore[attr-defined]
        while rows := cursor.fetchmany(batch):
            yield from rows

    def describe(self) -> dict[str, str]:
        return {
            "backend": "sqlite",
            "file": str(self.path.absolute()),
            "sqlite_version": sqlite3.sqlite_version,
        }
