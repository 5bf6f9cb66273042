"""SQLAlchemy 2 Core: Table objects, statements built once with bind
parameters (so SQLAlchemy's compiled cache is hit), psycopg 3 on PostgreSQL.

Engines: the default engine (pool, pysqlite's own transaction handling on
SQLite) for multi-statement writes (``engine.begin()``) and reads on SQLite;
on PostgreSQL single-statement operations run on an ``AUTOCOMMIT`` view of
the same engine (one round trip, as the other implementations) and the
canvas snapshot on a ``REPEATABLE READ`` + read-only view. Same durability:
SQLite pragmas set on connect (WAL, synchronous=FULL, foreign keys).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, create_engine, delete, insert, select, update

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


def _trace() -> dict[str, Any]:
    return {
        "last_actor_kind": ACTOR_KIND,
        "last_actor_id": ACTOR_ID,
        "last_job_id": None,
        "last_workflow_id": None,
        "edit_event_id": new_event_id(),
    }


class CoreImpl:
    name = "sa_core"
    keeps_ledger = False  # writes no change ledger: it does less work than handshake

    def __init__(self, backend: str, url: str) -> None:
        self.backend = backend
        self.pg = backend == "postgresql"
        self.url = url
        self.engine = create_engine(t.sa_url(url))
        if self.pg:
            self.ac = self.engine.execution_options(isolation_level="AUTOCOMMIT")
            self.snap = self.engine.execution_options(
                isolation_level="REPEATABLE READ", postgresql_readonly=True
            )
        else:
            t.sqlite_pragmas(self.engine)
            self.ac = self.engine
            self.snap = self.engine
        self._build()

    def _build(self) -> None:
        b, bt, d, c = t.blocks, t.block_search, t.documents, t.canvases
        n, e, j = t.canvas_nodes, t.canvas_edges, t.ai_jobs

        def code_point(col: Any) -> Any:
            return col.collate("C") if self.pg else col

        self.s_get_blocks = (
            select(b)
            .where(b.c.document_id == bindparam("doc"))
            .order_by(b.c.sequence, code_point(b.c.id))
        )
        self.s_get_block = select(b).where(b.c.id == bindparam("bid"))
        self.s_insert_terms_for_document = insert(bt).from_select(
            ["workspace_id", "block_id", "chunk", "word_count", "tokens"],
            select(
                d.c.workspace_id,
                bindparam("block_id", type_=bt.c.block_id.type),
                bindparam("chunk", type_=bt.c.chunk.type),
                bindparam("word_count", type_=bt.c.word_count.type),
                bindparam("tokens", type_=bt.c.tokens.type),
            ).where(d.c.id == bindparam("doc")),
        )
        self.s_update_block = (
            update(b)
            .where(b.c.id == bindparam("bid"))
            .values(
                raw_content=bindparam("raw"),
                display_content=bindparam("raw"),  # the display follows the raw content
                updated_at=bindparam("ts"),
                last_actor_kind=bindparam("ak"),
                last_actor_id=bindparam("aid"),
                last_job_id=bindparam("jid"),
                last_workflow_id=bindparam("wid"),
                edit_event_id=bindparam("ev"),
            )
            .returning(*b.c)
        )
        self.s_delete_terms = delete(bt).where(bt.c.block_id == bindparam("bid"))
        trace_values = {
            "updated_at": bindparam("ts"),
            "last_actor_kind": bindparam("ak"),
            "last_actor_id": bindparam("aid"),
            "last_job_id": bindparam("jid"),
            "last_workflow_id": bindparam("wid"),
            "edit_event_id": bindparam("ev"),
        }
        self.s_touch_document = (
            update(d)
            .where(d.c.id == bindparam("doc"))
            .values(**trace_values)
            .returning(d.c.workspace_id)
        )
        self.s_delete_document_blocks = delete(b).where(b.c.document_id == bindparam("doc"))
        self.s_touch_canvas = (
            update(c).where(c.c.id == bindparam("cid")).values(**trace_values).returning(*c.c)
        )
        self.s_delete_edges = delete(e).where(e.c.canvas_id == bindparam("cid"))
        self.s_delete_nodes = delete(n).where(n.c.canvas_id == bindparam("cid"))
        self.s_get_canvas = select(c).where(c.c.id == bindparam("cid"))
        self.s_get_nodes = select(n).where(n.c.canvas_id == bindparam("cid")).order_by(n.c.ordinal)
        self.s_get_edges = select(e).where(e.c.canvas_id == bindparam("cid")).order_by(e.c.ordinal)
        self.s_job_status = (
            update(j)
            .where(j.c.id == bindparam("jid"))
            .values(
                status=bindparam("status"),
                status_reason=bindparam("reason"),
                error_message=None,
                updated_at=bindparam("ts"),
            )
            .returning(*j.c)
        )
        self.s_job_status_metrics = (
            update(j)
            .where(j.c.id == bindparam("jid"))
            .values(
                status=bindparam("status"),
                status_reason=bindparam("reason"),
                error_message=None,
                metrics=bindparam("metrics", type_=j.c.metrics.type),
                updated_at=bindparam("ts"),
            )
            .returning(*j.c)
        )
        self.s_job_outputs = (
            update(j)
            .where(j.c.id == bindparam("jid"))
            .values(
                job_outputs=bindparam("outputs", type_=j.c.job_outputs.type),
                updated_at=bindparam("ts"),
            )
        )

    def close(self) -> None:
        self.engine.dispose()

    def durability(self) -> dict[str, Any]:
        with self.engine.connect() as conn:
            if self.pg:
                return {
                    "synchronous_commit": conn.exec_driver_sql("SHOW synchronous_commit").scalar()
                }
            return {
                "journal_mode": conn.exec_driver_sql("PRAGMA journal_mode").scalar(),
                "synchronous": conn.exec_driver_sql("PRAGMA synchronous").scalar(),
            }

    @staticmethod
    def _trace_params() -> dict[str, Any]:
        return {
            "ts": now(),
            "ak": ACTOR_KIND,
            "aid": ACTOR_ID,
            "jid": None,
            "wid": None,
            "ev": new_event_id(),
        }

    # -- setup -------------------------------------------------------------------

    def create_workspace(self, ws_id: str, name: str) -> None:
        ts = now()
        with self.engine.begin() as conn:
            conn.execute(
                insert(t.workspaces),
                {"id": ws_id, "name": name, "created_at": ts, "updated_at": ts, **_trace()},
            )

    def create_document(self, doc_id: str, ws_id: str, title: str) -> None:
        ts = now()
        row = {"id": doc_id, "workspace_id": ws_id, "title": title}
        with self.engine.begin() as conn:
            conn.execute(
                insert(t.documents), {**row, "created_at": ts, "updated_at": ts, **_trace()}
            )

    def create_canvas(self, canvas_id: str, ws_id: str, title: str) -> None:
        ts = now()
        row = {"id": canvas_id, "workspace_id": ws_id, "title": title}
        with self.engine.begin() as conn:
            conn.execute(
                insert(t.canvases), {**row, "created_at": ts, "updated_at": ts, **_trace()}
            )

    # -- blocks ---------------------------------------------------------------------

    def _block_row(
        self,
        doc_id: str,
        block_id: str,
        kind: str,
        seq: int,
        raw: str,
        ts: Any,
        trace: dict[str, Any],
    ) -> dict[str, Any]:
        return {
            "id": block_id,
            "document_id": doc_id,
            "kind": kind,
            "sequence": seq,
            "raw_content": raw,
            "display_content": raw,
            "derived_content": {},
            "created_at": ts,
            "updated_at": ts,
            **trace,
        }

    def create_block(self, doc_id: str, block_id: str, kind: str, seq: int, raw: str) -> Any:
        row = self._block_row(doc_id, block_id, kind, seq, raw, now(), _trace())
        terms = [_search_row(r, doc=doc_id) for r in index_rows(block_id, raw)]
        with self.engine.begin() as conn:
            conn.execute(insert(t.blocks), row)
            if terms:
                conn.execute(self.s_insert_terms_for_document, terms)
        return row

    def get_blocks(self, doc_id: str) -> Any:
        with self.ac.connect() as conn:
            return conn.execute(self.s_get_blocks, {"doc": doc_id}).all()

    def get_block(self, block_id: str) -> Any:
        with self.ac.connect() as conn:
            return conn.execute(self.s_get_block, {"bid": block_id}).one_or_none()

    def update_block(self, block_id: str, raw: str) -> Any:
        with self.engine.begin() as conn:
            row = conn.execute(
                self.s_update_block, {"bid": block_id, "raw": raw, **self._trace_params()}
            ).one()
            conn.execute(self.s_delete_terms, {"bid": block_id})
            terms = [_search_row(r, doc=row.document_id) for r in index_rows(block_id, raw)]
            if terms:
                conn.execute(self.s_insert_terms_for_document, terms)
        return row

    def replace_blocks(self, doc_id: str, blocks: list[tuple[str, str, int, str]]) -> Any:
        params = self._trace_params()
        ts = params["ts"]
        trace = {
            "last_actor_kind": ACTOR_KIND,
            "last_actor_id": ACTOR_ID,
            "last_job_id": None,
            "last_workflow_id": None,
            "edit_event_id": params["ev"],
        }
        rows = [self._block_row(doc_id, i, k, s, r, ts, trace) for i, k, s, r in blocks]
        with self.engine.begin() as conn:
            ws_id = conn.execute(self.s_touch_document, {"doc": doc_id, **params}).scalar_one()
            conn.execute(self.s_delete_document_blocks, {"doc": doc_id})
            if rows:
                conn.execute(insert(t.blocks), rows)
                terms = [
                    _search_row(x, workspace_id=ws_id)
                    for i, _k, _s, r in blocks
                    for x in index_rows(i, r)
                ]
                if terms:
                    conn.execute(insert(t.block_search), terms)
        return rows

    def search_blocks(self, ws_id: str, query: str, limit: int) -> Any:
        # The engine's full-text match has no Core construct: the same SQL text.
        with self.ac.connect() as conn:
            rows = conn.exec_driver_sql(*search_statement(self.url, ws_id, query, limit)).all()
        return ranked(rows, limit)

    # -- canvases --------------------------------------------------------------------

    def update_canvas_graph(
        self,
        canvas_id: str,
        nodes: list[tuple[str, str, float, float, dict[str, Any]]],
        edges: list[tuple[str, str, str, str]],
    ) -> Any:
        params = self._trace_params()
        ts = params["ts"]
        trace = {
            "last_actor_kind": ACTOR_KIND,
            "last_actor_id": ACTOR_ID,
            "last_job_id": None,
            "last_workflow_id": None,
            "edit_event_id": params["ev"],
            "created_at": ts,
            "updated_at": ts,
            "canvas_id": canvas_id,
        }
        node_rows = [
            {"ordinal": o, "id": i, "kind": k, "position_x": x, "position_y": y, "data": d, **trace}
            for o, (i, k, x, y, d) in enumerate(nodes)
        ]
        edge_rows = [
            {"ordinal": o, "id": i, "from_node_id": f, "to_node_id": to, "kind": k, **trace}
            for o, (i, f, to, k) in enumerate(edges)
        ]
        with self.engine.begin() as conn:
            canvas = conn.execute(self.s_touch_canvas, {"cid": canvas_id, **params}).one()
            conn.execute(self.s_delete_edges, {"cid": canvas_id})
            conn.execute(self.s_delete_nodes, {"cid": canvas_id})
            if node_rows:
                conn.execute(insert(t.canvas_nodes), node_rows)
            if edge_rows:
                conn.execute(insert(t.canvas_edges), edge_rows)
        return canvas, node_rows, edge_rows

    def get_canvas_with_graph(self, canvas_id: str) -> Any:
        p = {"cid": canvas_id}
        with self.snap.connect() as conn:
            if not self.pg:
                conn.exec_driver_sql("BEGIN")
            canvas = conn.execute(self.s_get_canvas, p).one()
            nodes = conn.execute(self.s_get_nodes, p).all()
            edges = conn.execute(self.s_get_edges, p).all()
        return canvas, nodes, edges

    # -- AI jobs -------------------------------------------------------------------

    def job_create(self, job: dict[str, Any]) -> Any:
        ts = now()
        ref = {"entity_id": job["entity_id"], "entity_kind": "block"}
        row = {
            "id": str(job["id"]),
            "trace_id": str(job["trace_id"]),
            "workflow_run_id": None,
            "job_kind": "summarize",
            "status": "queued",
            "status_reason": "",
            "error_message": None,
            "protocol_id": "proto-1",
            "profile_id": "default",
            "capability_profile_id": "cap-read",
            "access_mode": "analysis_only",
            "safety_mode": "normal",
            "entity_refs": [ref],
            "planned_operations": [
                {"op_type": "read", "target": ref, "description": "read the block"}
            ],
            "metrics": _ZERO_METRICS,
            "job_inputs": job["inputs"],
            "job_outputs": None,
            "is_pinned": False,
            "created_at": ts,
            "updated_at": ts,
        }
        with self.ac.begin() as conn:
            conn.execute(insert(t.ai_jobs), row)
        return row

    def job_running(self, job: dict[str, Any]) -> Any:
        with self.ac.begin() as conn:
            return conn.execute(
                self.s_job_status,
                {"jid": str(job["id"]), "status": "running", "reason": "started", "ts": now()},
            ).one()

    def job_set_outputs(self, job: dict[str, Any]) -> None:
        with self.ac.begin() as conn:
            conn.execute(
                self.s_job_outputs, {"jid": str(job["id"]), "outputs": job["outputs"], "ts": now()}
            )

    def job_completed(self, job: dict[str, Any]) -> Any:
        with self.ac.begin() as conn:
            return conn.execute(
                self.s_job_status_metrics,
                {
                    "jid": str(job["id"]),
                    "status": "completed",
                    "reason": "done",
                    "metrics": job["metrics"],
                    "ts": now(),
                },
            ).one()

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


def _search_row(row: tuple[Any, ...], **extra: Any) -> dict[str, Any]:
    return {**dict(zip(("block_id", "chunk", "word_count", "tokens"), row, strict=True)), **extra}
