"""API values to stored values, where the stored form differs.

The structured fields of an AI job are stored as JSON text; these helpers
build the JSON-ready form. Decoding back lives beside the models
(``models.py``), field by field.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from .models import METRIC_FIELDS, EntityRef, JobMetrics, PlannedOperation


def opt_str(value: UUID | None) -> str | None:
    return None if value is None else str(value)


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
