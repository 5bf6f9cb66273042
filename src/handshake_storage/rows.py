"""Rows to models and models to stored values, for columns that need it.

Kept apart from the queries so that the column order of ``queries.py`` and
the constructor calls here are read side by side. Timestamps are decoded by
the adapter (text on SQLite, native on PostgreSQL); everything else is the
same on both backends.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from .errors import StorageError
from .models import (
    AccessMode,
    AiJob,
    Block,
    Canvas,
    CanvasEdge,
    CanvasNode,
    Document,
    EntityRef,
    JobMetrics,
    JobState,
    OperationType,
    PlannedOperation,
    SafetyMode,
    WorkflowNodeExecution,
    WorkflowRun,
    Workspace,
    WriteActorKind,
)

Row = Sequence[Any]
Decode = Callable[[Any], datetime]

ACTOR = {m.value: m for m in WriteActorKind}
STATE = {m.value: m for m in JobState}
ACCESS = {m.value: m for m in AccessMode}
SAFETY = {m.value: m for m in SafetyMode}
OPERATION = {m.value: m for m in OperationType}
METRIC_FIELDS = tuple(JobMetrics.__dataclass_fields__)

_loads = json.loads


def opt_uuid(value: str | None) -> UUID | None:
    return None if value is None else UUID(value)


def opt_str(value: UUID | None) -> str | None:
    return None if value is None else str(value)


def loads(value: str | None) -> Any:
    if value is None:
        return None
    if value == "{}":
        return {}
    try:
        return _loads(value)
    except ValueError as exc:
        raise StorageError(f"stored JSON is corrupt: {exc}") from None


def workspace(r: Row, ts: Decode) -> Workspace:
    return Workspace(
        r[0],
        r[1],
        ts(r[2]),
        ts(r[3]),
        ACTOR[r[4]],
        r[5],
        opt_uuid(r[6]),
        opt_uuid(r[7]),
        UUID(r[8]),
    )


def document(r: Row, ts: Decode) -> Document:
    return Document(
        r[0],
        r[1],
        r[2],
        ts(r[3]),
        ts(r[4]),
        ACTOR[r[5]],
        r[6],
        opt_uuid(r[7]),
        opt_uuid(r[8]),
        UUID(r[9]),
    )


def block(r: Row, ts: Decode) -> Block:
    return Block(
        r[0],
        r[1],
        r[2],
        r[3],
        r[4],
        r[5],
        loads(r[6]),
        ts(r[7]),
        ts(r[8]),
        ACTOR[r[9]],
        r[10],
        opt_uuid(r[11]),
        opt_uuid(r[12]),
        UUID(r[13]),
    )


def canvas(r: Row, ts: Decode) -> Canvas:
    return Canvas(
        r[0],
        r[1],
        r[2],
        ts(r[3]),
        ts(r[4]),
        ACTOR[r[5]],
        r[6],
        opt_uuid(r[7]),
        opt_uuid(r[8]),
        UUID(r[9]),
    )


def node(r: Row, ts: Decode) -> CanvasNode:
    return CanvasNode(
        r[0],
        r[1],
        r[2],
        r[3],
        r[4],
        loads(r[5]),
        ts(r[6]),
        ts(r[7]),
        ACTOR[r[8]],
        r[9],
        opt_uuid(r[10]),
        opt_uuid(r[11]),
        UUID(r[12]),
    )


def edge(r: Row, ts: Decode) -> CanvasEdge:
    return CanvasEdge(
        r[0],
        r[1],
        r[2],
        r[3],
        r[4],
        ts(r[5]),
        ts(r[6]),
        ACTOR[r[7]],
        r[8],
        opt_uuid(r[9]),
        opt_uuid(r[10]),
        UUID(r[11]),
    )


def ai_job(r: Row, ts: Decode) -> AiJob:
    return AiJob(
        id=UUID(r[0]),
        trace_id=UUID(r[1]),
        workflow_run_id=opt_uuid(r[2]),
        job_kind=r[3],
        status=STATE[r[4]],
        status_reason=r[5],
        error_message=r[6],
        protocol_id=r[7],
        profile_id=r[8],
        capability_profile_id=r[9],
        access_mode=ACCESS[r[10]],
        safety_mode=SAFETY[r[11]],
        entity_refs=entity_refs_from_json(r[12]),
        planned_operations=planned_operations_from_json(r[13]),
        metrics=metrics_from_json(r[14]),
        job_inputs=loads(r[15]),
        job_outputs=loads(r[16]),
        is_pinned=bool(r[17]),
        created_at=ts(r[18]),
        updated_at=ts(r[19]),
    )


def workflow_run(r: Row, ts: Decode) -> WorkflowRun:
    return WorkflowRun(UUID(r[0]), UUID(r[1]), STATE[r[2]], r[3], ts(r[4]), ts(r[5]), ts(r[6]))


def node_execution(r: Row, ts: Decode) -> WorkflowNodeExecution:
    return WorkflowNodeExecution(
        UUID(r[0]),
        UUID(r[1]),
        r[2],
        r[3],
        STATE[r[4]],
        r[5],
        loads(r[6]),
        loads(r[7]),
        r[8],
        ts(r[9]),
        None if r[10] is None else ts(r[10]),
        ts(r[11]),
        ts(r[12]),
    )


# -- structured job fields <-> JSON-ready values ------------------------------


def entity_refs_to_json(refs: list[EntityRef]) -> list[dict[str, str]]:
    return [{"entity_id": r.entity_id, "entity_kind": r.entity_kind} for r in refs]


def planned_operations_to_json(ops: list[PlannedOperation]) -> list[dict[str, Any]]:
    return [
        {
            "op_type": op.op_type.value,
            "target": {"entity_id": op.target.entity_id, "entity_kind": op.target.entity_kind},
            "description": op.description,
        }
        for op in ops
    ]


def metrics_to_json(metrics: JobMetrics) -> dict[str, int]:
    return {name: getattr(metrics, name) for name in METRIC_FIELDS}


def entity_refs_from_json(text: str) -> list[EntityRef]:
    return [EntityRef(d["entity_id"], d["entity_kind"]) for d in loads(text)]


def planned_operations_from_json(text: str) -> list[PlannedOperation]:
    return [
        PlannedOperation(
            OPERATION[d["op_type"]],
            EntityRef(d["target"]["entity_id"], d["target"]["entity_kind"]),
            d.get("description"),
        )
        for d in loads(text)
    ]


def metrics_from_json(text: str) -> JobMetrics:
    data = loads(text)
    return JobMetrics(**{k: v for k, v in data.items() if k in METRIC_FIELDS})
