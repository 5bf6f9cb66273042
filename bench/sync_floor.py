"""The floor for applying change sets: the same rows, ledger and search index
written by the raw driver with the least SQL, none of the sync's decisions.

It receives the same exported batches as ``sync_databases`` and, per batch,
in one transaction: each change set's content writes as its payload says
(inserts, updates of the named columns, the subject's delete, a generation's
children deleted and re-inserted), the ``block_search`` rows of every block
written (``handshake_storage.search.index_rows``, the same tokenizer), one
ledger row per change set and the applied marks — grouped into
``executemany`` per run of identical statements (search rows and ledger
rows after the content), on PostgreSQL inside one pipeline. What it skips,
and the project does not: reading and locking the
rows decided on, the conflict rules and their log, the guard re-check,
validation of names and values, idempotence and causal-order checks.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import psycopg

from handshake_storage import search
from handshake_storage.schema import BOOLEAN, TIMESTAMP
from handshake_storage.tables import BY_NAME

from .common import sqlite_ts
from .env import sqlite_path

_CHILDREN = {
    "replace_blocks": ("documents", "document_id", ("blocks",)),
    "update_canvas_graph": ("canvases", "canvas_id", ("canvas_edges", "canvas_nodes")),
}
_LEDGER = (
    "INSERT INTO sync_changes (origin_id, scope, seq, pos, hlc, edit_event_id, actor_kind, "
    "actor_id, job_id, workflow_id, operation, subject_table, subject_id, status, written_at, "
    "payload) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_MARK = (
    "INSERT INTO sync_counters (origin_id, scope, seq, pos, hlc_wall, hlc_counter) "
    "VALUES (?, ?, ?, 0, 0, 0) ON CONFLICT (origin_id, scope) DO UPDATE SET seq = excluded.seq"
)
_SEARCH_DELETE = "DELETE FROM block_search WHERE block_id = ?"
_SEARCH_INSERT = (
    "INSERT INTO block_search (block_id, chunk, word_count, tokens, workspace_id) "
    "SELECT ?, ?, ?, ?, d.workspace_id FROM blocks b JOIN documents d ON d.id = b.document_id "
    "WHERE b.id = ?"
)


class RawApplier:
    """Applies exported batches to one database through a bare connection."""

    def __init__(self, backend: str, url: str) -> None:
        self.pg = backend == "postgresql"
        if self.pg:
            self.conn: Any = psycopg.connect(url, autocommit=True)
            self._ts = datetime.fromisoformat
        else:
            self.conn = sqlite3.connect(sqlite_path(url), isolation_level=None)
            self.conn.execute("PRAGMA journal_mode = WAL")
            self.conn.execute("PRAGMA synchronous = FULL")
            self.conn.execute("PRAGMA foreign_keys = ON")
            self._ts = lambda v: sqlite_ts(datetime.fromisoformat(v))
        self._pos = 0

    def close(self) -> None:
        self.conn.close()

    def _sql(self, text: str) -> str:
        return text.replace("?", "%s") if self.pg else text

    def _stored(self, table: str, columns: Sequence[str], values: Sequence[Any]) -> list[Any]:
        by_name = BY_NAME[table].by_name
        out = []
        for column, value in zip(columns, values, strict=True):
            family = by_name[column].codec.family
            if value is not None and family == TIMESTAMP:
                value = self._ts(value)
            elif value is not None and family == BOOLEAN:
                value = bool(value)
            out.append(value)
        return out

    def apply(self, batch: dict[str, Any]) -> int:
        statements: list[tuple[str, Sequence[Any]]] = []
        ledger, marks = [], {}
        self._search: dict[str, str] = {}  # block -> its raw content, as last written
        for c in batch["changes"]:
            statements += self._content(c)
            self._pos += 1
            payload = c["payload"]
            ledger.append(
                (
                    c["origin"],
                    c["workspace"] or "",
                    c["seq"],
                    self._pos,
                    c["hlc"],
                    c["edit_event_id"],
                    c["actor_kind"],
                    c["actor_id"],
                    c["job_id"],
                    c["workflow_id"],
                    c["operation"],
                    c["subject_table"],
                    c["subject_id"],
                    c["status"],
                    self._ts(c["written_at"]),
                    json.dumps(payload, separators=(",", ":"), ensure_ascii=False),
                )
            )
            marks[(c["origin"], c["workspace"] or "")] = c["seq"]
        # The search rows once per written block, after the content (a block
        # deleted meanwhile gets none: the insert joins the live block).
        statements += [(_SEARCH_DELETE, (key,)) for key in self._search]
        for key, raw in self._search.items():
            statements += [(_SEARCH_INSERT, (*x, key)) for x in search.index_rows(key, raw)]
        statements += [(_LEDGER, row) for row in ledger]
        statements += [(_MARK, (o, sc, seq)) for (o, sc), seq in sorted(marks.items())]
        self._run(statements)
        return len(batch["changes"])

    def _content(self, c: dict[str, Any]) -> list[tuple[str, Sequence[Any]]]:
        out: list[tuple[str, Sequence[Any]]] = []
        if c["status"] != "applied":
            return out
        payload, operation = c["payload"], c["operation"]
        puts = {g["table"]: g for g in payload.get("put", ())}
        if operation in _CHILDREN:
            parent, column, children = _CHILDREN[operation]
            for child in children:
                out.append((f"DELETE FROM {child} WHERE {column} = ?", (c["subject_id"],)))
            out += self._puts(puts[parent], update=True)
            for child in reversed(children):
                if child in puts:
                    out += self._puts(puts[child], update=False)
        elif operation.startswith(("delete_", "prune_")):
            for group in payload.get("delete", ()):
                if group["table"] in (c["subject_table"], "ai_jobs"):
                    for r in group["rows"]:
                        out.append((f"DELETE FROM {group['table']} WHERE id = ?", (r[0],)))
        else:
            for group in puts.values():
                out += self._puts(group, update=not operation.startswith("create_"))
        return out

    def _puts(self, group: dict[str, Any], update: bool) -> list[tuple[str, Sequence[Any]]]:
        table, columns = group["table"], group["columns"]
        out: list[tuple[str, Sequence[Any]]] = []
        if update:
            sql = f"UPDATE {table} SET {', '.join(f'{n} = ?' for n in columns[1:])} WHERE id = ?"
        else:
            marks = ", ".join("?" * len(columns))
            sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"
        for values in group["rows"]:
            stored = self._stored(table, columns, values)
            out.append((sql, (*stored[1:], stored[0]) if update else stored))
            if table == "blocks" and "raw_content" in columns:
                row = dict(zip(columns, values, strict=True))
                self._search[row["id"]] = row["raw_content"]
        return out

    def _run(self, statements: Iterable[tuple[str, Sequence[Any]]]) -> None:
        groups: list[tuple[str, list[Sequence[Any]]]] = []
        for sql, params in statements:
            if groups and groups[-1][0] == sql:
                groups[-1][1].append(params)
            else:
                groups.append((sql, [params]))
        if self.pg:
            with self.conn.transaction(), self.conn.pipeline():
                cur = self.conn.cursor()
                for sql, rows in groups:
                    cur.executemany(self._sql(sql), rows)
        else:
            cur = self.conn.cursor()
            cur.execute("BEGIN IMMEDIATE")
            for sql, rows in groups:
                cur.executemany(sql, rows)
            cur.execute("COMMIT")
