"""The record point of the write pattern (writes.py): every API write hands
what it wrote to the database's ChangeRecorder inside its own transaction,
on both backends — the hook the change ledger appends its change sets at."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from handshake_storage import (
    AccessMode,
    BlockUpdate,
    Database,
    JobState,
    JobStatusUpdate,
    NewAiJob,
    NewBlock,
    NewCanvas,
    NewCanvasEdge,
    NewCanvasNode,
    NewDocument,
    NewNodeExecution,
    NewWorkspace,
    SafetyMode,
    WriteContext,
    open_database,
)
from handshake_storage.database import Database as DatabaseClass
from handshake_storage.tables import BLOCKS, BY_NAME, CANVAS_NODES
from handshake_storage.writes import Write, Written

HUMAN = WriteContext.human("ada")


class Recorder:
    active = True

    def __init__(self, db_ref: list[Database]) -> None:
        self.writes: list[tuple[str, Any, list[tuple[str, dict]], list, list]] = []
        self.fail_on: str | None = None
        self._db = db_ref

    def record(self, session: Any, write: Write) -> None:
        decode = self._db[0]._adapter.decode_timestamp
        images = [(t.name, t.image(row, decode)) for t, row in write.written]
        deleted = [(t.name, key) for t, key in write.deleted]
        cleared = [(t.name, key) for t, key in write.cleared]
        self.writes.append((write.operation, write.meta, images, deleted, cleared))
        if write.operation == self.fail_on:
            raise RuntimeError("the ledger failed")


def _open(url: str) -> tuple[Database, Recorder]:
    plain = open_database(url)
    ref: list[Database] = []
    recorder = Recorder(ref)
    db = DatabaseClass(plain._adapter, recorder=recorder)
    ref.append(db)
    return db, recorder


def _ops(db: Database) -> None:
    ws = db.create_workspace(HUMAN, NewWorkspace("w", id="ws"))
    db.create_document(HUMAN, NewDocument(ws.id, "d", id="doc"))
    db.create_block(HUMAN, NewBlock("doc", "p", 0, "hello", id="b1"))
    db.update_block(HUMAN, "b1", BlockUpdate(raw_content="bye"))
    db.replace_blocks(HUMAN, "doc", [NewBlock("doc", "p", 0, "x", id="b2")])
    db.delete_block(HUMAN, "b2")
    db.create_canvas(HUMAN, NewCanvas(ws.id, "c", id="cv"))
    db.update_canvas_graph(
        HUMAN,
        "cv",
        [NewCanvasNode("n", 0.0, 1.0, id="n1"), NewCanvasNode("n", 2.0, 3.0, id="n2")],
        [NewCanvasEdge("n1", "n2", "e", id="e1")],
    )
    job = db.create_ai_job(
        NewAiJob(uuid.uuid4(), "k", "p", "pr", "cap", AccessMode.ANALYSIS_ONLY, SafetyMode.NORMAL)
    )
    db.update_ai_job_status(JobStatusUpdate(job.id, JobState.COMPLETED))
    db.set_job_outputs(job.id, {"ok": True})
    db.set_job_pinned(job.id, False)
    run = db.create_workflow_run(job.id, JobState.RUNNING)
    db.heartbeat_workflow(run.id, datetime.now(UTC))
    db.update_workflow_run_status(run.id, JobState.COMPLETED)
    ex = db.create_workflow_node_execution(
        NewNodeExecution(run.id, "n", "t", JobState.RUNNING, 0, datetime.now(UTC))
    )
    db.update_workflow_node_execution_status(ex.id, JobState.COMPLETED, {"out": 1})
    db.prune_ai_jobs(datetime.now(UTC) + timedelta(days=1), 0, dry_run=True)
    db.prune_ai_jobs(datetime.now(UTC) + timedelta(days=1), 0)
    db.delete_canvas(HUMAN, "cv")
    db.delete_document(HUMAN, "doc")
    db.delete_workspace(HUMAN, "ws")


def test_every_write_is_recorded_with_its_rows(databases: Any) -> None:
    db, recorder = _open(databases.url(migrated=True))
    with db:
        _ops(db)
    ops = [w[0] for w in recorder.writes]
    assert ops == [
        "create_workspace",
        "create_document",
        "create_block",
        "update_block",
        "replace_blocks",
        "delete_block",
        "create_canvas",
        "update_canvas_graph",
        "create_ai_job",
        "update_ai_job_status",
        "set_job_outputs",
        "set_job_pinned",
        "create_workflow_run",
        "heartbeat_workflow",
        "update_workflow_run_status",
        "create_workflow_node_execution",
        "update_workflow_node_execution_status",
        "prune_ai_jobs",  # the dry run changed nothing and is not recorded
        "delete_canvas",
        "delete_document",
        "delete_workspace",
    ]
    by_op = {w[0]: w for w in recorder.writes}
    _, meta, images, _, _ = by_op["create_block"]
    assert meta is not None and meta.actor_id == "ada"
    assert images == [("blocks", images[0][1])] and images[0][1]["raw_content"] == "hello"
    assert images[0][1]["edit_event_id"] == str(meta.edit_event_id)
    _, _, images, _, cleared = by_op["update_canvas_graph"]
    assert [t for t, _ in images] == ["canvases", "canvas_nodes", "canvas_nodes", "canvas_edges"]
    assert cleared == [("canvas_edges", "cv"), ("canvas_nodes", "cv")]
    assert by_op["update_block"][2][0][1]["raw_content"] == "bye"
    assert by_op["set_job_outputs"][2][0][1]["job_outputs"] == {"ok": True}
    assert by_op["create_ai_job"][1] is None  # AI jobs take no WriteContext
    assert by_op["delete_block"][3] == [("blocks", "b2")]
    assert [t for t, _ in by_op["prune_ai_jobs"][3]] == ["ai_jobs"]
    for _, _, images, _, _ in recorder.writes:
        for table, image in images:
            assert set(image) == set(BY_NAME[table].names)


@pytest.mark.parametrize("operation", ["create_workspace", "create_block", "replace_blocks"])
def test_a_failing_recorder_rolls_the_write_back(databases: Any, operation: str) -> None:
    """The record is part of the write's transaction: all or nothing."""
    db, recorder = _open(databases.url(migrated=True))
    with db:
        if operation != "create_workspace":
            db.create_workspace(HUMAN, NewWorkspace("w", id="ws"))
            db.create_document(HUMAN, NewDocument("ws", "d", id="doc"))
            db.create_block(HUMAN, NewBlock("doc", "p", 0, "old", id="b0"))

        def state() -> Any:
            blocks = db.get_blocks("doc") if operation != "create_workspace" else []
            return db.list_workspaces(), blocks

        before = state()
        recorder.fail_on = operation
        with pytest.raises(RuntimeError):
            if operation == "create_workspace":
                db.create_workspace(HUMAN, NewWorkspace("w", id="ws"))
            elif operation == "create_block":
                db.create_block(HUMAN, NewBlock("doc", "p", 1, "new", id="b1"))
            else:
                db.replace_blocks(HUMAN, "doc", [NewBlock("doc", "p", 0, "x", id="b2")])
        assert state() == before


def test_written_reads_as_the_pairs_in_the_order_written() -> None:
    written = Written()
    assert not written and len(written) == 0 and list(written) == []
    rows = [("n1",), ("n2",)]
    written.add(CANVAS_NODES, rows)
    written.add(BLOCKS, [])
    written.add(BLOCKS, (("b1",),))
    pairs = [(CANVAS_NODES, ("n1",)), (CANVAS_NODES, ("n2",)), (BLOCKS, ("b1",))]
    assert written and len(written) == 3 and list(written) == pairs
    assert written[0] == pairs[0] and written[-1] == pairs[-1] and written[1:] == pairs[1:]
