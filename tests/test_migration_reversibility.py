"""up -> down -> up yields the identical schema, for every migration, on both backends.

For each version v: migrate to v-1 and take a snapshot, migrate to v and take
another, roll back to v-1 (the snapshot must equal the first one and none of
v's objects may remain), migrate to v again (the snapshot must equal the
second one).
"""

from __future__ import annotations

import pytest

from handshake_storage.migrator import BOOKKEEPING_TABLES, load_migrations
from handshake_storage.schema import SchemaSnapshot

SHIPPED = load_migrations()


def objects(snapshot: SchemaSnapshot) -> set[tuple[str, str]]:
    return {("table", t) for t in snapshot.tables} | {("index", i) for i in snapshot.indexes}


@pytest.mark.parametrize("version", [m.version for m in SHIPPED], ids=lambda v: f"{v:04d}")
def test_up_down_up_gives_the_identical_schema(databases, version):
    db = databases.open(databases.url())
    db.run_migrations(version - 1)
    before = db.schema()

    db.run_migrations(version)
    up = db.schema()
    added = objects(up) - objects(before)
    assert up != before, f"migration {version:04d} changes nothing"

    plan = db.rollback_migrations(version - 1)
    assert [(s.direction, s.migration.version) for s in plan.steps] == [("down", version)]
    down = db.schema()
    assert down == before
    assert not (objects(down) & added), "the down migration left objects of the up migration"

    plan = db.run_migrations(version)
    assert [(s.direction, s.migration.version) for s in plan.steps] == [("up", version)]
    assert db.schema() == up
    assert [r.version for r in db.migration_status() if r.state == "applied"] == list(
        range(1, version + 1)
    )


def test_the_whole_sequence_down_to_zero_and_up_again(databases):
    db = databases.open(databases.url())
    assert db.schema() == SchemaSnapshot()
    db.run_migrations()
    full = db.schema()

    db.rollback_migrations(0)
    empty = db.schema()
    assert set(empty.tables) == set(BOOKKEEPING_TABLES)
    assert empty.without(*BOOKKEEPING_TABLES) == SchemaSnapshot()
    assert all(i.table in BOOKKEEPING_TABLES for i in empty.indexes.values())

    db.run_migrations()
    assert db.schema() == full
    assert db.schema().without(*BOOKKEEPING_TABLES) == full.without(*BOOKKEEPING_TABLES)
