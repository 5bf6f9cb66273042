"""An import applies its batch in chunks (rows read up front, writes sent
together: sync/chunk.py). Where the chunks end must not change anything, and a
row another transaction writes between a chunk's reads and its writes must
not be overwritten or lost: the batch is retried and merges it."""

from __future__ import annotations

from collections import Counter

import pytest
from sync_support import ADA, BOB, PAIRS, content, job_input

from handshake_storage import (
    BlockUpdate,
    JobState,
    NewBlock,
    NewCanvas,
    NewCanvasEdge,
    NewCanvasNode,
    NewDocument,
    NewWorkspace,
    open_database,
    rebuildable,
)
from handshake_storage.sync import exchange, sync_databases
from handshake_storage.sync.chunk import ChunkState
from handshake_storage.transfer import copy_database


def factories_for(request, tmp_path, kinds):
    """One database factory per backend of ``kinds`` (in that order)."""
    from conftest import DatabaseFactory

    made = {}
    for kind in set(kinds):
        (tmp_path / kind).mkdir(exist_ok=True)
        made[kind] = DatabaseFactory(kind, request, tmp_path / kind)
    yield [made[k] for k in kinds]
    for factory in made.values():
        factory.cleanup()


@pytest.fixture(params=PAIRS, ids=["-".join(p) for p in PAIRS])
def factories(request, tmp_path):
    yield from factories_for(request, tmp_path, request.param)


@pytest.fixture(params=[("sqlite", "postgresql"), ("postgresql", "postgresql")])
def into_postgresql(request, tmp_path):
    yield from factories_for(request, tmp_path, request.param)


def opened(factory):
    db = factory.open()
    db.reidentify()
    return db


def conflicts(db):
    return Counter(
        (c.kind, c.table_name, c.row_id, (c.loser.get("provenance") or {}).get("edit_event_id"))
        for c in db.conflicts(limit=100_000)
    )


def search(db, ws, words):
    return {w: [b.id for b in db.search_blocks(ws, w)] for w in words}


def concurrent_history(a, b, r):
    """Edits that meet every rule on the receiver ``r``: fields, generations,
    deletes (and change sets after a delete about what it cascaded to), job and
    workflow rows, canvases; several about the same rows in one batch. ``a``
    sends; ``b``'s concurrent edits reach ``r`` through ``a``."""
    ws = a.create_workspace(ADA, NewWorkspace("W", id="ws"))
    for d in ("d1", "d2", "d3"):
        a.create_document(ADA, NewDocument(ws.id, d, id=d))
        a.replace_blocks(
            ADA, d, [NewBlock(d, "p", i, f"{d} block {i} alpha", id=f"{d}b{i}") for i in range(3)]
        )
    a.create_canvas(ADA, NewCanvas(ws.id, "C", id="cv"))
    a.update_canvas_graph(
        ADA,
        "cv",
        [NewCanvasNode("n", 1.0, 2.0, id="n1"), NewCanvasNode("n", 3.0, 4.0, id="n2")],
        [NewCanvasEdge("n1", "n2", "e", id="e1")],
    )
    job = a.create_ai_job(job_input())
    run = a.create_workflow_run(job.id, JobState.QUEUED)
    sync_databases(a, b)
    sync_databases(a, r)
    # r, offline: edits the batch will meet
    r.update_block(BOB, "d1b0", BlockUpdate(raw_content="bob alpha words"))
    r.update_block(BOB, "d1b1", BlockUpdate(raw_content="bob edits the text"))
    r.update_block(BOB, "d2b0", BlockUpdate(raw_content="bob on the old generation"))
    r.update_block(BOB, "d3b1", BlockUpdate(raw_content="bob under a deleted document"))
    r.update_workflow_run_status(run.id, JobState.RUNNING)
    r.update_canvas_graph(BOB, "cv", [NewCanvasNode("m", 0.5, 0.5, id="m1")], [])
    # b, offline too: its edits travel to r after a's, in the same batch
    b.update_block(ADA, "d3b0", BlockUpdate(raw_content="b edits what a deletes"))
    b.update_block(ADA, "d2b1", BlockUpdate(raw_content="b edits the replaced generation"))
    b.update_block(ADA, "d1b2", BlockUpdate(kind="quote"))
    b.update_block(ADA, "d1b0", BlockUpdate(raw_content="b alpha too"))
    b.set_job_outputs(job.id, {"from": "b"})
    # a, meanwhile
    a.update_block(ADA, "d1b0", BlockUpdate(raw_content="ada alpha wins later"))
    a.update_block(ADA, "d1b1", BlockUpdate(kind="heading"))
    a.update_block(ADA, "d1b2", BlockUpdate(raw_content="first"))
    a.update_block(ADA, "d1b2", BlockUpdate(raw_content="second alpha"))
    a.replace_blocks(ADA, "d2", [NewBlock("d2", "p", 0, "new gen alpha", id="d2n0")])
    a.update_block(ADA, "d2n0", BlockUpdate(raw_content="new gen edited alpha"))
    a.delete_document(ADA, "d3")
    a.create_document(ADA, NewDocument(ws.id, "d4", id="d4"))
    a.create_block(ADA, NewBlock("d4", "p", 0, "fresh alpha", id="d4b0"))
    a.update_block(ADA, "d4b0", BlockUpdate(raw_content="fresher alpha"))
    a.replace_blocks(ADA, "d4", [NewBlock("d4", "p", 0, "replaced alpha", id="d4r0")])
    a.update_workflow_run_status(run.id, JobState.COMPLETED)
    a.set_job_pinned(job.id, True)
    a.update_canvas_graph(ADA, "cv", [NewCanvasNode("k", 9.0, 9.0, id="k1")], [])
    sync_databases(b, a, direction="push")
    return ws.id


def test_where_the_chunks_end_changes_nothing(factories, monkeypatch) -> None:
    fa, fr = factories
    a, b, r = opened(fa), opened(fa), opened(fr)
    ws = concurrent_history(a, b, r)
    batch = a.export_changes(r.sync_vector(), limit=10_000)
    origins = [c["origin"] for c in batch["changes"]]
    assert origins.index(b.replica_id) > origins.index(a.replica_id)  # b's after a's delete
    # r2: the same replica state as r (a copy), to receive the same batch
    r2 = fr.open(fr.url(migrated=False))
    copy_database(r._adapter.url.raw, r2._adapter.url.raw)
    before = conflicts(r)
    assert conflicts(r2) == before

    monkeypatch.setattr(exchange, "CHUNK_SIZE", 1)  # each change set its own chunk
    one_by_one = r.import_changes(batch)
    monkeypatch.undo()
    assert len(batch["changes"]) <= exchange.CHUNK_SIZE
    in_one = r2.import_changes(batch)  # the whole batch one chunk

    assert one_by_one == in_one
    assert one_by_one.applied == len(batch["changes"]) and one_by_one.conflicts >= 6
    assert content(r) == content(r2)
    assert r.content_digests() == r2.content_digests()
    new = conflicts(r) - before
    assert new == conflicts(r2) - before
    kinds = Counter(kind for kind, *_ in new.elements())
    assert kinds["deleted"] >= 2 and kinds["stale_generation"] >= 2 and kinds["field"] >= 1
    words = ["alpha", "bob", "fresher", "replaced", "edited"]
    assert search(r, ws, words) == search(r2, ws, words)
    # and both equal the sender once it has r's side too
    for db in (r, r2):
        assert sync_databases(a, db, verify=True).verified
    assert content(a) == content(r) == content(r2)
    assert search(a, ws, words) == search(r, ws, words)
    for db in (a, r, r2):
        assert all(x.equal for x in rebuildable.verify(db))  # search rows = a rebuild


def test_a_row_inserted_meanwhile_makes_the_batch_retry_and_merge(
    into_postgresql, monkeypatch
) -> None:
    """PostgreSQL: between a chunk's reads and its writes, another session
    creates the block the batch creates. The insert must not silently do
    nothing: the batch is retried, finds the row and merges field by field."""
    fa, fb = into_postgresql
    a, b = opened(fa), opened(fb)
    ws = a.create_workspace(ADA, NewWorkspace("W", id="ws"))
    a.create_document(ADA, NewDocument(ws.id, "d", id="d"))
    sync_databases(a, b)
    a.create_block(ADA, NewBlock("d", "p", 0, "made on a alpha", id="race"))
    batch = a.export_changes(b.sync_vector())
    sent = a.changes(limit=10)[-1]

    finish, raced = ChunkState.finish, []

    def racing_finish(self, reindex):
        if not raced:  # once: another session writes the same id and commits
            raced.append(True)
            with open_database(b._adapter.url.raw, statement_timeout=20) as other:
                other.create_block(BOB, NewBlock("d", "p", 1, "made on b beta", id="race"))
        return finish(self, reindex)

    monkeypatch.setattr(ChunkState, "finish", racing_finish)
    report = b.import_changes(batch)
    monkeypatch.undo()

    assert raced and report.applied == 1
    block = b.get_block("race")
    # b's create is the later stamp: its fields win, a's are in the log
    assert block.raw_content == "made on b beta" and block.sequence == 1
    (logged,) = [c for c in b.conflicts() if c.row_id == "race"]
    assert logged.kind == "field"
    assert logged.loser["provenance"]["edit_event_id"] == str(sent.edit_event_id)
    assert [x.id for x in b.search_blocks("ws", "beta")] == ["race"]
    assert b.search_blocks("ws", "alpha") == []
    assert sync_databases(a, b, verify=True).verified
    assert a.get_block("race") == block
