"""The floor: the stdlib ``sqlite3`` / ``psycopg`` driver executing the
minimal SQL for each operation, on one connection, without validation,
guard, pooling or result objects (rows come back as the driver's tuples).

Same durability as the others: SQLite WAL + synchronous=FULL (+ foreign
keys on, as every implementation); PostgreSQL with the server's default
``synchronous_commit=on``. Single-statement operations run in autocommit;
multi-statement ones in one explicit transaction. Batch inserts use
``executemany`` on SQLite and COPY on PostgreSQL. Search terms come from
``handshake_storage.search`` (the same tokenizer, not a shortcut).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg

from .common import (
    ACTOR_ID,
    ACTOR_KIND,
    BLOCK_COLS,
    GLOBAL_SCOPE,
    METRIC_FIELDS,
    SEARCH_COLS,
    LedgerFloor,
    dumps,
    index_rows,
    new_event_id,
    now,
    put,
    ranked,
    removed,
    search_statement,
    sqlite_ts,
)
from .env import sqlite_path

TRACE = "last_actor_kind, last_actor_id, last_job_id, last_workflow_id, edit_event_id"
TRACE_SET = (
    "last_actor_kind = ?, last_actor_id = ?, last_job_id = ?, last_workflow_id = ?, "
    "edit_event_id = ?"
)
BLOCK = (
    "id, document_id, kind, sequence, raw_content, display_content, derived_content, "
    f"created_at, updated_at, {TRACE}"
)
CANVAS = f"id, workspace_id, title, created_at, updated_at, {TRACE}"
NODE = f"id, canvas_id, kind, position_x, position_y, data, created_at, updated_at, {TRACE}"
EDGE = f"id, canvas_id, from_node_id, to_node_id, kind, created_at, updated_at, {TRACE}"
AI_JOB = (
    "id, trace_id, workflow_run_id, job_kind, status, status_reason, error_message, "
    "protocol_id, profile_id, capability_profile_id, access_mode, safety_mode, "
    "entity_refs, planned_operations, metrics, job_inputs, job_outputs, is_pinned, "
    "created_at, updated_at"
)
NODE_COLS = ("ordinal", *NODE.split(", "))
WORKSPACE_COLS = ("id", "name", "created_at", "updated_at", *TRACE.split(", "))
DOCUMENT_COLS = ("id", "workspace_id", "title", "created_at", "updated_at", *TRACE.split(", "))
CANVAS_COLS = tuple(CANVAS.split(", "))
JOB_COLS = tuple(AI_JOB.split(", "))
TOUCH_COLS = ("id", "updated_at", *TRACE.split(", "))
BLOCK_AT = {c: i for i, c in enumerate(BLOCK.split(", "))}
JOB_AT = {c: i for i, c in enumerate(JOB_COLS)}
EDGE_COLS = ("ordinal", *EDGE.split(", "))

_ZERO_METRICS = dumps(dict.fromkeys(METRIC_FIELDS, 0))


def _q(n: int) -> str:
    return ", ".join("?" * n)


class _SQL:
    """The statements, with ``?`` placeholders and ``{C}`` for code-point order."""

    def __init__(self, pg: bool) -> None:
        c = ' COLLATE "C"' if pg else ""

        def fix(sql: str) -> str:
            sql = sql.replace("{C}", c)
            return sql.replace("?", "%s") if pg else sql

        self.insert_workspace = fix(
            f"INSERT INTO workspaces (id, name, created_at, updated_at, {TRACE}) VALUES ({_q(9)})"
        )
        # ... and the version of the workspace they go into (the ledger's "base")
        based = " RETURNING (SELECT w.edit_event_id FROM workspaces w WHERE w.id = {}.workspace_id)"
        self.insert_document = fix(
            f"INSERT INTO documents (id, workspace_id, title, created_at, updated_at, {TRACE}) "
            f"VALUES ({_q(10)})" + based.format("documents")
        )
        self.insert_canvas = fix(
            f"INSERT INTO canvases ({CANVAS}) VALUES ({_q(10)})" + based.format("canvases")
        )
        self.insert_block = fix(f"INSERT INTO blocks ({BLOCK}) VALUES ({_q(14)})")
        self.insert_terms_for_document = fix(
            "INSERT INTO block_search (block_id, chunk, word_count, tokens, workspace_id) "
            "SELECT ?, ?, ?, ?, workspace_id FROM documents WHERE id = ?"
        )
        self.insert_terms = fix(
            "INSERT INTO block_search (block_id, chunk, word_count, tokens, workspace_id) "
            f"VALUES ({_q(5)})"
        )
        self.get_blocks = fix(
            f"SELECT {BLOCK} FROM blocks WHERE document_id = ? ORDER BY sequence, id{{C}}"
        )
        self.get_block = fix(f"SELECT {BLOCK} FROM blocks WHERE id = ?")
        self.update_block = fix(
            f"UPDATE blocks SET raw_content = ?, display_content = ?, updated_at = ?, {TRACE_SET} "
            f"WHERE id = ? RETURNING {BLOCK}"
        )
        self.delete_terms = fix("DELETE FROM block_search WHERE block_id = ?")
        self.touch_document = fix(
            f"UPDATE documents SET updated_at = ?, {TRACE_SET} WHERE id = ? RETURNING workspace_id"
        )
        self.delete_document_blocks = fix("DELETE FROM blocks WHERE document_id = ?")
        self.touch_canvas = fix(
            f"UPDATE canvases SET updated_at = ?, {TRACE_SET} WHERE id = ? RETURNING {CANVAS}"
        )
        self.delete_edges = fix("DELETE FROM canvas_edges WHERE canvas_id = ?")
        self.delete_nodes = fix("DELETE FROM canvas_nodes WHERE canvas_id = ?")
        self.insert_node = fix(f"INSERT INTO canvas_nodes (ordinal, {NODE}) VALUES ({_q(14)})")
        self.insert_edge = fix(f"INSERT INTO canvas_edges (ordinal, {EDGE}) VALUES ({_q(13)})")
        self.get_canvas = fix(f"SELECT {CANVAS} FROM canvases WHERE id = ?")
        self.get_nodes = fix(
            f"SELECT {NODE} FROM canvas_nodes WHERE canvas_id = ? ORDER BY ordinal"
        )
        self.get_edges = fix(
            f"SELECT {EDGE} FROM canvas_edges WHERE canvas_id = ? ORDER BY ordinal"
        )
        self.insert_job = fix(f"INSERT INTO ai_jobs ({AI_JOB}) VALUES ({_q(20)})")
        self.job_status = fix(
            "UPDATE ai_jobs SET status = ?, status_reason = ?, error_message = NULL, "
            f"updated_at = ? WHERE id = ? RETURNING {AI_JOB}"
        )
        self.job_status_metrics = fix(
            "UPDATE ai_jobs SET status = ?, status_reason = ?, error_message = NULL, "
            f"metrics = ?, updated_at = ? WHERE id = ? RETURNING {AI_JOB}"
        )
        self.job_outputs = fix(
            f"UPDATE ai_jobs SET job_outputs = ?, updated_at = ? WHERE id = ? RETURNING {AI_JOB}"
        )


def _block_row(doc_id: str, block: tuple[str, str, int, str], ts: Any, ev: str) -> tuple:
    i, k, s, r = block
    return (i, doc_id, k, s, r, r, "{}", ts, ts, ACTOR_KIND, ACTOR_ID, None, None, ev)


class RawImpl:
    name = "raw"
    keeps_ledger = True  # writes the change ledger in each write's transaction

    def __init__(self, backend: str, url: str) -> None:
        self.backend = backend
        self.pg = backend == "postgresql"
        self.sql = _SQL(self.pg)
        self.url = url
        #: The block_search rows a write maintains (none for a floor that keeps
        #: only a native index on blocks: bench/search_bench.py).
        self.index_rows = index_rows
        if self.pg:
            self.conn: Any = psycopg.connect(url, autocommit=True)
            self.cur = self.conn.cursor()
            self.enc = lambda v: v
        else:
            conn = sqlite3.connect(
                sqlite_path(url),
                isolation_level=None,
                check_same_thread=False,
                cached_statements=512,
            )
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA journal_mode = WAL").fetchone()
            self.conn = conn
            self.cur = conn.cursor()
            self.enc = sqlite_ts
        #: The change ledger, written in each write's transaction like the library's.
        self.ledger = LedgerFloor(url, self.cur.execute)

    def close(self) -> None:
        self.conn.close()

    def durability(self) -> dict[str, Any]:
        if self.pg:
            return {"synchronous_commit": self.cur.execute("SHOW synchronous_commit").fetchone()[0]}
        return {
            "journal_mode": self.cur.execute("PRAGMA journal_mode").fetchone()[0],
            "synchronous": self.cur.execute("PRAGMA synchronous").fetchone()[0],
        }

    def _trace(self) -> tuple[Any, ...]:
        return (ACTOR_KIND, ACTOR_ID, None, None, new_event_id())

    @contextmanager
    def _tx(self) -> Iterator[Any]:
        cur = self.cur
        cur.execute("BEGIN")
        try:
            yield cur
        except BaseException:
            cur.execute("ROLLBACK")
            raise
        cur.execute("COMMIT")

    def _copy(self, table: str, columns: tuple[str, ...], rows: Any) -> None:
        with self.cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)

    # -- setup -------------------------------------------------------------------

    def _create(self, operation: str, table: str, columns: Any, sql: str, row: Any, scope: str):
        with self._tx() as cur:
            got = cur.execute(sql, row)
            payload: dict[str, Any] = {"put": [put(table, columns, [row])]}
            if table in ("documents", "canvases"):  # the workspace's version it goes into
                payload["base"] = str(got.fetchone()[0])
            self.ledger.append(operation, scope, (table, row[0]), payload, row[-1])

    def create_workspace(self, ws_id: str, name: str) -> None:
        ts = self.enc(now())
        row = (ws_id, name, ts, ts, *self._trace())
        sql = self.sql.insert_workspace
        self._create("create_workspace", "workspaces", WORKSPACE_COLS, sql, row, ws_id)

    def create_document(self, doc_id: str, ws_id: str, title: str) -> None:
        ts = self.enc(now())
        row = (doc_id, ws_id, title, ts, ts, *self._trace())
        sql = self.sql.insert_document
        self._create("create_document", "documents", DOCUMENT_COLS, sql, row, ws_id)

    def create_canvas(self, canvas_id: str, ws_id: str, title: str) -> None:
        ts = self.enc(now())
        row = (canvas_id, ws_id, title, ts, ts, *self._trace())
        sql = self.sql.insert_canvas
        self._create("create_canvas", "canvases", CANVAS_COLS, sql, row, ws_id)

    # -- blocks ---------------------------------------------------------------------

    def create_block(self, doc_id: str, block_id: str, kind: str, seq: int, raw: str) -> Any:
        ts = self.enc(now())
        row = (block_id, doc_id, kind, seq, raw, raw, "{}", ts, ts, *self._trace())
        cur, sql = self.cur, self.sql
        cur.execute("BEGIN")
        try:
            cur.execute(sql.insert_block, row)
            terms = [(*r, doc_id) for r in self.index_rows(block_id, raw)]
            if terms:
                cur.executemany(sql.insert_terms_for_document, terms)
            scope, base = cur.execute(self.ledger.document_seen, (doc_id,)).fetchone()
            payload = {"put": [put("blocks", BLOCK_COLS, [row])], "base": base}
            self.ledger.append("create_block", scope, ("blocks", block_id), payload, row[-1])
        except BaseException:
            cur.execute("ROLLBACK")
            raise
        cur.execute("COMMIT")
        return row

    def get_blocks(self, doc_id: str) -> Any:
        return self.cur.execute(self.sql.get_blocks, (doc_id,)).fetchall()

    def get_block(self, block_id: str) -> Any:
        return self.cur.execute(self.sql.get_block, (block_id,)).fetchone()

    def update_block(self, block_id: str, raw: str) -> Any:
        cur, sql = self.cur, self.sql
        trace = self._trace()
        cur.execute("BEGIN")
        try:
            seen = cur.execute(self.ledger.block_seen, (block_id,)).fetchone()
            row = cur.execute(
                sql.update_block, (raw, raw, self.enc(now()), *trace, block_id)
            ).fetchone()
            cur.execute(sql.delete_terms, (block_id,))
            terms = [(*r, row[1]) for r in self.index_rows(block_id, raw)]
            if terms:
                cur.executemany(sql.insert_terms_for_document, terms)
            written = ("id", "raw_content", "display_content", *TOUCH_COLS[1:])
            image = put("blocks", written, [[row[BLOCK_AT[c]] for c in written]])
            payload = {"put": [image], "base": seen[3], "prev": seen[1]}
            self.ledger.append("update_block", seen[2], ("blocks", block_id), payload, trace[-1])
        except BaseException:
            cur.execute("ROLLBACK")
            raise
        cur.execute("COMMIT")
        return row

    def replace_blocks(self, doc_id: str, blocks: list[tuple[str, str, int, str]]) -> Any:
        cur, sql = self.cur, self.sql
        ts = self.enc(now())
        trace = self._trace()
        ev = trace[-1]
        cur.execute("BEGIN")
        try:
            base = cur.execute(self.ledger.document_generation, (doc_id,)).fetchone()[0]
            ws_id = cur.execute(sql.touch_document, (ts, *trace, doc_id)).fetchone()[0]
            gone = cur.execute(self.ledger.delete_document_blocks, (doc_id,)).fetchall()
            rows = [_block_row(doc_id, b, ts, ev) for b in blocks]
            terms = [(*r, ws_id) for b in blocks for r in self.index_rows(b[0], b[3])]
            if self.pg:
                self._copy("blocks", BLOCK_COLS, rows)
                if terms:
                    self._copy("block_search", SEARCH_COLS, terms)
            else:
                cur.executemany(sql.insert_block, rows)
                if terms:
                    cur.executemany(sql.insert_terms, terms)
            payload = {
                "put": [
                    put("documents", TOUCH_COLS, [(doc_id, ts, *trace)]),
                    put("blocks", BLOCK_COLS, rows),
                ],
                "replaced": [removed("blocks", sorted(gone))],
                "base": str(base),
            }
            self.ledger.append("replace_blocks", ws_id, ("documents", doc_id), payload, ev)
        except BaseException:
            cur.execute("ROLLBACK")
            raise
        cur.execute("COMMIT")
        return rows

    def search_blocks(self, ws_id: str, query: str, limit: int) -> Any:
        rows = self.cur.execute(*search_statement(self.url, ws_id, query, limit)).fetchall()
        return ranked(rows, limit)

    # -- canvases --------------------------------------------------------------------

    def update_canvas_graph(
        self,
        canvas_id: str,
        nodes: list[tuple[str, str, float, float, dict[str, Any]]],
        edges: list[tuple[str, str, str, str]],
    ) -> Any:
        cur, sql = self.cur, self.sql
        ts = self.enc(now())
        trace = self._trace()
        cur.execute("BEGIN")
        try:
            base = cur.execute(self.ledger.canvas_generation, (canvas_id,)).fetchone()[0]
            canvas = cur.execute(sql.touch_canvas, (ts, *trace, canvas_id)).fetchone()
            gone_edges = cur.execute(self.ledger.delete_edges, (canvas_id,)).fetchall()
            gone_nodes = cur.execute(self.ledger.delete_nodes, (canvas_id,)).fetchall()
            node_rows = [
                (o, i, canvas_id, k, x, y, dumps(d), ts, ts, *trace)
                for o, (i, k, x, y, d) in enumerate(nodes)
            ]
            edge_rows = [
                (o, i, canvas_id, f, t, k, ts, ts, *trace) for o, (i, f, t, k) in enumerate(edges)
            ]
            if self.pg:
                self._copy("canvas_nodes", NODE_COLS, node_rows)
                self._copy("canvas_edges", EDGE_COLS, edge_rows)
            else:
                cur.executemany(sql.insert_node, node_rows)
                cur.executemany(sql.insert_edge, edge_rows)
            payload = {
                "put": [
                    put("canvases", TOUCH_COLS, [(canvas_id, ts, *trace)]),
                    put("canvas_nodes", NODE_COLS, node_rows),
                    put("canvas_edges", EDGE_COLS, edge_rows),
                ],
                "replaced": [
                    removed("canvas_nodes", sorted(gone_nodes)),
                    removed("canvas_edges", sorted(gone_edges)),
                ],
                "base": str(base),
            }
            subject = ("canvases", canvas_id)
            self.ledger.append("update_canvas_graph", canvas[1], subject, payload, trace[-1])
        except BaseException:
            cur.execute("ROLLBACK")
            raise
        cur.execute("COMMIT")
        return canvas, node_rows, edge_rows

    def get_canvas_with_graph(self, canvas_id: str) -> Any:
        cur, sql = self.cur, self.sql
        cur.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY" if self.pg else "BEGIN")
        try:
            canvas = cur.execute(sql.get_canvas, (canvas_id,)).fetchone()
            nodes = cur.execute(sql.get_nodes, (canvas_id,)).fetchall()
            edges = cur.execute(sql.get_edges, (canvas_id,)).fetchall()
        finally:
            cur.execute("COMMIT")
        return canvas, nodes, edges

    # -- AI jobs -------------------------------------------------------------------

    def job_create(self, job: dict[str, Any]) -> Any:
        ts = self.enc(now())
        ref = {"entity_id": job["entity_id"], "entity_kind": "block"}
        row = (
            str(job["id"]),
            str(job["trace_id"]),
            None,
            "summarize",
            "queued",
            "",
            None,
            "proto-1",
            "default",
            "cap-read",
            "analysis_only",
            "normal",
            dumps([ref]),
            dumps([{"op_type": "read", "target": ref, "description": "read the block"}]),
            _ZERO_METRICS,
            dumps(job["inputs"]),
            None,
            False,
            ts,
            ts,
        )
        with self._tx() as cur:
            cur.execute(self.sql.insert_job, row)
            payload = {"put": [put("ai_jobs", JOB_COLS, [row])]}
            self.ledger.append("create_ai_job", GLOBAL_SCOPE, ("ai_jobs", row[0]), payload)
        return row

    def _job_update(self, operation: str, sql: str, params: Any, columns: Any) -> Any:
        """One job update and its change set (the columns it wrote, the version
        it overwrote)."""
        key = params[-1]
        with self._tx() as cur:
            prev = self.ledger.latest("ai_jobs", key)
            row = cur.execute(sql, params).fetchone()
            written = ("id", *columns, "updated_at")
            image = put("ai_jobs", written, [[row[JOB_AT[c]] for c in written]])
            payload = {"put": [image], "prev": prev}
            self.ledger.append(operation, GLOBAL_SCOPE, ("ai_jobs", key), payload)
        return row

    def job_running(self, job: dict[str, Any]) -> Any:
        params = ("running", "started", self.enc(now()), str(job["id"]))
        return self._job_update(
            "update_ai_job_status",
            self.sql.job_status,
            params,
            ("status", "status_reason", "error_message"),
        )

    def job_set_outputs(self, job: dict[str, Any]) -> None:
        params = (dumps(job["outputs"]), self.enc(now()), str(job["id"]))
        self._job_update("set_job_outputs", self.sql.job_outputs, params, ("job_outputs",))

    def job_completed(self, job: dict[str, Any]) -> Any:
        params = ("completed", "done", dumps(job["metrics"]), self.enc(now()), str(job["id"]))
        return self._job_update(
            "update_ai_job_status",
            self.sql.job_status_metrics,
            params,
            ("status", "status_reason", "error_message", "metrics"),
        )

    # -- result inspection (not timed) -----------------------------------------

    @staticmethod
    def block_ids(blocks: Any) -> list[str]:
        return [b[0] for b in blocks]

    @staticmethod
    def block_id(block: Any) -> str:
        return block[0]

    @staticmethod
    def graph_ids(graph: Any) -> tuple[str, list[str], list[str]]:
        canvas, nodes, edges = graph
        return canvas[0], [n[0] for n in nodes], [e[0] for e in edges]
