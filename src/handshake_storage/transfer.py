"""Copy a whole database to an empty one, between any two backends.

The target is written in ONE transaction: schema (the source's migrations,
with the source's history rows), canonical rows in foreign-key order, the
derived tables rebuilt from them, and a read-back verification of every
table's row count and digest against the digest taken from the source while
streaming. Any failure, Ctrl-C or kill leaves the target as it was. The
source is opened read-only and read in one snapshot.

"Empty" means no tables at all, or migrated and holding no rows: exactly the
schema its migrations create (at most the source's version), and no row in
any table but the migration bookkeeping and its own replica id. Such a
target is migrated forward in the same transaction, and its bookkeeping
rows give way to the source's history and a new replica id, so the result
is the same as a copy into a database without tables. Objects on the source
that no migration declares are not copied; they are listed in the report
(a table holding rows refuses the copy unless ``skip_undeclared``).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, Protocol, TypeVar

from . import sqlscript, tables
from .backends import Options, create_adapter
from .backends.base import SNAPSHOT, WRITE, Adapter, Session, quote_identifier
from .digest import TableDigest
from .errors import MigrationError, StorageError, ValidationError
from .ledger import IDENTITY_TABLES, LARGE_ROW_BATCH, reidentify
from .migrator import (
    BOOKKEEPING_TABLES,
    LOG_TABLE,
    VERSION_TABLE,
    Migration,
    Migrator,
    bootstrap_statements,
    check_history,
    load_migrations,
)
from .rebuildable import RebuildableObject, build, registry
from .schema import TIMESTAMP, SchemaObject, SchemaSnapshot, Table
from .url import parse_url

T = TypeVar("T")

Progress = Callable[[str, int, int], None]


class Phases(Protocol):
    """Where a long operation reports its phases (``console.PhaseDisplay``
    implements it): ``start`` a phase, ``advance`` its row count, ``finish`` it."""

    def start(self, phase: str, item: str = "", total: int | None = None) -> None: ...

    def advance(self, done: int) -> None: ...

    def finish(self, rows: int | None = None, note: str = "") -> None: ...


@dataclass(frozen=True)
class TableReport:
    name: str
    rows: int
    digest: str


@dataclass(frozen=True)
class UndeclaredObject:
    """An object on the source that no migration declares (a hand-made
    index, table, view, trigger ...): copy does not carry it."""

    kind: str
    name: str
    table: str | None = None  # what an index or a trigger is on
    rows: int | None = None  # a table's rows

    def __str__(self) -> str:
        rows = "" if self.rows is None else f" ({self.rows:,} row{'s' * (self.rows != 1)})"
        return str(SchemaObject(self.kind, self.name, self.table)) + rows


@dataclass
class CopyReport:
    source: str
    target: str
    version: int
    tables: list[TableReport] = field(default_factory=list)
    rebuilt: int = 0
    rows_rebuilt: int = 0  # rows of the derived tables recomputed on the target
    seconds: float = 0.0
    replica_id: str | None = None
    #: the target's version before the copy; None: it had no tables
    target_version_before: int | None = None
    #: what the source has that no migration declares, not copied
    undeclared: list[UndeclaredObject] = field(default_factory=list)

    @property
    def total_rows(self) -> int:
        return sum(t.rows for t in self.tables)

    @property
    def rows_per_second(self) -> float:
        """Canonical rows copied per second of the whole copy (load, rebuild,
        key restore and verification all included)."""
        return self.total_rows / self.seconds if self.seconds else 0.0

    @property
    def rows_written_per_second(self) -> float:
        """Every row the target received (copied + rebuilt) per second."""
        return (self.total_rows + self.rows_rebuilt) / self.seconds if self.seconds else 0.0


class CopyVerificationError(StorageError):
    """The target's content differs from the source's after the copy."""


def copy_database(
    source_url: str,
    target_url: str,
    *,
    batch_size: int = 5000,
    progress: Progress | None = None,
    phases: Phases | None = None,
    skip_undeclared: bool = False,
) -> CopyReport:
    """Copy ``source_url`` into the empty database at ``target_url`` and verify it.

    The target has no tables, or is migrated and holds no rows (see the
    module's docstring); anything else is refused and left untouched.
    ``progress(table, rows_done, total)`` follows the load of each table;
    ``phases`` gets every phase: load per table, rebuild of the derived data
    (with its row count), restore keys, verify. Source objects no migration
    declares are listed in ``CopyReport.undeclared`` and not copied; if one
    is a table holding rows the copy is refused, unless ``skip_undeclared``."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValidationError("batch_size must be a positive integer")
    if not isinstance(skip_undeclared, bool):
        raise ValidationError("skip_undeclared must be True or False")
    src = create_adapter(parse_url(source_url), Options(read_only=True, pool_size=2))
    dst = create_adapter(parse_url(target_url), Options(pool_size=2))
    if src.same_database(dst):
        raise ValidationError(f"source and target are the same database ({dst.url.redacted})")
    created = not dst.exists()
    started = time.perf_counter()
    try:
        report = _copy(src, dst, batch_size, _Both(progress, phases), skip_undeclared)
    except BaseException:
        dst.close()
        if created:
            dst.discard_created()
        raise
    finally:
        src.close()
    dst.close()
    report.seconds = time.perf_counter() - started
    return report


class _Both:
    """The per-table ``progress`` callback and the ``phases`` sink, fed together."""

    def __init__(self, progress: Progress | None, phases: Phases | None) -> None:
        self.progress, self.phases = progress, phases

    def __bool__(self) -> bool:
        return self.progress is not None or self.phases is not None

    def __call__(self, table: str, done: int, total: int) -> None:
        if self.progress is not None:
            self.progress(table, done, total)
        if self.phases is not None:
            self.phases.advance(done)

    def start(self, phase: str, item: str = "", total: int | None = None) -> None:
        if self.phases is not None:
            self.phases.start(phase, item, total)

    def finish(self, rows: int | None = None) -> None:
        if self.phases is not None:
            self.phases.finish(rows)


def _copy(
    src: Adapter, dst: Adapter, batch: int, progress: _Both, skip_undeclared: bool
) -> CopyReport:
    migrations = load_migrations()
    with src.transaction(SNAPSHOT) as s_session:
        applied = Migrator(src).applied_in(s_session)
        check_history({m.version: m for m in migrations}, migrations[-1].version, applied)
        version = applied[-1].version if applied else 0
        source_schema = src.introspect(s_session)
        if version == migrations[-1].version:
            _check_described(source_schema)
        derived = {o.name for o in registry(version, migrations) if o.kind == "derived"}
        report = CopyReport(src.url.redacted, dst.url.redacted, version)
        with dst.transaction(WRITE) as t_session:
            report.target_version_before = _prepare_target(dst, t_session, migrations, version)
            target_schema = dst.introspect(t_session)
            report.undeclared = _undeclared(
                src, s_session, source_schema, target_schema, registry(version, migrations)
            )
            _refuse_undeclared_rows(report.undeclared, skip_undeclared)
            skipped = {o.name for o in report.undeclared if o.kind == "table"}
            tables = [
                VERSION_TABLE,
                LOG_TABLE,
                *_dependency_order(
                    source_schema, exclude=derived | skipped | set(BOOKKEEPING_TABLES)
                ),
            ]
            digests: dict[str, TableDigest] = {}
            rebuilt = 0
            # The backend may load without keys and indexes and restore them
            # (validated) afterwards; the schema must come back identical.
            with dst.bulk_load(t_session, sorted(target_schema.tables)):
                for name in tables:
                    if name not in source_schema.tables:
                        continue  # an empty source has no bookkeeping tables
                    digests[name] = _copy_table(
                        src,
                        s_session,
                        dst,
                        t_session,
                        source_schema.tables[name],
                        target_schema.tables[name],
                        batch,
                        progress,
                    )
                objects = registry(version, migrations)
                progress.start("rebuild", "derived data")
                rebuilt = build(dst, t_session, objects)
                report.rows_rebuilt = sum(
                    t_session.execute(f"SELECT COUNT(*) FROM {o.name}").fetchone()[0]
                    for o in objects
                    if o.kind == "derived"
                )
                progress.finish(report.rows_rebuilt)
                progress.start("restore keys")  # leaving bulk_load restores them
            progress.finish()
            progress.start("verify", f"{len(digests)} tables", len(digests))
            if dst.introspect(t_session) != target_schema:
                raise StorageError(
                    "the target's schema differs after restoring its keys and indexes; "
                    "the target was left untouched"
                )
            for name, expected in digests.items():
                actual = _digest(dst, t_session, target_schema.tables[name])
                if actual != expected:
                    raise CopyVerificationError(
                        f"table {name} differs after the copy: source {expected!r}, "
                        f"target {actual!r}; the target was left untouched"
                    )
                report.tables.append(TableReport(name, actual.count, actual.hexdigest))
                if progress.phases is not None:
                    progress.phases.advance(len(report.tables))
            progress.finish(report.total_rows)
            report.rebuilt = rebuilt
            # The ledger came over whole; the copy is a new replica of it.
            report.replica_id = reidentify(dst, t_session)
    return report


def _copy_table(
    src: Adapter,
    s_session: Session,
    dst: Adapter,
    t_session: Session,
    table: Table,
    target_table: Table,
    batch: int,
    progress: _Both,
) -> TableDigest:
    if [c.name for c in table.columns] != [c.name for c in target_table.columns]:
        raise StorageError(f"table {table.name} has different columns on source and target")
    columns = _column_order(table)
    family = {c.name: c.family for c in table.columns}
    families = [family[name] for name in columns]
    digest = TableDigest(families, src.decode_timestamp)
    total = 0
    if progress:
        count = f"SELECT COUNT(*) FROM {table.name}"
        total = _read_source(src, lambda: s_session.execute(count).fetchone()[0])
        progress.start("load", table.name, total)
        progress(table.name, 0, total)
    convert = _converter(src, dst, families)
    batch = min(batch, LARGE_ROW_BATCH.get(table.name, batch))
    rows = src.stream(s_session, f"SELECT {', '.join(columns)} FROM {table.name}", batch=batch)

    def tapped() -> Iterator[Sequence[Any]]:
        source = iter(rows)
        while chunk := _read_source(src, lambda: list(islice(source, batch))):
            try:
                digest.add_all(chunk)
                converted = list(map(convert, chunk)) if convert else chunk
            except (ValueError, TypeError, OverflowError):
                raise _undecodable(src, table, columns, families, chunk) from None
            yield from converted
            if progress:
                progress(table.name, digest.count, total)

    if table.name in LARGE_ROW_BATCH:
        # A backend's bulk insert may buffer thousands of rows; rows this
        # large go in small groups so memory does not grow with the table.
        rows_in = iter(tapped())
        while group := list(islice(rows_in, batch)):
            dst.bulk_insert(t_session, table.name, columns, group)
    else:
        dst.bulk_insert(t_session, table.name, columns, tapped())
    if progress:
        progress(table.name, digest.count, max(total, digest.count))
        progress.finish(digest.count)
    return digest


def _read_source(src: Adapter, read: Callable[[], T]) -> T:
    """``read()`` of the source's rows, inside the source's error boundary:
    they are read inside the target's transaction, whose boundary would
    otherwise name the target (a corrupt SQLite source read as "the target
    is corrupt")."""
    with src.errors():
        return read()


def _undecodable(
    src: Adapter, table: Table, columns: list[str], families: list[str], rows: list[Any]
) -> StorageError:
    """The source value that cannot be read, named by table, column and row."""
    key = table.primary_key[0] if table.primary_key else columns[0]
    for row in rows:
        for name, family, value in zip(columns, families, row, strict=True):
            if family != TIMESTAMP or value is None:
                continue
            try:
                src.decode_timestamp(value)
            except (ValueError, TypeError, OverflowError):
                row_id = row[columns.index(key)]
                error = tables.undecodable(table.name, name, "timestamp", row_id, value)
                return type(error)(
                    f"in the source {src.where}: {error.message}; nothing was copied",
                    table=error.table or table.name,
                    column=name,
                    row_id=error.row_id,
                )
    return StorageError(f"a value of {table.name} in the source {src.where} cannot be read")


def _converter(
    src: Adapter, dst: Adapter, families: list[str]
) -> Callable[[Sequence[Any]], Sequence[Any]] | None:
    """Values the target cannot take as the source gives them: timestamps
    travel between text (SQLite) and native (PostgreSQL) form."""
    if src.features.name == dst.features.name:
        return None
    stamps = [i for i, f in enumerate(families) if f == TIMESTAMP]
    if not stamps:
        return None
    decode, encode = src.decode_timestamp, dst.encode_timestamp

    def convert(row: Sequence[Any]) -> Sequence[Any]:
        values = list(row)
        for i in stamps:
            value = values[i]
            if value is not None:
                values[i] = encode(decode(value))
        return values

    return convert


def _column_order(table: Table) -> list[str]:
    """The columns copied and digested: by name, in sorted order, so a digest
    depends on no backend's or description's column order."""
    return sorted(c.name for c in table.columns)


def _check_described(schema: SchemaSnapshot) -> None:
    """At the latest version, every canonical table has exactly the columns its
    description (tables.py) names: a migration and its description cannot
    drift apart unnoticed. (An older database has the columns of its version.)"""
    for description in tables.CANONICAL:
        table = schema.tables.get(description.name)
        live = {c.name for c in table.columns} if table else set()
        if live != set(description.names):
            raise StorageError(
                f"table {description.name} has columns {sorted(live)}, but this version of "
                f"handshake_storage describes {sorted(description.names)}; nothing was copied"
            )


def _digest(adapter: Adapter, session: Session, table: Table) -> TableDigest:
    columns = _column_order(table)
    family = {c.name: c.family for c in table.columns}
    digest = TableDigest([family[n] for n in columns], adapter.decode_timestamp)
    sql = f"SELECT {', '.join(columns)} FROM {table.name}"
    batch = LARGE_ROW_BATCH.get(table.name, 2000)
    return digest.add_all(adapter.stream(session, sql, (), batch))


def _dependency_order(schema: SchemaSnapshot, exclude: set[str]) -> list[str]:
    """Tables so that every table comes after the tables it references."""
    remaining = {n: t for n, t in schema.tables.items() if n not in exclude}
    ordered: list[str] = []
    while remaining:
        ready = sorted(
            name
            for name, table in remaining.items()
            if all(
                fk.ref_table == name or fk.ref_table not in remaining for fk in table.foreign_keys
            )
        )
        if not ready:
            raise StorageError(f"cyclic foreign keys among {sorted(remaining)}")
        for name in ready:
            ordered.append(name)
            del remaining[name]
    return ordered


#: Rows a migrated target may hold and still count as empty: its migration
#: bookkeeping and the replica id made when it was migrated (both replaced).
_OWN_ROWS = (*BOOKKEEPING_TABLES, *IDENTITY_TABLES)

_EMPTY = "copy needs an empty database (no tables, or migrated but holding no rows)"


def _prepare_target(
    dst: Adapter, session: Session, migrations: list[Migration], version: int
) -> int | None:
    """Bring the target to the source's ``version`` in the copy's transaction,
    its bookkeeping tables empty. Returns its version before (None: no tables)."""
    before = dst.introspect(session)
    where = f"the target {dst.url.redacted}"
    if not before.tables:
        start = None
        other = dst.other_objects(session, ())
        if other:
            raise ValidationError(
                f"{where} is not empty: it has {_listing(map(str, other))}; {_EMPTY}"
            )
        for statement in bootstrap_statements():
            session.execute(statement)
    else:
        start = _accept_migrated(dst, session, before, migrations, version)
    _run_migrations(dst, session, migrations[start or 0 : version])
    return start


def _accept_migrated(
    dst: Adapter,
    session: Session,
    before: SchemaSnapshot,
    migrations: list[Migration],
    version: int,
) -> int:
    """A target with tables must be a migrated database holding no rows, with
    exactly its version's schema, at most at the source's version. Its
    bookkeeping rows are removed (the source's come instead), and so is its
    engine full-text machinery (rebuilt with the rows, as on an empty target)."""
    where = f"the target {dst.url.redacted}"
    held = {
        name: rows
        for name in sorted(before.tables)
        if name not in _OWN_ROWS and (rows := _count(session, name))
    }
    if held:
        counts = (f"{name}: {rows:,}" for name, rows in held.items())
        raise ValidationError(f"{where} is not empty: it holds rows ({_listing(counts)}); {_EMPTY}")
    if VERSION_TABLE not in before.tables:
        raise ValidationError(
            f"{where} is not empty: it has tables {_listing(sorted(before.tables))} and "
            f"no migration history; {_EMPTY}"
        )
    applied = Migrator(dst).applied_in(session)
    try:
        check_history({m.version: m for m in migrations}, migrations[-1].version, applied)
    except MigrationError as exc:
        raise MigrationError(f"{where} cannot be copied into: {exc.message}") from None
    start = applied[-1].version if applied else 0
    if start > version:
        raise ValidationError(
            f"{where} is migrated to version {start:04d}, newer than the source's "
            f"{version:04d}; copy into an empty database or one migrated to at most {version:04d}"
        )
    objects = registry(start, migrations)
    fulltext = [o.table for o in objects if o.kind == "fulltext"]
    problems = before.differences(_reference_schema(migrations[:start]))
    problems += [f"{o} that no migration creates" for o in dst.other_objects(session, fulltext)]
    if problems:
        raise ValidationError(
            f"{where} is migrated to version {start:04d} but its schema differs from what "
            f"the migrations create ({_listing(problems)}); {_EMPTY}"
        )
    for name in _OWN_ROWS:
        if name in before.tables:
            session.execute(f"DELETE FROM {name}")
    for table in fulltext:
        dst.drop_fulltext(session, table)
    return start


def _run_migrations(adapter: Adapter, session: Session, migrations: list[Migration]) -> None:
    """The migrations' statements as they are: derived tables are left empty
    and their full-text indexes unmade, for :func:`build` after the load."""
    for migration in migrations:
        for statement in sqlscript.split(migration.up_sql):
            adapter.execute_script_statement(session, statement.text)


def _reference_schema(migrations: list[Migration]) -> SchemaSnapshot:
    """What ``migrations`` create, introspected from a scratch SQLite file:
    snapshots are backend-neutral (tests/test_schema_equivalence.py)."""
    with tempfile.TemporaryDirectory(prefix="handshake-reference-") as scratch:
        adapter = create_adapter(parse_url(f"sqlite:///{scratch}/reference.db"), Options())
        try:
            with adapter.transaction(WRITE) as session:
                for statement in bootstrap_statements():
                    session.execute(statement)
                _run_migrations(adapter, session, migrations)
                return adapter.introspect(session)
        finally:
            adapter.close()


def _undeclared(
    src: Adapter,
    s_session: Session,
    source: SchemaSnapshot,
    target: SchemaSnapshot,
    objects: list[RebuildableObject],
) -> list[UndeclaredObject]:
    """The source's objects that the migrations (just run on the target) do
    not create: tables (with their rows), indexes, and every object kind
    introspection leaves out (views, triggers, ...)."""
    tables = sorted(set(source.tables) - set(target.tables))
    found = [
        UndeclaredObject("table", name, rows=_read_source(src, lambda n=name: _count(s_session, n)))
        for name in tables
    ]
    found += [  # an undeclared table's own indexes go with it
        UndeclaredObject("index", name, index.table)
        for name, index in sorted(source.indexes.items())
        if name not in target.indexes and index.table not in tables
    ]
    fulltext = [o.table for o in objects if o.kind == "fulltext"]
    others = _read_source(src, lambda: src.other_objects(s_session, fulltext))
    found += [UndeclaredObject(o.kind, o.name, o.table) for o in others]
    return found


def _refuse_undeclared_rows(found: list[UndeclaredObject], skip: bool) -> None:
    held = [str(o) for o in found if o.kind == "table" and o.rows]
    if held and not skip:
        raise StorageError(
            f"the source has table(s) that no migration creates holding rows: {_listing(held)}; "
            "copy carries only migrated tables, so nothing was copied (to copy the rest "
            "without them: skip_undeclared=True, on the command line --skip-undeclared)"
        )


def _count(session: Session, table: str) -> int:
    return int(session.execute(f"SELECT COUNT(*) FROM {quote_identifier(table)}").fetchone()[0])


def _listing(items: Iterable[str], most: int = 8) -> str:
    shown = list(items)
    more = f", and {len(shown) - most} more" if len(shown) > most else ""
    return ", ".join(shown[:most]) + more
