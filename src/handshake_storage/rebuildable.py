"""Rebuildable objects: indexes and derived tables, read from the migrations.

The ``-- @rebuildable`` markers in the migration files are the single source
of truth. ``-- @rebuildable index`` precedes a ``CREATE INDEX``;
``-- @rebuildable derived from=<tables> builder=<name>`` precedes the
``CREATE TABLE`` of a derived table, whose rows a named builder recomputes
from canonical tables; ``fulltext=<column>`` on it declares the engine's
full-text index over that column, an object of kind ``fulltext`` named
``<table>_fulltext`` that each backend adapter materializes its own way
(SQLite FTS5, PostgreSQL GIN) once the rows are built. The registry
replays the migrations up to a version (creates add objects, drops remove
them), so it describes exactly what a database at that version contains.

Rebuilding drops and recreates objects from their original statements in
one transaction; verifying does the same, compares fingerprints taken before
and after (index definitions; derived-table row digests), and rolls back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from . import block_terms, search, sqlscript
from .backends.base import SNAPSHOT, WRITE, Adapter, Session
from .declarations import Migration, RebuildableObject, declare, registry
from .digest import TableDigest
from .errors import MigrationError, ValidationError
from .schema import SchemaSnapshot

if TYPE_CHECKING:
    from .database import Database

Builder = Callable[[Adapter, Session], int]

#: Named recompute functions for derived tables (``builder=`` in the marker).
BUILDERS: dict[str, Builder] = {
    "block_terms": block_terms.rebuild_block_terms,
    "block_search": search.rebuild_block_search,
}


@dataclass
class VerifyResult:
    name: str
    equal: bool
    detail: str


def populate_derived(
    adapter: Adapter, session: Session, migration: Migration, sql: str
) -> list[str]:
    """Fill the derived tables (and build the full-text indexes) that the
    migration script ``sql`` (its up or down file) creates, from the canonical
    rows already present. The migrator calls this in the migration's own
    transaction, so a database that gains a projection is never left with an
    empty one."""
    created: dict[str, RebuildableObject] = {}
    for statement in sqlscript.split(sql):
        declare(created, statement, migration)
    build(adapter, session, list(created.values()))
    return [o.name for o in created.values() if o.kind != "index"]


def build(adapter: Adapter, session: Session, objects: list[RebuildableObject]) -> int:
    """Fill the given derived tables, newly created and empty, and then build
    their full-text indexes; returns how many objects were built."""
    built = 0
    for obj in objects:
        if obj.kind == "derived":
            builder = BUILDERS.get(obj.builder or "")
            if builder is None:
                raise MigrationError(f"no builder named {obj.builder!r} for {obj.name}")
            builder(adapter, session)
            built += 1
    for obj in objects:
        if obj.kind == "fulltext":
            adapter.create_fulltext(session, obj.table, obj.columns[0])
            built += 1
    return built


def derived_tables(up_to: int | None = None) -> set[str]:
    return {o.name for o in registry(up_to) if o.kind == "derived"}


def select(objects: list[RebuildableObject], names: list[str] | None) -> list[RebuildableObject]:
    """The objects named (validated against the registry), or all of them."""
    if not names:
        return objects
    known = {o.name: o for o in objects}
    unknown = [n for n in names if n not in known]
    if unknown:
        listed = ", ".join(sorted(known)) or "none at this schema version (run migrate)"
        raise ValidationError(
            f"unknown rebuildable object(s): {', '.join(map(repr, unknown))}; known: {listed}"
        )
    return [known[n] for n in dict.fromkeys(names)]


def _plan(
    objects: list[RebuildableObject], chosen: list[RebuildableObject]
) -> list[RebuildableObject]:
    """Derived tables first, each followed by every index and full-text index
    on it; then the remaining ones. Recreating a derived table recreates them."""
    derived = [o for o in chosen if o.kind == "derived"]
    derived_names = {o.name for o in derived}
    ordered: list[RebuildableObject] = []
    for table in derived:
        ordered.append(table)
        ordered += [o for o in objects if o.kind != "derived" and o.table == table.name]
    ordered += [o for o in chosen if o.kind != "derived" and o.table not in derived_names]
    return ordered


def _rebuild_steps(
    adapter: Adapter,
    session: Session,
    plan: list[RebuildableObject],
    progress: Callable[[str], None] | None,
) -> None:
    recreated = {o.name for o in plan if o.kind == "derived"}
    for obj in plan:
        if progress:
            progress(f"rebuilding {obj.kind} {obj.name}")
        if obj.kind == "derived":
            sources = _parents_first(adapter.introspect(session), obj.derived_from)
            adapter.lock_for_rebuild(session, sources, obj.name)
            adapter.drop_fulltext(session, obj.name)
            session.execute(f"DROP TABLE IF EXISTS {obj.name}")
            session.execute(obj.create_sql)
            build(adapter, session, [obj])
        elif obj.kind == "fulltext":
            if obj.table not in recreated:
                adapter.drop_fulltext(session, obj.table)
            build(adapter, session, [obj])
        else:
            if obj.table not in recreated:
                session.execute(f"DROP INDEX IF EXISTS {obj.name}")
            session.execute(obj.create_sql)


def _parents_first(snapshot: SchemaSnapshot, names: tuple[str, ...]) -> list[str]:
    """``names`` with every table after the tables it references: the order
    in which writers (and cascading deletes) lock them."""
    ordered: list[str] = []

    def visit(name: str, seen: frozenset[str]) -> None:
        table = snapshot.tables.get(name)
        for fk in table.foreign_keys if table else ():
            if fk.ref_table in names and fk.ref_table not in seen and fk.ref_table != name:
                visit(fk.ref_table, seen | {name})
        if name not in ordered:
            ordered.append(name)

    for name in names:
        visit(name, frozenset())
    return ordered


@dataclass(frozen=True)
class Listed:
    """An object of the database's version and whether the database has it."""

    obj: RebuildableObject
    present: bool


class Indexes:
    """``db.indexes``: the rebuildable objects (indexes and derived tables)
    of one database, at its current schema version."""

    def __init__(self, adapter: Adapter, current_version: Callable[[], int]) -> None:
        self.adapter = adapter
        self._current_version = current_version

    def declared(self) -> list[RebuildableObject]:
        """What the migrations applied to this database declare rebuildable."""
        return registry(self._current_version())

    def listing(self) -> tuple[int, list[Listed]]:
        """The database's version and its rebuildable objects, each present
        or missing (read only; an unmigrated database has none)."""
        version = self._current_version()
        adapter = self.adapter
        with adapter.transaction(SNAPSHOT) as session:
            snapshot = adapter.introspect(session)
            listed = []
            for o in registry(version):
                if o.kind == "fulltext":
                    present = adapter.fulltext_fingerprint(session, o.table) is not None
                else:
                    live = snapshot.indexes if o.kind == "index" else snapshot.tables
                    present = o.name in live
                listed.append(Listed(o, present))
        return version, listed

    def rebuild(
        self, names: list[str] | None = None, progress: Callable[[str], None] | None = None
    ) -> list[str]:
        """Drop and recreate the named objects (default: all) in one transaction."""
        adapter, objects = self.adapter, self.declared()
        plan = _plan(objects, select(objects, names))
        adapter.run(WRITE, lambda session: _rebuild_steps(adapter, session, plan, progress))
        return [o.name for o in plan]

    def verify(
        self, names: list[str] | None = None, progress: Callable[[str], None] | None = None
    ) -> list[VerifyResult]:
        """Rebuild inside a transaction, compare with the state before, roll back."""
        adapter, objects = self.adapter, self.declared()
        plan = _plan(objects, select(objects, names))
        results: list[VerifyResult] = []
        try:
            with adapter.transaction(WRITE) as session:
                before = _fingerprints(adapter, session, plan)
                _rebuild_steps(adapter, session, plan, progress)
                after = _fingerprints(adapter, session, plan)
                for obj in plan:
                    old, new = before[obj.name], after[obj.name]
                    results.append(VerifyResult(obj.name, old == new, _describe(obj, old, new)))
                raise _Rollback
        except _Rollback:
            pass
        return results

    def problems(self) -> list[str]:
        """Problems with the live indexes: any index no migration declared
        rebuildable, and any declared index that is missing."""
        objects = self.declared()
        with self.adapter.transaction(SNAPSHOT) as session:
            snapshot = self.adapter.introspect(session)
        declared = {o.name for o in objects if o.kind == "index"}
        problems = [
            f"index {name} on {index.table} is not declared `-- @rebuildable` in any migration"
            for name, index in sorted(snapshot.indexes.items())
            if name not in declared
        ]
        problems += [
            f"index {name} is declared rebuildable but missing from the database"
            for name in sorted(declared - set(snapshot.indexes))
        ]
        return problems


class _Rollback(Exception):
    pass


# The module-level forms, for callers holding a Database.


def rebuild(
    db: Database, names: list[str] | None = None, progress: Callable[[str], None] | None = None
) -> list[str]:
    return db.indexes.rebuild(names, progress)


def verify(
    db: Database, names: list[str] | None = None, progress: Callable[[str], None] | None = None
) -> list[VerifyResult]:
    return db.indexes.verify(names, progress)


def unclassified_indexes(db: Database) -> list[str]:
    return db.indexes.problems()


def _fingerprints(
    adapter: Adapter, session: Session, plan: list[RebuildableObject]
) -> dict[str, object]:
    snapshot: SchemaSnapshot = adapter.introspect(session)
    prints: dict[str, object] = {}
    for obj in plan:
        if obj.kind == "fulltext":
            prints[obj.name] = adapter.fulltext_fingerprint(session, obj.table)
        elif obj.kind == "index":
            index = snapshot.indexes.get(obj.name)
            prints[obj.name] = None if index is None else (index.table, index.columns, index.unique)
        else:
            table = snapshot.tables.get(obj.name)
            if table is None:
                prints[obj.name] = None
                continue
            names = [c.name for c in table.columns]
            digest = TableDigest([c.family for c in table.columns], adapter.decode_timestamp)
            digest.add_all(adapter.stream(session, f"SELECT {', '.join(names)} FROM {obj.name}"))
            prints[obj.name] = digest
    return prints


def _describe(obj: RebuildableObject, old: object, new: object) -> str:
    if obj.kind == "fulltext":
        if old is None:
            return "missing from the database; a rebuild creates it"
        return f"{old!r}" if old == new else f"was {old!r}, after the rebuild {new!r}"
    if obj.kind == "derived":
        if old == new:
            return f"{_rows(new)}, identical after the rebuild"
        return f"before the rebuild {_rows(old)}, after it {_rows(new)}"
    if old is None:
        return "missing from the database; a rebuild creates it"
    if old == new:
        return f"on {obj.source}, identical after the rebuild"
    return f"was {old}, the migration declares {new}"


def _rows(digest: object) -> str:
    if not isinstance(digest, TableDigest):
        return "no table"
    return f"{digest.count:,} rows (digest {digest.hexdigest[:16]})"
