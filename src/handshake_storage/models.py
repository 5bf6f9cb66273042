"""Domain types: what the storage API accepts and returns.

Rows come back as frozen dataclasses so a caller can compare, hash and pass
them around without aliasing surprises. ``New*`` types are inputs; fields
left ``None`` get the documented default. Content ids are ``str``; job,
trace, workflow-run and node-execution ids are ``uuid.UUID``; datetimes are
timezone-aware UTC.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID


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
# Content: workspaces, documents, blocks, canvases
# --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Workspace:
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


@dataclass(frozen=True, slots=True)
class Document:
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


@dataclass(frozen=True, slots=True)
class Block:
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


@dataclass(frozen=True, slots=True)
class Canvas:
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


@dataclass(frozen=True, slots=True)
class CanvasNode:
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


@dataclass(frozen=True, slots=True)
class CanvasEdge:
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


@dataclass(frozen=True, slots=True)
class AiJob:
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
    """A status transition; optional fields left ``None`` keep their value."""

    job_id: UUID
    status: JobState
    status_reason: str = ""
    error_message: str | None = None
    metrics: JobMetrics | None = None
    workflow_run_id: UUID | None = None
    trace_id: UUID | None = None
    job_outputs: Any = None


@dataclass(frozen=True, slots=True)
class WorkflowRun:
    id: UUID
    job_id: UUID
    status: JobState
    error_message: str | None
    last_heartbeat: datetime
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class WorkflowNodeExecution:
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
