"""handshake_storage through its public API, with default options
(SQLite: WAL + synchronous=FULL; PostgreSQL: the server's settings)."""

from __future__ import annotations

from typing import Any

from handshake_storage import (
    AccessMode,
    BlockUpdate,
    EntityRef,
    JobMetrics,
    JobState,
    JobStatusUpdate,
    NewAiJob,
    NewBlock,
    NewCanvas,
    NewCanvasEdge,
    NewCanvasNode,
    NewDocument,
    NewWorkspace,
    OperationType,
    PlannedOperation,
    SafetyMode,
    WriteContext,
    open_database,
)

from .common import ACTOR_ID


class HandshakeImpl:
    name = "handshake"
    keeps_ledger = True  # writes the change ledger in each write's transaction

    def __init__(self, backend: str, url: str) -> None:
        self.backend = backend
        self.db = open_database(url)
        self.ctx = WriteContext.human(ACTOR_ID)

    def close(self) -> None:
        self.db.close()

    def durability(self) -> dict[str, Any]:
        with self.db._adapter.transaction() as s:
            if self.backend == "sqlite":
                return {
                    "journal_mode": s.execute("PRAGMA journal_mode").fetchone()[0],
                    "synchronous": s.execute("PRAGMA synchronous").fetchone()[0],
                }
            return {"synchronous_commit": s.execute("SHOW synchronous_commit").fetchone()[0]}

    # -- setup -------------------------------------------------------------------

    def create_workspace(self, ws_id: str, name: str) -> None:
        self.db.create_workspace(self.ctx, NewWorkspace(name, id=ws_id))

    def create_document(self, doc_id: str, ws_id: str, title: str) -> None:
        self.db.create_document(self.ctx, NewDocument(ws_id, title, id=doc_id))

    def create_canvas(self, canvas_id: str, ws_id: str, title: str) -> None:
        self.db.create_canvas(self.ctx, NewCanvas(ws_id, title, id=canvas_id))

    # -- blocks ---------------------------------------------------------------------

    def create_block(self, doc_id: str, block_id: str, kind: str, seq: int, raw: str) -> Any:
        return self.db.create_block(self.ctx, NewBlock(doc_id, kind, seq, raw, id=block_id))

    def get_blocks(self, doc_id: str) -> Any:
        return self.db.get_blocks(doc_id)

    def get_block(self, block_id: str) -> Any:
        return self.db.get_block(block_id)

    def update_block(self, block_id: str, raw: str) -> Any:
        return self.db.update_block(self.ctx, block_id, BlockUpdate(raw_content=raw))

    def replace_blocks(self, doc_id: str, blocks: list[tuple[str, str, int, str]]) -> Any:
        return self.db.replace_blocks(
            self.ctx, doc_id, [NewBlock(doc_id, k, s, r, id=i) for i, k, s, r in blocks]
        )

    def search_blocks(self, ws_id: str, query: str, limit: int) -> Any:
        return self.db.search_blocks(ws_id, query, limit)

    # -- canvases --------------------------------------------------------------------

    def update_canvas_graph(
        self,
        canvas_id: str,
        nodes: list[tuple[str, str, float, float, dict[str, Any]]],
        edges: list[tuple[str, str, str, str]],
    ) -> Any:
        return self.db.update_canvas_graph(
            self.ctx,
            canvas_id,
            [NewCanvasNode(k, x, y, data, id=i) for i, k, x, y, data in nodes],
            [NewCanvasEdge(f, t, k, id=i) for i, f, t, k in edges],
        )

    def get_canvas_with_graph(self, canvas_id: str) -> Any:
        return self.db.get_canvas_with_graph(canvas_id)

    # -- AI jobs -------------------------------------------------------------------

    def job_create(self, job: dict[str, Any]) -> Any:
        ref = EntityRef(job["entity_id"], "block")
        return self.db.create_ai_job(
            NewAiJob(
                trace_id=job["trace_id"],
                job_kind="summarize",
                protocol_id="proto-1",
                profile_id="default",
                capability_profile_id="cap-read",
                access_mode=AccessMode.ANALYSIS_ONLY,
                safety_mode=SafetyMode.NORMAL,
                entity_refs=[ref],
                planned_operations=[PlannedOperation(OperationType.READ, ref, "read the block")],
                job_inputs=job["inputs"],
                id=job["id"],
            )
        )

    def job_running(self, job: dict[str, Any]) -> Any:
        return self.db.update_ai_job_status(
            JobStatusUpdate(job["id"], JobState.RUNNING, status_reason="started")
        )

    def job_set_outputs(self, job: dict[str, Any]) -> None:
        self.db.set_job_outputs(job["id"], job["outputs"])

    def job_completed(self, job: dict[str, Any]) -> Any:
        return self.db.update_ai_job_status(
            JobStatusUpdate(
                job["id"],
                JobState.COMPLETED,
                status_reason="done",
                metrics=JobMetrics(**job["metrics"]),
            )
        )

    # -- result inspection (not timed) -----------------------------------------

    @staticmethod
    def block_ids(blocks: Any) -> list[str]:
        return [b.id for b in blocks]

    @staticmethod
    def block_id(block: Any) -> str:
        return block.id

    @staticmethod
    def graph_ids(graph: Any) -> tuple[str, list[str], list[str]]:
        return graph.canvas.id, [n.id for n in graph.nodes], [e.id for e in graph.edges]
