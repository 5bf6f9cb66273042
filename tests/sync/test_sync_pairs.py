"""Two-way sync on every backend pair (SQLite-SQLite, SQLite-PostgreSQL,
PostgreSQL-PostgreSQL): everything moves with its provenance, a second sync
moves nothing, and the conflict rules of the spec hold — per-field
last-writer-wins, whole generations, deletes win, the guard still refuses —
with every loser in the conflict log and restorable."""

from __future__ import annotations

import copy
import json
from datetime import datetime

import pytest
from sync_support import ADA, BOB, PAIRS, content, replicas

from handshake_storage import (
    BlockUpdate,
    JobState,
    NewBlock,
    NewCanvas,
    NewCanvasEdge,
    NewCanvasNode,
    NewDocument,
    NewWorkspace,
    ValidationError,
    WriteContext,
    ledger,
)
from handshake_storage.sync import sync_databases
from handshake_storage.transfer import copy_database


@pytest.fixture(params=PAIRS, ids=["-".join(p) for p in PAIRS])
def pair(request, tmp_path):
    yield from replicas(request, tmp_path, request.param)


@pytest.fixture(autouse=True)
def ticking_clock(monkeypatch):
    """Each clock reading is strictly later than the one before. These tests
    say which of two concurrent writes (one per replica, one after the other)
    is the later one; two real writes may share a millisecond, and then the
    replica ids (random) decide, as they should, so the expectation would be
    a coin toss."""
    real, last = ledger.wall_clock_ms, [0]

    def tick() -> int:
        last[0] = max(real(), last[0] + 1)
        return last[0]

    monkeypatch.setattr(ledger, "wall_clock_ms", tick)


def two_way(a, b, **kw):
    report = sync_databases(a, b, verify=True, **kw)
    assert report.verified, [t for t in report.tables if not t.equal]
    assert content(a) == content(b)
    return report


def seeded(db):
    ws = db.create_workspace(ADA, NewWorkspace("W", id="ws"))
    doc = db.create_document(ADA, NewDocument(ws.id, "Doc", id="doc"))
    db.replace_blocks(
        ADA,
        doc.id,
        [NewBlock(doc.id, "p", i, f"block {i} alpha", id=f"b{i}") for i in range(3)],
    )
    return ws, doc


def test_everything_moves_with_its_provenance_and_a_second_sync_is_a_no_op(pair) -> None:
    a, b = pair
    ws, _ = seeded(a)
    from portability_support import populate

    populate(a, "p-")
    first = two_way(a, b)
    assert first.pushed.applied == len(a.changes(limit=100_000))
    assert first.pulled.applied == 0
    # Provenance is kept, never re-stamped: rows and change sets alike.
    assert b.get_block("b1") == a.get_block("b1")

    def ledger(db):
        return {
            (c.origin_id, c.seq, c.hlc, c.edit_event_id, c.actor_id)
            for c in db.changes(limit=100_000)
        }

    assert ledger(b) == ledger(a)
    # Search is current on the receiver (kept by the same business logic).
    assert [x.id for x in b.search_blocks(ws.id, "alpha")] == [
        x.id for x in a.search_blocks(ws.id, "alpha")
    ]
    again = sync_databases(a, b)
    assert again.moved == 0
    # Writes on the other side come back too.
    b.update_block(BOB, "b2", BlockUpdate(raw_content="changed on b"))
    third = two_way(a, b)
    assert (third.pushed.applied, third.pulled.applied) == (0, 1)
    assert a.get_block("b2").last_actor_id == "bob"
    assert [x.id for x in a.search_blocks(ws.id, "changed")] == ["b2"]


def test_concurrent_edits_of_different_fields_both_survive(pair) -> None:
    a, b = pair
    seeded(a)
    two_way(a, b)
    a.update_block(ADA, "b0", BlockUpdate(kind="heading"))
    b.update_block(BOB, "b0", BlockUpdate(raw_content="bob's text"))
    two_way(a, b)
    block = a.get_block("b0")
    assert (block.kind, block.raw_content) == ("heading", "bob's text")


def test_the_later_stamp_wins_a_field_and_the_loser_is_logged_and_restorable(pair) -> None:
    a, b = pair
    seeded(a)
    two_way(a, b)
    a.update_block(ADA, "b1", BlockUpdate(raw_content="ada's version"))
    b.update_block(BOB, "b1", BlockUpdate(raw_content="bob's version"))  # later stamp
    two_way(a, b)
    assert a.get_block("b1").raw_content == "bob's version"
    assert a.get_block("b1").last_actor_id == "bob"
    logged = a.conflicts(kind="field") + b.conflicts(kind="field")
    assert len(logged) == 2  # each side logs what it discarded
    for entry in logged:
        assert entry.loser_provenance["actor_id"] == "ada"
        assert entry.winner_provenance["actor_id"] == "bob"
        assert entry.loser["values"][entry.loser["columns"].index("raw_content")] == "ada's version"
    entry = a.conflicts(kind="field")[0]
    restored = a.restore_conflict(WriteContext.human("carol"), entry.id)
    assert restored.restored_at is not None
    assert a.get_block("b1").raw_content == "ada's version"
    assert a.get_block("b1").last_actor_id == "carol"
    two_way(a, b)
    assert b.get_block("b1").raw_content == "ada's version"
    with pytest.raises(Exception, match="already restored"):
        a.restore_conflict(ADA, entry.id)


PROVENANCE = {
    "origin_id", "seq", "hlc", "edit_event_id", "operation", "actor_kind", "actor_id",
    "job_id", "workflow_id", "written_at",
}  # fmt: skip


def test_both_sides_of_every_conflict_carry_the_same_complete_provenance(pair) -> None:
    """Whichever side of a conflict a change set is on (the loser or the
    winner), whichever replica logged it, and whether it arrived in the
    batch or was already in the receiver's ledger: its provenance in the log
    has the same fields with the same values as the ledger's change set
    (written_at included). Field, stale-generation and delete conflicts."""
    a, b = pair
    seeded(a)
    two_way(a, b)
    a.update_block(ADA, "b1", BlockUpdate(raw_content="ada's version"))
    b.update_block(BOB, "b1", BlockUpdate(raw_content="bob's version"))  # later: wins
    a.update_block(ADA, "b2", BlockUpdate(raw_content="against the old generation"))
    b.replace_blocks(BOB, "doc", [NewBlock("doc", "p", 0, "new generation", id="n0")])
    two_way(a, b)
    b.create_document(BOB, NewDocument("ws", "Gone", id="gone"))
    b.create_block(BOB, NewBlock("gone", "p", 0, "child", id="g0"))
    two_way(a, b)
    b.update_block(BOB, "g0", BlockUpdate(raw_content="edited as it was deleted"))
    a.delete_document(ADA, "gone")
    two_way(a, b)
    ledger_of = {
        str(c.edit_event_id): {
            "origin_id": c.origin_id, "seq": c.seq, "hlc": c.hlc,
            "edit_event_id": str(c.edit_event_id), "operation": c.operation,
            "actor_kind": c.actor_kind.value, "actor_id": c.actor_id,
            "job_id": None if c.job_id is None else str(c.job_id),
            "workflow_id": None if c.workflow_id is None else str(c.workflow_id),
            "written_at": c.written_at,
        }
        for c in a.changes(limit=100_000)
    }  # fmt: skip
    logged = a.conflicts() + b.conflicts()
    assert {e.kind for e in logged} >= {"field", "stale_generation", "deleted"}, logged
    for entry in logged:
        for side in (entry.loser_provenance, entry.winner_provenance):
            assert set(side) == PROVENANCE, (entry.kind, side)
            expected = ledger_of[side["edit_event_id"]]
            got = {**side, "written_at": datetime.fromisoformat(side["written_at"])}
            assert got == expected, (entry.kind, side)


def test_concurrent_replacements_leave_one_whole_generation(pair) -> None:
    a, b = pair
    ws, doc = seeded(a)
    two_way(a, b)
    a.replace_blocks(ADA, doc.id, [NewBlock(doc.id, "p", i, f"ada {i}") for i in range(4)])
    b.replace_blocks(BOB, doc.id, [NewBlock(doc.id, "p", i, f"bob {i}") for i in range(2)])
    a.create_block(ADA, NewBlock(doc.id, "p", 9, "ada added", id="late"))  # against ada's gen
    two_way(a, b)
    texts = [x.raw_content for x in a.get_blocks(doc.id)]
    assert texts == ["bob 0", "bob 1"]  # bob's replacement is later: it wins whole
    stale = a.conflicts(kind="stale_generation") + b.conflicts(kind="stale_generation")
    assert stale, "the losing generation and the late block are logged"
    assert any(c.row_id == "late" or "late" in json.dumps(c.loser) for c in stale)
    assert [x.id for x in a.search_blocks(ws.id, "ada")] == []
    assert [x.id for x in b.search_blocks(ws.id, "bob")] == [
        x.id for x in a.search_blocks(ws.id, "bob")
    ]


def test_a_delete_wins_over_concurrent_edits_and_they_are_logged(pair) -> None:
    a, b = pair
    ws, doc = seeded(a)
    two_way(a, b)
    a.delete_document(ADA, doc.id)
    b.update_block(BOB, "b0", BlockUpdate(raw_content="edited meanwhile"))
    b.create_block(BOB, NewBlock(doc.id, "p", 7, "added meanwhile", id="new"))
    two_way(a, b)
    assert a.list_documents(ws.id) == b.list_documents(ws.id) == []
    lost = {c.row_id for c in a.conflicts(kind="deleted")} | {
        c.row_id for c in b.conflicts(kind="deleted")
    }
    assert {"b0", "new"} <= lost


def test_an_ai_change_set_without_job_and_workflow_is_rejected_not_applied(pair) -> None:
    a, b = pair
    seeded(a)
    two_way(a, b)
    a.update_block(ADA, "b0", BlockUpdate(raw_content="forged"))
    batch = a.export_changes(b.sync_vector())
    (change,) = batch["changes"]
    forged = copy.deepcopy(batch)
    forged["changes"][0]["actor_kind"] = "AI"
    report = b.import_changes(forged)
    assert (report.applied, report.rejected) == (0, 1)
    assert b.get_block("b0").raw_content == "block 0 alpha"
    (entry,) = b.conflicts(kind="rejected")
    assert "HSK-403-SILENT-EDIT" in entry.loser["reason"]
    assert [
        c.status for c in b.changes() if c.seq == change["seq"] and c.origin_id == change["origin"]
    ] == ["rejected"]
    # It counts as applied: the real one is not taken afterwards, and twice is a no-op.
    assert b.import_changes(batch).skipped == 1


def test_applying_a_batch_twice_changes_nothing(pair) -> None:
    a, b = pair
    seeded(a)
    batch = a.export_changes(b.sync_vector())
    first = b.import_changes(batch)
    state = content(b)
    second = b.import_changes(json.dumps(batch))
    assert first.applied == len(batch["changes"]) and second.applied == 0
    assert second.skipped == len(batch["changes"])
    assert content(b) == state


@pytest.mark.parametrize(
    "damage",
    [
        lambda b: b.update(format="other"),
        lambda b: b.update(version=99),
        lambda b: b["changes"][0].update(seq=0),
        lambda b: b["changes"][0].update(hlc="nonsense"),
        lambda b: b["changes"][0].update(operation="drop_everything"),
        lambda b: b["changes"][0]["payload"]["put"][0].update(table="sync_counters"),
        lambda b: b["changes"][0]["payload"]["put"][0]["columns"].__setitem__(1, "name; DROP"),
        lambda b: b["changes"][0].update(written_at="yesterday"),
        lambda b: b["changes"][0].pop("edit_event_id"),
    ],
)
def test_a_malformed_batch_is_refused_and_changes_nothing(pair, damage) -> None:
    a, b = pair
    seeded(a)
    batch = a.export_changes({})
    damage(batch)
    before = (content(b), b.sync_vector())
    with pytest.raises(ValidationError):
        b.import_changes(batch)
    assert (content(b), b.sync_vector()) == before


def test_a_sync_can_be_limited_to_some_workspaces(pair) -> None:
    a, b = pair
    seeded(a)
    other = a.create_workspace(ADA, NewWorkspace("other", id="other"))
    a.create_document(ADA, NewDocument(other.id, "elsewhere"))
    report = sync_databases(a, b, workspaces=["ws"], verify=True)
    assert report.verified
    assert [w.id for w in b.list_workspaces()] == ["ws"]
    two_way(a, b)
    assert {w.id for w in b.list_workspaces()} == {"ws", "other"}


def test_push_and_pull_go_one_way_and_dry_run_changes_nothing(pair) -> None:
    a, b = pair
    seeded(a)
    b.create_workspace(BOB, NewWorkspace("bob's", id="bw"))
    dry = sync_databases(a, b, dry_run=True)
    assert dry.pushed.applied > 0 and dry.pulled.applied == 1
    assert b.get_workspace("ws") is None and a.get_workspace("bw") is None
    sync_databases(a, b, direction="push")
    assert b.get_workspace("ws") is not None and a.get_workspace("bw") is None
    sync_databases(a, b, direction="pull")
    assert a.get_workspace("bw") is not None
    with pytest.raises(ValidationError):
        sync_databases(a, b, direction="sideways")
    with pytest.raises(ValidationError, match="same replica"):
        sync_databases(a, a)


def test_jobs_and_workflows_sync_and_heartbeats_stay_coalesced(pair) -> None:
    from datetime import UTC, datetime, timedelta

    from test_ledger import new_job

    a, b = pair
    job = new_job(a)
    run = a.create_workflow_run(job.id, JobState.RUNNING)
    now = datetime.now(UTC)
    for i in range(20):
        a.heartbeat_workflow(run.id, now + timedelta(seconds=i))
    ai = WriteContext.ai(job.id, run.id, "model")
    ws = a.create_workspace(ai, NewWorkspace("by ai"))
    two_way(a, b)
    assert b.get_ai_job(job.id) == a.get_ai_job(job.id)
    assert {c.operation for c in b.changes(job_id=job.id)} == {"create_workspace"}
    assert b.get_workspace(ws.id).last_job_id == job.id
    assert sum(c.operation == "heartbeat_workflow" for c in b.changes()) == 1
    a.set_job_pinned(job.id)
    b.set_job_outputs(job.id, {"answer": 42})
    two_way(a, b)
    merged = b.get_ai_job(job.id)
    assert merged.is_pinned and merged.job_outputs == {"answer": 42}


def test_canvas_graphs_replace_whole_and_copies_sync_incrementally(pair, tmp_path) -> None:
    a, b = pair
    ws, _ = seeded(a)
    canvas = a.create_canvas(ADA, NewCanvas(ws.id, "C", id="cv"))
    a.update_canvas_graph(
        ADA,
        canvas.id,
        [NewCanvasNode("n", 1.0, 2.0, id="n1"), NewCanvasNode("n", 3.0, 4.0, id="n2")],
        [NewCanvasEdge("n1", "n2", "e", id="e1")],
    )
    two_way(a, b)
    b.update_canvas_graph(BOB, canvas.id, [NewCanvasNode("m", 0.5, 0.5, id="m1")], [])
    two_way(a, b)
    graph = a.get_canvas_with_graph(canvas.id)
    assert [n.id for n in graph.nodes] == ["m1"] and graph.edges == []
    # A copy of b is a new replica that syncs with b incrementally.
    target = f"sqlite:///{tmp_path / 'copy.db'}"
    copy_database(b._adapter.url.raw, target)
    from handshake_storage import open_database

    with open_database(target) as copied:
        assert copied.replica_id != b.replica_id
        assert sync_databases(b, copied).moved == 0
        copied.create_block(ADA, NewBlock("doc", "p", 50, "written on the copy", id="cb"))
        assert sync_databases(b, copied, verify=True).verified
        assert b.get_block("cb").raw_content == "written on the copy"


def test_a_node_id_reused_by_another_graph_is_not_mixed(pair) -> None:
    a, b = pair
    ws, _ = seeded(a)
    a.create_canvas(ADA, NewCanvas(ws.id, "C", id="cv"))
    two_way(a, b)
    a.update_canvas_graph(ADA, "cv", [NewCanvasNode("a", 1.0, 1.0, id="x")], [])
    b.update_canvas_graph(BOB, "cv", [NewCanvasNode("b", 2.0, 2.0, id="x")], [])
    two_way(a, b)
    (node,) = a.get_canvas_with_graph("cv").nodes
    assert node.kind == "b"


def test_a_pruned_ledger_keeps_at_most_one_change_set_per_live_row(pair) -> None:
    """The prune bound: once every peer has seen everything, the ledger of a
    workspace holds at most one change set per row that still exists, however
    many times the rows were written; syncing afterwards still works."""
    a, b = pair
    ws, doc = seeded(a)
    for i in range(25):  # one block written over and over, on both replicas
        a.update_block(ADA, "b0", BlockUpdate(raw_content=f"ada {i}"))
    a.create_block(ADA, NewBlock(doc.id, "p", 7, "short-lived", id="gone"))
    a.delete_block(ADA, "gone")
    two_way(a, b)
    for i in range(25):
        b.update_block(BOB, "b1", BlockUpdate(raw_content=f"bob {i}"))
    two_way(a, b)
    two_way(a, b)  # each side now knows the other has applied everything
    before = len(a.changes(workspace_id=ws.id, limit=10_000))
    report = a.prune_ledger()
    after = a.changes(workspace_id=ws.id, limit=10_000)
    live = 1 + len(a.list_documents(ws.id)) + len(a.get_blocks(doc.id))  # workspace, docs, blocks
    assert before > 50 and report.pruned > 0
    assert len(after) <= live, [(c.subject_table, c.subject_id) for c in after]
    assert sum(c.subject_id == "b0" for c in after) <= 1
    assert not any(c.subject_id == "gone" for c in after)
    b.update_block(BOB, "b0", BlockUpdate(raw_content="after the prune"))
    two_way(a, b)
    assert a.get_block("b0").raw_content == "after the prune"


def test_a_prune_wins_over_concurrent_job_edits_and_they_are_logged(pair) -> None:
    """Pruning is a delete: a job another replica pinned or edited meanwhile
    is still pruned everywhere (deletes win), and the edit it discarded is in
    the conflict log, with what it wrote, on both replicas."""
    from datetime import UTC, datetime, timedelta

    from test_ledger import new_job

    from handshake_storage import JobStatusUpdate, NotFoundError

    a, b = pair
    jobs = [new_job(a) for _ in range(2)]
    for job in jobs:
        a.update_ai_job_status(JobStatusUpdate(job.id, JobState.COMPLETED))
    two_way(a, b)
    edited, untouched = jobs
    b.set_job_outputs(edited.id, {"answer": 42})
    report = a.prune_ai_jobs(datetime.now(UTC) + timedelta(days=1), 0)
    assert set(report.pruned_job_ids) == {edited.id, untouched.id}
    two_way(a, b)
    for db in (a, b):
        for job in jobs:
            with pytest.raises(NotFoundError):
                db.get_ai_job(job.id)
    # Each replica logs what it discarded: the pruner when the edit arrived
    # for a row gone, the editor when the prune arrived over its newer edit.
    for db in (a, b):
        lost = db.conflicts(kind="deleted")
        assert [(c.table_name, c.row_id) for c in lost] == [("ai_jobs", str(edited.id))]
        assert '{"answer":42}' in repr(lost[0].loser)  # the discarded outputs, as written


@pytest.mark.parametrize(
    "kinds", [("sqlite", "postgresql", "sqlite"), ("sqlite", "sqlite", "postgresql")]
)
def test_a_third_replica_logs_the_job_edit_a_prune_discards(request, tmp_path, kinds) -> None:
    """A prunes jobs it has not seen B edit; C has B's edit when A's prune
    arrives: the edit is newer than the version A pruned, so C logs it as
    lost to the prune (on each backend as C), and nothing else."""
    from datetime import UTC, datetime, timedelta

    from test_ledger import new_job

    from handshake_storage import JobStatusUpdate

    trio = replicas(request, tmp_path, kinds)
    a, b, c = next(trio)
    try:
        jobs = [new_job(a) for _ in range(2)]
        for job in jobs:
            a.update_ai_job_status(JobStatusUpdate(job.id, JobState.COMPLETED))
        two_way(a, b)
        two_way(b, c)
        b.set_job_outputs(jobs[0].id, {"answer": 42})
        two_way(b, c)
        a.prune_ai_jobs(datetime.now(UTC) + timedelta(days=1), 0)
        sync_databases(a, c, direction="push")
        lost = c.conflicts(kind="deleted")
        assert [(x.table_name, x.row_id) for x in lost] == [("ai_jobs", str(jobs[0].id))]
        assert '{"answer":42}' in repr(lost[0].loser)
        assert lost[0].loser_provenance["origin_id"] == b.replica_id
        for x, y in ((a, b), (b, c), (a, c), (a, b)):
            sync_databases(x, y)
        assert content(a) == content(b) == content(c)
        assert len(c.conflicts()) == 1  # nothing else was lost
    finally:
        next(trio, None)


BAD_SYNC_ARGUMENTS = [
    ({"batch_size": 0}, "batch_size must be an integer between 1 and 100000"),
    ({"batch_size": True}, "batch_size must be an integer between 1 and 100000"),
    ({"batch_size": "5"}, "batch_size must be an integer between 1 and 100000"),
    ({"dry_run": "no"}, "dry_run must be a bool, not str"),
    ({"verify": 1}, "verify must be a bool, not int"),
    ({"progress": 5}, "progress must be a callable or None, not int"),
    ({"direction": "sideways"}, "direction must be one of both, push, pull"),
]


def test_bad_sync_arguments_are_refused_before_anything_moves(pair) -> None:
    """Each argument of sync_databases is checked up front with the
    project's ValidationError naming it, in either direction of the pair
    (``dry_run="no"`` used to be taken as a dry run, ``progress=5`` to fail
    in the middle with TypeError, ``batch_size=0`` to be refused as "limit")."""
    a, b = pair
    seeded(a)
    for kwargs, message in BAD_SYNC_ARGUMENTS:
        for x, y in ((a, b), (b, a)):
            with pytest.raises(ValidationError) as caught:
                sync_databases(x, y, **kwargs)
            assert str(caught.value) == message, kwargs
    assert b.list_workspaces() == [] and b.changes() == []
    assert len(a.changes()) == 3 and a.conflicts() == []
