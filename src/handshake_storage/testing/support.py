"""Shared pieces of the conformance suite: the seeded world, snapshots,
the value catalogues the input tests use, and the refusal helpers."""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest

from ..database import Database
from ..errors import (
    GuardError,
    NotFoundError,
    StorageError,
)
from ..guard import SILENT_EDIT, DefaultStorageGuard, MutationMetadata, WriteContext
from ..models import (
    AccessMode,
    BlockUpdate,
    NewAiJob,
    NewBlock,
    NewCanvas,
    NewCanvasEdge,
    NewCanvasNode,
    NewDocument,
    NewWorkspace,
    SafetyMode,
)

HUMAN = WriteContext.human("conformance-human")
SYSTEM = WriteContext.system("conformance-system")

#: Terms of the seeded blocks (and of the blocks the tests try to write);
#: :func:`snapshot` records what a search for each finds.
SEED_TERMS = ("alpha", "gamma", "epsilon", "intruder", "replacement")

CANONICAL_TABLES = (
    "workspaces",
    "documents",
    "blocks",
    "canvases",
    "canvas_nodes",
    "canvas_edges",
    "ai_jobs",
    "workflow_runs",
    "workflow_node_executions",
)
CONTENT_TABLES = CANONICAL_TABLES[:6]
TRACE_COLUMNS = ("last_actor_kind", "last_actor_id", "last_job_id", "last_workflow_id")

#: Content ids no backend may accept (wrong type, empty, too long, unstorable).
BAD_CONTENT_IDS = (
    123,
    None,
    b"ws-1",
    uuid.UUID(int=7),
    "",
    "x" * 256,
    "nul\x00id",
    "lone\ud800surrogate",
)
#: The same, for the ``id`` of a new row (where ``None`` asks for a fresh id).
BAD_NEW_IDS = tuple(v for v in BAD_CONTENT_IDS if v is not None)

#: Values that are not UUIDs (job, trace, run and node-execution ids).
BAD_UUIDS = (
    "not-a-uuid",
    "",
    123,
    None,
    b"\x00" * 16,
    1.5,
    "123e4567-e89b-12d3-a456-42661417400",
    "123e4567-e89b-12d3-a456-4266141740000",
    "g23e4567-e89b-12d3-a456-426614174000",
    "123e4567-e89b-12d3-a456-426614174000\x00",
)

#: Text no backend can store identically, or that is not text at all.
BAD_TEXT = ("\x00", "nul\x00inside", "\ud800", "lone \udfff surrogate", 42, b"bytes")

#: Text every backend must store and give back exactly.
GOOD_TEXT = (
    "plain",
    "Grüße 👋🏽 مرحبا 𝄞 日本語",
    "\u2028\u2029\ufeff\uffff\U0010ffff",
    "e\u0301 combining",
    "tab\tnewline\ncarriage\r",
    "\x01\x1f\x7f control",
    "'; DROP TABLE workspaces; -- %s ? $1 :name {C}",
    "x" * 20_000,
)

GOOD_INTEGERS = (0, 1, -1, 2**31, -(2**31) - 1, 2**53 + 1, 2**63 - 1, -(2**63))
BAD_INTEGERS = (2**63, -(2**63) - 1, 2**64, 10**30, 1.0, True, "1", None, Decimal(1))

GOOD_FLOATS = (
    0.0,
    -0.0,
    0.1,
    1 / 3,
    5e-324,
    -5e-324,
    2.2250738585072014e-308,
    1.7976931348623157e308,
    -1.7976931348623157e308,
    math.inf,
    -math.inf,
    2**53,
    -7,
)
BAD_FLOATS = (math.nan, -math.nan, True, "1.5", None, 2**53 + 1, 10**400, Decimal("1.5"))

GOOD_JSON = (
    [],
    0,
    -0.0,
    1.5,
    "text",
    True,
    False,
    {"nested": {"deep": [1, [2, [3, {"x": None}]]]}},
    {"big": 2**70, "negative": -(2**80), "int64": 2**63 - 1},
    {"floats": [5e-324, 1.7976931348623157e308, -0.0, 0.1, 1e16, 1.0]},
    {"unicode 👋": "nul \x00 line \u2028 max \U0010ffff", "": ""},
    {"bool": True, "int": 1, "float": 1.0},
    list(range(500)),
)

BAD_JSON = (
    math.nan,
    {"x": math.inf},
    [-math.inf],
    {"deep": [{"nan": math.nan}]},
    {1: "int key"},
    {None: "none key"},
    {(1, 2): "tuple key"},
    (1, 2),
    {"tuple": (1,)},
    {1, 2},
    b"bytes",
    object(),
    datetime(2024, 1, 1, tzinfo=UTC),
    uuid.UUID(int=1),
    Decimal("1.1"),
    {"s": "\ud800"},
    {"\udfff": 1},
)


def ai_context(actor_id: str | None = "conformance-agent") -> WriteContext:
    """An AI write context with a fresh job id and workflow id."""
    return WriteContext.ai(uuid.uuid4(), uuid.uuid4(), actor_id)


def now() -> datetime:
    return datetime.now(UTC)


def new_job(**fields: Any) -> NewAiJob:
    """A valid NewAiJob; keyword arguments override fields."""
    values: dict[str, Any] = {
        "trace_id": uuid.uuid4(),
        "job_kind": "conformance",
        "protocol_id": "protocol-1",
        "profile_id": "profile-1",
        "capability_profile_id": "capabilities-1",
        "access_mode": AccessMode.ANALYSIS_ONLY,
        "safety_mode": SafetyMode.NORMAL,
    }
    values.update(fields)
    return NewAiJob(**values)


def json_equal(a: Any, b: Any) -> bool:
    """JSON equality that also tells 1 from 1.0 from True and 0.0 from -0.0."""
    if type(a) is not type(b):
        return False
    if type(a) is float:
        return a.hex() == b.hex() if a == a else b != b
    if type(a) is dict:
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if type(a) is list:
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def float_identical(a: float, b: float) -> bool:
    return type(a) is float and type(b) is float and a.hex() == b.hex()


def assert_utc(value: datetime) -> None:
    assert isinstance(value, datetime), value
    assert value.utcoffset() == timedelta(0), value


# -- the seeded world -----------------------------------------------------------------------------


@dataclass(frozen=True)
class World:
    """Ids of the content :func:`seed` creates."""

    workspace: str = "ws-1"
    other_workspace: str = "ws-2"
    document: str = "doc-1"
    other_document: str = "doc-2"
    blocks: tuple[str, ...] = ("blk-1", "blk-2")
    other_block: str = "blk-other"
    canvas: str = "cnv-1"
    other_canvas: str = "cnv-2"
    nodes: tuple[str, ...] = ("node-1", "node-2")
    edge: str = "edge-1"
    other_nodes: tuple[str, ...] = ("node-other-1", "node-other-2")
    other_edge: str = "edge-other"


def seed(db: Database, ctx: WriteContext = HUMAN) -> World:
    """Two workspaces; two documents with blocks; two canvases with graphs."""
    w = World()
    db.create_workspace(ctx, NewWorkspace("Workspace one", id=w.workspace))
    db.create_workspace(ctx, NewWorkspace("Workspace two", id=w.other_workspace))
    db.create_document(ctx, NewDocument(w.workspace, "Document one", id=w.document))
    db.create_document(ctx, NewDocument(w.workspace, "Document two", id=w.other_document))
    db.create_block(ctx, NewBlock(w.document, "paragraph", 1, "alpha beta", id=w.blocks[0]))
    db.create_block(ctx, NewBlock(w.document, "heading", 2, "gamma delta", id=w.blocks[1]))
    db.create_block(ctx, NewBlock(w.other_document, "paragraph", 1, "epsilon", id=w.other_block))
    db.create_canvas(ctx, NewCanvas(w.workspace, "Canvas one", id=w.canvas))
    db.create_canvas(ctx, NewCanvas(w.workspace, "Canvas two", id=w.other_canvas))
    db.update_canvas_graph(
        ctx,
        w.canvas,
        [NewCanvasNode("note", 1.5, -2.5, {"t": 1}, id=n) for n in w.nodes],
        [NewCanvasEdge(w.nodes[0], w.nodes[1], "link", id=w.edge)],
    )
    db.update_canvas_graph(
        ctx,
        w.other_canvas,
        [NewCanvasNode("note", 0, 0, id=n) for n in w.other_nodes],
        [NewCanvasEdge(w.other_nodes[0], w.other_nodes[1], "link", id=w.other_edge)],
    )
    return w


def snapshot(
    db: Database,
    *,
    terms: tuple[str, ...] = SEED_TERMS,
    job_ids: tuple[UUID, ...] = (),
    run_ids: tuple[UUID, ...] = (),
) -> dict[Any, Any]:
    """Everything the API can read: all content (with each workspace's search
    results for ``terms``), the given jobs and the node executions of the
    given runs. Two equal snapshots mean nothing observable changed."""
    state: dict[Any, Any] = {}
    workspaces = db.list_workspaces()
    state["workspaces"] = workspaces
    for ws in workspaces:
        documents = db.list_documents(ws.id)
        state["documents", ws.id] = documents
        for document in documents:
            state["document", document.id] = db.get_document(document.id)
            state["blocks", document.id] = db.get_blocks(document.id)
        canvases = db.list_canvases(ws.id)
        state["canvases", ws.id] = canvases
        for canvas in canvases:
            state["graph", canvas.id] = db.get_canvas_with_graph(canvas.id)
        for term in terms:
            state["search", ws.id, term] = db.search_blocks(ws.id, term)
    for job_id in job_ids:
        try:
            state["job", job_id] = db.get_ai_job(job_id)
        except NotFoundError:
            state["job", job_id] = None
    for run_id in run_ids:
        state["executions", run_id] = db.list_workflow_node_executions(run_id)
    return state


class RecordingGuard:
    """A custom guard: records every call, refuses resources by prefix, and can
    stamp its own actor id or take timestamps from a clock."""

    def __init__(
        self,
        refuse_prefix: str = "forbidden",
        *,
        actor_id: str | None = None,
        clock: Iterator[datetime] | None = None,
        allow_ai_without_workflow: bool = False,
    ) -> None:
        self.refuse_prefix = refuse_prefix
        self.actor_id = actor_id
        self.clock = clock
        self.allow_ai_without_workflow = allow_ai_without_workflow
        self.calls: list[tuple[WriteContext, str]] = []

    def validate_write(self, ctx: WriteContext, resource_id: str) -> MutationMetadata:
        self.calls.append((ctx, resource_id))
        if resource_id.startswith(self.refuse_prefix):
            raise GuardError(f"{SILENT_EDIT}: {resource_id!r} is write-protected")
        if self.allow_ai_without_workflow:
            meta = MutationMetadata(
                ctx.actor_kind,
                ctx.actor_id,
                ctx.job_id,
                ctx.workflow_id,
                uuid.uuid4(),
                resource_id,
                now(),
            )
        else:
            meta = DefaultStorageGuard().validate_write(ctx, resource_id)
        if self.actor_id is not None:
            meta = replace(meta, actor_id=self.actor_id)
        if self.clock is not None:
            meta = replace(meta, timestamp=next(self.clock))
        return meta


def clock(*times: datetime) -> Iterator[datetime]:
    yield from times


# -- content writes, for the guard and refusal tests ----------------------------------------------

Write = Callable[[Database, WriteContext, World], Any]

CONTENT_WRITES: tuple[tuple[str, Write], ...] = (
    ("create_workspace", lambda db, c, w: db.create_workspace(c, NewWorkspace("n", id="ws-new"))),
    ("delete_workspace", lambda db, c, w: db.delete_workspace(c, w.workspace)),
    (
        "create_document",
        lambda db, c, w: db.create_document(c, NewDocument(w.workspace, "t", id="doc-new")),
    ),
    ("delete_document", lambda db, c, w: db.delete_document(c, w.document)),
    (
        "create_block",
        lambda db, c, w: db.create_block(c, NewBlock(w.document, "p", 9, "intruder", id="blk-new")),
    ),
    (
        "update_block",
        lambda db, c, w: db.update_block(c, w.blocks[0], BlockUpdate(raw_content="intruder")),
    ),
    ("delete_block", lambda db, c, w: db.delete_block(c, w.blocks[0])),
    (
        "replace_blocks",
        lambda db, c, w: db.replace_blocks(
            c, w.document, [NewBlock(w.document, "p", 1, "replacement", id="blk-new")]
        ),
    ),
    (
        "create_canvas",
        lambda db, c, w: db.create_canvas(c, NewCanvas(w.workspace, "t", id="c-new")),
    ),
    (
        "update_canvas_graph",
        lambda db, c, w: db.update_canvas_graph(
            c, w.canvas, [NewCanvasNode("k", 0, 0, id="node-new")], []
        ),
    ),
    ("delete_canvas", lambda db, c, w: db.delete_canvas(c, w.canvas)),
)

WRITE_PARAMS = [pytest.param(name, fn, id=name) for name, fn in CONTENT_WRITES]


def refusals(values: tuple[Any, ...], call: Callable[[Any], Any], error: type) -> list[str]:
    """Call ``call(value)`` for each value; describe every one not refused with ``error``."""
    problems = []
    for value in values:
        try:
            result = call(value)
        except error:
            continue
        except StorageError as exc:
            problems.append(f"{value!r}: {type(exc).__name__} instead of {error.__name__}: {exc}")
        except Exception as exc:  # a driver or Python error escaped the API
            problems.append(f"{value!r}: {type(exc).__name__} escaped the API: {exc}")
        else:
            problems.append(f"{value!r}: accepted, returned {result!r}")
    return problems


def refused_without_change(
    db: Database, before: Any, cases: list[tuple[str, Callable[[], Any], type]]
) -> list[str]:
    """Run each named call; describe every one not refused with its error, and
    the first after which the database is no longer ``before`` (then stop)."""
    problems = []
    for name, call, error in cases:
        try:
            call()
        except error:
            pass
        except Exception as exc:
            problems.append(f"{name}: {type(exc).__name__}: {exc}")
        else:
            problems.append(f"{name}: accepted")
        if snapshot(db) != before:
            problems.append(f"{name}: the database changed")
            break
    return problems
