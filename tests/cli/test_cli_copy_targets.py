"""``copy`` through the installed script: which targets it accepts, and what
it says about source objects no migration declares, on every backend pair.

A target is empty when it has no tables, or is migrated and holds no rows:
no row in any table but the migration bookkeeping and the replica id made
when it was migrated. Such a target is migrated forward if older, ends with
the source's history and a replica id of its own (new, copied from the
source's), and content equal to the source's. A target holding rows, newer
than the source, with a drifted history or with a schema other than its
migrations' is refused with the same message on both backends and left as
it was. Source objects no migration declares (index, view, trigger, table)
are listed in a warning and in ``--json`` and not copied; an undeclared
table holding rows stops the copy unless ``--skip-undeclared``.
"""

from __future__ import annotations

import pytest
from cli_support import run

from handshake_storage import Database, NewWorkspace, open_database
from handshake_storage.backends.base import SNAPSHOT
from handshake_storage.migrator import load_migrations
from portability_support import (
    HUMAN,
    OTHER,
    both_backends,
    execute,
    populate,
    scalar,
    table_digests,
)

LATEST = load_migrations()[-1].version
IDENTITY = "sync_replica"  # the one table a copy writes anew


@pytest.fixture
def factories(request, tmp_path):
    yield from both_backends(request, tmp_path)


def url_of(db: Database) -> str:
    return db._adapter.url.raw


def replica(db: Database) -> tuple[str, str | None]:
    with db._adapter.transaction() as session:
        row = session.execute("SELECT replica_id, copied_from FROM sync_replica").fetchone()
    return (row[0], row[1])


def content(db: Database) -> dict:
    return {n: (d.count, d.hexdigest) for n, d in table_digests(db).items() if n != IDENTITY}


def copy(source: str, target: str, *extra: str):
    return run("copy", "--from", source, "--to", target, *extra, env={"CI": "true"})


def refusal(result, target_url: str) -> str:
    """The one error line, the target's URL replaced (it differs per backend)."""
    assert result.exit_code == 1, (result.stdout, result.stderr)
    error = result.stderr.splitlines()[-1]
    assert error.startswith("error: ") and "Traceback" not in result.stderr
    with open_database(target_url) as db:
        shown = db.url
    return error.replace(shown, "<target>")


@pytest.mark.parametrize("target_backend", ["sqlite", "postgresql"])
def test_a_migrated_target_holding_no_rows_is_accepted_and_gets_a_new_replica_id(
    backend, target_backend, factories
):
    source = factories[backend].open()
    populate(source)
    target_url = factories[target_backend].url()
    with open_database(target_url) as target:
        target.run_migrations()  # the natural first step: migrate, then copy
        before_id, _ = replica(target)
    result = run("copy", "--from", url_of(source), "--to", target_url, "--json")
    assert result.exit_code == 0, result.stderr
    body = result.json()
    assert body["target_version_before"] == LATEST and body["version"] == LATEST
    assert body["undeclared"] == []
    with open_database(target_url) as target:
        assert content(target) == content(source)
        new_id, copied_from = replica(target)
        assert target.migration_status() == source.migration_status()
    source_id, _ = replica(source)
    assert new_id not in (before_id, source_id) and copied_from == source_id


def test_an_older_migrated_target_is_migrated_forward(backend, factories):
    source = factories[backend].open()
    populate(source)
    target_url = factories[OTHER[backend]].url()
    with open_database(target_url) as target:
        target.run_migrations(3)  # before the search projection change and the ledger
    body = run("copy", "--from", url_of(source), "--to", target_url, "--json").json()
    assert body["ok"] and body["target_version_before"] == 3
    fresh = factories[OTHER[backend]].open()  # migrated the ordinary way
    with open_database(target_url) as target:
        assert target.schema() == fresh.schema()
        assert content(target) == content(source)
        assert target.search_blocks("ws-0", "fox") == source.search_blocks("ws-0", "fox")


#: name -> (how to spoil a migrated target, how the refusal reads)
SPOILED = {
    "a row": (
        lambda db: db.create_workspace(HUMAN, NewWorkspace("kept", id="kept")),
        "error: the target <target> is not empty: it holds rows (sync_changes: 1, "
        "sync_counters: 1, workspaces: 1); copy needs an empty database (no tables, "
        "or migrated but holding no rows)",
    ),
    "a ledger of deleted rows": (
        lambda db: (
            db.create_workspace(HUMAN, NewWorkspace("gone", id="gone")),
            db.delete_workspace(HUMAN, "gone"),
        ),
        "error: the target <target> is not empty: it holds rows (sync_changes: 2, "
        "sync_counters: 1); copy needs an empty database (no tables, or migrated but "
        "holding no rows)",
    ),
    "a hand-made index": (
        lambda db: execute(db, "CREATE INDEX idx_by_hand ON blocks (kind)"),
        f"error: the target <target> is migrated to version {LATEST:04d} but its schema "
        "differs from what the migrations create (index idx_by_hand that no migration "
        "creates); copy needs an empty database (no tables, or migrated but holding no rows)",
    ),
    "a view and a missing index": (
        lambda db: (
            execute(db, "CREATE VIEW recent AS SELECT id FROM workspaces"),
            execute(db, "DROP INDEX idx_blocks_document_sequence"),
        ),
        f"error: the target <target> is migrated to version {LATEST:04d} but its schema "
        "differs from what the migrations create (no index idx_blocks_document_sequence, view "
        "recent that no migration creates); copy needs an empty database (no tables, or "
        "migrated but holding no rows)",
    ),
    "a drifted history": (
        lambda db: execute(db, "UPDATE schema_migrations SET checksum = 'x' WHERE version = 2"),
        "error: the target <target> cannot be copied into: migration 0002_ai_jobs_and_workflows",
    ),
}


@pytest.mark.parametrize("case", SPOILED)
def test_a_target_holding_rows_or_another_schema_is_refused_alike_on_both_backends(case, factories):
    spoil, expected = SPOILED[case]
    source = factories["sqlite"].open()
    populate(source)
    messages = {}
    for target_backend in ("sqlite", "postgresql"):
        target = factories[target_backend].open()
        spoil(target)
        before = (target.schema(), table_digests(target))
        messages[target_backend] = refusal(copy(url_of(source), url_of(target)), url_of(target))
        assert (target.schema(), table_digests(target)) == before  # left as it was
    assert messages["sqlite"] == messages["postgresql"]
    assert messages["sqlite"].startswith(expected), messages["sqlite"]


def test_a_target_newer_than_the_source_is_refused(backend, factories):
    source_url = factories[backend].url()
    with open_database(source_url) as source:
        source.run_migrations(3)
    messages = []
    for target_backend in ("sqlite", "postgresql"):
        target = factories[target_backend].open()
        messages.append(refusal(copy(source_url, url_of(target)), url_of(target)))
    assert (
        messages[0]
        == messages[1]
        == (
            f"error: the target <target> is migrated to version {LATEST:04d}, newer than the "
            f"source's 0003; copy into an empty database or one migrated to at most 0003"
        )
    )


def test_a_target_without_tables_but_with_a_view_is_refused(backend, factories):
    source = factories[OTHER[backend]].open()
    target = factories[backend].open(migrated=False)
    execute(target, "CREATE VIEW leftover AS SELECT 1 AS one")
    error = refusal(copy(url_of(source), url_of(target)), url_of(target))
    assert error == (
        "error: the target <target> is not empty: it has view leftover; copy needs an empty "
        "database (no tables, or migrated but holding no rows)"
    )


# -- objects on the source that no migration declares ---------------------------------------

TRIGGER = {
    "sqlite": [
        "CREATE TRIGGER audit_ws AFTER INSERT ON workspaces BEGIN SELECT 1; END",
    ],
    "postgresql": [
        "CREATE FUNCTION audit_fn() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NEW; END'",
        "CREATE TRIGGER audit_ws AFTER INSERT ON workspaces "
        "FOR EACH ROW EXECUTE FUNCTION audit_fn()",
    ],
}


def hand_made(source: Database, backend: str) -> list[str]:
    """Objects a user added by hand; returns how the warning lists them."""
    for sql in [
        "CREATE INDEX idx_blocks_by_kind ON blocks (kind)",
        "CREATE VIEW recent_blocks AS SELECT id, raw_content FROM blocks",
        "CREATE TABLE scratch (id TEXT PRIMARY KEY)",
        *TRIGGER[backend],
    ]:
        execute(source, sql)
    listed = [
        "table scratch (0 rows)",
        "index idx_blocks_by_kind on blocks",
        "trigger audit_ws on workspaces",
        "view recent_blocks",
    ]
    return (["function audit_fn"] if backend == "postgresql" else []) + listed


def test_objects_no_migration_declares_are_listed_not_dropped_silently(backend, factories):
    source = factories[backend].open()
    populate(source)
    listed = hand_made(source, backend)
    target_url = factories[OTHER[backend]].url()
    result = copy(url_of(source), target_url)
    assert result.exit_code == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 1
    shown = warnings[0].split("the copy does not carry them: ")[1].split(", ")
    assert sorted(shown) == sorted(listed)
    assert f"the source has {len(listed)} object(s) that no migration declares" in warnings[0]
    with open_database(target_url) as target:
        assert "idx_blocks_by_kind" not in target.schema().indexes
        assert "scratch" not in target.schema().tables
        adapter = target._adapter
        assert adapter.run(SNAPSHOT, lambda s: adapter.other_objects(s, ["block_search"])) == []
        assert content(target) == {n: v for n, v in content(source).items() if n != "scratch"}
    again = run(
        "copy",
        "--from",
        url_of(source),
        "--to",
        factories[OTHER[backend]].url(),
        "--json",
    )
    body = again.json()
    assert again.exit_code == 0 and again.stderr == ""
    described = {(o["kind"], o["name"], o["table"], o["rows"]) for o in body["undeclared"]}
    assert ("index", "idx_blocks_by_kind", "blocks", None) in described
    assert ("table", "scratch", None, 0) in described
    assert ("view", "recent_blocks", None, None) in described
    assert len(described) == len(listed)


def test_an_undeclared_table_holding_rows_stops_the_copy_unless_skipped(backend, factories):
    source = factories[backend].open()
    populate(source)
    execute(source, "CREATE TABLE notes (id TEXT PRIMARY KEY)")
    for n in range(3):
        execute(source, "INSERT INTO notes (id) VALUES (?)", (f"precious {n}",))
    target_url = factories[OTHER[backend]].url(migrated=True)
    with open_database(target_url) as target:
        before = table_digests(target)
    refused = copy(url_of(source), target_url)
    assert refused.exit_code == 1
    assert refused.stderr.splitlines()[-1] == (
        "error: the source has table(s) that no migration creates holding rows: table notes "
        "(3 rows); copy carries only migrated tables, so nothing was copied (to copy the rest "
        "without them: skip_undeclared=True, on the command line --skip-undeclared)"
    )
    with open_database(target_url) as target:
        assert table_digests(target) == before
    skipped = copy(url_of(source), target_url, "--skip-undeclared")
    assert skipped.exit_code == 0, skipped.stderr
    assert "table notes (3 rows)" in skipped.stderr
    with open_database(target_url) as target:
        assert "notes" not in target.schema().tables
        assert content(target) == {n: v for n, v in content(source).items() if n != "notes"}
    assert scalar(source, "SELECT COUNT(*) FROM notes") == 3  # the source is never modified
