"""API input to stored rows: every New* value and argument checked at the
boundary (``validation.py``) and laid out by column name (``tables.py``).

Also the translation of an INSERT's foreign-key and duplicate-key errors
into messages that read the same on every backend (:func:`inserting`).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from operator import itemgetter
from typing import Any, NamedTuple, TypeVar

from . import encoding, tables
from . import validation as check
from .errors import ConflictError, NotFoundError, StorageError, ValidationError
from .models import (
    METRIC_FIELDS,
    AccessMode,
    EntityRef,
    JobMetrics,
    JobState,
    NewAiJob,
    NewBlock,
    NewCanvasEdge,
    NewCanvasNode,
    NewNodeExecution,
    OperationType,
    PlannedOperation,
    SafetyMode,
)
from .tables import (
    AI_JOBS,
    BLOCKS,
    CANVAS_EDGES,
    CANVAS_NODES,
    CANVASES,
    DOCUMENTS,
    STAMP,
    WORKFLOW_NODE_EXECUTIONS,
    WORKSPACES,
)

T = TypeVar("T")


@contextmanager
def inserting(table: tables.Table, row: tuple[Any, ...]) -> Iterator[None]:
    """Around inserting ``row``: the backend's foreign-key and duplicate-key
    errors, which differ in wording per backend, become the same message on
    both, naming the missing parent or the taken key.

    Only this table's own constraint failures are renamed: another
    statement of the transaction (the change ledger's append) or a
    serialization conflict keeps its own error."""
    try:
        yield
    except NotFoundError as exc:
        # A foreign key of this table (SQLite's error names no table).
        if table.parent is None or exc.backend_code is None or exc.table not in (None, table.name):
            raise
        parent = table.parent
        message = f"{parent.what} {_shown(table, parent.column, row)} does not exist"
        error: StorageError = NotFoundError(message, **_facts(exc, table))
    except ConflictError as exc:
        if exc.table != table.name:  # a duplicate key names its table on both backends
            raise
        message = f"{table.what} {_shown(table, table.key, row)} already exists"
        error = ConflictError(message, **_facts(exc, table))
    else:
        return
    raise error from None


def _shown(table: tables.Table, column: str, row: tuple[Any, ...]) -> str:
    """A key as messages show it: a UUID plain, a content id quoted."""
    value = row[table.at[column]]
    return str(value) if table.by_name[column].codec is tables.UUID_TEXT else repr(value)


def _facts(exc: StorageError, table: tables.Table) -> dict[str, Any]:
    """The backend's structured facts, with the table written (SQLite's
    foreign-key error names none)."""
    return {
        "backend": exc.backend,
        "backend_code": exc.backend_code,
        "table": table.name,
        "constraint": exc.constraint,
    }


def expect(value: Any, cls: type[T], name: str) -> T:
    if not isinstance(value, cls):
        raise ValidationError(f"{name} must be a {cls.__name__}, not {type(value).__name__}")
    return value


def sequence_of(value: Any, name: str) -> Sequence[Any]:
    if isinstance(value, str | bytes) or not isinstance(value, list | tuple):
        raise ValidationError(f"{name} must be a list, not {type(value).__name__}")
    return value


def new_id(value: Any) -> str:
    return str(uuid.uuid4()) if value is None else check.identifier(value, "id")


def non_empty(value: Any, name: str) -> str:
    value = check.text(value, name)
    if not value:
        raise ValidationError(f"{name} must not be empty")
    return value


class BlockValues(NamedTuple):
    """A NewBlock's checked values; the field names are column names."""

    id: str
    document_id: str
    kind: str
    sequence: int
    raw_content: str
    display_content: str
    derived_content: str


workspace_row = WORKSPACES.maker("id", "name", *STAMP)
document_row = DOCUMENTS.maker("id", "workspace_id", "title", *STAMP)
canvas_row = CANVASES.maker("id", "workspace_id", "title", *STAMP)
block_row = BLOCKS.maker(*BlockValues._fields, *STAMP)
#: Node and edge rows take the write's stamp as one tuple (a graph is
#: hundreds of rows with the same stamp).
_NODE_ROW = CANVAS_NODES.maker(
    "id", "canvas_id", "ordinal", "kind", "position_x", "position_y", "data", tail=STAMP
)
_EDGE_ROW = CANVAS_EDGES.maker(
    "id", "canvas_id", "ordinal", "from_node_id", "to_node_id", "kind", tail=STAMP
)
BLOCK_DOCUMENT = BLOCKS.at["document_id"]
#: Blocks by sequence, then id (the order get_blocks returns), on stored rows.
block_row_order = itemgetter(BLOCKS.at["sequence"], BLOCKS.at["id"])
_NODE_ID, _EDGE_ID = CANVAS_NODES.at["id"], CANVAS_EDGES.at["id"]
_FROM, _TO = CANVAS_EDGES.at["from_node_id"], CANVAS_EDGES.at["to_node_id"]
_EDGE_KEY, _EDGE_FROM, _EDGE_TO = itemgetter(_EDGE_ID), itemgetter(_FROM), itemgetter(_TO)


def block_values(block: Any) -> BlockValues:
    new = expect(block, NewBlock, "block")
    raw = check.text(new.raw_content, "raw_content")
    display = (
        raw if new.display_content is None else check.text(new.display_content, "display_content")
    )
    derived = (
        "{}"
        if new.derived_content is None
        else check.json_text(new.derived_content, "derived_content")
    )
    return BlockValues(
        new_id(new.id),
        check.identifier(new.document_id, "document_id"),
        check.text(new.kind, "kind"),
        check.integer(new.sequence, "sequence"),
        raw,
        display,
        derived,
    )


def graph_rows(
    canvas_id: str, nodes: Sequence[Any], edges: Sequence[Any], stamp: tuple[Any, ...]
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """The stored rows of a new canvas graph: each node, then each edge,
    checked in order, then the graph as a whole (:func:`check_graph`), so
    the first problem is the one reported."""
    node_rows = [_node_row(n, canvas_id, i, stamp) for i, n in enumerate(nodes)]
    node_ids = {r[_NODE_ID] for r in node_rows}
    edge_rows = [_edge_row(e, canvas_id, i, stamp, node_ids) for i, e in enumerate(edges)]
    check_graph(node_rows, edge_rows, node_ids)
    return node_rows, edge_rows


def _node_row(node: Any, canvas_id: str, ordinal: int, stamp: tuple[Any, ...]) -> tuple[Any, ...]:
    new = expect(node, NewCanvasNode, "node")
    return _NODE_ROW(
        new_id(new.id),
        canvas_id,
        ordinal,
        check.text(new.kind, "kind"),
        check.number(new.position_x, "position_x"),
        check.number(new.position_y, "position_y"),
        "{}" if new.data is None else check.json_text(new.data, "data"),
        stamp,
    )


def _edge_row(
    edge: Any, canvas_id: str, ordinal: int, stamp: tuple[Any, ...], node_ids: set[str]
) -> tuple[Any, ...]:
    """An edge's row. An end that is a ``str`` equal to one of the graph's
    node ids is a checked identifier already (those ids were checked with
    their nodes); any other end is checked as an identifier here."""
    new = expect(edge, NewCanvasEdge, "edge")
    a, b = new.from_node_id, new.to_node_id
    return _EDGE_ROW(
        new_id(new.id),
        canvas_id,
        ordinal,
        a if type(a) is str and a in node_ids else check.identifier(a, "from_node_id"),
        b if type(b) is str and b in node_ids else check.identifier(b, "to_node_id"),
        check.text(new.kind, "kind"),
        stamp,
    )


def check_graph(
    node_rows: list[tuple[Any, ...]], edge_rows: list[tuple[Any, ...]], node_ids: set[str]
) -> None:
    """Ids are unique, and every edge connects nodes of the graph (``node_ids``:
    the ids of ``node_rows``). Each rule is first checked at once over all
    rows; only a graph that breaks it is searched for its first offender."""
    if len(node_ids) != len(node_rows):
        _unique_ids(node_rows, _NODE_ID, "node")
    if len(set(map(_EDGE_KEY, edge_rows))) != len(edge_rows):
        _unique_ids(edge_rows, _EDGE_ID, "edge")
    if node_ids.issuperset(map(_EDGE_FROM, edge_rows)) and node_ids.issuperset(
        map(_EDGE_TO, edge_rows)
    ):
        return
    for e in edge_rows:
        for end in (e[_FROM], e[_TO]):
            if end not in node_ids:
                raise ValidationError(
                    f"edge {e[_EDGE_ID]!r} refers to node {end!r}, not in the graph"
                )


def _unique_ids(rows: list[tuple[Any, ...]], at: int, what: str) -> set[str]:
    ids: set[str] = set()
    for row in rows:
        if row[at] in ids:
            raise ValidationError(f"{what} id {row[at]!r} appears twice")
        ids.add(row[at])
    return ids


def _entity_ref(value: Any, name: str) -> EntityRef:
    ref = expect(value, EntityRef, name)
    return EntityRef(
        check.text(ref.entity_id, f"{name}.entity_id"),
        check.text(ref.entity_kind, f"{name}.entity_kind"),
    )


def entity_refs(value: Any) -> list[EntityRef]:
    return [_entity_ref(r, "entity_refs[]") for r in sequence_of(value, "entity_refs")]


def planned_operations(value: Any) -> list[PlannedOperation]:
    ops = []
    for op in sequence_of(value, "planned_operations"):
        op = expect(op, PlannedOperation, "planned_operations[]")
        ops.append(
            PlannedOperation(
                check.enum(OperationType, op.op_type, "op_type"),
                _entity_ref(op.target, "target"),
                check.optional_text(op.description, "description"),
            )
        )
    return ops


def job_metrics(value: Any) -> JobMetrics:
    metrics = expect(value, JobMetrics, "metrics")
    return JobMetrics(
        **{
            name: check.non_negative_integer(getattr(metrics, name), f"metrics.{name}")
            for name in METRIC_FIELDS
        }
    )


def chunks(items: list[str], size: int) -> list[list[str]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def ai_job_row(job: Any, now: Any) -> tuple[Any, ...]:
    """The stored row of a NewAiJob, queued, created at the stored ``now``."""
    new = expect(job, NewAiJob, "job")
    refs = entity_refs(new.entity_refs)
    ops = planned_operations(new.planned_operations)
    metrics = job_metrics(new.metrics)
    return AI_JOBS.row(
        id=str(uuid.uuid4() if new.id is None else check.uuid(new.id, "id")),
        trace_id=str(check.uuid(new.trace_id, "trace_id")),
        job_kind=non_empty(new.job_kind, "job_kind"),
        status=JobState.QUEUED.value,
        status_reason=check.text(new.status_reason, "status_reason"),
        protocol_id=check.text(new.protocol_id, "protocol_id"),
        profile_id=check.text(new.profile_id, "profile_id"),
        capability_profile_id=check.text(new.capability_profile_id, "capability_profile_id"),
        access_mode=check.enum(AccessMode, new.access_mode, "access_mode").value,
        safety_mode=check.enum(SafetyMode, new.safety_mode, "safety_mode").value,
        entity_refs=check.json_text(encoding.entity_refs_to_json(refs), "entity_refs"),
        planned_operations=check.json_text(
            encoding.planned_operations_to_json(ops), "planned_operations"
        ),
        metrics=check.json_text(encoding.metrics_to_json(metrics), "metrics"),
        job_inputs=check.optional_json_text(new.job_inputs, "job_inputs"),
        is_pinned=check.boolean(new.is_pinned, "is_pinned"),
        created_at=now,
        updated_at=now,
    )


def node_execution_row(
    execution: Any, now: Any, encode_timestamp: Callable[[datetime], Any]
) -> tuple[Any, ...]:
    """The stored row of a NewNodeExecution, created at the stored ``now``."""
    new = expect(execution, NewNodeExecution, "execution")
    return WORKFLOW_NODE_EXECUTIONS.row(
        id=str(uuid.uuid4() if new.id is None else check.uuid(new.id, "id")),
        workflow_run_id=str(check.uuid(new.workflow_run_id, "workflow_run_id")),
        node_id=check.text(new.node_id, "node_id"),
        node_type=check.text(new.node_type, "node_type"),
        status=check.enum(JobState, new.status, "status").value,
        sequence=check.integer(new.sequence, "sequence"),
        input_payload=check.optional_json_text(new.input_payload, "input_payload"),
        started_at=encode_timestamp(check.timestamp(new.started_at, "started_at")),
        created_at=now,
        updated_at=now,
    )


def replacement_blocks(document_id: str, blocks: Any) -> list[BlockValues]:
    """The checked blocks of a replace_blocks call: each in ``document_id``,
    no id twice."""
    values = [block_values(b) for b in sequence_of(blocks, "blocks")]
    seen: set[str] = set()
    for v in values:
        if v.document_id != document_id:
            raise ValidationError(
                f"block {v.id!r} belongs to document {v.document_id!r}, not {document_id!r}"
            )
        if v.id in seen:
            raise ValidationError(f"block id {v.id!r} appears twice")
        seen.add(v.id)
    return values
