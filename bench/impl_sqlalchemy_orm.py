"""SQLAlchemy 2 ORM: mapped classes over the same tables, one ``Session`` per
operation, the unit of work for writes (load, modify, flush on commit),
ORM-enabled bulk DELETE for clearing a document or a graph.

Engines and durability as in the Core implementation.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, create_engine, delete, select
from sqlalchemy.orm import DeclarativeBase, sessionmaker

from . import sa_schema as t
from .common import (
    ACTOR_ID,
    ACTOR_KIND,
    METRIC_FIELDS,
    index_rows,
    new_event_id,
    now,
    ranked,
    search_statement,
)

_ZERO_METRICS = dict.fromkeys(METRIC_FIELDS, 0)


class Base(DeclarativeBase):
    pass


class Workspace(Base):
    __table__ = t.workspaces


class Document(Base):
    __table__ = t.documents


class Block(Base):
    __table__ = t.blocks


class BlockSearch(Base):
    __table__ = t.block_search


class Canvas(Base):
    __table__ = t.canvases


class CanvasNode(Base):
    __table__ = t.canvas_nodes


class CanvasEdge(Base):
    __table__ = t.canvas_edges


class AiJob(Base):
    __table__ = t.ai_jobs


def _stamp(obj: Any, ts: Any, event_id: str) -> None:
    obj.updated_at = ts
    obj.last_actor_kind = ACTOR_KIND
    obj.last_actor_id = ACTOR_ID
    obj.last_job_id = None
    obj.last_workflow_id = None
    obj.edit_event_id = event_id


def _trace(ts: Any, event_id: str) -> dict[str, Any]:
    return {
        "created_at": ts,
        "updated_at": ts,
        "last_actor_kind": ACTOR_KIND,
        "last_actor_id": ACTOR_ID,
        "last_job_id": None,
        "last_workflow_id": None,
        "edit_event_id": event_id,
    }


class OrmImpl:
    name = "sa_orm"
    keeps_ledger = False  # writes no change ledger: it does less work than handshake

    def __init__(self, backend: str, url: str) -> None:
        self.backend = backend
        self.pg = backend == "postgresql"
        self.url = url
        self.engine = create_engine(t.sa_url(url))
        if self.pg:
            ac = self.engine.execution_options(isolation_level="AUTOCOMMIT")
            snap = self.engine.execution_options(
                isolation_level="REPEATABLE READ", postgresql_readonly=True
            )
        else:
            t.sqlite_pragmas(self.engine)
            ac = snap = self.engine
        self.Session = sessionmaker(self.engine, expire_on_commit=False)
        self.ReadSession = sessionmaker(ac, expire_on_commit=False)
        self.SnapSession = sessionmaker(snap, expire_on_commit=False)

        def code_point(col: Any) -> Any:
            return col.collate("C") if self.pg else col

        self.s_get_blocks = (
            select(Block)
            .where(Block.document_id == bindparam("doc"))
            .order_by(Block.sequence, code_point(Block.id))
        )
        self.s_nodes = (
            select(CanvasNode)
            .where(CanvasNode.canvas_id == bindparam("cid"))
            .order_by(CanvasNode.ordinal)
        )
        self.s_edges = (
            select(CanvasEdge)
            .where(CanvasEdge.canvas_id == bindparam("cid"))
            .order_by(CanvasEdge.ordinal)
        )

    def close(self) -> None:
        self.engine.dispose()

    def durability(self) -> dict[str, Any]:
        with self.Session() as s:
            conn = s.connection()
            if self.pg:
                return {
                    "synchronous_commit": conn.exec_driver_sql("SHOW synchronous_commit").scalar()
                }
            return {
                "journal_mode": conn.exec_driver_sql("PRAGMA journal_mode").scalar(),
                "synchronous": conn.exec_driver_sql("PRAGMA synchronous").scalar(),
            }

    # -- setup -------------------------------------------------------------------

    def create_workspace(self, ws_id: str, name: str) -> None:
        with self.Session.begin() as s:
            s.add(Workspace(id=ws_id, name=name, **_trace(now(), new_event_id())))

    def create_document(self, doc_id: str, ws_id: str, title: str) -> None:
        with self.Session.begin() as s:
            s.add(
                Document(
                    id=doc_id, workspace_id=ws_id, title=title, **_trace(now(), new_event_id())
                )
            )

    def create_canvas(self, canvas_id: str, ws_id: str, title: str) -> None:
        with self.Session.begin() as s:
            s.add(
                Canvas(
                    id=canvas_id, workspace_id=ws_id, title=title, **_trace(now(), new_event_id())
                )
            )

    # -- blocks ---------------------------------------------------------------------

    def create_block(self, doc_id: str, block_id: str, kind: str, seq: int, raw: str) -> Any:
        block = Block(
            id=block_id,
            document_id=doc_id,
            kind=kind,
            sequence=seq,
            raw_content=raw,
            display_content=raw,
            derived_content={},
            **_trace(now(), new_event_id()),
        )
        with self.Session.begin() as s:
            ws_id = s.scalar(select(Document.workspace_id).where(Document.id == doc_id))
            s.add(block)
            s.flush()  # the block before its terms
            s.add_all(
                BlockSearch(
                    block_id=x[0], chunk=x[1], word_count=x[2], tokens=x[3], workspace_id=ws_id
                )
                for x in index_rows(block_id, raw)
            )
        return block

    def get_blocks(self, doc_id: str) -> Any:
        with self.ReadSession() as s:
            return s.scalars(self.s_get_blocks, {"doc": doc_id}).all()

    def get_block(self, block_id: str) -> Any:
        with self.ReadSession() as s:
            return s.get(Block, block_id)

    def update_block(self, block_id: str, raw: str) -> Any:
        with self.Session.begin() as s:
            block = s.get(Block, block_id)
            if block is None:
                raise LookupError(block_id)
            block.raw_content = raw
            block.display_content = raw  # the display follows the raw content
            _stamp(block, now(), new_event_id())
            ws_id = s.scalar(select(Document.workspace_id).where(Document.id == block.document_id))
            s.execute(delete(BlockSearch).where(BlockSearch.block_id == block_id))
            s.add_all(
                BlockSearch(
                    block_id=x[0], chunk=x[1], word_count=x[2], tokens=x[3], workspace_id=ws_id
                )
                for x in index_rows(block_id, raw)
            )
        return block

    def replace_blocks(self, doc_id: str, blocks: list[tuple[str, str, int, str]]) -> Any:
        ts, ev = now(), new_event_id()
        trace = _trace(ts, ev)
        new = [
            Block(
                id=i,
                document_id=doc_id,
                kind=k,
                sequence=seq,
                raw_content=r,
                display_content=r,
                derived_content={},
                **trace,
            )
            for i, k, seq, r in blocks
        ]
        with self.Session.begin() as s:
            doc = s.get(Document, doc_id)
            if doc is None:
                raise LookupError(doc_id)
            _stamp(doc, ts, ev)
            s.execute(
                delete(Block).where(Block.document_id == doc_id),
                execution_options={"synchronize_session": False},
            )
            s.add_all(new)
            s.flush()  # blocks before their terms
            s.add_all(
                BlockSearch(
                    block_id=x[0], chunk=x[1], word_count=x[2], tokens=x[3], workspace_id=ws
                )
                for ws in (doc.workspace_id,)
                for i, _k, _s, r in blocks
                for x in index_rows(i, r)
            )
        return new

    def search_blocks(self, ws_id: str, query: str, limit: int) -> Any:
        # The engine's full-text match has no ORM construct: the same SQL text.
        with self.ReadSession() as s:
            sql, params = search_statement(self.url, ws_id, query, limit)
            return ranked(s.connection().exec_driver_sql(sql, params).all(), limit)

    # -- canvases --------------------------------------------------------------------

    def update_canvas_graph(
        self,
        canvas_id: str,
        nodes: list[tuple[str, str, float, float, dict[str, Any]]],
        edges: list[tuple[str, str, str, str]],
    ) -> Any:
        ts, ev = now(), new_event_id()
        trace = _trace(ts, ev)
        new_nodes = [
            CanvasNode(
                id=i,
                canvas_id=canvas_id,
                ordinal=o,
                kind=k,
                position_x=x,
                position_y=y,
                data=d,
                **trace,
            )
            for o, (i, k, x, y, d) in enumerate(nodes)
        ]
        new_edges = [
            CanvasEdge(
                id=i,
                canvas_id=canvas_id,
                ordinal=o,
                from_node_id=f,
                to_node_id=to,
                kind=k,
                **trace,
            )
            for o, (i, f, to, k) in enumerate(edges)
        ]
        with self.Session.begin() as s:
            canvas = s.get(Canvas, canvas_id)
            if canvas is None:
                raise LookupError(canvas_id)
            _stamp(canvas, ts, ev)
            opts = {"synchronize_session": False}
            s.execute(
                delete(CanvasEdge).where(CanvasEdge.canvas_id == canvas_id), execution_options=opts
            )
            s.execute(
                delete(CanvasNode).where(CanvasNode.canvas_id == canvas_id), execution_options=opts
            )
            s.add_all(new_nodes)
            s.flush()  # no relationship() between the mappers: nodes before edges
            s.add_all(new_edges)
        return canvas, new_nodes, new_edges

    def get_canvas_with_graph(self, canvas_id: str) -> Any:
        p = {"cid": canvas_id}
        with self.SnapSession() as s:
            if not self.pg:
                s.connection().exec_driver_sql("BEGIN")
            canvas = s.get(Canvas, canvas_id)
            nodes = s.scalars(self.s_nodes, p).all()
            edges = s.scalars(self.s_edges, p).all()
        return canvas, nodes, edges

    # -- AI jobs -------------------------------------------------------------------

    def job_create(self, job: dict[str, Any]) -> Any:
        ts = now()
        ref = {"entity_id": job["entity_id"], "entity_kind": "block"}
        obj = AiJob(
            id=str(job["id"]),
            trace_id=str(job["trace_id"]),
            workflow_run_id=None,
            job_kind="summarize",
            status="queued",
            status_reason="",
            error_message=None,
            protocol_id="proto-1",
            profile_id="default",
            capability_profile_id="cap-read",
            access_mode="analysis_only",
            safety_mode="normal",
            entity_refs=[ref],
            planned_operations=[
                {"op_type": "read", "target": ref, "description": "read the block"}
            ],
            metrics=_ZERO_METRICS,
            job_inputs=job["inputs"],
            job_outputs=None,
            is_pinned=False,
            created_at=ts,
            updated_at=ts,
        )
        with self.Session.begin() as s:
            s.add(obj)
        return obj

    def _job_update(self, job_id: str, **values: Any) -> Any:
        with self.Session.begin() as s:
            obj = s.get(AiJob, job_id)
            if obj is None:
                raise LookupError(job_id)
            for k, v in values.items():
                setattr(obj, k, v)
            obj.updated_at = now()
        return obj

    def job_running(self, job: dict[str, Any]) -> Any:
        return self._job_update(
            str(job["id"]), status="running", status_reason="started", error_message=None
        )

    def job_set_outputs(self, job: dict[str, Any]) -> None:
        self._job_update(str(job["id"]), job_outputs=job["outputs"])

    def job_completed(self, job: dict[str, Any]) -> Any:
        return self._job_update(
            str(job["id"]),
            status="completed",
            status_reason="done",
            error_message=None,
            metrics=job["metrics"],
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
        canvas, nodes, edges = graph
        return canvas.id, [n.id for n in nodes], [e.id for e in edges]
