"""The PostgreSQL backend (psycopg 3).

Connections run in autocommit; multi-statement work opens an explicit
transaction, so a single-statement operation costs one round trip. Sessions
are pinned to UTC. A pooled connection whose socket turned readable while
idle (the server closed it, e.g. after a restart) is dropped at checkout, so
the same Database object recovers by itself when the server comes back.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import re
import select
import selectors
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from itertools import count
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.pq import TransactionStatus

from ..errors import (
    AuthenticationError,
    BackendUnavailableError,
    ConflictError,
    ValidationError,
)
from ..schema import (
    BOOLEAN,
    FLOAT,
    INTEGER,
    TEXT,
    TIMESTAMP,
    Column,
    ForeignKey,
    Index,
    SchemaObject,
    SchemaSnapshot,
    Table,
)
from ..url import URL_ERROR, DatabaseURL, url_error
from .base import (
    SNAPSHOT,
    WRITE,
    Adapter,
    Diagnostic,
    ErrorRule,
    Failure,
    Features,
    Mode,
    Options,
    Rules,
    Session,
    fulltext_name,
)
from .base import quote_identifier as _quote

#: pg_advisory_lock key of the migration runner ("hsk_migr" as bytes).
MIGRATION_LOCK_KEY = int.from_bytes(b"hsk_migr", "big") & 0x7FFF_FFFF_FFFF_FFFF
#: pg_advisory_xact_lock key held by each migration transaction ("hsk_step").
MIGRATION_STEP_KEY = int.from_bytes(b"hsk_step", "big") & 0x7FFF_FFFF_FFFF_FFFF

_FAMILIES = {
    "text": TEXT,
    "character varying": TEXT,
    "bigint": INTEGER,
    "integer": INTEGER,
    "smallint": INTEGER,
    "double precision": FLOAT,
    "boolean": BOOLEAN,
    "timestamp with time zone": TIMESTAMP,
}
_cursor_ids = count()
_ON_DELETE = {
    "a": "NO ACTION",
    "r": "RESTRICT",
    "c": "CASCADE",
    "n": "SET NULL",
    "d": "SET DEFAULT",
}


class PgSession(psycopg.Connection[tuple[Any, ...]]):
    """A psycopg connection with the DB-API ``executemany`` the logic layer uses.

    ``execute`` and ``executemany`` run on one cursor kept with the
    connection instead of a new cursor per statement: creating a psycopg
    cursor costs more CPU than a point read's own client-side work (measured
    for the benchmark suite, bench/). A statement's result is therefore valid
    until the next statement on the session, so callers read it (fetchone,
    fetchall, rowcount) before running another one; code that needs several
    open results opens its own cursors (``stream`` and ``bulk_insert`` do).
    """

    _hs_cursor: psycopg.Cursor[tuple[Any, ...]] | None = None
    _hs_readable: Callable[[], bool]

    def execute(  # type: ignore[override]
        self,
        query: Any,
        params: Any = None,
        *,
        prepare: bool | None = None,
        binary: bool = False,
    ) -> psycopg.Cursor[tuple[Any, ...]]:
        if binary:
            return super().execute(query, params, prepare=prepare, binary=True)
        cur = self._hs_cursor
        if cur is None or cur.closed:
            cur = self._hs_cursor = self.cursor()
        return cur.execute(query, params, prepare=prepare)

    def executemany(self, query: Any, params_seq: Iterable[Sequence[Any]], /) -> None:
        cur = self._hs_cursor
        if cur is None or cur.closed:
            cur = self._hs_cursor = self.cursor()
        cur.executemany(query, params_seq)


_UNAVAILABLE = ErrorRule(BackendUnavailableError, "{where} is unavailable: {detail}")

#: Why a connection attempt failed, from libpq's words: no SQLSTATE reaches
#: the client before a session exists. Pseudo code -> patterns (lower case).
_CONNECT_FAILURES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (code, re.compile("|".join(patterns)))
    for code, patterns in (
        (
            "HS_AUTH",
            (
                r"authentication failed",
                r"no password supplied",
                r"no pg_hba\.conf entry",
                r"pg_hba\.conf rejects",
                r'role ".*" does not exist',
            ),
        ),
        ("HS_NO_DATABASE", (r'database ".*" does not exist',)),
        ("HS_URL", (r"invalid [\w ]+ value", r"invalid port number", r"invalid connection option")),
        (
            "HS_UNKNOWN_HOST",
            (
                r"failed to resolve host",
                r"could not translate host name",
                r"name or service not known",
                r"nodename nor servname",
                r"name resolution",
            ),
        ),
        ("HS_TIMEOUT", (r"timeout expired",)),
        (
            "HS_UNREACHABLE",
            (
                r"connection refused",
                r"no such file or directory",
                r"no route to host",
                r"network is unreachable",
                r"could not connect",
            ),
        ),
    )
)
#: 'connection failed: connection to server at "h", port 5432 failed: FATAL:  <reason>'
_LIBPQ_PREFIX = re.compile(
    r"^(?:connection (?:failed|is bad): )?(?:connection to server .*? failed: )?(?:FATAL: +)?"
)
_UNREACHABLE = ErrorRule(BackendUnavailableError, "cannot reach the PostgreSQL server at {detail}")

#: SQLSTATE (whole, or its class) or a pseudo code of diagnose() -> rule.
ERROR_RULES: dict[str, ErrorRule] = {
    **Rules.constraints(
        unique=("23505",), foreign_key="23503", not_null="23502", check="23514", other="23"
    ),
    "22": ErrorRule(ValidationError, "value rejected by PostgreSQL: {detail}"),
    "HS_DATA": ErrorRule(ValidationError, "value rejected by PostgreSQL: {detail}"),
    "40001": ErrorRule(ConflictError, "concurrent update, retry the operation: {detail}"),
    "40P01": ErrorRule(ConflictError, "concurrent update, retry the operation: {detail}"),
    "57014": ErrorRule(BackendUnavailableError, "statement timed out on {where}: {detail}"),
    "55P03": ErrorRule(BackendUnavailableError, "lock wait timed out on {where}: {detail}"),
    "25006": ErrorRule(BackendUnavailableError, "{where} is read-only: {detail}"),
    "42P01": Rules.NO_SCHEMA,
    "42703": Rules.NO_SCHEMA,
    "08": _UNAVAILABLE,
    "57P": _UNAVAILABLE,
    "53": _UNAVAILABLE,
    "HS_CONNECTION": _UNAVAILABLE,
    "HS_AUTH": ErrorRule(AuthenticationError, "authentication failed: {detail}"),
    "HS_NO_DATABASE": ErrorRule(BackendUnavailableError, "{detail}"),
    "HS_URL": ErrorRule(ValidationError, "malformed URL for {where}: {detail}", URL_ERROR),
    "HS_UNKNOWN_HOST": _UNREACHABLE,
    "HS_TIMEOUT": _UNREACHABLE,
    "HS_UNREACHABLE": _UNREACHABLE,
    "HS_CLOSED": Rules.CLOSED,
}

#: "Key (workspace_id, id)=(...) already exists." -> the key's columns
_KEY_COLUMNS = re.compile(r"^Key \(([^)]*)\)=")


class PostgreSQLAdapter(Adapter):
    row_lock_clause = " FOR UPDATE"
    key_share_clause = " FOR KEY SHARE"
    hlc_stamp_sql = (
        "lpad(t.hlc_wall::text, 13, '0') || '.' || lpad(t.hlc_counter::text, 6, '0') "
        "|| '.' || t.origin_id"
    )
    features = Features(
        name="postgresql",
        binary_collation=' COLLATE "C"',
        native_bulk_load=True,
        combines_statements=True,
    )
    error_rules = ERROR_RULES

    def __init__(self, url: DatabaseURL, options: Options) -> None:
        super().__init__(url, options)
        self._conninfo = self._build_conninfo()
        self._compiled: dict[str, str] = {}
        self.pool = self._make_pool()

    @property
    def where(self) -> str:
        return f"PostgreSQL {self.url.redacted}"

    def identity(self) -> object:
        """Server address, database and user, whatever the URL's spelling
        (scheme alias, parameter order, defaults spelled out or not)."""
        params = conninfo_to_dict(self._conninfo)
        return tuple(
            str(params.get(k) or "") for k in ("host", "hostaddr", "port", "dbname", "user")
        )

    def _build_conninfo(self) -> str:
        problem = None
        try:
            params = conninfo_to_dict(self.url.raw)
        except psycopg.Error as exc:
            problem = self.scrub(str(exc))
        if problem is not None:
            # Raised outside the handler: the driver's error (which may quote
            # the password) must not ride along as __context__.
            raise url_error(f"malformed URL for {self.where}: {problem}")
        # The session default is pinned too, so even a statement run in
        # autocommit (an implicit transaction) never takes a server's or a
        # database's `default_transaction_isolation` (docs/DESIGN.md).
        settings = [
            "-c TimeZone=UTC",
            "-c client_encoding=UTF8",
            r"-c default_transaction_isolation=read\ committed",
        ]
        if self.options.statement_timeout:
            settings.append(f"-c statement_timeout={int(self.options.statement_timeout * 1000)}")
        if self.options.read_only:
            settings.append("-c default_transaction_read_only=on")
        existing = params.get("options")
        params["options"] = " ".join(([str(existing)] if existing else []) + settings)
        params.setdefault("application_name", "handshake-storage")
        params["connect_timeout"] = str(max(2, round(self.options.connect_timeout)))
        return make_conninfo(**{k: v for k, v in params.items() if v is not None})

    # -- connections ------------------------------------------------------

    def _connect(self) -> PgSession:
        with self.errors():
            conn = PgSession.connect(self._conninfo, autocommit=True)
        try:
            conn._hs_readable = _readable_probe(conn.fileno())
        except BaseException:
            conn.close()
            raise
        return conn

    def begin(self, conn: PgSession, mode: Mode) -> None:
        conn.execute(_BEGIN[mode])

    def commit(self, conn: PgSession) -> None:
        conn.execute("COMMIT")

    def rollback(self, conn: PgSession) -> None:
        if conn.closed or conn.broken:
            return
        if conn.info.transaction_status != TransactionStatus.IDLE:
            conn.execute("ROLLBACK")

    def is_broken(self, conn: PgSession) -> bool:
        return bool(conn.closed or conn.broken)

    def _usable(self, conn: PgSession) -> bool:
        """Idle and still connected: an idle connection has nothing to read
        unless the server hung up on it (restart, pg_terminate_backend)."""
        if conn.closed or conn.broken or conn.pgconn.transaction_status != _IDLE:
            return False
        try:
            return not conn._hs_readable()
        except (OSError, ValueError, AttributeError):
            return False

    def _clean(self, conn: PgSession) -> bool:
        """No transaction open: the only state a connection may enter the pool in."""
        return not (conn.closed or conn.broken) and conn.pgconn.transaction_status == _IDLE

    def classify(self, exc: BaseException) -> Failure | None:
        state = getattr(exc, "sqlstate", None) or ""
        if state in ("40001", "40P01"):
            return Failure.CONFLICT
        if state in ("57P01", "57P02", "57P03"):  # admin/crash shutdown: rolled back
            return Failure.TERMINATED
        if isinstance(exc, psycopg.OperationalError) and (not state or state.startswith("08")):
            return Failure.DISCONNECTED
        return None

    # -- SQL and values -----------------------------------------------------

    def compile(self, sql: str) -> str:
        compiled = self._compiled.get(sql)
        if compiled is None:
            compiled = _to_pyformat(super().compile(sql))
            self._compiled[sql] = compiled
        return compiled

    def encode_timestamp(self, value: datetime) -> datetime:
        return value

    def decode_timestamp(self, value: datetime) -> datetime:
        return value

    # -- errors ---------------------------------------------------------------

    def is_driver_error(self, exc: BaseException) -> bool:
        return isinstance(exc, psycopg.Error)

    def diagnose(self, exc: BaseException) -> Diagnostic:
        state = getattr(exc, "sqlstate", None) or ""
        detail = self.scrub(_first_line(exc))
        diag = getattr(exc, "diag", None)
        if state.startswith("23") and diag is not None:
            key = _KEY_COLUMNS.match(diag.message_detail or "")
            return Diagnostic(
                state,
                detail,
                diag.table_name,
                diag.column_name or (key.group(1) if key else None),
                diag.constraint_name,
            )
        if not state:
            if isinstance(exc, psycopg.DataError):
                state = "HS_DATA"
            elif isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
                return self._connect_failure(exc, detail)
        return Diagnostic(state, detail)

    def _connect_failure(self, exc: BaseException, detail: str) -> Diagnostic:
        """A failed connection, told apart: the login refused (naming user and
        server), the server not reached (refused, unknown host, no answer),
        no such database, a bad option value in the URL. Else: unavailable."""
        text = self.scrub(str(exc))
        lowered = text.lower()
        code = next((c for c, pattern in _CONNECT_FAILURES if pattern.search(lowered)), None)
        if code is None:
            return Diagnostic("HS_CONNECTION", detail)
        server, user, database = self._server(exc)
        reason = " ".join(_LIBPQ_PREFIX.sub("", text.splitlines()[0]).split())
        if code == "HS_AUTH":
            if "no password supplied" in lowered:
                reason = "the server asks for a password and the URL gives none"
            detail = (
                f'the PostgreSQL server at {server} refused user "{user}" ({reason}); '
                "check the user name and password"
            )
        elif code == "HS_NO_DATABASE":
            detail = (
                f'the PostgreSQL server at {server} has no database "{database}": '
                f"create it first (createdb {database})"
            )
        elif code == "HS_UNKNOWN_HOST":
            detail = f"{server}: unknown host name"
        elif code == "HS_TIMEOUT":
            timeout = max(2, round(self.options.connect_timeout))
            detail = f"{server}: no answer within {timeout}s (connect_timeout)"
        elif code == "HS_UNREACHABLE":
            if server.startswith("socket"):
                detail = f"{server}: no server listens there (is it running locally?)"
            else:
                detail = f"{server}: {reason.lower()} (is it running and reachable?)"
        else:
            detail = reason
        return Diagnostic(code, detail)

    def _server(self, exc: BaseException) -> tuple[str, str, str]:
        """(the server as people name it, the user, the database) of a failed
        connection: what libpq used when it says, else the URL's values with
        libpq's defaults. Never the password."""
        params = conninfo_to_dict(self._conninfo)
        pgconn = getattr(exc, "pgconn", None)

        def used(attribute: str, key: str, env: str, default: str) -> str:
            value = getattr(pgconn, attribute, None) if pgconn is not None else None
            if isinstance(value, bytes) and value:
                return value.decode("utf-8", "replace")
            return str(params.get(key) or os.environ.get(env) or default)

        host = used("host", "host", "PGHOST", "")
        port = used("port", "port", "PGPORT", "5432")
        user = used("user", "user", "PGUSER", "") or _os_user()
        database = used("db", "dbname", "PGDATABASE", "") or user
        if not host or host.startswith("/"):
            server = f"socket {host or 'default'}/.s.PGSQL.{port}"
        else:
            server = f"{host}:{port}"
        return self.scrub(server), self.scrub(user), self.scrub(database)

    # -- introspection ------------------------------------------------------

    def introspect(self, session: Session) -> SchemaSnapshot:
        columns: dict[str, list[Column]] = {}
        for table, name, dtype, nullable in session.execute(
            "SELECT c.relname, a.attname, format_type(a.atttypid, NULL), NOT a.attnotnull "
            "FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') "
            "AND a.attnum > 0 AND NOT a.attisdropped"
        ).fetchall():
            columns.setdefault(table, []).append(
                Column(name, _FAMILIES.get(dtype, dtype), bool(nullable))
            )
        pks: dict[str, tuple[str, ...]] = {}
        fks: dict[str, list[ForeignKey]] = {}
        for table, kind, cols, ref_table, ref_cols, on_delete in session.execute(
            "SELECT cl.relname, con.contype, "
            "  ARRAY(SELECT a.attname FROM unnest(con.conkey) WITH ORDINALITY k(n, o) "
            "        JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n "
            "        ORDER BY k.o), "
            "  fcl.relname, "
            "  ARRAY(SELECT a.attname FROM unnest(con.confkey) WITH ORDINALITY k(n, o) "
            "        JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.n "
            "        ORDER BY k.o), "
            "  con.confdeltype "
            "FROM pg_constraint con JOIN pg_class cl ON cl.oid = con.conrelid "
            "JOIN pg_namespace n ON n.oid = cl.relnamespace "
            "LEFT JOIN pg_class fcl ON fcl.oid = con.confrelid "
            "WHERE n.nspname = current_schema() AND con.contype IN ('p', 'f')"
        ).fetchall():
            if kind == "p":
                pks[table] = tuple(cols)
            else:
                fks.setdefault(table, []).append(
                    ForeignKey(tuple(cols), ref_table, tuple(ref_cols), _ON_DELETE[on_delete])
                )
        tables = {
            name: Table(
                name, tuple(sorted(cols)), pks.get(name, ()), tuple(sorted(fks.get(name, [])))
            )
            for name, cols in columns.items()
        }
        indexes: dict[str, Index] = {}
        for name, table, cols, unique in session.execute(
            "SELECT ic.relname, tc.relname, "
            "  ARRAY(SELECT a.attname FROM unnest(i.indkey) WITH ORDINALITY k(n, o) "
            "        JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n "
            "        ORDER BY k.o), "
            "  i.indisunique "
            "FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid "
            "JOIN pg_class tc ON tc.oid = i.indrelid "
            "JOIN pg_namespace n ON n.oid = tc.relnamespace "
            "WHERE n.nspname = current_schema() "
            "AND NOT EXISTS (SELECT 1 FROM pg_constraint con WHERE con.conindid = i.indexrelid) "
            # GIN indexes are the full-text machinery (migrations cannot create one)
            "AND ic.relam <> (SELECT oid FROM pg_am WHERE amname = 'gin')"
        ).fetchall():
            indexes[name] = Index(name, table, tuple(cols), bool(unique))
        return SchemaSnapshot(tables, indexes)

    def other_objects(self, session: Session, fulltext: Collection[str]) -> list[SchemaObject]:
        """Views, materialized and foreign tables, sequences, triggers, the
        index kinds introspection leaves out (GIN but a full-text table's own
        index) and functions of the current schema; an extension's are its own."""
        rows = session.execute(
            "SELECT CASE c.relkind WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view' "
            "  WHEN 'f' THEN 'foreign table' WHEN 'S' THEN 'sequence' ELSE 'index' END, "
            "  c.relname, t.relname "
            "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "LEFT JOIN pg_index i ON i.indexrelid = c.oid "
            "LEFT JOIN pg_class t ON t.oid = i.indrelid "
            "WHERE n.nspname = current_schema() AND (c.relkind IN ('v', 'm', 'f', 'S') "
            "  OR (c.relkind = 'i' AND c.relam = (SELECT oid FROM pg_am WHERE amname = 'gin'))) "
            # an extension's objects are its own; an identity's sequence is its column's
            "AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass "
            "  AND d.objid = c.oid AND (d.deptype = 'e' "
            "    OR (c.relkind = 'S' AND d.deptype IN ('a', 'i')))) "
            "UNION ALL "
            "SELECT 'trigger', tg.tgname, c.relname FROM pg_trigger tg "
            "JOIN pg_class c ON c.oid = tg.tgrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = current_schema() AND NOT tg.tgisinternal "
            "UNION ALL "
            "SELECT CASE p.prokind WHEN 'p' THEN 'procedure' ELSE 'function' END, p.proname, NULL "
            "FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
            "WHERE n.nspname = current_schema() "
            "AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass "
            "  AND d.objid = p.oid AND d.deptype = 'e')"
        ).fetchall()
        return sorted(
            SchemaObject(kind, name, table)
            for kind, name, table in rows
            if not (kind == "index" and table in fulltext and name == fulltext_name(table))
        )

    def has_table(self, session: Session, name: str) -> bool:
        row = session.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()
        return bool(row[0])

    # -- migrations -----------------------------------------------------------

    @contextmanager
    def migration_lock(self) -> Iterator[Session]:
        """A session-level advisory lock held on its own connection.

        The runner works on a second connection, so each migration commits on
        its own while the lock stays held for the whole run. If a migrator is
        killed, the server drops its lock connection at once, possibly while
        the work connection's COMMIT is still being processed. Each migration
        transaction therefore also holds a transaction-level lock, and the
        next migrator takes that lock as a barrier before reading the history:
        it waits until the dead migrator's last transaction has ended.
        """
        lock_conn = self._connect()
        try:
            with self.errors():
                lock_conn.execute(f"SET lock_timeout = {int(self.options.lock_timeout * 1000)}")
                lock_conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
            work = self._connect()
            try:
                with self.errors():
                    work.execute(f"SET lock_timeout = {int(self.options.lock_timeout * 1000)}")
                    work.execute(_BEGIN[WRITE])
                    work.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_STEP_KEY,))
                    work.execute("COMMIT")
                    work.execute("RESET lock_timeout")
                yield work
            finally:
                work.close()
        finally:
            with contextlib.suppress(psycopg.Error):  # closing the session releases it too
                lock_conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_KEY,))
            lock_conn.close()

    @contextmanager
    def migration_step(self, session: Session) -> Iterator[None]:
        session.execute(_BEGIN[WRITE])
        try:
            session.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_STEP_KEY,))
            yield
        except BaseException:
            if not (session.closed or session.broken):  # type: ignore[attr-defined]
                session.execute("ROLLBACK")
            raise
        session.execute("COMMIT")

    # -- full text: tsvector + GIN -------------------------------------------

    def create_fulltext(self, session: Session, table: str, column: str) -> None:
        """A GIN index on the column's tsvector: nothing stored twice, kept
        current by the server in the writing transaction. The ``simple``
        configuration keeps each encoded word as it is (no stemming, no stop
        words; the stream has only ``[a-z0-9]`` words between spaces)."""
        session.execute(
            f"CREATE INDEX {_quote(fulltext_name(table))} ON {_quote(table)} "
            f"USING gin ({_tsvector(_quote(column))})"
        )

    def drop_fulltext(self, session: Session, table: str) -> None:
        session.execute(f"DROP INDEX IF EXISTS {_quote(fulltext_name(table))}")

    def fulltext_match(self, alias: str, table: str, column: str) -> str:
        return f"{_tsvector(f'{alias}.{_quote(column)}')} @@ CAST(? AS tsquery)"

    def fulltext_query(self, clauses: Sequence[Sequence[Any]], excluded: Sequence[Any]) -> str:
        def atom(a: Any) -> str:
            words = [f"'{t}'" for t in a.terms]
            if a.prefix:
                words[-1] += ":*"
            return "(" + " <-> ".join(words) + ")"

        text = " & ".join("(" + " | ".join(map(atom, c)) + ")" for c in clauses)
        if excluded:
            text += " & !(" + " | ".join(map(atom, excluded)) + ")"
        return text

    def lock_for_rebuild(self, session: Session, sources: Sequence[str], table: str) -> None:
        """Writers lock the canonical tables before the derived one (a block
        write inserts into blocks, then into block_search). DROP TABLE of the
        derived table needs ACCESS EXCLUSIVE on it and on the table its
        foreign key references. Taking that directly deadlocks with a writer
        or a reader halfway through; so first SHARE ROW EXCLUSIVE on the
        sources (writers wait, readers go on and finish), then the derived
        table itself, and the DROP's own lock on the sources last. The sources
        come parent first (documents, then blocks): writers lock in that order."""
        names = ", ".join(_quote(s) for s in sources)  # parents first, as writers lock
        session.execute(f"LOCK TABLE {names} IN SHARE ROW EXCLUSIVE MODE")
        session.execute(f"LOCK TABLE {_quote(table)} IN ACCESS EXCLUSIVE MODE")

    def fulltext_fingerprint(self, session: Session, table: str) -> object:
        row = session.execute(
            "SELECT pg_get_indexdef(to_regclass(%s)), "
            "(SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(%s))",
            (fulltext_name(table), fulltext_name(table)),
        ).fetchone()
        if row is None or row[0] is None:
            return None
        return (row[0], "valid" if row[1] else "invalid")

    @contextmanager
    def bulk_load(self, session: Session, tables: Sequence[str]) -> Iterator[None]:
        """Load without keys, foreign keys and indexes, then restore them.

        Maintaining a btree row by row and checking each foreign key with a
        trigger costs several times more than building the index once from
        the loaded rows and validating each foreign key with one join (what
        pgloader does too). The definitions are read from the catalog and
        re-created verbatim under the same names, in the caller's
        transaction: the restore validates every key and constraint, and any
        failure rolls the whole load back.
        """
        names = list(tables)
        constraints = session.execute(
            "SELECT con.conname, cl.relname, con.contype, pg_get_constraintdef(con.oid) "
            "FROM pg_constraint con JOIN pg_class cl ON cl.oid = con.conrelid "
            "JOIN pg_namespace n ON n.oid = cl.relnamespace "
            "LEFT JOIN pg_class ref ON ref.oid = con.confrelid "
            "WHERE n.nspname = current_schema() AND con.contype IN ('p', 'u', 'f') "
            "AND (cl.relname = ANY(%s) OR ref.relname = ANY(%s)) "
            "ORDER BY con.contype, cl.relname, con.conname",
            (names, names),
        ).fetchall()
        indexes = session.execute(
            "SELECT ic.relname, pg_get_indexdef(i.indexrelid) "
            "FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid "
            "JOIN pg_class tc ON tc.oid = i.indrelid "
            "JOIN pg_namespace n ON n.oid = tc.relnamespace "
            "WHERE n.nspname = current_schema() AND tc.relname = ANY(%s) "
            "AND NOT EXISTS (SELECT 1 FROM pg_constraint con "
            "  WHERE con.conindid = i.indexrelid AND con.contype IN ('p', 'u', 'x')) "
            "ORDER BY ic.relname",
            (names,),
        ).fetchall()
        foreign = [c for c in constraints if c[2] == "f"]
        keys = [c for c in constraints if c[2] != "f"]
        for name, table, _, _ in foreign + keys:
            session.execute(f"ALTER TABLE {_quote(table)} DROP CONSTRAINT {_quote(name)}")
        for name, _ in indexes:
            session.execute(f"DROP INDEX {_quote(name)}")
        yield
        for name, table, _, definition in keys:
            session.execute(
                f"ALTER TABLE {_quote(table)} ADD CONSTRAINT {_quote(name)} {definition}"
            )
        for _, definition in indexes:
            session.execute(definition)
        for name, table, _, definition in foreign:
            session.execute(
                f"ALTER TABLE {_quote(table)} ADD CONSTRAINT {_quote(name)} {definition}"
            )

    # -- bulk work ----------------------------------------------------------

    def execute_groups(
        self, session: Session, groups: Sequence[tuple[str, Sequence[Sequence[Any]]]]
    ) -> list[int]:
        """All groups in one pipeline: one round trip to the server, not one
        per statement (psycopg's ``executemany`` alone syncs once per group)."""
        if not groups:
            return []
        cursors = []
        try:
            with session.pipeline():  # type: ignore[attr-defined]
                for sql, rows in groups:
                    cur = session.cursor()  # type: ignore[attr-defined]
                    cursors.append(cur)
                    cur.executemany(sql, rows)
            return [cur.rowcount for cur in cursors]
        finally:
            for cur in cursors:
                cur.close()

    def bulk_insert(
        self, session: Session, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]
    ) -> int:
        sql = f"COPY {_quote(table)} ({', '.join(map(_quote, columns))}) FROM STDIN"
        written = 0
        with session.cursor() as cur, cur.copy(sql) as copy:  # type: ignore[attr-defined]
            for row in rows:
                copy.write_row(row)
                written += 1
        return written

    def stream(
        self, session: Session, sql: str, params: Sequence[Any] = (), batch: int = 2000
    ) -> Iterator[Sequence[Any]]:
        """Rows through a server-side cursor, fetched ``batch`` at a time.

        Between fetches the connection is free, so the caller may write on
        the same session while it reads (the cursor needs a transaction).
        """
        name = f"hs_stream_{next(_cursor_ids)}"
        with session.cursor(name=name) as cur:  # type: ignore[attr-defined]
            cur.itersize = batch
            cur.execute(self.compile(sql), params or None)
            while rows := cur.fetchmany(batch):
                yield from rows

    def describe(self) -> dict[str, str]:
        with self.transaction(mode=Mode.AUTOCOMMIT) as session:
            version, database, user = session.execute(
                "SELECT current_setting('server_version'), current_database(), current_user"
            ).fetchone()
        return {
            "backend": "postgresql",
            "url": self.url.redacted,
            "server_version": version,
            "database": database,
            "user": user,
        }


#: Every transaction states its isolation (docs/DESIGN.md, "Concurrency model").
_BEGIN = {
    SNAPSHOT: "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY",
    WRITE: "BEGIN ISOLATION LEVEL READ COMMITTED",
}
_IDLE = int(TransactionStatus.IDLE)


def _readable_probe(fd: int) -> Callable[[], bool]:
    """A zero-timeout "is there anything to read on ``fd``" check that works
    for any descriptor number (``select.select`` fails from 1024 on)."""
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(fd, select.POLLIN | select.POLLPRI)
        return lambda: bool(poller.poll(0))
    selector = selectors.DefaultSelector()  # pragma: no cover - Windows
    selector.register(fd, selectors.EVENT_READ)
    return lambda: bool(selector.select(0))


def _tsvector(column: str) -> str:
    return f"to_tsvector('simple'::regconfig, {column})"


def _os_user() -> str:
    """libpq's default user name: the operating system's."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no user name for this uid
        return "?"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _to_pyformat(sql: str) -> str:
    """``?`` placeholders to psycopg's ``%s``, leaving quoted text alone."""
    out: list[str] = []
    quote: str | None = None
    for ch in sql:
        if quote:
            out.append("%%" if ch == "%" else ch)
            if ch == quote:
                quote = None
        elif ch in ("'", '"'):
            quote = ch
            out.append(ch)
        elif ch == "?":
            out.append("%s")
        elif ch == "%":
            out.append("%%")
        else:
            out.append(ch)
    return "".join(out)
