"""The conflict log: every change that lost, and how to bring it back.

Each entry keeps the losing values (a field's value, a whole losing
generation, a row a delete removed, a rejected change set) with the loser's
and the winner's provenance. Restoring one writes the losing values again
through the public API as a new edit by the person restoring it — a new,
attributed change set that syncs like any other (no silent edits).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from ..enums import JobState
from ..errors import NotFoundError, StorageError, ValidationError
from ..guard import WriteContext
from ..models import (
    BlockUpdate,
    JobMetrics,
    JobStatusUpdate,
    NewBlock,
    NewCanvas,
    NewCanvasEdge,
    NewCanvasNode,
    NewDocument,
    NewWorkspace,
)

if TYPE_CHECKING:
    from ..database import Database

KINDS = ("field", "stale_generation", "deleted", "rejected")

_BLOCK_FIELDS = ("kind", "sequence", "raw_content", "display_content", "derived_content")

#: The job fields update_ai_job_status writes (the first three always).
_JOB_STATUS_FIELDS = frozenset({"status", "status_reason", "error_message"})
_JOB_FIELDS = _JOB_STATUS_FIELDS | {"metrics", "workflow_run_id", "trace_id", "job_outputs"}

#: The workflow run fields a restore can write again (through the run's own API).
_RUN_FIELDS = frozenset({"status", "error_message", "last_heartbeat"})


@dataclass(frozen=True)
class Conflict:
    id: str
    detected_at: datetime
    workspace_id: str | None
    kind: str
    table_name: str
    row_id: str
    loser: dict[str, Any]
    winner: dict[str, Any] | None
    restored_at: datetime | None
    restored_event_id: str | None

    @property
    def loser_provenance(self) -> dict[str, Any]:
        return self.loser.get("provenance") or {}

    @property
    def winner_provenance(self) -> dict[str, Any]:
        return (self.winner or {}).get("provenance") or {}

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "detected_at": self.detected_at.isoformat(),
            "workspace_id": self.workspace_id,
            "kind": self.kind,
            "table": self.table_name,
            "row_id": self.row_id,
            "loser": self.loser,
            "winner": self.winner,
            "restored_at": None if self.restored_at is None else self.restored_at.isoformat(),
            "restored_event_id": self.restored_event_id,
        }


def conflict_from_row(row: Any, decode_ts: Any) -> Conflict:
    try:
        detail = json.loads(row[8])
        return Conflict(
            id=row[0],
            detected_at=decode_ts(row[1]),
            workspace_id=row[2] or None,
            kind=row[3],
            table_name=row[4],
            row_id=row[5],
            loser=detail["loser"],
            winner=detail.get("winner"),
            restored_at=None if row[9] is None else decode_ts(row[9]),
            restored_event_id=row[10],
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise StorageError(f"sync_conflicts row {row[0]!r} cannot be read: {exc}") from None


def restore(db: Database, ctx: WriteContext, conflict: Conflict) -> str | None:
    """Write the losing side of ``conflict`` again as an edit by ``ctx``;
    returns the new edit's event id (None for a delete)."""
    loser = conflict.loser
    if "columns" in loser:  # a field value that lost
        return _restore_fields(db, ctx, conflict.table_name, loser["columns"], loser["values"])
    if "rows" in loser:  # local rows that lost (a generation, or removed by a delete)
        event = None
        for group in loser["rows"]:
            if group is None:
                continue
            for values in group["rows"]:
                event = _restore_row(db, ctx, group["table"], group["columns"], values)
        return event
    return _replay(db, ctx, loser.get("provenance", {}).get("operation"), loser.get("payload", {}))


def _unsupported(what: str) -> ValidationError:
    return ValidationError(
        f"a conflict on {what} cannot be restored automatically; its losing values are "
        "in the entry (handshake-storage conflicts show ID)"
    )


def _restore_fields(
    db: Database, ctx: WriteContext, table: str, columns: list[str], values: list[Any]
) -> str | None:
    row = dict(zip(columns, values, strict=True))
    key = row.pop("id")
    if table == "blocks":
        fields = {k: v for k, v in row.items() if k in _BLOCK_FIELDS}
        if "derived_content" in fields:
            fields["derived_content"] = json.loads(fields["derived_content"])
        return str(db.update_block(ctx, key, BlockUpdate(**fields)).edit_event_id)
    if table == "ai_jobs" and set(row) & _JOB_STATUS_FIELDS and set(row) <= _JOB_FIELDS:
        return _restore_job_status(db, UUID(key), row)
    if table == "ai_jobs" and set(row) <= {"job_outputs", "is_pinned"}:
        if "job_outputs" in row:
            outputs = row["job_outputs"]
            db.set_job_outputs(UUID(key), None if outputs is None else json.loads(outputs))
        if "is_pinned" in row:
            db.set_job_pinned(UUID(key), bool(row["is_pinned"]))
        return None
    if (
        table == "workflow_runs"
        and set(row) <= _RUN_FIELDS
        and ("status" in row) == ("error_message" in row)
    ):
        run_id = UUID(key)
        if "status" in row:  # written together by update_workflow_run_status
            db.update_workflow_run_status(run_id, JobState(row["status"]), row["error_message"])
        if "last_heartbeat" in row:
            db.heartbeat_workflow(run_id, datetime.fromisoformat(row["last_heartbeat"]))
        return None
    if table == "workflow_node_executions" and "status" in row and "error_message" in row:
        # written together by update_workflow_node_execution_status, which
        # sets finished_at itself (now, for a terminal status)
        output = row.get("output_payload")
        db.update_workflow_node_execution_status(
            UUID(key),
            JobState(row["status"]),
            None if output is None else _json(output),
            row["error_message"],
        )
        return None
    raise _unsupported(f"{table} fields {', '.join(sorted(row))}")


def _restore_job_status(db: Database, job_id: UUID, row: dict[str, Any]) -> None:
    """Lost fields of a job status update, written again as one: the fields
    that did not lose keep their current value."""
    current = db.get_ai_job(job_id)
    metrics = row.get("metrics")
    outputs = row.get("job_outputs")
    run, trace = row.get("workflow_run_id"), row.get("trace_id")
    db.update_ai_job_status(
        JobStatusUpdate(
            job_id,
            JobState(row.get("status", current.status)),
            row.get("status_reason", current.status_reason),
            row.get("error_message", current.error_message),
            None if metrics is None else JobMetrics(**_json(metrics)),
            None if run is None else UUID(run),
            None if trace is None else UUID(trace),
            None if outputs is None else _json(outputs),
        )
    )


def _restore_row(
    db: Database, ctx: WriteContext, table: str, columns: list[str], values: list[Any]
) -> str | None:
    """Bring one lost row back: recreate it, or update it if it exists."""
    row = dict(zip(columns, values, strict=True))
    if table == "blocks":
        new = _new_block(columns, values)
        try:
            db.get_block(row["id"])
        except NotFoundError:
            return str(db.create_block(ctx, new).edit_event_id)
        fields = {k: getattr(new, k) for k in _BLOCK_FIELDS}
        return str(db.update_block(ctx, row["id"], BlockUpdate(**fields)).edit_event_id)
    if table == "documents":
        created = db.create_document(
            ctx, NewDocument(row["workspace_id"], row["title"], id=row["id"])
        )
        return str(created.edit_event_id)
    if table == "canvases":
        created = db.create_canvas(ctx, NewCanvas(row["workspace_id"], row["title"], id=row["id"]))
        return str(created.edit_event_id)
    if table == "workspaces":
        return str(db.create_workspace(ctx, NewWorkspace(row["name"], id=row["id"])).edit_event_id)
    if table in ("canvas_nodes", "canvas_edges"):
        return _restore_graph_row(db, ctx, table, row)
    raise _unsupported(f"a {table} row")


def _restore_graph_row(db: Database, ctx: WriteContext, table: str, row: dict[str, Any]) -> str:
    """Put a lost node (edge) back into its canvas's current graph, as a new
    graph by ``ctx`` (the graph is only ever written whole); an edge whose
    nodes are not in the graph is refused by ``update_canvas_graph``."""
    canvas_id = row["canvas_id"]
    graph = db.get_canvas_with_graph(canvas_id)
    nodes = [
        NewCanvasNode(n.kind, n.position_x, n.position_y, n.data, id=n.id) for n in graph.nodes
    ]
    edges = [NewCanvasEdge(e.from_node_id, e.to_node_id, e.kind, id=e.id) for e in graph.edges]
    if table == "canvas_nodes":
        node = NewCanvasNode(
            row["kind"], row["position_x"], row["position_y"], _json(row["data"]), id=row["id"]
        )
        nodes = [n for n in nodes if n.id != node.id] + [node]
    else:
        edge = NewCanvasEdge(row["from_node_id"], row["to_node_id"], row["kind"], id=row["id"])
        edges = [e for e in edges if e.id != edge.id] + [edge]
    return str(db.update_canvas_graph(ctx, canvas_id, nodes, edges).canvas.edit_event_id)


def _json(value: Any) -> Any:
    """A JSON column's value from a row image (its stored text)."""
    return json.loads(value) if isinstance(value, str) else value


def _replay(
    db: Database, ctx: WriteContext, operation: str | None, payload: dict[str, Any]
) -> str | None:
    """Apply a losing (or rejected) change set's content again, as ``ctx``."""
    puts = {g["table"]: g for g in payload.get("put", ())}
    if operation == "replace_blocks":
        document_id = puts["documents"]["rows"][0][0]
        group = puts.get("blocks", {"columns": [], "rows": []})
        blocks = [_new_block(group["columns"], r) for r in group["rows"]]
        db.replace_blocks(ctx, document_id, blocks)
        return str(db.get_document(document_id).edit_event_id)
    if operation == "update_canvas_graph":
        canvas_id = puts["canvases"]["rows"][0][0]
        nodes = [
            NewCanvasNode(
                r["kind"], r["position_x"], r["position_y"], json.loads(r["data"]), id=r["id"]
            )
            for r in _dicts(puts.get("canvas_nodes"))
        ]
        edges = [
            NewCanvasEdge(r["from_node_id"], r["to_node_id"], r["kind"], id=r["id"])
            for r in _dicts(puts.get("canvas_edges"))
        ]
        return str(db.update_canvas_graph(ctx, canvas_id, nodes, edges).canvas.edit_event_id)
    if operation in ("create_block", "update_block"):
        group = puts["blocks"]
        if operation == "create_block":
            return _restore_row(db, ctx, "blocks", group["columns"], group["rows"][0])
        return _restore_fields(db, ctx, "blocks", group["columns"], group["rows"][0])
    if operation in ("create_workspace", "create_document", "create_canvas"):
        group = next(iter(puts.values()))
        return _restore_row(db, ctx, group["table"], group["columns"], group["rows"][0])
    if operation in ("delete_block", "delete_document", "delete_canvas", "delete_workspace"):
        key = payload["delete"][0]["rows"][0][0]
        getattr(db, operation)(ctx, key)
        return None
    raise _unsupported(f"operation {operation}")


def _dicts(group: dict[str, Any] | None) -> list[dict[str, Any]]:
    if not group:
        return []
    return [dict(zip(group["columns"], r, strict=True)) for r in group["rows"]]


def _new_block(columns: list[str], values: list[Any]) -> NewBlock:
    r = dict(zip(columns, values, strict=True))
    return NewBlock(
        r["document_id"],
        r["kind"],
        r["sequence"],
        r["raw_content"],
        r["display_content"],
        json.loads(r["derived_content"]),
        id=r["id"],
    )
