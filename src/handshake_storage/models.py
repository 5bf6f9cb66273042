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

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from . import tables
from .enums import TERMINAL_JOB_STATES as TERMINAL_JOB_STATES
from .enums import (
    AccessMode,
    JobState,
    OperationType,
    SafetyMode,
    WriteActorKind,
)
from .record import Record
from .tables import load_json

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
# Decoders of the JSON columns the API reads as value objects (the other
# columns decode through their codec in tables.py)
# --------------------------------------------------------------------------

TimestampDecoder = Callable[[Any], datetime]
_OPERATION = {m.value: m for m in OperationType}


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


class _Stamped(Record):
    """The timestamps and traceability fields every content record carries."""

    __slots__ = ()
    created_at: datetime
    updated_at: datetime
    last_actor_kind: WriteActorKind
    last_actor_id: str | None
    last_job_id: UUID | None
    last_workflow_id: UUID | None
    edit_event_id: UUID


# --------------------------------------------------------------------------
# Content: workspaces, documents, blocks, canvases
# --------------------------------------------------------------------------


class Workspace(_Stamped, table=tables.WORKSPACES):
    __slots__ = ()
    id: str
    name: str


@dataclass(frozen=True, slots=True)
class NewWorkspace:
    name: str
    id: str | None = None


class Document(_Stamped, table=tables.DOCUMENTS):
    __slots__ = ()
    id: str
    workspace_id: str
    title: str


@dataclass(frozen=True, slots=True)
class NewDocument:
    workspace_id: str
    title: str
    id: str | None = None


class Block(_Stamped, table=tables.BLOCKS):
    __slots__ = ()
    id: str
    document_id: str
    kind: str
    sequence: int
    raw_content: str
    display_content: str
    derived_content: Any


@dataclass(frozen=True, slots=True)
class SearchHit:
    """A block found by ``search_hits``: its score (an integer, higher is
    better; identical on every backend) and a snippet of its raw_content
    around the first match, matched words between ``**``."""

    block: Block
    score: int
    snippet: str


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
    """Fields to change; ``None`` leaves a field as it is, except that a new
    ``raw_content`` without ``display_content`` sets the display to it too
    (the display follows the raw content unless given explicitly)."""

    kind: str | None = None
    sequence: int | None = None
    raw_content: str | None = None
    display_content: str | None = None
    derived_content: Any = None


class Canvas(_Stamped, table=tables.CANVASES):
    __slots__ = ()
    id: str
    workspace_id: str
    title: str


@dataclass(frozen=True, slots=True)
class NewCanvas:
    workspace_id: str
    title: str
    id: str | None = None


class CanvasNode(_Stamped, table=tables.CANVAS_NODES):
    __slots__ = ()
    id: str
    canvas_id: str
    kind: str
    position_x: float
    position_y: float
    data: Any


@dataclass(frozen=True, slots=True)
class NewCanvasNode:
    """A node of a canvas graph; ``data`` defaults to ``{}``."""

    kind: str
    position_x: float
    position_y: float
    data: Any = None
    id: str | None = None


class CanvasEdge(_Stamped, table=tables.CANVAS_EDGES):
    __slots__ = ()
    id: str
    canvas_id: str
    from_node_id: str
    to_node_id: str
    kind: str


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
    table=tables.AI_JOBS,
    decoders={
        "entity_refs": _entity_refs,
        "planned_operations": _planned_operations,
        "metrics": _metrics,
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


class WorkflowRun(Record, table=tables.WORKFLOW_RUNS):
    __slots__ = ()
    id: UUID
    job_id: UUID
    status: JobState
    error_message: str | None
    last_heartbeat: datetime
    created_at: datetime
    updated_at: datetime


class WorkflowNodeExecution(Record, table=tables.WORKFLOW_NODE_EXECUTIONS):
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
