"""Every business query, written once in portable SQL.

Column lists and INSERT statements come from the table descriptions
(``tables.py``); what is written here is the logic of each statement.

Placeholders are ``?``; ``{C}`` after a text expression in ORDER BY asks for
code-point order (PostgreSQL's default collation may be locale-aware, SQLite
compares bytes). Each adapter compiles this text into its dialect once, when
a database is opened (:meth:`Queries.compiled_for`).
"""

from __future__ import annotations

from collections.abc import Sequence
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
    Table,
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

CHANGE = (
    "origin_id, scope, seq, pos, hlc, edit_event_id, actor_kind, actor_id, job_id, "
    "workflow_id, operation, subject_table, subject_id, status, written_at, payload"
)

CHANGE_COLUMNS = tuple(CHANGE.split(", "))

CONFLICT = (
    "id, detected_at, scope, kind, table_name, row_id, loser_event_id, winner_event_id, "
    "detail, restored_at, restored_event_id"
)

#: The largest HLC counter within one millisecond; beyond it the wall advances.
HLC_MAX_COUNTER = 999_999

COUNTER = "origin_id, scope, seq, pos, hlc_wall, hlc_counter"

#: One tick of a counter row ``{r}``: the next sequence number and position,
#: and the hybrid logical clock — the wall clock if it is ahead, else the
#: same wall with the counter one higher (the wall one higher when the
#: counter is full). Each ``?`` is the wall clock now, in ms.
_TICK = {
    "seq": "{r}.seq + 1",
    "pos": "{r}.pos + 1",
    "hlc_wall": (
        "CASE WHEN ? > {r}.hlc_wall THEN ? "
        f"WHEN {{r}}.hlc_counter >= {HLC_MAX_COUNTER} THEN {{r}}.hlc_wall + 1 "
        "ELSE {r}.hlc_wall END"
    ),
    "hlc_counter": (
        "CASE WHEN ? > {r}.hlc_wall THEN 0 "
        f"WHEN {{r}}.hlc_counter >= {HLC_MAX_COUNTER} THEN 0 ELSE {{r}}.hlc_counter + 1 END"
    ),
}


def _set_ticked(row: str) -> str:
    return ", ".join(f"{name} = {v.format(r=row)}" for name, v in _TICK.items())


#: A scope's first counter row of an origin, before its first tick: it
#: continues the scope's positions and starts its clock just above every
#: wall known in the scope (parameters: scope, scope).
_OPENING = {
    "seq": "0",
    "pos": "COALESCE((SELECT MAX(pos) FROM sync_changes WHERE scope = ? AND pos > 0), 0)",
    "hlc_wall": "COALESCE((SELECT MAX(hlc_wall) FROM sync_counters WHERE scope = ?), -1) + 1",
    "hlc_counter": "0",
}
_OPENING_VALUES = ", ".join(_OPENING.values())

#: The change set's columns the append takes from the ticked counter row
#: (alias ``t``); the others are parameters, in CHANGE order.
_FROM_COUNTER = {
    "origin_id": "t.origin_id",
    "scope": "t.scope",
    "seq": "t.seq",
    "pos": "t.pos",
    "hlc": "{hlc_stamp}",
}
_CHANGE_FROM_COUNTER = ", ".join(_FROM_COUNTER.get(c, "?") for c in CHANGE_COLUMNS)

_BLOCK_SET = (
    "kind = COALESCE(?, kind), sequence = COALESCE(?, sequence), "
    "raw_content = COALESCE(?, raw_content), display_content = COALESCE(?, display_content), "
    f"derived_content = COALESCE(?, derived_content), updated_at = ?, {TRACE_SET}"
)

#: What a block's change set needs of it before a write: the block, its
#: version, its document's workspace (the scope) and generation (``ledger_block``,
#: and inside ``update_block_seen``).
_BLOCK_SEEN = (
    "SELECT b.id AS seen_id, b.edit_event_id AS seen_event, d.workspace_id AS seen_scope, "
    "d.edit_event_id AS seen_base FROM blocks b JOIN documents d ON d.id = b.document_id "
    "WHERE b.id = ?"
)


def _returning_workspace_version(table: Table) -> str:
    """``table``'s INSERT returning its workspace's version (edit_event_id)."""
    return (
        f"{table.insert_sql} RETURNING (SELECT w.edit_event_id FROM workspaces w"
        f" WHERE w.id = {table.name}.workspace_id)"
    )


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

    # A generation's parent as its writer sees it, locked first (the ledger's
    # "base" of replace_blocks / update_canvas_graph: what they replace).
    generation_of_document: str = "SELECT edit_event_id FROM documents WHERE id = ?{for_update}"
    generation_of_canvas: str = "SELECT edit_event_id FROM canvases WHERE id = ?{for_update}"

    # blocks
    get_blocks: str = f"SELECT {BLOCK} FROM blocks WHERE document_id = ? ORDER BY sequence, id{{C}}"
    get_block: str = f"SELECT {BLOCK} FROM blocks WHERE id = ?"
    insert_block: str = BLOCKS.insert_sql
    # ... and what the ledger needs of its document (scope, generation), in
    # the same statement: no round trip of its own
    insert_block_returning_scope: str = (
        BLOCKS.insert_sql
        + " RETURNING (SELECT d.workspace_id FROM documents d WHERE d.id = blocks.document_id),"
        " (SELECT d.edit_event_id FROM documents d WHERE d.id = blocks.document_id)"
    )
    # A document's (canvas's) creation and the version of its workspace as
    # its writer saw it (the ledger's "base"), in the same statement
    insert_document_returning_base: str = _returning_workspace_version(DOCUMENTS)
    insert_canvas_returning_base: str = _returning_workspace_version(CANVASES)
    update_block: str = f"UPDATE blocks SET {_BLOCK_SET} WHERE id = ? RETURNING {BLOCK}"
    # What the ledger needs of an updated block, as it was before (ledger_block:
    # id, edit_event_id, its document's workspace and edit_event_id), returned
    # by the UPDATE itself where one statement may combine (params: update_block's
    # with the id twice)
    update_block_seen: str = (
        f"UPDATE blocks SET {_BLOCK_SET} FROM ({_BLOCK_SEEN}) seen WHERE blocks.id = ? "
        f"RETURNING {BLOCKS.qualified('blocks')}, "
        "seen.seen_id, seen.seen_event, seen.seen_scope, seen.seen_base"
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

    # the change ledger (ledger.py): the local origin's row of a scope holds
    # its sequence number, position and clock; ticking it locks it to commit
    ledger_replica: str = "SELECT replica_id FROM sync_replica"
    ledger_create_replica: str = (
        "INSERT INTO sync_replica (slot, replica_id, created_at, copied_from) "
        "VALUES (1, ?, ?, ?) ON CONFLICT (slot) DO NOTHING"
    )
    ledger_forget_replica: str = "DELETE FROM sync_replica"
    # The append: tick the origin's counter row of the scope (opening it
    # first if it has none) and insert the change set numbered and stamped
    # from the ticked row; ticking locks the row to commit.
    ledger_tick: str = (
        f"UPDATE sync_counters SET {_set_ticked('sync_counters')} "
        f"WHERE origin_id = ? AND scope = ? RETURNING seq, pos, hlc_wall, hlc_counter"
    )
    ledger_open_scope: str = (
        f"INSERT INTO sync_counters ({COUNTER}) SELECT ?, ?, {_OPENING_VALUES} "
        "WHERE true ON CONFLICT (origin_id, scope) DO NOTHING"
    )
    ledger_insert: str = f"INSERT INTO sync_changes ({CHANGE}) VALUES ({placeholders(16)})"
    # The tick and the insert in one statement, where a WITH may modify rows:
    # the change set numbered and stamped in SQL (``{hlc_stamp}``) from the
    # ticked row; no row back means the scope is not open yet (open it, run
    # again). Parameters: the tick's, then the change set's columns after
    # ``_FROM_COUNTER``'s.
    ledger_append: str = (
        f"WITH t AS (UPDATE sync_counters SET {_set_ticked('sync_counters')} "
        f"WHERE origin_id = ? AND scope = ? RETURNING {COUNTER}) "
        f"INSERT INTO sync_changes ({CHANGE}) SELECT {_CHANGE_FROM_COUNTER} FROM t RETURNING seq"
    )
    ledger_latest: str = (
        "SELECT edit_event_id FROM sync_changes WHERE subject_table = ? AND subject_id = ? "
        "ORDER BY hlc{C} DESC LIMIT 1"
    )
    ledger_coalesce: str = (
        "DELETE FROM sync_changes WHERE subject_table = ? AND subject_id = ? "
        "AND origin_id = ? AND operation = ?"
    )
    # what a write reads for its change set: the scope and the generation
    ledger_document: str = "SELECT workspace_id, edit_event_id FROM documents WHERE id = ?"
    ledger_canvas: str = "SELECT workspace_id, edit_event_id FROM canvases WHERE id = ?"
    ledger_block: str = _BLOCK_SEEN
    ledger_workspace_documents: str = (
        "SELECT id, edit_event_id FROM documents WHERE workspace_id = ? ORDER BY id{C}"
    )
    ledger_workspace_canvases: str = (
        "SELECT id, edit_event_id FROM canvases WHERE workspace_id = ? ORDER BY id{C}"
    )
    ledger_workspace_blocks: str = (
        "SELECT b.id, b.edit_event_id FROM blocks b JOIN documents d ON d.id = b.document_id "
        "WHERE d.workspace_id = ? ORDER BY b.id{C}"
    )
    ledger_workspace_nodes: str = (
        "SELECT n.id, n.edit_event_id FROM canvas_nodes n JOIN canvases c ON c.id = n.canvas_id "
        "WHERE c.workspace_id = ? ORDER BY n.id{C}"
    )
    ledger_workspace_edges: str = (
        "SELECT e.id, e.edit_event_id FROM canvas_edges e JOIN canvases c ON c.id = e.canvas_id "
        "WHERE c.workspace_id = ? ORDER BY e.id{C}"
    )
    ledger_document_blocks: str = (
        "SELECT id, edit_event_id FROM blocks WHERE document_id = ? ORDER BY id{C}"
    )
    ledger_canvas_nodes: str = (
        "SELECT id, edit_event_id FROM canvas_nodes WHERE canvas_id = ? ORDER BY id{C}"
    )
    ledger_canvas_edges: str = (
        "SELECT id, edit_event_id FROM canvas_edges WHERE canvas_id = ? ORDER BY id{C}"
    )
    # the version of rows without a version column (jobs, workflows): the
    # newest change set about each (the last per subject)
    ledger_subject_events: str = (
        "SELECT subject_id, edit_event_id FROM sync_changes "
        "WHERE subject_table = ? AND subject_id IN ({ids}) ORDER BY hlc{C}"
    )
    ledger_job_runs: str = "SELECT id FROM workflow_runs WHERE job_id IN ({ids}) ORDER BY id{C}"
    ledger_run_execs: str = (
        "SELECT id FROM workflow_node_executions WHERE workflow_run_id IN ({ids}) ORDER BY id{C}"
    )
    delete_document_blocks_returning: str = (
        "DELETE FROM blocks WHERE document_id = ? RETURNING id, edit_event_id"
    )
    delete_edges_returning: str = (
        "DELETE FROM canvas_edges WHERE canvas_id = ? RETURNING id, edit_event_id"
    )
    delete_nodes_returning: str = (
        "DELETE FROM canvas_nodes WHERE canvas_id = ? RETURNING id, edit_event_id"
    )
    changes: str = f"SELECT {CHANGE} FROM sync_changes"

    # sync: export, import and the merge rules (sync/)
    sync_counters: str = "SELECT origin_id, scope, seq FROM sync_counters"
    sync_pruned: str = "SELECT origin_id, scope, seq FROM sync_pruned"
    sync_export: str = (
        f"SELECT {CHANGE} FROM sync_changes WHERE origin_id = ? AND scope = ? AND seq > ? "
        "ORDER BY seq LIMIT ?"
    )
    # An import claims the marks of the (origin, scope)s its batch carries
    # before it decides anything: locked in (origin, scope) order, so an
    # importer of the same change sets waits for the first one's commit, then
    # reads them applied ({pairs}: one "(?, ?)" per mark).
    sync_claim_marks: str = (
        "SELECT origin_id, scope, seq FROM sync_counters WHERE (origin_id, scope) IN ({pairs}) "
        "ORDER BY origin_id{C}, scope{C}{for_update}"
    )
    # An advance is conditional on the mark claimed at the start (a check:
    # nothing else moves a claimed mark before the commit).
    sync_advance: str = (
        "UPDATE sync_counters SET seq = ? WHERE origin_id = ? AND scope = ? AND seq = ?"
    )
    sync_first_mark: str = (
        "INSERT INTO sync_counters (origin_id, scope, seq, pos, hlc_wall, hlc_counter) "
        "VALUES (?, ?, ?, 0, 0, 0) ON CONFLICT (origin_id, scope) DO NOTHING"
    )
    # Received change sets are inserted with temporary negative positions and
    # placed after the scope's last position once the batch is complete; the
    # local clock rises to the highest received stamp.
    sync_reserve_positions: str = (
        "UPDATE sync_counters SET pos = pos + ?, "
        "hlc_counter = CASE WHEN ? > hlc_wall THEN ? "
        "WHEN ? = hlc_wall AND ? > hlc_counter THEN ? ELSE hlc_counter END, "
        "hlc_wall = CASE WHEN ? > hlc_wall THEN ? ELSE hlc_wall END "
        "WHERE origin_id = ? AND scope = ? RETURNING pos"
    )
    sync_place_positions: str = "UPDATE sync_changes SET pos = ? - pos WHERE scope = ? AND pos < 0"
    sync_record_peer: str = (
        "INSERT INTO sync_peers (peer_id, origin_id, scope, seq, synced_at) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT (peer_id, origin_id, scope) "
        "DO UPDATE SET seq = excluded.seq, synced_at = excluded.synced_at"
    )
    conflicts: str = f"SELECT {CONFLICT} FROM sync_conflicts"
    get_conflict: str = f"SELECT {CONFLICT} FROM sync_conflicts WHERE id = ?"
    claim_conflict_restore: str = (
        "UPDATE sync_conflicts SET restored_at = ? WHERE id = ? AND restored_at IS NULL"
    )
    release_conflict_restore: str = (
        "UPDATE sync_conflicts SET restored_at = NULL "
        "WHERE id = ? AND restored_at = ? AND restored_event_id IS NULL"
    )
    mark_conflict_restored: str = "UPDATE sync_conflicts SET restored_event_id = ? WHERE id = ?"
    prune_peers: str = "SELECT peer_id, origin_id, scope, seq FROM sync_peers"
    prune_candidates: str = (
        "SELECT origin_id, scope, seq, subject_table, subject_id, hlc, status, payload, "
        "edit_event_id, operation FROM sync_changes"
    )
    prune_delete: str = "DELETE FROM sync_changes WHERE origin_id = ? AND scope = ? AND seq = ?"
    prune_mark: str = (
        "INSERT INTO sync_pruned (origin_id, scope, seq) VALUES (?, ?, ?) "
        "ON CONFLICT (origin_id, scope) DO UPDATE SET seq = excluded.seq "
        "WHERE excluded.seq > sync_pruned.seq"
    )
    merge_stamp_of_event: str = "SELECT hlc FROM sync_changes WHERE edit_event_id = ?"
    merge_change_by_event: str = (
        "SELECT origin_id, seq, hlc, operation, actor_kind, actor_id, job_id, workflow_id, "
        "written_at FROM sync_changes WHERE edit_event_id = ?"
    )
    merge_subject_changes: str = (
        "SELECT hlc, edit_event_id, operation, actor_kind, actor_id, job_id, workflow_id, "
        "payload, origin_id, seq, written_at FROM sync_changes "
        "WHERE subject_table = ? AND subject_id = ? AND status = 'applied'"
    )
    merge_log_conflict: str = (
        "INSERT INTO sync_conflicts (id, detected_at, scope, kind, table_name, row_id, "
        "loser_event_id, winner_event_id, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )
    # What a chunk of received change sets reads up front ({ids}: placeholders).
    merge_stamps_of_events: str = (
        "SELECT edit_event_id, hlc FROM sync_changes WHERE edit_event_id IN ({ids})"
    )
    merge_subjects_changes: str = (
        "SELECT hlc, edit_event_id, operation, actor_kind, actor_id, job_id, workflow_id, "
        "payload, origin_id, seq, written_at, subject_id FROM sync_changes "
        "WHERE subject_table = ? AND status = 'applied' AND subject_id IN ({ids})"
    )
    merge_delete_search_rows: str = "DELETE FROM block_search WHERE block_id IN ({ids})"
    # The scope's applied change sets that removed rows ({ids}: the removing
    # operations): who won over an edit of a row that is gone.
    merge_scope_removals: str = (
        "SELECT hlc, edit_event_id, payload FROM sync_changes "
        "WHERE scope = ? AND status = 'applied' AND operation IN ({ids})"
    )

    def compiled_for(self, compiler: Compiler) -> Queries:
        """This set of queries in ``compiler``'s dialect."""
        return Queries(**{f.name: compiler.compile(getattr(self, f.name)) for f in fields(self)})


PORTABLE = Queries()


# -- the merge's statements about a table named by a change set (sync/) ------------------
# Table and column names come from change sets, checked against the live schema before
# any of these is built (sync/merge.py). Row locks: ``{for_update}`` for rows a merge
# decides on, ``{for_key_share}`` for parents that must stay while children go in.

MERGE_LOCKS = ("{for_update}", "{for_key_share}", "")


def merge_rows(table: str, columns: Sequence[str], count: int, lock: str) -> str:
    """Rows of ``table`` by id, locked in id order (the lock order within a table)."""
    return (
        f"SELECT {', '.join(columns)} FROM {table} WHERE id IN ({placeholders(count)}) "
        f"ORDER BY id{{C}}{lock}"
    )


def merge_children_rows(table: str, columns: Sequence[str], column: str, count: int) -> str:
    """Every row of ``table`` under these parents (``column``)."""
    return f"SELECT {', '.join(columns)} FROM {table} WHERE {column} IN ({placeholders(count)})"


def merge_row(table: str, columns: Sequence[str]) -> str:
    return f"SELECT {', '.join(columns)} FROM {table} WHERE id = ?"


def merge_insert(table: str, columns: Sequence[str], *, if_absent: bool) -> str:
    conflict = " ON CONFLICT (id) DO NOTHING" if if_absent else ""
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders(len(columns))})"
        + conflict
    )


def merge_update(table: str, names: Sequence[str]) -> str:
    return f"UPDATE {table} SET {', '.join(f'{n} = ?' for n in names)} WHERE id = ?"


def merge_delete(table: str) -> str:
    return f"DELETE FROM {table} WHERE id = ?"


def merge_children(table: str, column: str) -> str:
    """A parent's children with their versions, in id order."""
    return f"SELECT id, edit_event_id FROM {table} WHERE {column} = ? ORDER BY id{{C}}"


def merge_delete_children(table: str, column: str) -> str:
    return f"DELETE FROM {table} WHERE {column} = ?"
