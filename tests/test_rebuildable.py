"""Pillar 3: every index and derived table is declared rebuildable in its
migration, and can be dropped, recomputed and proven equal.

The registry is checked against the migration files with a parser of its
own; rebuild and verify run on both backends after a workload touching every
table; tampering with the search projection or an index is detected by
``verify`` and repaired by ``rebuild``; undeclared indexes are flagged.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from handshake_storage import (
    Database,
    NewBlock,
    NewDocument,
    NewWorkspace,
    ValidationError,
    rebuildable,
)
from handshake_storage.errors import MigrationError
from handshake_storage.migrator import load_migrations
from portability_support import HUMAN, api_state, execute, populate, scalar, table_digests

MIGRATIONS = Path(rebuildable.__file__).parent / "migrations"
#: Tampering with the search rows: one block's rows disappear.
DELETE_ONE = ("DELETE FROM block_search WHERE block_id = ?", ("blk-0-0-1",))
_CREATE_INDEX = re.compile(
    r"^\s*CREATE\s+(?:UNIQUE\s+)?INDEX\s+(\w+)\s+ON\s+(\w+)\s*\(([^)]*)", re.I | re.M
)
_CREATE_TABLE = re.compile(r"^\s*CREATE\s+TABLE\s+(\w+)", re.I | re.M)
_DROP_TABLE = re.compile(r"^\s*DROP\s+TABLE\s+(\w+)", re.I | re.M)


def leading_comments(text: str, position: int) -> list[str]:
    """The comment lines directly above the statement starting at ``position``."""
    lines = text[:position].splitlines()
    found: list[str] = []
    for line in reversed(lines):
        if not line.strip().startswith("--"):
            break
        found.append(line.strip())
    return found


def declared_in_files() -> tuple[dict[str, tuple[str, int, bool]], dict[str, tuple[str, int]]]:
    """Read the shipped up-migrations independently of the implementation:
    every CREATE INDEX -> (table, version, marked) and every marked table ->
    (marker arguments, version), as of the latest version (a dropped table
    takes its indexes along)."""
    indexes: dict[str, tuple[str, int, bool]] = {}
    derived: dict[str, tuple[str, int]] = {}
    ups = sorted(p for p in MIGRATIONS.glob("[0-9]*.sql") if not p.name.endswith(".down.sql"))
    assert ups, "no migrations shipped"
    for path in ups:
        version = int(path.name[:4])
        text = path.read_text(encoding="utf-8")
        for match in _DROP_TABLE.finditer(text):
            indexes = {n: i for n, i in indexes.items() if i[0] != match.group(1)}
        for match in _CREATE_INDEX.finditer(text):
            marked = "-- @rebuildable index" in leading_comments(text, match.start())
            indexes[match.group(1)] = (match.group(2), version, marked)
        for match in _CREATE_TABLE.finditer(text):
            for comment in leading_comments(text, match.start()):
                if comment.startswith("-- @rebuildable"):
                    derived[match.group(1)] = (comment[len("-- @rebuildable") :].strip(), version)
    return indexes, derived


# -- the registry (no database needed) --------------------------------------------------


def test_every_shipped_index_is_marked_and_in_the_registry() -> None:
    indexes, _ = declared_in_files()
    assert len(indexes) >= 10
    unmarked = [name for name, (_, _, marked) in indexes.items() if not marked]
    assert not unmarked, f"indexes without `-- @rebuildable index`: {unmarked}"
    registry = {o.name: o for o in rebuildable.registry()}
    in_registry = {n: (o.table, o.version) for n, o in registry.items() if o.kind == "index"}
    assert in_registry == {n: (t, v) for n, (t, v, _) in indexes.items()}
    for name in indexes:
        obj = registry[name]
        assert obj.source.startswith(f"{obj.table}(")
        assert re.match(r"CREATE\s+(UNIQUE\s+)?INDEX", obj.create_sql, re.I)
        assert name in obj.create_sql


def test_block_search_is_derived_from_blocks_with_a_fulltext_index() -> None:
    _, derived = declared_in_files()
    assert set(derived) == {"block_terms", "block_search"}  # every one ever declared
    marker, version = derived["block_search"]
    assert marker.split()[0] == "derived" and "builder=block_search" in marker.split()
    assert "fulltext=tokens" in marker.split()
    (obj,) = [o for o in rebuildable.registry() if o.kind == "derived"]
    assert obj.name == obj.table == "block_search"
    assert obj.builder == "block_search" and obj.builder in rebuildable.BUILDERS
    assert "blocks" in obj.derived_from
    assert obj.version == version
    assert "blocks" in obj.source and "block_search" in obj.source
    assert rebuildable.derived_tables() == {"block_search"}
    (fulltext,) = [o for o in rebuildable.registry() if o.kind == "fulltext"]
    assert (fulltext.name, fulltext.table, fulltext.columns) == (
        "block_search_fulltext",
        "block_search",
        ("tokens",),
    )
    assert fulltext.version == version
    # the projection of 0003 is still known below 0004, with its builder
    assert rebuildable.derived_tables(3) == {"block_terms"}
    assert "block_terms" in rebuildable.BUILDERS


def test_registry_follows_the_version() -> None:
    migrations = load_migrations()
    latest = migrations[-1].version
    names = [o.name for o in rebuildable.registry()]
    assert len(names) == len(set(names))
    assert names == [o.name for o in rebuildable.registry(latest)]
    for version in range(1, latest + 1):
        objects = rebuildable.registry(version)
        assert all(o.version <= version for o in objects)
        later = {o.name for o in rebuildable.registry() if o.version > version}
        assert not later & {o.name for o in objects}
    assert "block_terms" not in {o.name for o in rebuildable.registry(2)}
    assert "block_terms" in {o.name for o in rebuildable.registry(3)}
    assert "block_search" not in {o.name for o in rebuildable.registry(3)}
    assert {"block_search", "block_search_fulltext"} <= {o.name for o in rebuildable.registry(4)}
    assert "block_terms" not in {o.name for o in rebuildable.registry(4)}
    assert rebuildable.registry(0) == []


def _write_migrations(directory: Path, *scripts: str) -> list:
    directory.mkdir()
    for version, script in enumerate(scripts, start=1):
        (directory / f"{version:04d}_step{version}.sql").write_text(script)
        (directory / f"{version:04d}_step{version}.down.sql").write_text("SELECT 1;\n")
    return load_migrations(directory)


def test_registry_replays_creates_and_drops(tmp_path: Path) -> None:
    migrations = _write_migrations(
        tmp_path / "m",
        "CREATE TABLE t (id TEXT PRIMARY KEY, a TEXT);\n"
        "-- @rebuildable index\nCREATE UNIQUE INDEX idx_t_a ON t (a);\n"
        "CREATE INDEX idx_unmarked ON t (a, id);\n"
        "-- @rebuildable derived from=t builder=block_terms\n"
        "CREATE TABLE d (id TEXT NOT NULL);\n"
        "-- @rebuildable index\nCREATE INDEX idx_d ON d (id);\n",
        "DROP INDEX idx_t_a;\nDROP TABLE d;\n",
    )
    first = {o.name: o for o in rebuildable.registry(1, migrations)}
    assert list(first) == ["idx_t_a", "d", "idx_d"]
    assert first["idx_t_a"].unique and first["idx_t_a"].columns == ("a",)
    assert first["d"].kind == "derived" and first["d"].derived_from == ("t",)
    assert first["idx_d"].table == "d"
    assert rebuildable.registry(2, migrations) == []


def test_malformed_derived_marker_is_refused(tmp_path: Path) -> None:
    migrations = _write_migrations(
        tmp_path / "m", "-- @rebuildable derived from=t\nCREATE TABLE d (id TEXT);\n"
    )
    with pytest.raises(MigrationError, match="builder"):
        rebuildable.registry(migrations=migrations)


def test_select_validates_names() -> None:
    objects = rebuildable.registry()
    assert rebuildable.select(objects, None) == objects
    picked = rebuildable.select(objects, ["block_search", "idx_ai_jobs_trace", "block_search"])
    assert [o.name for o in picked] == ["block_search", "idx_ai_jobs_trace"]
    for bad in (["nope"], ["blocks"], ["block_search", "BLOCK_SEARCH"], [""], ["block_terms"]):
        with pytest.raises(ValidationError, match="unknown rebuildable"):
            rebuildable.select(objects, bad)


# -- on a database -----------------------------------------------------------------------


def test_live_indexes_match_the_registry(db: Database) -> None:
    declared = {o.name for o in rebuildable.registry() if o.kind == "index"}
    assert set(db.schema().indexes) == declared
    assert rebuildable.unclassified_indexes(db) == []


def test_rebuild_all_equals_the_original(db: Database) -> None:
    w = populate(db)
    schema, digests, state = db.schema(), table_digests(db), api_state(db, w)
    assert digests["block_search"].count > 0
    rebuilt = rebuildable.rebuild(db)
    assert sorted(rebuilt) == sorted(o.name for o in rebuildable.registry())
    assert db.schema() == schema
    assert table_digests(db) == digests
    assert api_state(db, w) == state
    results = rebuildable.verify(db)
    assert sorted(r.name for r in results) == sorted(rebuilt)
    assert all(r.equal for r in results), [r for r in results if not r.equal]


def test_rebuild_named_objects_only(db: Database) -> None:
    populate(db)
    expected = table_digests(db)["block_search"]
    execute(db, *DELETE_ONE)
    tampered = table_digests(db)["block_search"]
    assert tampered != expected
    # an index only: the tampered projection stays as it is
    assert rebuildable.rebuild(db, ["idx_ai_jobs_trace"]) == ["idx_ai_jobs_trace"]
    assert table_digests(db)["block_search"] == tampered
    # the full-text index only: rebuilt from the (tampered) rows
    assert rebuildable.rebuild(db, ["block_search_fulltext"]) == ["block_search_fulltext"]
    assert table_digests(db)["block_search"] == tampered
    # the derived table: recomputed, and its full-text index recreated with it
    assert rebuildable.rebuild(db, ["block_search"]) == ["block_search", "block_search_fulltext"]
    assert table_digests(db)["block_search"] == expected
    assert all(r.equal for r in rebuildable.verify(db, ["block_search_fulltext"]))


def test_unknown_names_are_refused_and_change_nothing(db: Database) -> None:
    populate(db)
    execute(db, *DELETE_ONE)
    before = table_digests(db)
    for names in (["nope"], ["block_search", "nope"], ["blocks"], ["schema_migrations"]):
        with pytest.raises(ValidationError, match="unknown rebuildable"):
            rebuildable.rebuild(db, names)
        with pytest.raises(ValidationError, match="unknown rebuildable"):
            rebuildable.verify(db, names)
    assert table_digests(db) == before


def test_verify_is_equal_after_a_workload_and_changes_nothing(db: Database) -> None:
    w = populate(db)
    db.delete_document(HUMAN, "doc-0-1")
    db.delete_block(HUMAN, "blk-1-0-2")
    db.delete_workspace(HUMAN, w.workspaces[2])
    before = table_digests(db)
    results = rebuildable.verify(db)
    assert len(results) == len(rebuildable.registry())
    assert all(r.equal for r in results), [r for r in results if not r.equal]
    assert table_digests(db) == before
    terms = rebuildable.verify(db, ["block_search"])[0]
    assert terms.name == "block_search" and terms.equal
    assert f"{before['block_search'].count:,} rows " in terms.detail


@pytest.mark.parametrize(
    "tamper",
    [
        ("DELETE FROM block_search WHERE block_id = ?", ("blk-0-0-1",)),
        ("UPDATE block_search SET word_count = word_count + 1 WHERE block_id = ?", ("blk-0-0-2",)),
        (
            "INSERT INTO block_search (block_id, chunk, word_count, tokens, workspace_id) "
            "VALUES (?, ?, ?, ?, ?)",
            ("blk-0-0-1", 7, 1, " planted ", "ws-0"),
        ),
    ],
    ids=["deleted-rows", "changed-counts", "planted-row"],
)
def test_verify_detects_a_tampered_projection_and_rebuild_fixes_it(
    db: Database, tamper: tuple[str, tuple]
) -> None:
    w = populate(db)
    good = table_digests(db)
    state = api_state(db, w)
    execute(db, *tamper)
    bad = table_digests(db)
    assert bad["block_search"] != good["block_search"]
    results = {r.name: r for r in rebuildable.verify(db)}
    assert not results["block_search"].equal
    assert "before" in results["block_search"].detail
    assert all(r.equal for n, r in results.items() if n != "block_search")
    assert table_digests(db) == bad, "verify must roll back its rebuild"
    rebuildable.rebuild(db, ["block_search"])
    assert table_digests(db) == good
    assert api_state(db, w) == state
    assert all(r.equal for r in rebuildable.verify(db))


def test_missing_or_redefined_index_is_detected_and_rebuilt(db: Database) -> None:
    populate(db)
    good = db.schema()
    execute(db, "DROP INDEX idx_ai_jobs_trace")
    problems = rebuildable.unclassified_indexes(db)
    assert len(problems) == 1 and "idx_ai_jobs_trace" in problems[0]
    assert "missing" in problems[0]
    (result,) = rebuildable.verify(db, ["idx_ai_jobs_trace"])
    assert not result.equal and "missing" in result.detail
    rebuildable.rebuild(db, ["idx_ai_jobs_trace"])
    assert db.schema() == good
    # same name, different definition
    execute(db, "DROP INDEX idx_workflow_runs_job")
    execute(db, "CREATE INDEX idx_workflow_runs_job ON workflow_runs (status)")
    assert db.schema() != good
    (result,) = rebuildable.verify(db, ["idx_workflow_runs_job"])
    assert not result.equal
    rebuildable.rebuild(db, ["idx_workflow_runs_job"])
    assert db.schema() == good
    assert all(r.equal for r in rebuildable.verify(db))


def test_failed_rebuild_changes_nothing(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    populate(db)
    execute(db, *DELETE_ONE)
    schema, before = db.schema(), table_digests(db)
    real = rebuildable.BUILDERS["block_search"]

    def failing(adapter, session):
        real(adapter, session)
        raise RuntimeError("builder crashed after writing")

    monkeypatch.setitem(rebuildable.BUILDERS, "block_search", failing)
    with pytest.raises(RuntimeError, match="builder crashed"):
        rebuildable.rebuild(db)
    assert db.schema() == schema
    assert table_digests(db) == before
    monkeypatch.setitem(rebuildable.BUILDERS, "block_search", real)
    rebuildable.rebuild(db)
    assert table_digests(db)["block_search"] != before["block_search"]


def test_migrating_up_over_existing_blocks_fills_the_projection(db: Database) -> None:
    db.create_workspace(HUMAN, NewWorkspace("w", id="w"))
    db.create_document(HUMAN, NewDocument("w", "d", id="d"))
    db.replace_blocks(HUMAN, "d", [NewBlock("d", "p", 1, "hello world", id="b")])
    db.rollback_migrations(3)  # 0004 down: block_search goes, block_terms is refilled
    assert "block_search" not in db.schema().tables
    assert scalar(db, "SELECT COUNT(*) FROM block_terms WHERE block_id = ?", ("b",)) == 2
    assert all(r.equal for r in rebuildable.verify(db))
    db.rollback_migrations(2)  # drops block_terms; the blocks stay
    assert "block_terms" not in db.schema().tables
    db.run_migrations()  # 0003 and 0004 create the projections and must fill them
    assert [b.id for b in db.search_blocks("w", "hello")] == ["b"]
    assert [b.id for b in db.search_blocks("w", '"hello world"')] == ["b"]
    assert all(r.equal for r in rebuildable.verify(db))


def test_undeclared_index_is_flagged(db: Database) -> None:
    assert rebuildable.unclassified_indexes(db) == []
    execute(db, "CREATE INDEX idx_handmade ON blocks (kind)")
    problems = rebuildable.unclassified_indexes(db)
    assert len(problems) == 1
    assert "idx_handmade" in problems[0] and "blocks" in problems[0]
    assert "not declared" in problems[0]
    # a rebuild of everything leaves an undeclared index alone: it is not ours
    rebuildable.rebuild(db)
    assert "idx_handmade" in db.schema().indexes
