"""What every backend adapter provides, and the pieces they share.

The business logic (``database.py``) talks to an :class:`Adapter` only. An
adapter holds what truly differs between databases: connecting, parameter
style, type conversion, error translation, introspection, locking and bulk
loading, and the engine's own full-text index. Connections never leave
this package's callers: the logic layer receives a :class:`Session` inside
a :class:`Transaction` and gives it back.
"""

from __future__ import annotations

import contextlib
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any, Generic, Protocol, TypeVar

from ..declarations import fulltext_name as fulltext_name
from ..errors import (
    BackendUnavailableError,
    ConflictError,
    MigrationError,
    NotFoundError,
    StorageError,
    ValidationError,
)
from ..schema import SchemaSnapshot
from ..url import DatabaseURL


class Cursor(Protocol):
    rowcount: int

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Session(Protocol):
    """The slice of a DB-API connection the logic layer may use."""

    def execute(self, sql: str, params: Sequence[Any] = ..., /) -> Cursor: ...

    def executemany(self, sql: str, params: Iterable[Sequence[Any]], /) -> Any: ...


class Mode(Enum):
    AUTOCOMMIT = "autocommit"  # one statement, atomic by itself
    SNAPSHOT = "snapshot"  # several reads that must see one consistent state
    WRITE = "write"  # several statements applied all or nothing


AUTOCOMMIT, SNAPSHOT, WRITE = Mode.AUTOCOMMIT, Mode.SNAPSHOT, Mode.WRITE


@dataclass(frozen=True)
class Options:
    """Tunables accepted by ``open_database(url, **options)``."""

    pool_size: int = 8
    pool_timeout: float = 30.0  # seconds to wait for a free connection
    connect_timeout: float = 10.0  # seconds to establish a connection
    busy_timeout: float = 30.0  # SQLite: seconds a writer waits for the lock
    statement_timeout: float | None = None  # PostgreSQL: per-statement limit
    lock_timeout: float = 300.0  # seconds a migrator waits for another
    read_only: bool = False
    synchronous: str = "full"  # SQLite: "full" survives power loss; "normal" is faster


@dataclass(frozen=True)
class Features:
    name: str
    #: appended to a text expression in ORDER BY so it sorts by code point
    binary_collation: str
    #: whether ``bulk_insert`` uses a native bulk protocol
    native_bulk_load: bool


C = TypeVar("C")


class ConnectionPool(Generic[C]):
    """A small thread-safe pool: a free list, and a lock only to open, wait
    for, wake or close connections.

    Hand-written because the per-call budget is a few microseconds: measured
    on the benchmark machine, ``psycopg_pool`` adds about 11 us to a point
    read and this pool under 1 us (see docs/DESIGN.md).
    """

    def __init__(
        self,
        connect: Callable[[], C],
        close: Callable[[C], None],
        usable: Callable[[C], bool],
        max_size: int,
        timeout: float,
    ) -> None:
        self._connect = connect
        self._close = close
        self._usable = usable
        self._max_size = max(1, max_size)
        self._timeout = timeout
        self._lock = threading.Lock()
        self._available = threading.Condition(self._lock)
        self._idle: list[C] = []
        self._size = 0
        self._waiters = 0
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def acquire(self) -> C:
        # Fast path without the lock: list.pop and list.append are atomic, and
        # taking a lock twice per call cost about 1 us of a point read's few
        # microseconds of overhead (bench/). Every idle connection is popped by
        # exactly one party (an acquirer or close), so none is handed out twice.
        try:
            conn = self._idle.pop()
        except IndexError:
            conn = self._acquire_slow()
            if conn is None:  # a slot for a new connection was reserved
                try:
                    return self._connect()
                except BaseException:
                    self._forget()
                    raise
        if self._closed:  # close() ran while we took it
            self.discard(conn)
            raise BackendUnavailableError("the database is closed")
        if not self._usable(conn):
            self.discard(conn)
            return self.acquire()
        return conn

    def _acquire_slow(self) -> C | None:
        """An idle connection, or None when the caller may open a new one;
        waits up to the timeout for a release when the pool is full."""
        deadline: float | None = None
        with self._lock:
            # Counted before looking at the free list: a release that appends
            # after our look then sees a waiter and notifies (no lost wakeup).
            self._waiters += 1
            try:
                while True:
                    if self._closed:
                        raise BackendUnavailableError("the database is closed")
                    if self._idle:
                        return self._idle.pop()
                    if self._size < self._max_size:
                        self._size += 1
                        return None
                    now = time.monotonic()
                    if deadline is None:
                        deadline = now + self._timeout
                    if now >= deadline or not self._available.wait(deadline - now):
                        raise BackendUnavailableError(
                            f"no free database connection within {self._timeout:g}s "
                            f"(pool size {self._max_size})"
                        )
            finally:
                self._waiters -= 1

    def release(self, conn: C) -> None:
        if self._closed:
            self.discard(conn)
            return
        self._idle.append(conn)
        if self._closed:  # close() ran between the check and the append
            self._drain()
        elif self._waiters:
            with self._lock:
                self._available.notify()

    def discard(self, conn: C) -> None:
        self._safe_close(conn)
        self._forget()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._available.notify_all()
        self._drain()

    def _drain(self) -> None:
        while True:
            try:
                conn = self._idle.pop()
            except IndexError:
                return
            self.discard(conn)

    def _forget(self) -> None:
        with self._lock:
            self._size -= 1
            if self._waiters:
                self._available.notify()

    def _safe_close(self, conn: C) -> None:
        with contextlib.suppress(Exception):  # a broken connection may refuse to close
            self._close(conn)


class Transaction:
    """``with adapter.transaction(mode) as session:`` — the unit of work.

    Commits on success, rolls back on any exception, hands the connection
    back to the pool (or discards it if broken) and turns driver exceptions
    into :class:`StorageError`.
    """

    __slots__ = ("_adapter", "_conn", "_mode")

    def __init__(self, adapter: Adapter, mode: Mode) -> None:
        self._adapter = adapter
        self._mode = mode
        self._conn: Any = None

    def __enter__(self) -> Any:
        adapter = self._adapter
        try:
            conn = adapter.pool.acquire()
        except StorageError:
            raise
        except Exception as exc:
            raise adapter.translate_error(exc) from None
        if self._mode is not AUTOCOMMIT:
            try:
                adapter.begin(conn, self._mode)
            except BaseException as exc:
                adapter.pool.discard(conn)
                if isinstance(exc, Exception):
                    raise adapter.translate_error(exc) from None
                raise
        self._conn = conn
        return conn

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        adapter, conn = self._adapter, self._conn
        self._conn = None
        if exc is None:
            if self._mode is not AUTOCOMMIT:
                try:
                    adapter.commit(conn)
                except BaseException as commit_exc:
                    adapter.abandon(conn)
                    if isinstance(commit_exc, Exception):
                        raise adapter.translate_error(commit_exc) from None
                    raise
            adapter.pool.release(conn)
            return False
        adapter.abandon(conn)
        if isinstance(exc, StorageError) or not isinstance(exc, Exception):
            return False
        if adapter.is_driver_error(exc):
            raise adapter.translate_error(exc) from None
        return False


class Adapter(ABC):
    """One database backend. Subclasses fill in the abstract methods."""

    features: Features
    pool: ConnectionPool[Any]

    def __init__(self, url: DatabaseURL, options: Options) -> None:
        self.url = url
        self.options = options

    # -- connections and transactions ------------------------------------

    def transaction(self, mode: Mode = WRITE) -> Transaction:
        return Transaction(self, mode)

    def fetch(self, sql: str, params: Sequence[Any], one: bool = False) -> Any:
        """Run one read statement in autocommit; its row (``one``) or rows.

        Exactly what ``with transaction(AUTOCOMMIT) as s: s.execute(...)``
        does (same checkout, release and error translation) without the
        context manager's objects and calls: a point read's whole budget for
        the API is a few microseconds (bench/)."""
        pool = self.pool
        try:
            conn = pool.acquire()
        except StorageError:
            raise
        except Exception as exc:
            raise self.translate_error(exc) from None
        try:
            cursor = conn.execute(sql, params)
            result = cursor.fetchone() if one else cursor.fetchall()
        except BaseException as exc:
            self.abandon(conn)
            if (
                isinstance(exc, Exception)
                and not isinstance(exc, StorageError)
                and self.is_driver_error(exc)
            ):
                raise self.translate_error(exc) from None
            raise
        pool.release(conn)
        return result

    @abstractmethod
    def begin(self, conn: Any, mode: Mode) -> None: ...

    @abstractmethod
    def commit(self, conn: Any) -> None: ...

    @abstractmethod
    def rollback(self, conn: Any) -> None: ...

    def abandon(self, conn: Any) -> None:
        """Roll back whatever is open and return ``conn`` to the pool, or drop it."""
        try:
            self.rollback(conn)
        except BaseException:
            self.pool.discard(conn)
            return
        if self.is_broken(conn):
            self.pool.discard(conn)
        else:
            self.pool.release(conn)

    def close(self) -> None:
        self.pool.close()

    # -- SQL and values ---------------------------------------------------

    def compile(self, sql: str) -> str:
        """Turn portable query text into this backend's dialect."""
        return sql.replace("{C}", self.features.binary_collation)

    @abstractmethod
    def encode_timestamp(self, value: datetime) -> Any: ...

    @abstractmethod
    def decode_timestamp(self, value: Any) -> datetime: ...

    # -- errors: the boundary ----------------------------------------------

    #: code -> rule; a code is looked up whole, then by ever shorter prefixes
    #: ("23505", then "23"; "SQLITE_CONSTRAINT_CHECK", then "SQLITE_CONSTRAINT").
    error_rules: Mapping[str, ErrorRule]

    @abstractmethod
    def is_driver_error(self, exc: BaseException) -> bool: ...

    @abstractmethod
    def diagnose(self, exc: BaseException) -> Diagnostic:
        """The scrubbed facts of a driver exception (the driver-specific part)."""

    @property
    def where(self) -> str:
        """How messages name this database (no secrets)."""
        return f"{self.features.name} {self.url.redacted}"

    def translate_error(self, exc: BaseException) -> StorageError:
        """The project's error for a driver exception: the rule for its code
        (:attr:`error_rules`), with the scrubbed structured fields."""
        if isinstance(exc, StorageError):
            return exc
        d = self.diagnose(exc)
        rule = _lookup(self.error_rules, d.code) or _FALLBACK
        message = rule.message.format(
            detail=d.detail,
            where=self.where,
            table=d.table or "the table",
            column=d.column or "a column",
            constraint=d.constraint or "",
            options=self.options,
        )
        return rule.error(
            message,
            backend=self.features.name,
            backend_code=d.code or None,
            table=d.table,
            constraint=d.constraint,
        )

    @contextlib.contextmanager
    def errors(self) -> Iterator[None]:
        """The error boundary around driver calls: a driver exception leaves
        as the project's error, never chained to the driver's (``from None``).
        The hot paths (:class:`Transaction`, :meth:`fetch`) apply the same
        :meth:`translate_error` without a context manager, for speed."""
        try:
            yield
        except StorageError:
            raise
        except Exception as exc:
            if not self.is_driver_error(exc):
                raise
            raise self.translate_error(exc) from None

    def scrub(self, text: str) -> str:
        return self.url.scrub(text)

    # -- schema, locking and bulk work -----------------------------------

    @abstractmethod
    def introspect(self, session: Session) -> SchemaSnapshot: ...

    @abstractmethod
    def has_table(self, session: Session, name: str) -> bool: ...

    @abstractmethod
    def migration_lock(self) -> AbstractContextManager[Session]:
        """Hold the exclusive migration lock; yields a session for the runner."""

    @abstractmethod
    def migration_step(self, session: Session) -> AbstractContextManager[None]:
        """One migration's transaction inside :meth:`migration_lock`."""

    @abstractmethod
    def bulk_insert(
        self, session: Session, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]
    ) -> int: ...

    #: From this many rows on, ``insert_rows`` uses the native bulk load: COPY
    #: costs one more round trip than a pipelined ``executemany`` but far
    #: less per row (measured for the benchmark suite, bench/).
    bulk_threshold: int = 64

    def insert_rows(
        self,
        session: Session,
        table: str,
        columns: Sequence[str],
        sql: str,
        rows: list[Sequence[Any]],
    ) -> None:
        """Insert ``rows`` (values in ``columns`` order) with the compiled
        INSERT ``sql``, or with the backend's bulk load when there are many."""
        if self.features.native_bulk_load and len(rows) >= self.bulk_threshold:
            self.bulk_insert(session, table, columns, rows)
        else:
            session.executemany(sql, rows)

    @abstractmethod
    def stream(
        self, session: Session, sql: str, params: Sequence[Any] = (), batch: int = 2000
    ) -> Iterator[Sequence[Any]]: ...

    @contextlib.contextmanager
    def bulk_load(self, session: Session, tables: Sequence[str]) -> Iterator[None]:
        """Around filling the new, empty ``tables`` with many rows inside one
        transaction (``copy``). A backend may set their keys, constraints and
        indexes aside for the load and restore them, validated, at the end;
        the caller checks that the schema came back identical. The default
        keeps everything in place."""
        yield

    # -- the engine's full-text index (declared portably, see rebuildable.py) --

    @abstractmethod
    def create_fulltext(self, session: Session, table: str, column: str) -> None:
        """Materialize the engine's full-text index over ``table.column`` from
        the rows present, kept current by the engine from then on. ``column``
        holds the encoded word stream of search.py."""

    @abstractmethod
    def drop_fulltext(self, session: Session, table: str) -> None:
        """Drop the full-text index of ``table`` if it exists."""

    @abstractmethod
    def fulltext_match(self, alias: str, table: str, column: str) -> str:
        """A predicate on rows ``alias`` of ``table``: the full-text index
        matches the query given as the one ``?`` parameter (see fulltext_query)."""

    @abstractmethod
    def fulltext_query(self, clauses: Sequence[Sequence[Any]], excluded: Sequence[Any]) -> str:
        """The engine's query text for search atoms (search.Atom): every clause
        (any of its atoms) and none of ``excluded``."""

    @abstractmethod
    def lock_for_rebuild(self, session: Session, sources: Sequence[str], table: str) -> None:
        """Before a rebuild drops and recomputes the derived ``table`` from
        ``sources`` (parents first): lock so that concurrent writers wait
        instead of deadlocking with it."""

    @abstractmethod
    def fulltext_fingerprint(self, session: Session, table: str) -> object:
        """What ``indexes verify`` compares: the index definition and whether
        it agrees with the rows (None if the index is missing)."""

    def execute_script_statement(self, session: Session, statement: str) -> None:
        """Run one DDL/DML statement from a migration file (no parameters)."""
        session.execute(statement)

    @abstractmethod
    def describe(self) -> dict[str, str]:
        """Server facts for ``status`` (version, file, ...), secrets excluded."""

    # -- the database itself (sqlx's MigrateDatabase) -----------------------

    def exists(self) -> bool:
        """Whether the database exists already (opening it would not create it)."""
        return True

    def same_database(self, other: Adapter) -> bool:
        """Whether ``other`` addresses the same database, however spelled."""
        return type(other) is type(self) and self.identity() == other.identity()

    @abstractmethod
    def identity(self) -> object:
        """What tells two databases of this backend apart (a resolved file
        path, a server address and database name)."""

    def discard_created(self) -> None:
        """Remove what opening a database that did not exist created (a
        SQLite file and its journals); nothing for a server database."""
        return None

    # -- pieces both adapters share ------------------------------------------

    def _make_pool(self) -> ConnectionPool[Any]:
        return ConnectionPool(
            self._connect,
            _close,
            self._usable,
            self.options.pool_size,
            self.options.pool_timeout,
        )

    @abstractmethod
    def _connect(self) -> Any: ...

    @abstractmethod
    def _usable(self, conn: Any) -> bool:
        """Whether an idle pooled connection can be handed out."""

    def is_broken(self, conn: Any) -> bool:
        return not self._usable(conn)


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """A driver exception's facts, scrubbed of secrets (after psycopg's
    ``Diagnostic``): its code, one line of detail and, when the backend
    reports them, the table, column and constraint."""

    code: str
    detail: str
    table: str | None = None
    column: str | None = None
    constraint: str | None = None


@dataclass(frozen=True, slots=True)
class ErrorRule:
    """The project error class a code maps to, and its message template
    (fields of :class:`Diagnostic`, ``where`` and ``options``). Constraint
    rules name only what both backends report, so the same failure reads
    the same on each."""

    error: type[StorageError]
    message: str


class Rules:
    """The portable rules both adapters' tables use: constraint failures read
    alike on every backend (they name only what each reports)."""

    UNIQUE = ErrorRule(ConflictError, "duplicate key: {table} already has a row with this {column}")
    FOREIGN_KEY = ErrorRule(
        NotFoundError, "foreign key violation: the row refers to a row that does not exist"
    )
    NOT_NULL = ErrorRule(ValidationError, "{table}.{column} must not be null")
    CHECK = ErrorRule(ValidationError, "check constraint {constraint} failed")
    NO_SCHEMA = ErrorRule(
        MigrationError,
        "{where} has no Handshake schema ({detail}); run `handshake-storage migrate`",
    )
    CLOSED = ErrorRule(BackendUnavailableError, "the database is closed")
    OTHER_CONSTRAINT = ErrorRule(ValidationError, "constraint violation: {detail}")

    @classmethod
    def constraints(
        cls,
        *,
        unique: Sequence[str],
        foreign_key: str,
        not_null: str,
        check: str,
        other: str,
    ) -> dict[str, ErrorRule]:
        """A backend's codes for each kind of constraint failure -> its rule."""
        return {
            **dict.fromkeys(unique, cls.UNIQUE),
            foreign_key: cls.FOREIGN_KEY,
            not_null: cls.NOT_NULL,
            check: cls.CHECK,
            other: cls.OTHER_CONSTRAINT,
        }


_FALLBACK = ErrorRule(StorageError, "error on {where}: {detail}")


def _lookup(rules: Mapping[str, ErrorRule], code: str) -> ErrorRule | None:
    """The rule for ``code``: an SQLSTATE whole, then its first three and two
    characters (its class); a SQLite name whole, then without each ``_PART``."""
    if code[:1].isdigit():
        candidates = [code, code[:3], code[:2]]
    else:
        candidates = [code]
        while "_" in code:
            code = code[: code.rfind("_")]
            candidates.append(code)
    for candidate in candidates:
        rule = rules.get(candidate)
        if rule is not None:
            return rule
    return None


def quote_identifier(identifier: str) -> str:
    """A double-quoted SQL identifier (the same rule on both backends)."""
    return '"' + identifier.replace('"', '""') + '"'


def _close(conn: Any) -> None:
    conn.close()
