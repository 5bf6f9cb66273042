"""Every business query, written once in portable SQL.

Column lists and INSERT statements come from the table descriptions
(``tables.py``); what is written here is the logic of each statement.

Placeholders are ``?``; ``{C}`` after a text expression in ORDER BY asks for
code-point order (PostgreSQL's default collation may be locale-aware, SQLite
compares bytes). Each adapter compiles this text into its dialect once, when
a database is opened (:meth:`Queries.compiled_for`).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Protocol

from .tables import (
    AI_JOBS,
    BLOCKS,
    CANVAS_EDGES,
    CANVAS_NODES,
    CANVASES,
    DOCUMENTS,
    WORKFLOW_NODE_EXECUTIONS,
    WORKFLOW_RUNS,
    WORKSPACES,
)

TRACE = ", ".join(WORKSPACES.trace_names)
TRACE_SET = ", ".join(f"{name} = ?" for name in WORKSPACES.trace_names)

WORKSPACE = WORKSPACES.select_list
DOCUMENT = DOCUMENTS.select_list
BLOCK = BLOCKS.select_list
CANVAS = CANVASES.select_list
NODE = CANVAS_NODES.select_list
EDGE = CANVAS_EDGES.select_list
AI_JOB = AI_JOBS.select_list
RUN = WORKFLOW_RUNS.select_list
NODE_EXEC = WORKFLOW_NODE_EXECUTIONS.select_list

TERMINAL_STATES = "'completed', 'completed_with_issues', 'failed', 'cancelled', 'poisoned'"


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
    insert_workspace: str = WORKSPACES.insert_sql
    delete_workspace: str = "DELETE FROM workspaces WHERE id = ?"

    # documents
    list_documents: str = (
        f"SELECT {DOCUMENT} FROM documents WHERE workspace_id = ? ORDER BY created_at, id{{C}}"
    )
    get_document: str = f"SELECT {DOCUMENT} FROM documents WHERE id = ?"
    insert_document: str = DOCUMENTS.insert_sql
    delete_document: str = "DELETE FROM documents WHERE id = ?"
    # Stamps the document as changed and, on PostgreSQL, locks its row until
    # commit, so concurrent replace_blocks calls on one document serialize.
    touch_document: str = (
        f"UPDATE documents SET updated_at = ?, {TRACE_SET} WHERE id = ? RETURNING workspace_id"
    )

    # blocks
    get_blocks: str = f"SELECT {BLOCK} FROM blocks WHERE document_id = ? ORDER BY sequence, id{{C}}"
    get_block: str = f"SELECT {BLOCK} FROM blocks WHERE id = ?"
    insert_block: str = BLOCKS.insert_sql
    update_block: str = (
        "UPDATE blocks SET kind = COALESCE(?, kind), sequence = COALESCE(?, sequence), "
        "raw_content = COALESCE(?, raw_content), "
        "display_content = COALESCE(?, display_content), "
        "derived_content = COALESCE(?, derived_content), "
        f"updated_at = ?, {TRACE_SET} WHERE id = ? RETURNING {BLOCK}"
    )
    delete_block: str = "DELETE FROM blocks WHERE id = ?"
    # Locks the block's document, as replace_blocks does first: after it, the
    # block's row is what every later statement of the transaction sees.
    lock_block_document: str = (
        "SELECT id FROM documents WHERE id = (SELECT document_id FROM blocks WHERE id = ?)"
        "{for_update}"
    )
    delete_document_blocks: str = "DELETE FROM blocks WHERE document_id = ?"

    # the search rows (derived; see search.py)
    insert_search_rows_for_document: str = (
        "INSERT INTO block_search (block_id, chunk, word_count, tokens, workspace_id) "
        "SELECT ?, ?, ?, ?, workspace_id FROM documents WHERE id = ?"
    )
    insert_search_row: str = (
        "INSERT INTO block_search (block_id, chunk, word_count, tokens, workspace_id) "
        "VALUES (?, ?, ?, ?, ?)"
    )
    delete_search_rows: str = "DELETE FROM block_search WHERE block_id = ?"

    # canvases
    list_canvases: str = (
        f"SELECT {CANVAS} FROM canvases WHERE workspace_id = ? ORDER BY created_at, id{{C}}"
    )
    get_canvas: str = f"SELECT {CANVAS} FROM canvases WHERE id = ?"
    insert_canvas: str = CANVASES.insert_sql
    delete_canvas: str = "DELETE FROM canvases WHERE id = ?"
    # Stamps the canvas and locks its row (PostgreSQL) for a graph replacement.
    touch_canvas: str = (
        f"UPDATE canvases SET updated_at = ?, {TRACE_SET} WHERE id = ? RETURNING {CANVAS}"
    )
    get_nodes: str = f"SELECT {NODE} FROM canvas_nodes WHERE canvas_id = ? ORDER BY ordinal"
    get_edges: str = f"SELECT {EDGE} FROM canvas_edges WHERE canvas_id = ? ORDER BY ordinal"
    delete_edges: str = "DELETE FROM canvas_edges WHERE canvas_id = ?"
    delete_nodes: str = "DELETE FROM canvas_nodes WHERE canvas_id = ?"
    insert_node: str = CANVAS_NODES.insert_sql
    insert_edge: str = CANVAS_EDGES.insert_sql

    # AI jobs
    insert_ai_job: str = AI_JOBS.insert_sql
    get_ai_job: str = f"SELECT {AI_JOB} FROM ai_jobs WHERE id = ?"
    update_ai_job_status: str = (
        "UPDATE ai_jobs SET status = ?, status_reason = ?, error_message = ?, "
        "metrics = COALESCE(?, metrics), workflow_run_id = COALESCE(?, workflow_run_id), "
        "trace_id = COALESCE(?, trace_id), job_outputs = COALESCE(?, job_outputs), "
        f"updated_at = ? WHERE id = ? RETURNING {AI_JOB}"
    )
    set_job_outputs: str = (
        f"UPDATE ai_jobs SET job_outputs = ?, updated_at = ? WHERE id = ? RETURNING {AI_JOB}"
    )
    set_job_pinned: str = (
        f"UPDATE ai_jobs SET is_pinned = ?, updated_at = ? WHERE id = ? RETURNING {AI_JOB}"
    )
    terminal_jobs: str = (
        "SELECT id, is_pinned, created_at FROM ai_jobs "
        f"WHERE status IN ({TERMINAL_STATES}) ORDER BY created_at DESC, id{{C}} DESC"
    )
    job_sizes: str = (
        "SELECT id, status_reason, error_message, entity_refs, planned_operations, metrics, "
        "job_inputs, job_outputs FROM ai_jobs WHERE id IN ({ids})"
    )
    # prune_ai_jobs locks what it decides on, and re-checks it when deleting
    terminal_jobs_for_update: str = (
        "SELECT id, is_pinned, created_at FROM ai_jobs "
        f"WHERE status IN ({TERMINAL_STATES}) ORDER BY created_at DESC, id{{C}} DESC{{for_update}}"
    )
    delete_ai_jobs: str = (
        "DELETE FROM ai_jobs WHERE id IN ({ids}) "
        f"AND is_pinned = FALSE AND status IN ({TERMINAL_STATES})"
    )

    # workflow runs and node executions
    insert_run: str = WORKFLOW_RUNS.insert_sql
    update_run_status: str = (
        "UPDATE workflow_runs SET status = ?, error_message = ?, updated_at = ? "
        f"WHERE id = ? RETURNING {RUN}"
    )
    heartbeat_run: str = (
        f"UPDATE workflow_runs SET last_heartbeat = ?, updated_at = ? WHERE id = ? RETURNING {RUN}"
    )
    stalled_runs: str = (
        f"SELECT {RUN} FROM workflow_runs WHERE status = 'running' AND last_heartbeat < ? "
        "ORDER BY created_at, id{C}"
    )
    insert_node_exec: str = WORKFLOW_NODE_EXECUTIONS.insert_sql
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

    # search (search.py), one statement: the best single-row blocks, ranked by
    # the engine, and every long block (several rows of distinct words) that
    # contains a query word, score NULL, which search.py matches and scores.
    # {match} is the engine's full-text predicate on the rows s (the
    # adapter's, one parameter); {counts} one occurrence count per scored
    # atom, ``(length(s.tokens) - length(replace(s.tokens, ?, ''))) / ?``;
    # {score} the sum of search.term_score over them, in integer arithmetic.
    search_page: str = (
        f"SELECT {BLOCKS.qualified('b')}, p.score FROM ("
        " SELECT m.block_id, {score} AS score FROM ("
        "  SELECT s.block_id, s.word_count AS n{counts} FROM block_search s"
        "  WHERE s.workspace_id = ? AND s.chunk = 0 AND {match}"
        " ) m ORDER BY score DESC, m.block_id{C} LIMIT ?"
        ") p JOIN blocks b ON b.id = p.block_id"
        f" UNION ALL SELECT {BLOCKS.qualified('b')}, NULL FROM blocks b WHERE b.id IN ("
        " SELECT s.block_id FROM block_search s"
        " WHERE s.workspace_id = ? AND s.chunk > 0 AND {match})"
    )

    def compiled_for(self, compiler: Compiler) -> Queries:
        """This set of queries in ``compiler``'s dialect."""
        return Queries(**{f.name: compiler.compile(getattr(self, f.name)) for f in fields(self)})


PORTABLE = Queries()
