"""Model-based property test of sync: three replicas (two SQLite files and
one PostgreSQL database), random API writes on random replicas (every content
write kind, human and AI contexts, jobs and workflows), random pairwise
syncs in random directions and workspace subsets. After every step the
invariants hold; at the end every pair syncs until nothing moves, and then
all replicas read identical through the API and have equal table digests.

Seeded and bounded (``derandomize``, a fixed number of examples and steps)
so a CI run takes about a minute.
"""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from sync_support import content, job_input, replicas

from handshake_storage import (
    BlockUpdate,
    JobState,
    NewBlock,
    NewCanvas,
    NewCanvasEdge,
    NewCanvasNode,
    NewDocument,
    NewWorkspace,
    NotFoundError,
    WriteContext,
    rebuildable,
)
from handshake_storage.sync import sync_databases

EXAMPLES = 10
STEPS = 40
WORDS = ["alpha", "beta", "gamma", "delta", "straße", "東京"]

pytestmark = pytest.mark.slow


def run_model(dbs: list) -> dict:
    """Run the state machine over ``dbs``; returns counters for the note."""
    stats: Counter = Counter()

    class SyncModel(RuleBasedStateMachine):
        @initialize()
        def clean(self) -> None:
            for db in dbs:
                for ws in db.list_workspaces():
                    db.delete_workspace(WriteContext.system("reset"), ws.id)
            converge(dbs)
            job = dbs[0].create_ai_job(job_input())
            run = dbs[0].create_workflow_run(job.id, JobState.RUNNING)
            self.ai = WriteContext.ai(job.id, run.id, "model")
            self.run = run.id
            self.job = job.id
            shared = dbs[0].create_workspace(WriteContext.human("ada"), NewWorkspace("shared"))
            doc = dbs[0].create_document(WriteContext.human("ada"), NewDocument(shared.id, "d"))
            dbs[0].replace_blocks(
                WriteContext.human("ada"),
                doc.id,
                [NewBlock(doc.id, "p", i, f"start {i}") for i in range(3)],
            )
            converge(dbs)

        def ctx(self, data) -> WriteContext:
            return data.draw(
                st.sampled_from([WriteContext.human("ada"), WriteContext.human("bob"), self.ai])
            )

        def pick(self, data, db, what: str):
            ids = []
            for ws in db.list_workspaces():
                if what == "workspace":
                    ids.append(ws.id)
                for doc in db.list_documents(ws.id):
                    if what == "document":
                        ids.append(doc.id)
                    if what == "block":
                        ids += [b.id for b in db.get_blocks(doc.id)]
                if what == "canvas":
                    ids += [c.id for c in db.list_canvases(ws.id)]
            return data.draw(st.sampled_from(sorted(ids))) if ids else None

        @rule(r=st.integers(0, 2), data=st.data())
        def write(self, r: int, data) -> None:
            db = dbs[r]
            kind = data.draw(
                st.sampled_from(
                    [
                        "workspace",
                        "document",
                        "block",
                        "update",
                        "replace",
                        "delete_block",
                        "delete_document",
                        "canvas",
                        "graph",
                        "heartbeat",
                        "job",
                    ]
                )
            )
            ctx = self.ctx(data)
            text = " ".join(data.draw(st.lists(st.sampled_from(WORDS), min_size=1, max_size=3)))
            try:
                if kind == "workspace" and len(db.list_workspaces()) < 3:
                    db.create_workspace(ctx, NewWorkspace(text))
                elif kind == "document" and (ws := self.pick(data, db, "workspace")):
                    db.create_document(ctx, NewDocument(ws, text))
                elif kind == "block" and (doc := self.pick(data, db, "document")):
                    db.create_block(ctx, NewBlock(doc, "p", data.draw(st.integers(0, 5)), text))
                elif kind == "update" and (block := self.pick(data, db, "block")):
                    field = data.draw(st.sampled_from(["raw_content", "kind", "sequence"]))
                    value = data.draw(st.integers(0, 5)) if field == "sequence" else text
                    db.update_block(ctx, block, BlockUpdate(**{field: value}))
                elif kind == "replace" and (doc := self.pick(data, db, "document")):
                    n = data.draw(st.integers(0, 3))
                    db.replace_blocks(
                        ctx, doc, [NewBlock(doc, "p", i, f"{text} {i}") for i in range(n)]
                    )
                elif kind == "delete_block" and (block := self.pick(data, db, "block")):
                    db.delete_block(ctx, block)
                elif kind == "delete_document" and (doc := self.pick(data, db, "document")):
                    db.delete_document(ctx, doc)
                elif kind == "canvas" and (ws := self.pick(data, db, "workspace")):
                    db.create_canvas(ctx, NewCanvas(ws, text))
                elif kind == "graph" and (canvas := self.pick(data, db, "canvas")):
                    ids = [f"n{uuid.uuid4().hex[:6]}" for _ in range(data.draw(st.integers(0, 3)))]
                    nodes = [NewCanvasNode("n", float(i), 1.5, id=i_) for i, i_ in enumerate(ids)]
                    edges = [NewCanvasEdge(ids[0], ids[-1], "e")] if ids else []
                    db.update_canvas_graph(ctx, canvas, nodes, edges)
                elif kind == "heartbeat":
                    db.heartbeat_workflow(self.run, datetime.now(UTC))
                elif kind == "job":
                    db.set_job_outputs(self.job, {"text": text})
                stats["writes"] += 1
            except NotFoundError:
                stats["not found"] += 1  # raced nothing: the pick was just deleted on this replica

        @rule(
            a=st.integers(0, 2),
            b=st.integers(0, 2),
            direction=st.sampled_from(["both", "push", "pull"]),
            limited=st.booleans(),
            data=st.data(),
        )
        def sync(self, a: int, b: int, direction: str, limited: bool, data) -> None:
            if a == b:
                return
            workspaces = None
            if limited:
                ids = sorted(w.id for w in dbs[a].list_workspaces())
                workspaces = data.draw(st.lists(st.sampled_from(ids), unique=True)) if ids else []
            report = sync_databases(
                dbs[a], dbs[b], direction=direction, workspaces=workspaces, batch_size=7
            )
            stats["syncs"] += 1
            stats["change sets moved"] += report.moved
            stats["conflicts"] += report.pushed.conflicts + report.pulled.conflicts

        @invariant()
        def invariants(self) -> None:
            for db in dbs:
                check_replica(db)

        def teardown(self) -> None:
            stats["change sets moved"] += converge(dbs)
            states = [content(db) for db in dbs]
            assert states[0] == states[1] == states[2]
            digests = [db.content_digests() for db in dbs]
            assert digests[0] == digests[1] == digests[2]
            for db in dbs:
                check_replica(db)
                assert all(r.equal for r in rebuildable.verify(db))  # search equals a rebuild
            stats["examples"] += 1

    SyncModel.TestCase.settings = settings(
        max_examples=EXAMPLES,
        stateful_step_count=STEPS,
        derandomize=True,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    SyncModel.TestCase().runTest()
    return dict(stats)


CONFLICTS = [0]


def converge(dbs: list) -> int:
    total = 0
    for _ in range(4):
        moved = 0
        for i in range(len(dbs)):
            for j in range(i + 1, len(dbs)):
                report = sync_databases(dbs[i], dbs[j])
                moved += report.moved
                CONFLICTS[0] += report.pushed.conflicts + report.pulled.conflicts
        total += moved
        if not moved:
            return total
    raise AssertionError("replicas did not stop moving change sets")


def check_replica(db) -> None:
    """Invariants of one replica: every row's provenance is the change set
    that last wrote it; each document's blocks are one generation or edits
    made on it; no change set applied twice; every discarded change is logged."""
    changes = db.changes(limit=1_000_000)
    keys = [(c.origin_id, c.workspace_id, c.seq) for c in changes]
    assert len(keys) == len(set(keys)), "a change set was applied twice"
    by_event = {c.edit_event_id: c for c in changes}
    for ws in db.list_workspaces():
        rows = [ws]
        for doc in db.list_documents(ws.id):
            rows.append(doc)
            rows += db.get_blocks(doc.id)
        for canvas in db.list_canvases(ws.id):
            graph = db.get_canvas_with_graph(canvas.id)
            rows += [graph.canvas, *graph.nodes, *graph.edges]
        for row in rows:
            change = by_event.get(row.edit_event_id)
            assert change is not None, f"{row!r} has no change set"
            assert (change.actor_kind, change.actor_id, change.job_id, change.workflow_id) == (
                row.last_actor_kind,
                row.last_actor_id,
                row.last_job_id,
                row.last_workflow_id,
            )
    rejected = [c for c in changes if c.status == "rejected"]
    logged = {
        (c.loser_provenance.get("origin_id"), c.loser_provenance.get("seq"))
        for c in db.conflicts(kind="rejected", limit=100_000)
    }
    assert {(c.origin_id, c.seq) for c in rejected} <= logged


@pytest.fixture
def three(request, tmp_path):
    yield from replicas(request, tmp_path, ("sqlite", "sqlite", "postgresql"))


def test_random_writes_and_syncs_converge_on_three_replicas(three, record_property) -> None:
    stats = run_model(three)
    stats["conflicts"] += CONFLICTS[0]
    record_property("model", stats)
    print("sync model:", stats)
    assert 1 <= stats["examples"] <= EXAMPLES
    assert stats["change sets moved"] > 0 and stats["conflicts"] > 0
