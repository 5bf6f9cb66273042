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
import gc
import os
import random
import threading
import time
import weakref
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
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
from ..schema import SchemaObject, SchemaSnapshot
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
    create: bool = True  # SQLite: False refuses a missing file instead of creating it
    synchronous: str = "full"  # SQLite: "full" survives power loss; "normal" is faster
    retry_attempts: int = 10  # runs of a transaction that keeps hitting conflicts, in all


@dataclass(frozen=True)
class Features:
    name: str
    #: appended to a text expression in ORDER BY so it sorts by code point
    binary_collation: str
    #: whether ``bulk_insert`` uses a native bulk protocol
    native_bulk_load: bool
    #: whether one statement may do the work of several where each costs a
    #: round trip: a WITH that modifies rows, an UPDATE returning columns of
    #: its FROM (queries.py: ``ledger_append``, ``update_block_seen``)
    combines_statements: bool = False


C = TypeVar("C")
T = TypeVar("T")

#: Every live pool, so a forked child can reset them all (``os.register_at_fork``).
_POOLS: weakref.WeakSet[ConnectionPool[Any]] = weakref.WeakSet()


class _Slot:
    """One of a pool's ``max_size`` places. A pool counts the slots alive:
    a slot lives as long as the connection it was taken for (or the frame
    that is opening that connection), so however a connection is lost, its
    place comes back when it is freed, with no bookkeeping step to miss."""

    __slots__ = ("__weakref__",)


class ConnectionPool(Generic[C]):
    """A small thread-safe pool: a free list, and a lock only to open, wait
    for, wake or close connections.

    Hand-written because the per-call budget is a few microseconds: measured
    on the benchmark machine, ``psycopg_pool`` adds about 11 us to a point
    read and this pool under 1 us (see docs/DESIGN.md).

    Process and interrupt safety (docs/DESIGN.md, "Concurrency model"):

    * After ``os.fork()`` the child's pools start empty: the parent's
      connections are kept referenced (never used, closed or finalized in the
      child) and the child opens its own. A connection of the parent handed
      back in the child is dropped the same way.
    * The pool's size is the number of live :class:`_Slot` objects (a set of
      weak references, emptied by the references' C-level callbacks), and
      each connection holds its slot. No counter can be left wrong by an
      exception, ``KeyboardInterrupt`` included, landing between two steps.
      Every path between taking a connection and handing it over puts it
      back or closes it on an exception. CPython can still deliver an
      interrupt after ``list.pop`` returned and before its result is stored;
      that connection is unreachable and its slot returns when it is freed.
      Exceptions escaping these paths mark the pool *suspect*, and the next
      checkout runs one garbage collection first (a lost SQLite connection
      may hold the write lock until it is freed).
    * A connection enters the free list only when ``clean`` says it is idle
      (no transaction open), so nothing is reused mid-transaction.
    """

    def __init__(
        self,
        connect: Callable[[], C],
        close: Callable[[C], None],
        usable: Callable[[C], bool],
        max_size: int,
        timeout: float,
        clean: Callable[[C], bool] | None = None,
    ) -> None:
        self._connect = connect
        self._close = close
        self._usable = usable
        self._clean = clean if clean is not None else usable
        self._max_size = max(1, max_size)
        self._timeout = timeout
        self._closed = False
        self._inherited: list[Any] = []  # a parent process's connections (after fork)
        self._init_state()
        _POOLS.add(self)

    def _init_state(self) -> None:
        self._generation = object()
        self._lock = threading.Lock()
        self._available = threading.Condition(self._lock)
        self._idle: list[C] = []
        self._slots: set[weakref.ref[_Slot]] = set()
        self._waiters = 0
        self._suspect = False

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def size(self) -> int:
        """Open connections: idle, in use, or being opened."""
        return len(self._slots)

    @property
    def idle(self) -> int:
        return len(self._idle)

    def owns(self, conn: C) -> bool:
        """Whether ``conn`` was opened by this pool in this process."""
        return getattr(conn, "_hs_pool_generation", None) is self._generation

    def acquire(self) -> C:
        # Fast path without the lock: list.pop and list.append are atomic, and
        # taking a lock twice per call cost about 1 us of a point read's few
        # microseconds of overhead (bench/). Every idle connection is popped by
        # exactly one party (an acquirer or close), so none is handed out twice.
        if self._suspect:
            self._collect()
        try:
            conn = self._idle.pop()
        except IndexError:
            return self._acquire_new()
        except BaseException:
            self._suspect = True
            raise
        return self._checked(conn)

    def _collect(self) -> None:
        """Free connections an interrupt left unreachable (their slots return,
        closing them rolls back what they had open)."""
        self._suspect = False
        gc.collect()

    def _checked(self, conn: C) -> C:
        try:
            if self._closed:  # close() ran while we took it
                raise BackendUnavailableError("the database is closed")
            if self._usable(conn):
                return conn
        except BaseException:
            self._suspect = True
            self.discard(conn)
            raise
        self.discard(conn)
        return self.acquire()

    def _acquire_new(self) -> C:
        got = self._acquire_slow()
        if type(got) is not _Slot:
            return self._checked(got)
        # A place for a new connection. Should connecting fail, the slot is
        # dropped here (the traceback keeps this frame alive); if this frame
        # is lost some other way, the slot dies with it.
        try:
            conn = self._connect()
        except BaseException:
            got = None
            if self._waiters:
                self._wake()
            raise
        conn._hs_pool_generation = self._generation  # type: ignore[attr-defined]
        conn._hs_slot = got  # type: ignore[attr-defined]
        return conn

    def _acquire_slow(self) -> C | _Slot:
        """An idle connection, or a slot for opening a new one; waits up to
        the timeout for a release when the pool is full."""
        deadline = time.monotonic() + self._timeout
        while True:
            collect = False
            with self._lock:
                # Counted before looking at the free list: a release that
                # appends after our look then sees a waiter and notifies.
                self._waiters += 1
                try:
                    while True:
                        if self._closed:
                            raise BackendUnavailableError("the database is closed")
                        if self._idle:
                            return self._idle.pop()
                        slots = self._slots
                        if len(slots) < self._max_size:
                            slot = _Slot()
                            slots.add(weakref.ref(slot, slots.discard))
                            return slot
                        if self._suspect:
                            self._suspect = False
                            collect = True
                            break
                        left = deadline - time.monotonic()
                        if left <= 0:
                            raise BackendUnavailableError(
                                f"no free database connection within {self._timeout:g}s "
                                f"(pool size {self._max_size})"
                            )
                        # Bounded, so a slot freed by the GC (which cannot
                        # notify) is noticed soon.
                        self._available.wait(min(left, 0.1))
                finally:
                    self._waiters -= 1
            if collect:
                gc.collect()  # frees connections an interrupt left unreachable

    def release(self, conn: C) -> None:
        try:
            if getattr(conn, "_hs_pool_generation", None) is not self._generation:
                self._inherited.append(conn)  # the parent's, after a fork: never touched
                return
            if self._closed or not self._clean(conn):
                self.discard(conn)
                return
            self._idle.append(conn)
            if self._closed:  # close() ran between the check and the append
                self._drain()
            elif self._waiters:
                self._wake()
        except BaseException:
            self._suspect = True
            raise

    def discard(self, conn: C) -> None:
        """Close ``conn`` and free its place."""
        if getattr(conn, "_hs_pool_generation", None) is not self._generation:
            self._inherited.append(conn)
            return
        try:
            self._safe_close(conn)
        finally:
            conn._hs_slot = None  # type: ignore[attr-defined]
            if self._waiters:
                self._wake()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._available.notify_all()
        self._drain()

    def _after_fork_in_child(self) -> None:
        """Forget the parent's connections without touching them; open anew."""
        self._inherited.extend(self._idle)
        self._init_state()

    def _drain(self) -> None:
        while True:
            try:
                conn = self._idle.pop()
            except IndexError:
                return
            self.discard(conn)

    def _wake(self) -> None:
        with self._lock:
            self._available.notify()

    def _safe_close(self, conn: C) -> None:
        with contextlib.suppress(Exception):  # a broken connection may refuse to close
            self._close(conn)


def _reset_pools_in_child() -> None:
    for pool in list(_POOLS):
        pool._after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_pools_in_child)


class Failure(Enum):
    """How a driver error bears on running the transaction again."""

    CONFLICT = "conflict"  # serialization failure or deadlock: rolled back, retry with backoff
    TERMINATED = "terminated"  # the server ended the session and rolled back (e.g. pg_terminate)
    DISCONNECTED = "disconnected"  # the connection broke; what the server did is unknown


#: Fresh connections tried when a pooled one turns out dead (server restart,
#: ``pg_terminate_backend``) before anything of the call was done.
RECONNECTS = 3


class Transaction:
    """``with adapter.transaction(mode) as session:`` — one unit of work, run once.

    Commits on success, rolls back on any exception, hands the connection
    back to the pool (or discards it if broken) and turns driver exceptions
    into :class:`StorageError`. It never runs the body again: use
    :meth:`Adapter.run`, which retries a whole transaction after a
    serialization failure, a deadlock or a dropped connection.
    """

    __slots__ = ("_adapter", "_conn", "_mode", "failure", "in_commit")

    def __init__(self, adapter: Adapter, mode: Mode) -> None:
        self._adapter = adapter
        self._mode = mode
        self._conn: Any = None
        #: set when the transaction failed in a way :meth:`Adapter.run` may retry
        self.failure: Failure | None = None
        #: whether the failure happened while committing (outcome unknown)
        self.in_commit = False

    def __enter__(self) -> Any:
        try:
            return self._checkout()
        except StorageError:
            raise  # raised on purpose, the connection accounted for
        except BaseException:
            # Interrupted (KeyboardInterrupt...) part-way: do not keep it.
            pool = self._adapter.pool
            pool._suspect = True
            conn, self._conn = self._conn, None
            if conn is not None:
                pool.discard(conn)
            raise

    def _checkout(self) -> Any:
        adapter = self._adapter
        pool = adapter.pool
        for reconnect in range(RECONNECTS + 1):
            try:
                self._conn = conn = pool.acquire()
            except StorageError:
                raise
            except Exception as exc:
                raise adapter.translate_error(exc) from None
            if self._mode is AUTOCOMMIT:
                return conn
            try:
                adapter.begin(conn, self._mode)
                return conn
            except BaseException as exc:
                self._conn = None
                pool.discard(conn)
                if not isinstance(exc, Exception):
                    raise
                # Only BEGIN reached the server: on a dead connection, take another.
                if reconnect < RECONNECTS and adapter.classify(exc) in (
                    Failure.TERMINATED,
                    Failure.DISCONNECTED,
                ):
                    continue
                raise adapter.translate_error(exc) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        try:
            return self._finish(exc)
        except StorageError:
            raise  # raised on purpose, the connection accounted for
        except BaseException:
            self._adapter.pool._suspect = True  # interrupted: it may be unreachable now
            raise

    def _finish(self, exc: BaseException | None) -> bool:
        adapter, conn = self._adapter, self._conn
        if conn is None:
            return False
        pool = adapter.pool
        if not pool.owns(conn):  # forked inside the transaction: the parent's connection
            self._conn = None
            pool.release(conn)  # keeps it referenced, never touches it
            if exc is None:
                raise BackendUnavailableError(
                    "this transaction's connection belongs to the parent process "
                    "(os.fork() inside a transaction); nothing was committed"
                )
            return False
        if exc is None:
            if self._mode is not AUTOCOMMIT:
                try:
                    adapter.commit(conn)
                except BaseException as commit_exc:
                    self._conn = None
                    adapter.abandon(conn)
                    if isinstance(commit_exc, Exception):
                        self.in_commit = True
                        self.failure = adapter.classify(commit_exc)
                        raise adapter.translate_error(commit_exc) from None
                    raise
            self._conn = None
            pool.release(conn)
            return False
        self._conn = None
        adapter.abandon(conn)
        if isinstance(exc, StorageError) or not isinstance(exc, Exception):
            return False
        if adapter.is_driver_error(exc):
            self.failure = adapter.classify(exc)
            raise adapter.translate_error(exc) from None
        return False


def backoff(attempt: int) -> float:
    """Seconds to pause before conflict retry number ``attempt`` (1-based):
    "full jitter" exponential backoff, so colliding callers spread out."""
    return random.uniform(0.0, min(0.25, 0.002 * 2 ** min(attempt, 16)))


def _read(session: Session, sql: str, params: Sequence[Any], one: bool) -> Any:
    cursor = session.execute(sql, params)
    return cursor.fetchone() if one else cursor.fetchall()


def _write(session: Session, sql: str, params: Sequence[Any], returning: bool) -> Any:
    cursor = session.execute(sql, params)
    return cursor.fetchone() if returning else cursor.rowcount


class Adapter(ABC):
    """One database backend. Subclasses fill in the abstract methods."""

    features: Features
    pool: ConnectionPool[Any]

    def __init__(self, url: DatabaseURL, options: Options) -> None:
        self.url = url
        self.options = options

    # -- connections and transactions ------------------------------------

    def transaction(self, mode: Mode = WRITE) -> Transaction:
        """One transaction, run once (see :meth:`run` for retries)."""
        return Transaction(self, mode)

    def run(self, mode: Mode, work: Callable[[Session], T]) -> T:
        """``work(session)`` in a transaction of ``mode``, retried whole when
        that is safe. The library's one retry rule (docs/DESIGN.md):

        * serialization failure or deadlock (the server rolled back): again,
          up to ``Options.retry_attempts`` runs in all, after a jittered
          exponential pause; then the last error as :class:`ConflictError`;
        * the server ended the session (``pg_terminate_backend``, restart) or
          the connection broke before COMMIT was sent: again at once on a
          fresh connection, up to :data:`RECONNECTS` times. A connection lost
          *during* COMMIT, or during an AUTOCOMMIT statement without the
          server saying it ended the session, is not retried: the write may
          have happened.

        ``work`` must be safe to run again: database work through the session
        only, anything else it does repeatable (each run starts from the
        beginning; the earlier runs were rolled back). An AUTOCOMMIT ``work``
        runs one statement. The API's writes and reads run here, and so do
        ``ledger prune`` and peer recording; a sync import keeps its own
        whole-batch loop (``sync/exchange.py``, its own checks raise
        ConflictError), and the ledger's reads run once.
        """
        conflicts = reconnects = 0
        while True:
            tx = Transaction(self, mode)
            try:
                with tx as session:
                    return work(session)
            except StorageError as exc:
                failure = tx.failure
                if failure is Failure.CONFLICT:
                    conflicts += 1
                    if conflicts >= self.options.retry_attempts:
                        raise ConflictError(
                            f"{exc.message} (still conflicting after {conflicts} attempts)"
                        ) from None
                    time.sleep(backoff(conflicts))
                    continue
                if (
                    failure is Failure.TERMINATED
                    or (failure is Failure.DISCONNECTED and mode is not AUTOCOMMIT)
                ) and not tx.in_commit:
                    reconnects += 1
                    if reconnects <= RECONNECTS:
                        continue
                raise

    def fetch(self, sql: str, params: Sequence[Any], one: bool = False) -> Any:
        """Run one read statement in autocommit; its row (``one``) or rows.

        Exactly what ``with transaction(AUTOCOMMIT) as s: s.execute(...)``
        does (same checkout, release and error translation) without the
        context manager's objects and calls: a point read's whole budget for
        the API is a few microseconds (bench/). A read is always safe to
        repeat, so after a dead connection (or a conflict) it goes through
        :meth:`run`, on a fresh connection."""
        pool = self.pool
        conn = None
        try:
            conn = pool.acquire()
            cursor = conn.execute(sql, params)
            result = cursor.fetchone() if one else cursor.fetchall()
            done, conn = conn, None
            pool.release(done)
            return result
        except BaseException as exc:
            if conn is None:  # not checked out, released, or lost to an interrupt
                if not isinstance(exc, StorageError):
                    pool._suspect = True
                if isinstance(exc, StorageError) or not isinstance(exc, Exception):
                    raise
                raise self.translate_error(exc) from None
            self.abandon(conn)
            if (
                isinstance(exc, Exception)
                and not isinstance(exc, StorageError)
                and self.is_driver_error(exc)
            ):
                if self.classify(exc) is not None:
                    return self.run(SNAPSHOT, lambda s: _read(s, sql, params, one))
                raise self.translate_error(exc) from None
            raise

    def execute(self, sql: str, params: Sequence[Any], returning: bool = False) -> Any:
        """Run one write statement in autocommit through :meth:`run`: its
        ``rowcount``, or its RETURNING row (``returning``)."""
        return self.run(AUTOCOMMIT, lambda s: _write(s, sql, params, returning))

    @abstractmethod
    def begin(self, conn: Any, mode: Mode) -> None: ...

    @abstractmethod
    def commit(self, conn: Any) -> None: ...

    @abstractmethod
    def rollback(self, conn: Any) -> None: ...

    def abandon(self, conn: Any) -> None:
        """Roll back whatever is open and return ``conn`` to the pool, or drop it.

        A connection of the parent process (after a fork) is not touched."""
        pool = self.pool
        if not pool.owns(conn):
            pool.release(conn)
            return
        try:
            self.rollback(conn)
        except Exception:
            pool.discard(conn)  # the caller's own error is the one to report
            return
        except BaseException:
            pool.discard(conn)
            raise
        if self.is_broken(conn):
            pool.discard(conn)
        else:
            pool.release(conn)

    def classify(self, exc: BaseException) -> Failure | None:
        """Whether a driver error allows running the transaction again."""
        return None

    def close(self) -> None:
        self.pool.close()

    # -- SQL and values ---------------------------------------------------

    def compile(self, sql: str) -> str:
        """Turn portable query text into this backend's dialect."""
        return (
            sql.replace("{C}", self.features.binary_collation)
            .replace("{for_update}", self.row_lock_clause)
            .replace("{for_key_share}", self.key_share_clause)
            .replace("{hlc_stamp}", self.hlc_stamp_sql)
        )

    @abstractmethod
    def encode_timestamp(self, value: datetime) -> Any: ...

    @abstractmethod
    def decode_timestamp(self, value: Any) -> datetime: ...

    # -- errors: the boundary ----------------------------------------------

    #: appended to a SELECT that must lock the rows it reads until commit
    #: (``{for_update}`` in queries.py); SQLite's write transaction holds the
    #: whole database already.
    row_lock_clause: str = ""
    #: likewise, a lock that keeps the rows (and their keys) from being deleted
    #: while letting others lock them too (``{for_key_share}``): what a
    #: foreign-key check takes on a parent, taken up front.
    key_share_clause: str = ""
    #: where ``features.combines_statements``: the HLC stamp text of the counter row
    #: ``t`` in SQL (``{hlc_stamp}``), in ``ledger.stamp``'s format
    hlc_stamp_sql: str = ""

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
        # The driver's exception stays reachable as the new error's
        # __context__ (``from None`` only hides it): scrub it in place, so
        # no chain shows a password.
        exc.args = tuple(self.scrub(a) if isinstance(a, str) else a for a in exc.args)
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
            code=rule.code,
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
    def other_objects(self, session: Session, fulltext: Collection[str]) -> list[SchemaObject]:
        """Objects :meth:`introspect` leaves out (views, triggers, ...), but not
        this adapter's own full-text machinery for the tables in ``fulltext``:
        what a migration cannot have made."""

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

    def execute_groups(
        self, session: Session, groups: Sequence[tuple[str, Sequence[Sequence[Any]]]]
    ) -> list[int]:
        """Run each ``(sql, rows)`` group with ``executemany``, in order; the
        rows each group affected. A backend may send them all at once."""
        counts = []
        for sql, rows in groups:
            counts.append(session.executemany(sql, rows).rowcount)
        return counts

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
            self._clean,
        )

    @abstractmethod
    def _connect(self) -> Any: ...

    @abstractmethod
    def _usable(self, conn: Any) -> bool:
        """Whether an idle pooled connection can be handed out."""

    def _clean(self, conn: Any) -> bool:
        """Whether a returned connection may enter the pool: no transaction
        open (the default: usable)."""
        return self._usable(conn)

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
    code: str | None = None  # the error's code, when not its class's


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
