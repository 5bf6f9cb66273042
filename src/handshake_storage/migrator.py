"""The migration runner: checksummed, transactional, locked.

Migrations are ``NNNN_description.sql`` files with a matching
``NNNN_description.down.sql``, shipped in ``handshake_storage/migrations``.
The applied history lives in ``schema_migrations``; every apply, rollback
and accepted checksum change is also appended to ``schema_migration_log``.

The runner takes the backend's migration lock first and only then reads the
history and computes the plan, so of several processes migrating at once one
applies and the others wait and find nothing left to do. Each migration and
its bookkeeping row commit together or not at all.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from . import sqlscript
from .backends.base import AUTOCOMMIT, Adapter, Session
from .declarations import Migration, load_migrations
from .errors import BackendUnavailableError, MigrationError, ValidationError
from .rebuildable import populate_derived

VERSION_TABLE = "schema_migrations"
LOG_TABLE = "schema_migration_log"
BOOKKEEPING_TABLES = (VERSION_TABLE, LOG_TABLE)


_BOOTSTRAP = (
    f"CREATE TABLE IF NOT EXISTS {VERSION_TABLE} ("
    " version BIGINT NOT NULL PRIMARY KEY,"
    " description TEXT NOT NULL,"
    " checksum TEXT NOT NULL,"
    " applied_at TIMESTAMP WITH TIME ZONE NOT NULL,"
    " execution_ms BIGINT NOT NULL)",
    f"CREATE TABLE IF NOT EXISTS {LOG_TABLE} ("
    " id TEXT NOT NULL PRIMARY KEY,"
    " version BIGINT NOT NULL,"
    " action TEXT NOT NULL,"
    " checksum TEXT,"
    " previous_checksum TEXT,"
    " reason TEXT,"
    " at TIMESTAMP WITH TIME ZONE NOT NULL)",
)


def bootstrap_statements() -> tuple[str, ...]:
    """DDL of the bookkeeping tables (portable; ``IF NOT EXISTS``)."""
    return _BOOTSTRAP


@dataclass(frozen=True)
class AppliedMigration:
    version: int
    description: str
    checksum: str
    applied_at: datetime
    execution_ms: int


@dataclass(frozen=True)
class MigrationState:
    """One row of ``status``: a known migration and/or an applied one."""

    version: int
    description: str
    state: str  # "applied" | "pending" | "drifted" | "unknown"
    file_checksum: str | None
    db_checksum: str | None
    applied_at: datetime | None
    execution_ms: int | None


@dataclass(frozen=True)
class LogEntry:
    """One row of ``schema_migration_log``: an apply ("up"), a rollback
    ("down") or an accepted checksum change, with its reason."""

    id: str
    at: datetime
    version: int
    action: str  # "up" | "down" | "accept-checksum"
    checksum: str | None
    previous_checksum: str | None
    reason: str | None


@dataclass(frozen=True)
class PlanStep:
    direction: str  # "up" | "down"
    migration: Migration

    @property
    def sql(self) -> str:
        return self.migration.up_sql if self.direction == "up" else self.migration.down_sql

    @property
    def file_name(self) -> str:
        return self.migration.name + (".sql" if self.direction == "up" else ".down.sql")

    @property
    def checksum(self) -> str:
        """The checksum of the file this step runs (up or down)."""
        m = self.migration
        return m.checksum if self.direction == "up" else m.down_checksum


@dataclass(frozen=True)
class Plan:
    current: int
    target: int
    steps: tuple[PlanStep, ...]


Progress = Callable[[str, Migration, float | None], None]
#: Called under the migration lock with the plan, before anything runs; may raise to stop.
PlanCheck = Callable[[Session, Plan], None]


class Migrator:
    """Applies and rolls back migrations on one database."""

    def __init__(self, adapter: Adapter, migrations: list[Migration] | None = None) -> None:
        self.adapter = adapter
        self.migrations = migrations if migrations is not None else load_migrations()
        for expected, migration in enumerate(self.migrations, start=1):
            if migration.version != expected:
                raise MigrationError(
                    f"migration versions must run 0001, 0002, ... without gaps; "
                    f"found {migration.name} where {expected:04d} was expected"
                )
        self._by_version = {m.version: m for m in self.migrations}

    @property
    def latest(self) -> int:
        return self.migrations[-1].version if self.migrations else 0

    # -- reading ----------------------------------------------------------

    def applied(self) -> list[AppliedMigration]:
        with self.adapter.transaction(AUTOCOMMIT) as session:
            return self.applied_in(session)

    def current_version(self) -> int:
        applied = self.applied()
        return applied[-1].version if applied else 0

    def status(self) -> list[MigrationState]:
        applied = {a.version: a for a in self.applied()}
        rows = []
        for migration in self.migrations:
            record = applied.pop(migration.version, None)
            if record is None:
                state = "pending"
            elif record.checksum != migration.checksum:
                state = "drifted"
            else:
                state = "applied"
            rows.append(
                MigrationState(
                    migration.version,
                    migration.description,
                    state,
                    migration.checksum,
                    record.checksum if record else None,
                    record.applied_at if record else None,
                    record.execution_ms if record else None,
                )
            )
        for record in applied.values():
            rows.append(
                MigrationState(
                    record.version,
                    record.description,
                    "unknown",
                    None,
                    record.checksum,
                    record.applied_at,
                    record.execution_ms,
                )
            )
        return sorted(rows, key=lambda r: r.version)

    def history(self) -> list[LogEntry]:
        """Every apply, rollback and accepted checksum, oldest first."""
        with self.adapter.transaction(AUTOCOMMIT) as session:
            if not self.adapter.has_table(session, LOG_TABLE):
                return []
            rows = session.execute(
                "SELECT id, at, version, action, checksum, previous_checksum, reason "
                f"FROM {LOG_TABLE} ORDER BY at, version, id"
            ).fetchall()
        decode = self.adapter.decode_timestamp
        return [LogEntry(r[0], decode(r[1]), *r[2:]) for r in rows]

    def plan(self, target: int | None = None, *, down: bool = False) -> Plan:
        """What ``migrate``/``rollback`` would run now, without running it (or
        creating a database that does not exist yet)."""
        if not self.adapter.exists():
            return self._plan([], target, down=down)
        with self.adapter.transaction(AUTOCOMMIT) as session:
            applied = self.applied_in(session)
        return self._plan(applied, target, down=down)

    # -- writing ------------------------------------------------------------

    def migrate(self, target: int | None = None, progress: Progress | None = None) -> Plan:
        """Apply pending migrations up to ``target`` (default: the latest)."""
        return self._run(target, down=False, progress=progress)

    def rollback(
        self, target: int, progress: Progress | None = None, *, check: PlanCheck | None = None
    ) -> Plan:
        """Revert applied migrations above ``target`` (0 reverts everything).

        ``check`` sees the plan under the lock, before anything runs (the CLI
        uses it to refuse when tables gained rows after the user confirmed)."""
        return self._run(target, down=True, progress=progress, check=check)

    def accept_checksum(self, version: int, reason: str) -> tuple[str, str]:
        """Record a deliberate edit of an applied migration file.

        Returns (old checksum, new checksum). The change is logged with the
        reason, so a drift is never silently forgotten.
        """
        migration = self._by_version.get(version)
        if migration is None:
            raise MigrationError(f"there is no migration file with version {version:04d}")
        if not reason or not reason.strip():
            raise ValidationError("accepting a changed migration needs a reason")
        self._check_open()
        adapter = self.adapter
        with adapter.migration_lock() as session:
            self._bootstrap(session)
            with adapter.migration_step(session):
                row = session.execute(
                    adapter.compile(f"SELECT checksum FROM {VERSION_TABLE} WHERE version = ?"),
                    (version,),
                ).fetchone()
                if row is None:
                    raise MigrationError(f"migration {migration.name} has not been applied")
                old = row[0]
                if old == migration.checksum:
                    return old, old
                session.execute(
                    adapter.compile(f"UPDATE {VERSION_TABLE} SET checksum = ? WHERE version = ?"),
                    (migration.checksum, version),
                )
                self._log(session, version, "accept-checksum", migration.checksum, old, reason)
        return old, migration.checksum

    # -- internals ------------------------------------------------------------

    def _check_open(self) -> None:
        # The runner connects outside the pool, so it checks for itself that
        # the database was not closed.
        if self.adapter.pool.closed:
            raise BackendUnavailableError("the database is closed")

    def _run(
        self,
        target: int | None,
        *,
        down: bool,
        progress: Progress | None,
        check: PlanCheck | None = None,
    ) -> Plan:
        self._check_open()
        adapter = self.adapter
        _check_target(target, self.latest, down=down)  # before anything is created
        with adapter.errors(), adapter.migration_lock() as session:
            self._bootstrap(session)
            plan = self._plan(self.applied_in(session), target, down=down)
            for step in plan.steps:  # all of them before the first runs
                refuse_transaction_control(step)
            if check is not None:
                check(session, plan)
            for step in plan.steps:
                self._apply(session, step, progress)
            return plan

    def _apply(self, session: Session, step: PlanStep, progress: Progress | None) -> None:
        adapter, migration = self.adapter, step.migration
        statements = sqlscript.split(step.sql)
        if progress:
            progress("start", migration, None)
        started = time.perf_counter()
        with adapter.migration_step(session):
            for statement in statements:
                try:
                    adapter.execute_script_statement(session, statement.text)
                except Exception as exc:
                    if not adapter.is_driver_error(exc):
                        raise
                    # The driver's own words: the translated message may advise
                    # "run migrate", which is what is failing here.
                    reason = adapter.scrub(str(exc).strip().splitlines()[0])
                    suffix = ".down.sql" if step.direction == "down" else ".sql"
                    raise MigrationError(
                        f"{migration.name}{suffix} line {statement.line} failed: {reason}"
                    ) from None
            populate_derived(adapter, session, migration, step.sql)
            elapsed_ms = round((time.perf_counter() - started) * 1000)
            if step.direction == "up":
                session.execute(
                    adapter.compile(
                        f"INSERT INTO {VERSION_TABLE} "
                        "(version, description, checksum, applied_at, execution_ms) "
                        "VALUES (?, ?, ?, ?, ?)"
                    ),
                    (
                        migration.version,
                        migration.description,
                        migration.checksum,
                        adapter.encode_timestamp(datetime.now(UTC)),
                        elapsed_ms,
                    ),
                )
            else:
                session.execute(
                    adapter.compile(f"DELETE FROM {VERSION_TABLE} WHERE version = ?"),
                    (migration.version,),
                )
            self._log(session, migration.version, step.direction, migration.checksum, None, None)
        if progress:
            progress("done", migration, time.perf_counter() - started)

    def _bootstrap(self, session: Session) -> None:
        for ddl in bootstrap_statements():
            session.execute(ddl)

    def applied_in(self, session: Session) -> list[AppliedMigration]:
        """The applied history as seen by ``session`` (empty if never migrated)."""
        if not self.adapter.has_table(session, VERSION_TABLE):
            return []
        decode = self.adapter.decode_timestamp
        rows = session.execute(
            "SELECT version, description, checksum, applied_at, execution_ms "
            f"FROM {VERSION_TABLE} ORDER BY version"
        ).fetchall()
        return [AppliedMigration(r[0], r[1], r[2], decode(r[3]), r[4]) for r in rows]

    def _log(
        self,
        session: Session,
        version: int,
        action: str,
        checksum: str | None,
        previous: str | None,
        reason: str | None,
    ) -> None:
        session.execute(
            self.adapter.compile(
                f"INSERT INTO {LOG_TABLE} "
                "(id, version, action, checksum, previous_checksum, reason, at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)"
            ),
            (
                str(uuid.uuid4()),
                version,
                action,
                checksum,
                previous,
                reason,
                self.adapter.encode_timestamp(datetime.now(UTC)),
            ),
        )

    def _plan(self, applied: list[AppliedMigration], target: int | None, *, down: bool) -> Plan:
        return plan_migrations(self.migrations, applied, target, down=down)


def plan_migrations(
    migrations: list[Migration],
    applied: list[AppliedMigration],
    target: int | None,
    *,
    down: bool,
) -> Plan:
    """The steps from the ``applied`` history to ``target``; refuses a history
    the code does not recognise (unknown, drifted or with gaps)."""
    by_version = {m.version: m for m in migrations}
    latest = migrations[-1].version if migrations else 0
    check_history(by_version, latest, applied)
    current = applied[-1].version if applied else 0
    target = _check_target(target, latest, down=down)
    if down:
        if target > current:
            raise MigrationError(
                f"cannot roll back to {target}: the database is at version {current}"
            )
        steps = tuple(
            PlanStep("down", by_version[a.version]) for a in reversed(applied) if a.version > target
        )
    else:
        if target < current:
            raise MigrationError(
                f"the database is at version {current}, above the target {target}: "
                "use rollback to go down"
            )
        steps = tuple(PlanStep("up", m) for m in migrations if current < m.version <= target)
    return Plan(current, target, steps)


def refuse_transaction_control(step: PlanStep) -> None:
    """MigrationError if the step's file opens, ends or splits a transaction.

    Each migration runs in one transaction of the runner's; a ``COMMIT``
    inside it would commit half the migration and leave the history behind
    (and SQLite's own error would hide the real one). Checked on the text,
    before anything runs, so both backends refuse it with the same message.
    """
    suffix = ".down.sql" if step.direction == "down" else ".sql"
    for statement in sqlscript.split(step.sql):
        if statement.head in sqlscript.TRANSACTION_WORDS:
            raise MigrationError(
                f"{step.migration.name}{suffix} line {statement.line}: {statement.head} "
                "inside a migration; the runner runs each migration in one transaction "
                "of its own, remove it (nothing was applied)"
            )


def _check_target(target: int | None, latest: int, *, down: bool) -> int:
    if target is None:
        if down:
            raise ValidationError("rollback needs a target version (0 reverts everything)")
        return latest
    if isinstance(target, bool) or not isinstance(target, int) or target < 0:
        raise ValidationError(f"target version must be a non-negative integer, not {target!r}")
    if target > latest:
        raise MigrationError(
            f"target version {target} is beyond the latest migration ({latest:04d})"
        )
    return target


def check_history(
    by_version: dict[int, Migration], latest: int, applied: Iterable[AppliedMigration]
) -> None:
    for expected, record in enumerate(applied, start=1):
        migration = by_version.get(record.version)
        if migration is None:
            raise MigrationError(
                f"the database has migration {record.version:04d}_{record.description} "
                f"applied, which this version of handshake-storage does not know "
                f"(it knows up to {latest:04d}): the database is newer than the code"
            )
        if record.version != expected:
            raise MigrationError(
                f"the migration history has a gap: {record.version:04d} is applied "
                f"but {expected:04d} is not"
            )
        if record.checksum != migration.checksum:
            raise MigrationError(
                f"migration {migration.name} was changed after it was applied "
                f"(checksum in database {record.checksum[:12]}, file "
                f"{migration.checksum[:12]}): restore the file, or accept the edit with "
                f"`handshake-storage accept-checksum {record.version} --reason ...`"
            )
