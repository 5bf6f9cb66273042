"""Every business query, written once in portable SQL.

Placeholders are ``?``; ``{C}`` after a text expression in ORDER BY asks for
code-point order (PostgreSQL's default collation may be locale-aware, SQLite
compares bytes). Each adapter compiles this text into its dialect once, when
a database is opened (:meth:`Queries.compiled_for`).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Protocol

TRACE = "last_actor_kind, last_actor_id, last_job_id, last_workflow_id, edit_event_id"
TRACE_SET = (
    "last_actor_kind = ?, last_actor_id = ?, last_job_id = ?, last_workflow_id = ?, "
    "edit_event_id = ?"
)

WORKSPACE = f"id, name, created_at, updated_at, {TRACE}"
DOCUMENT = f"id, workspace_id, title, created_at, updated_at, {TRACE}"
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
RUN = "id, job_id, status, error_message, last_heartbeat, created_at, updated_at"
NODE_EXEC = (
    "id, workflow_run_id, node_id, node_type, status, sequence, input_payload, "
    "output_payload, error_message, started_at, finished_at, created_at, updated_at"
)

TERMINAL_STATES = "'completed', 'completed_with_issues', 'failed', 'cancelled', 'poisoned'"


def _qualified(alias: str, columns: str) -> str:
    return ", ".join(f"{alias}.{c.strip()}" for c in columns.split(","))


def placeholders(n: int) -> str:
    return ", ".join("?" * n)


class Compiler(Protocol):
    def compile(self, sql: str) -> str: ...


@dataclass(frozen=True, slots=True)
class Queries:
    ping: str = "SELECT 1"

    # workspaces
    list_workspaces: str = f"SELECT {WORKSPACE} FROM workspaces ORDER BY created_at, id{{C}}"
    get_workspace: str = f"SELECT {WORKSPACE} FROM workspaces WHERE id = ?"
    insert_workspace: str = (
        f"INSERT INTO workspaces ({WORKSPACE}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )
    delete_workspace: str = "DELETE FROM workspaces WHERE id = ?"

    # documents
    list_documents: str = (
        f"SELECT {DOCUMENT} FROM documents WHERE workspace_id = ? ORDER BY created_at, id{{C}}"
    )
    get_document: str = f"SELECT {DOCUMENT} FROM documents WHERE id = ?"
    insert_document: str = (
        f"INSERT INTO documents ({DOCUMENT}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )
    delete_document: str = "DELETE FROM documents WHERE id = ?"
    # Stamps the document as changed and, on PostgreSQL, locks its row until
    # commit, so concurrent replace_blocks calls on one document serialize.
    touch_document: str = (
        f"UPDATE documents SET updated_at = ?, {TRACE_SET} WHERE id = ? RETURNING workspace_id"
    )

    # blocks
    get_blocks: str = f"SELECT {BLOCK} FROM blocks WHERE document_id = ? ORDER BY sequence, id{{C}}"
    get_block: str = f"SELECT {BLOCK} FROM blocks WHERE id = ?"
    insert_block: str = (
        f"INSERT INTO blocks ({BLOCK}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )
    update_block: str = (
        "UPDATE blocks SET kind = COALESCE(?, kind), sequence = COALESCE(?, sequence), "
        "raw_content = COALESCE(?, raw_content), "
        "display_content = COALESCE(?, display_content), "
        "derived_content = COALESCE(?, derived_content), "
        f"updated_at = ?, {TRACE_SET} WHERE id = ? RETURNING {BLOCK}"
    )
    delete_block: str = "DELETE FROM blocks WHERE id = ?"
    delete_document_blocks: str = "DELETE FROM blocks WHERE document_id = ?"

    # the search projection (derived; see search.py)
    insert_terms_for_document: str = (
        "INSERT INTO block_terms (workspace_id, term, block_id, occurrences) "
        "SELECT workspace_id, ?, ?, ? FROM documents WHERE id = ?"
    )
    insert_terms: str = (
        "INSERT INTO block_terms (workspace_id, term, block_id, occurrences) VALUES (?, ?, ?, ?)"
    )
    delete_terms: str = "DELETE FROM block_terms WHERE block_id = ?"

    # canvases
    list_canvases: str = (
        f"SELECT {CANVAS} FROM canvases WHERE workspace_id = ? ORDER BY created_at, id{{C}}"
    )
    get_canvas: str = f"SELECT {CANVAS} FROM canvases WHERE id = ?"
    insert_canvas: str = f"INSERT INTO canvases ({CANVAS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    delete_canvas: str = "DELETE FROM canvases WHERE id = ?"
    # Stamps the canvas and locks its row (PostgreSQL) for a graph replacement.
    touch_canvas: str = (
        f"UPDATE canvases SET updated_at = ?, {TRACE_SET} WHERE id = ? RETURNING {CANVAS}"
    )
    get_nodes: str = f"SELECT {NODE} FROM canvas_nodes WHERE canvas_id = ? ORDER BY ordinal"
    get_edges: str = f"SELECT {EDGE} FROM canvas_edges WHERE canvas_id = ? ORDER BY ordinal"
    delete_edges: str = "DELETE FROM canvas_edges WHERE canvas_id = ?"
    delete_nodes: str = "DELETE FROM canvas_nodes WHERE canvas_id = ?"
    insert_node: str = (
        f"INSERT INTO canvas_nodes ({NODE}, ordinal) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )
    insert_edge: str = (
        f"INSERT INTO canvas_edges ({EDGE}, ordinal) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )

    # AI jobs
    insert_ai_job: str = (
        f"INSERT INTO ai_jobs ({AI_JOB}) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )
    get_ai_job: str = f"SELECT {AI_JOB} FROM ai_jobs WHERE id = ?"
    update_ai_job_status: str = (
        "UPDATE ai_jobs SET status = ?, status_reason = ?, error_message = ?, "
        "metrics = COALESCE(?, metrics), workflow_run_id = COALESCE(?, workflow_run_id), "
        "trace_id = COALESCE(?, trace_id), job_outputs = COALESCE(?, job_outputs), "
        f"updated_at = ? WHERE id = ? RETURNING {AI_JOB}"
    )
    set_job_outputs: str = "UPDATE ai_jobs SET job_outputs = ?, updated_at = ? WHERE id = ?"
    set_job_pinned: str = "UPDATE ai_jobs SET is_pinned = ?, updated_at = ? WHERE id = ?"
    terminal_jobs: str = (
        "SELECT id, is_pinned, created_at FROM ai_jobs "
        f"WHERE status IN ({TERMINAL_STATES}) ORDER BY created_at DESC, id{{C}} DESC"
    )
    job_sizes: str = (
        "SELECT id, status_reason, error_message, entity_refs, planned_operations, metrics, "
        "job_inputs, job_outputs FROM ai_jobs WHERE id IN ({ids})"
    )
    delete_ai_jobs: str = "DELETE FROM ai_jobs WHERE id IN ({ids})"

    # workflow runs and node executions
    insert_run: str = f"INSERT INTO workflow_runs ({RUN}) VALUES (?, ?, ?, ?, ?, ?, ?)"
    update_run_status: str = (
        "UPDATE workflow_runs SET status = ?, error_message = ?, updated_at = ? "
        f"WHERE id = ? RETURNING {RUN}"
    )
    heartbeat_run: str = "UPDATE workflow_runs SET last_heartbeat = ?, updated_at = ? WHERE id = ?"
    stalled_runs: str = (
        f"SELECT {RUN} FROM workflow_runs WHERE status = 'running' AND last_heartbeat < ? "
        "ORDER BY created_at, id{C}"
    )
    insert_node_exec: str = (
        f"INSERT INTO workflow_node_executions ({NODE_EXEC}) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )
    update_node_exec: str = (
        "UPDATE workflow_node_executions SET status = ?, "
        "output_payload = COALESCE(?, output_payload), error_message = ?, "
        "finished_at = COALESCE(?, finished_at), updated_at = ? "
        f"WHERE id = ? RETURNING {NODE_EXEC}"
    )
    list_node_execs: str = (
        f"SELECT {NODE_EXEC} FROM workflow_node_executions WHERE workflow_run_id = ? "
        "ORDER BY created_at, id{C}"
    )

    # search: {terms} is filled with one placeholder per distinct query term
    search_blocks: str = (
        f"SELECT {_qualified('b', BLOCK)} FROM blocks b JOIN ("
        " SELECT block_id, SUM(occurrences) AS hits FROM block_terms"
        " WHERE workspace_id = ? AND term IN ({terms})"
        " GROUP BY block_id HAVING COUNT(*) = ?"
        ") m ON m.block_id = b.id "
        "ORDER BY m.hits DESC, b.document_id{C}, b.sequence, b.id{C} LIMIT ?"
    )

    def compiled_for(self, compiler: Compiler) -> Queries:
        """This set of queries in ``compiler``'s dialect."""
        return Queries(**{f.name: compiler.compile(getattr(self, f.name)) for f in fields(self)})


PORTABLE = Queries()
