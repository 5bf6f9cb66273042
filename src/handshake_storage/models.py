"""Domain types: what the storage API accepts and returns.

Results are read-only :class:`~handshake_storage.record.Record` objects that
compare, hash and print like frozen dataclasses and decode each field on
first access (so listing a thousand rows costs little more than fetching
them). ``New*`` types and the small value types are frozen dataclasses;
fields left ``None`` get the documented default. Content ids are ``str``; job,
trace, workflow-run and node-execution ids are ``uuid.UUID``; datetimes are
timezone-aware UTC.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from .errors import StorageError
from .record import Record


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    STALLED = "stalled"
    AWAITING_VALIDATION = "awaiting_validation"
    AWAITING_USER = "awaiting_user"
    COMPLETED = "completed"
    COMPLETED_WITH_ISSUES = "completed_with_issues"
    FAILED = "failed"
    CANCELLED = "cancelled"
    POISONED = "poisoned"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_JOB_STATES


TERMINAL_JOB_STATES = frozenset(
    {
        JobState.COMPLETED,
        JobState.COMPLETED_WITH_ISSUES,
        JobState.FAILED,
        JobState.CANCELLED,
        JobState.POISONED,
    }
)


class AccessMode(StrEnum):
    ANALYSIS_ONLY = "analysis_only"
    PREVIEW_ONLY = "preview_only"
    APPLY_SCOPED = "apply_scoped"


class SafetyMode(StrEnum):
    STRICT = "strict"
    NORMAL = "normal"
    EXPERIMENTAL = "experimental"


class WriteActorKind(StrEnum):
    HUMAN = "HUMAN"
    AI = "AI"
    SYSTEM = "SYSTEM"


class OperationType(StrEnum):
    READ = "read"
    WRITE = "write"
    PLAN = "plan"
    EXECUTE = "execute"


# --------------------------------------------------------------------------
# Small value types (stored inside AI jobs as JSON)
# --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EntityRef:
    entity_id: str
    entity_kind: str


@dataclass(frozen=True, slots=True)
class PlannedOperation:
    op_type: OperationType
    target: EntityRef
    description: str | None = None


@dataclass(frozen=True, slots=True)
class JobMetrics:
    duration_ms: int = 0
    total_tokens: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    entities_read: int = 0
    entities_written: int = 0


METRIC_FIELDS = tuple(JobMetrics.__dataclass_fields__)

# --------------------------------------------------------------------------
# Decoders: stored value -> API value (see record.Record)
# --------------------------------------------------------------------------

TimestampDecoder = Callable[[Any], datetime]
_ACTOR = {m.value: m for m in WriteActorKind}
_STATE = {m.value: m for m in JobState}
_ACCESS = {m.value: m for m in AccessMode}
_SAFETY = {m.value: m for m in SafetyMode}
_OPERATION = {m.value: m for m in OperationType}


def load_json(raw: str | None) -> Any:
    """Parse stored JSON text; corrupt text is a StorageError, not a ValueError."""
    if raw is None:
        return None
    if raw == "{}":
        return {}
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise StorageError(f"stored JSON is corrupt or too deeply nested: {exc}") from None


def _json(raw: Any, ts: TimestampDecoder) -> Any:
    return load_json(raw)


def _ts(raw: Any, ts: TimestampDecoder) -> datetime:
    return ts(raw)


def _opt_ts(raw: Any, ts: TimestampDecoder) -> datetime | None:
    return None if raw is None else ts(raw)


def _uuid(raw: Any, ts: TimestampDecoder) -> UUID:
    return UUID(raw)


def _opt_uuid(raw: Any, ts: TimestampDecoder) -> UUID | None:
    return None if raw is None else UUID(raw)


def _actor(raw: Any, ts: TimestampDecoder) -> WriteActorKind:
    return _ACTOR[raw]


def _state(raw: Any, ts: TimestampDecoder) -> JobState:
    return _STATE[raw]


def _access(raw: Any, ts: TimestampDecoder) -> AccessMode:
    return _ACCESS[raw]


def _safety(raw: Any, ts: TimestampDecoder) -> SafetyMode:
    return _SAFETY[raw]


def _bool(raw: Any, ts: TimestampDecoder) -> bool:
    return bool(raw)


def _entity_refs(raw: Any, ts: TimestampDecoder) -> list[EntityRef]:
    return [EntityRef(d["entity_id"], d["entity_kind"]) for d in load_json(raw)]


def _planned_operations(raw: Any, ts: TimestampDecoder) -> list[PlannedOperation]:
    return [
        PlannedOperation(
            _OPERATION[d["op_type"]],
            EntityRef(d["target"]["entity_id"], d["target"]["entity_kind"]),
            d.get("description"),
        )
        for d in load_json(raw)
    ]


def _metrics(raw: Any, ts: TimestampDecoder) -> JobMetrics:
    data = load_json(raw)
    return JobMetrics(**{k: v for k, v in data.items() if k in METRIC_FIELDS})


_TRACE = {
    "created_at": _ts,
    "updated_at": _ts,
    "last_actor_kind": _actor,
    "last_job_id": _opt_uuid,
    "last_workflow_id": _opt_uuid,
    "edit_event_id": _uuid,
}

# --------------------------------------------------------------------------
# Content: workspaces, documents, blocks, canvases
# --------------------------------------------------------------------------


class Workspace(Record, decoders=_TRACE):
    __slots__ = ()
    id: str
    name: str
    created_at: datetime
    updated_at: datetime
    last_actor_kind: WriteActorKind
    last_actor_id: str | None
    last_job_id: UUID | None
    last_workflow_id: UUID | None
    edit_event_id: UUID


@dataclass(frozen=True, slots=True)
class NewWorkspace:
    name: str
    id: str | None = None


class Document(Record, decoders=_TRACE):
    __slots__ = ()
    id: str
    workspace_id: str
    title: str
    created_at: datetime
    updated_at: datetime
    last_actor_kind: WriteActorKind
    last_actor_id: str | None
    last_job_id: UUID | None
    last_workflow_id: UUID | None
    edit_event_id: UUID


@dataclass(frozen=True, slots=True)
class NewDocument:
    workspace_id: str
    title: str
    id: str | None = None


class Block(Record, decoders={**_TRACE, "derived_content": _json}):
    __slots__ = ()
    id: str
    document_id: str
    kind: str
    sequence: int
    raw_content: str
    display_content: str
    derived_content: Any
    created_at: datetime
    updated_at: datetime
    last_actor_kind: WriteActorKind
    last_actor_id: str | None
    last_job_id: UUID | None
    last_workflow_id: UUID | None
    edit_event_id: UUID


@dataclass(frozen=True, slots=True)
class NewBlock:
    """A block to insert. ``display_content`` defaults to ``raw_content``,
    ``derived_content`` to ``{}`` and ``id`` to a fresh UUID string."""

    document_id: str
    kind: str
    sequence: int
    raw_content: str
    display_content: str | None = None
    derived_content: Any = None
    id: str | None = None


@dataclass(frozen=True, slots=True)
class BlockUpdate:
    """Fields to change; ``None`` leaves a field as it is."""

    kind: str | None = None
    sequence: int | None = None
    raw_content: str | None = None
    display_content: str | None = None
    derived_content: Any = None


class Canvas(Record, decoders=_TRACE):
    __slots__ = ()
    id: str
    workspace_id: str
    title: str
    created_at: datetime
    updated_at: datetime
    last_actor_kind: WriteActorKind
    last_actor_id: str | None
    last_job_id: UUID | None
    last_workflow_id: UUID | None
    edit_event_id: UUID


@dataclass(frozen=True, slots=True)
class NewCanvas:
    workspace_id: str
    title: str
    id: str | None = None


class CanvasNode(Record, decoders={**_TRACE, "data": _json}):
    __slots__ = ()
    id: str
    canvas_id: str
    kind: str
    position_x: float
    position_y: float
    data: Any
    created_at: datetime
    updated_at: datetime
    last_actor_kind: WriteActorKind
    last_actor_id: str | None
    last_job_id: UUID | None
    last_workflow_id: UUID | None
    edit_event_id: UUID


@dataclass(frozen=True, slots=True)
class NewCanvasNode:
    """A node of a canvas graph; ``data`` defaults to ``{}``."""

    kind: str
    position_x: float
    position_y: float
    data: Any = None
    id: str | None = None


class CanvasEdge(Record, decoders=_TRACE):
    __slots__ = ()
    id: str
    canvas_id: str
    from_node_id: str
    to_node_id: str
    kind: str
    created_at: datetime
    updated_at: datetime
    last_actor_kind: WriteActorKind
    last_actor_id: str | None
    last_job_id: UUID | None
    last_workflow_id: UUID | None
    edit_event_id: UUID


@dataclass(frozen=True, slots=True)
class NewCanvasEdge:
    from_node_id: str
    to_node_id: str
    kind: str
    id: str | None = None


@dataclass(frozen=True, slots=True)
class CanvasGraph:
    canvas: Canvas
    nodes: list[CanvasNode]
    edges: list[CanvasEdge]


# --------------------------------------------------------------------------
# AI jobs and workflows
# --------------------------------------------------------------------------


class AiJob(
    Record,
    decoders={
        "id": _uuid,
        "trace_id": _uuid,
        "workflow_run_id": _opt_uuid,
        "status": _state,
        "access_mode": _access,
        "safety_mode": _safety,
        "entity_refs": _entity_refs,
        "planned_operations": _planned_operations,
        "metrics": _metrics,
        "job_inputs": _json,
        "job_outputs": _json,
        "is_pinned": _bool,
        "created_at": _ts,
        "updated_at": _ts,
    },
):
    __slots__ = ()
    id: UUID
    trace_id: UUID
    workflow_run_id: UUID | None
    job_kind: str
    status: JobState
    status_reason: str
    error_message: str | None
    protocol_id: str
    profile_id: str
    capability_profile_id: str
    access_mode: AccessMode
    safety_mode: SafetyMode
    entity_refs: list[EntityRef]
    planned_operations: list[PlannedOperation]
    metrics: JobMetrics
    job_inputs: Any
    job_outputs: Any
    is_pinned: bool
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class NewAiJob:
    trace_id: UUID
    job_kind: str
    protocol_id: str
    profile_id: str
    capability_profile_id: str
    access_mode: AccessMode
    safety_mode: SafetyMode
    entity_refs: list[EntityRef] = field(default_factory=list)
    planned_operations: list[PlannedOperation] = field(default_factory=list)
    status_reason: str = ""
    metrics: JobMetrics = field(default_factory=JobMetrics)
    job_inputs: Any = None
    is_pinned: bool = False
    id: UUID | None = None


@dataclass(frozen=True, slots=True)
class JobStatusUpdate:
    """A status transition. ``status``, ``status_reason`` and ``error_message``
    are set as given (``None`` clears the error); ``metrics``,
    ``workflow_run_id``, ``trace_id`` and ``job_outputs`` left ``None`` keep
    their stored value."""

    job_id: UUID
    status: JobState
    status_reason: str = ""
    error_message: str | None = None
    metrics: JobMetrics | None = None
    workflow_run_id: UUID | None = None
    trace_id: UUID | None = None
    job_outputs: Any = None


class WorkflowRun(
    Record,
    decoders={
        "id": _uuid,
        "job_id": _uuid,
        "status": _state,
        "last_heartbeat": _ts,
        "created_at": _ts,
        "updated_at": _ts,
    },
):
    __slots__ = ()
    id: UUID
    job_id: UUID
    status: JobState
    error_message: str | None
    last_heartbeat: datetime
    created_at: datetime
    updated_at: datetime


class WorkflowNodeExecution(
    Record,
    decoders={
        "id": _uuid,
        "workflow_run_id": _uuid,
        "status": _state,
        "input_payload": _json,
        "output_payload": _json,
        "started_at": _ts,
        "finished_at": _opt_ts,
        "created_at": _ts,
        "updated_at": _ts,
    },
):
    __slots__ = ()
    id: UUID
    workflow_run_id: UUID
    node_id: str
    node_type: str
    status: JobState
    sequence: int
    input_payload: Any
    output_payload: Any
    error_message: str | None
    started_at: datetime
    finished_at: datetime | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class NewNodeExecution:
    workflow_run_id: UUID
    node_id: str
    node_type: str
    status: JobState
    sequence: int
    started_at: datetime
    input_payload: Any = None
    id: UUID | None = None


@dataclass(frozen=True, slots=True)
class PruneReport:
    timestamp: datetime
    items_scanned: int
    items_pruned: int
    items_spared_pinned: int
    items_spared_window: int
    total_bytes_freed: int
    dry_run: bool = False
    pruned_job_ids: tuple[UUID, ...] = ()
