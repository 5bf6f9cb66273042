"""What every Handshake Storage backend must do, as pytest tests.

:class:`StorageConformance` exercises every public method of
:class:`~handshake_storage.Database`: the happy paths, the failure paths
(missing rows, malformed ids, constraint violations, guard refusals,
values a backend could not store), deterministic ordering, atomicity of the
whole-content replacements, traceability columns, and a closed database.
After every refusal it reads the whole database back through the API and
requires it to be unchanged.

Fixtures a subclass provides (see :mod:`handshake_storage.testing`):

``db``
    A migrated, empty ``Database``, new for each test.
``database_url`` (or override ``database_factory``)
    The URL of a further empty database. The default ``database_factory``
    opens it with ``open_database(url, **options)`` (e.g. ``guard=...``)
    and migrates it.
"""

from __future__ import annotations

import inspect
import math
import re
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from functools import partial
from typing import Any
from uuid import UUID

import pytest

from ..database import Database, open_database
from ..errors import (
    BackendUnavailableError,
    ConflictError,
    GuardError,
    MigrationError,
    NotFoundError,
    StorageError,
    ValidationError,
)
from ..guard import SILENT_EDIT, DefaultStorageGuard, MutationMetadata, WriteContext
from ..models import (
    TERMINAL_JOB_STATES,
    AccessMode,
    AiJob,
    BlockUpdate,
    EntityRef,
    JobMetrics,
    JobState,
    JobStatusUpdate,
    NewAiJob,
    NewBlock,
    NewCanvas,
    NewCanvasEdge,
    NewCanvasNode,
    NewDocument,
    NewNodeExecution,
    NewWorkspace,
    OperationType,
    PlannedOperation,
    SafetyMode,
    WriteActorKind,
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

_WRITE_PARAMS = [pytest.param(name, fn, id=name) for name, fn in CONTENT_WRITES]


def _refusals(values: tuple[Any, ...], call: Callable[[Any], Any], error: type) -> list[str]:
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


def _refused_without_change(
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


# ------------------------------------------------------------------------------------


class StorageConformance:
    """The conformance suite. Subclass it in a test module (``Test...``) and
    provide the ``db`` fixture and a ``database_url`` fixture (or override
    ``database_factory``)."""

    @pytest.fixture
    def database_factory(self, database_url: str) -> Iterator[Callable[..., Database]]:
        """Opens the ``database_url`` database with ``open_database`` options
        (e.g. ``guard=``) and migrates it; closed after the test."""
        opened: list[Database] = []

        def factory(**options: Any) -> Database:
            database = open_database(database_url, **options)
            opened.append(database)
            database.run_migrations()
            return database

        yield factory
        for database in opened:
            database.close()

    # -- the suite itself -------------------------------------------------------------------------

    def test_suite_exercises_every_public_method(self) -> None:
        source = inspect.getsource(sys.modules[__name__])
        public = sorted(name for name in dir(Database) if not name.startswith("_"))
        missing = [name for name in public if not re.search(rf"\.{name}\b", source)]
        assert public and not missing, f"conformance suite does not exercise: {missing}"

    # -- lifecycle --------------------------------------------------------------------------------

    def test_ping(self, db: Database) -> None:
        assert db.ping() is None

    def test_identity_properties(self, db: Database) -> None:
        assert isinstance(db.backend, str) and db.backend
        assert isinstance(db.url, str) and db.url
        assert db.url in repr(db)
        info = db.describe()
        assert info and all(isinstance(k, str) and isinstance(v, str) for k, v in info.items())

    def test_migrations_and_indexes_through_the_facade(self, db: Database) -> None:
        latest = db.migrations.latest
        assert latest >= 1 and db.migrations.current_version() == latest
        assert db.migrations.plan().steps == ()
        assert [r.state for r in db.migrations.status()] == ["applied"] * latest
        declared = db.indexes.declared()
        assert declared and db.indexes.problems() == []
        results = db.indexes.verify()
        assert [r.name for r in results if not r.equal] == []
        assert {r.name for r in results} == {o.name for o in declared}

    def test_schema_has_canonical_tables_with_traceability(self, db: Database) -> None:
        tables = db.schema().tables
        missing = [t for t in CANONICAL_TABLES if t not in tables]
        assert not missing, missing
        for name in CONTENT_TABLES:
            columns = {c.name: c for c in tables[name].columns}
            for column in (*TRACE_COLUMNS, "edit_event_id"):
                assert column in columns, (name, column)
            assert not columns["last_actor_kind"].nullable, name
            assert not columns["edit_event_id"].nullable, name
            assert tables[name].primary_key == ("id",), name

    def test_context_manager_closes(self, database_factory: Callable[..., Database]) -> None:
        with database_factory() as database:
            database.ping()
        with pytest.raises(BackendUnavailableError):
            database.ping()
        database.close()  # closing twice is harmless
        with pytest.raises(BackendUnavailableError):
            database.list_workspaces()

    def test_closed_database_raises_backend_unavailable(self, db: Database) -> None:
        w = seed(db)
        job = db.create_ai_job(new_job())
        run = db.create_workflow_run(job.id, JobState.RUNNING)
        execution = db.create_workflow_node_execution(
            NewNodeExecution(run.id, "n", "t", JobState.RUNNING, 0, now())
        )
        db.close()
        calls: dict[str, Callable[[], Any]] = {
            "ping": lambda: db.ping(),
            "describe": lambda: db.describe(),
            "schema": lambda: db.schema(),
            "run_migrations": lambda: db.run_migrations(),
            "rollback_migrations": lambda: db.rollback_migrations(0),
            "migration_status": lambda: db.migration_status(),
            "list_workspaces": lambda: db.list_workspaces(),
            "get_workspace": lambda: db.get_workspace(w.workspace),
            "create_workspace": lambda: db.create_workspace(HUMAN, NewWorkspace("n")),
            "delete_workspace": lambda: db.delete_workspace(HUMAN, w.workspace),
            "list_documents": lambda: db.list_documents(w.workspace),
            "get_document": lambda: db.get_document(w.document),
            "create_document": lambda: db.create_document(HUMAN, NewDocument(w.workspace, "t")),
            "delete_document": lambda: db.delete_document(HUMAN, w.document),
            "get_blocks": lambda: db.get_blocks(w.document),
            "get_block": lambda: db.get_block(w.blocks[0]),
            "create_block": lambda: db.create_block(HUMAN, NewBlock(w.document, "p", 1, "x")),
            "update_block": lambda: db.update_block(HUMAN, w.blocks[0], BlockUpdate(kind="k")),
            "delete_block": lambda: db.delete_block(HUMAN, w.blocks[0]),
            "replace_blocks": lambda: db.replace_blocks(HUMAN, w.document, []),
            "search_blocks": lambda: db.search_blocks(w.workspace, "alpha"),
            "create_canvas": lambda: db.create_canvas(HUMAN, NewCanvas(w.workspace, "t")),
            "list_canvases": lambda: db.list_canvases(w.workspace),
            "get_canvas_with_graph": lambda: db.get_canvas_with_graph(w.canvas),
            "update_canvas_graph": lambda: db.update_canvas_graph(HUMAN, w.canvas, [], []),
            "delete_canvas": lambda: db.delete_canvas(HUMAN, w.canvas),
            "create_ai_job": lambda: db.create_ai_job(new_job()),
            "get_ai_job": lambda: db.get_ai_job(job.id),
            "update_ai_job_status": lambda: db.update_ai_job_status(
                JobStatusUpdate(job.id, JobState.RUNNING)
            ),
            "set_job_outputs": lambda: db.set_job_outputs(job.id, {"a": 1}),
            "set_job_pinned": lambda: db.set_job_pinned(job.id, True),
            "create_workflow_run": lambda: db.create_workflow_run(job.id, JobState.RUNNING),
            "update_workflow_run_status": lambda: db.update_workflow_run_status(
                run.id, JobState.FAILED
            ),
            "heartbeat_workflow": lambda: db.heartbeat_workflow(run.id, now()),
            "find_stalled_workflows": lambda: db.find_stalled_workflows(0),
            "create_workflow_node_execution": lambda: db.create_workflow_node_execution(
                NewNodeExecution(run.id, "n", "t", JobState.RUNNING, 1, now())
            ),
            "update_workflow_node_execution_status": (
                lambda: db.update_workflow_node_execution_status(execution.id, JobState.COMPLETED)
            ),
            "list_workflow_node_executions": lambda: db.list_workflow_node_executions(run.id),
            "prune_ai_jobs": lambda: db.prune_ai_jobs(now(), 0, dry_run=True),
        }
        problems = []
        for name, call in calls.items():
            try:
                call()
            except BackendUnavailableError:
                continue
            except Exception as exc:
                problems.append(f"{name}: {type(exc).__name__}: {exc}")
            else:
                problems.append(f"{name}: succeeded on a closed database")
        assert not problems, problems
        db.close()  # closing twice is harmless

    # -- migrations -------------------------------------------------------------------------------

    def test_migrated_database_is_up_to_date(self, db: Database) -> None:
        plan = db.run_migrations()
        assert plan.steps == () and plan.current == plan.target
        status = db.migration_status()
        assert status and all(s.state == "applied" for s in status), status
        assert [s.version for s in status] == list(range(1, len(status) + 1))
        assert all(s.file_checksum == s.db_checksum for s in status)
        assert plan.current == status[-1].version

    def test_rollback_and_reapply(self, database_factory: Callable[..., Database]) -> None:
        database = database_factory()
        latest = database.migration_status()[-1].version
        down = database.rollback_migrations(0)
        assert [s.direction for s in down.steps] == ["down"] * latest
        assert all(s.state == "pending" for s in database.migration_status())
        with pytest.raises(MigrationError):
            database.list_workspaces()
        up = database.run_migrations()
        assert [s.direction for s in up.steps] == ["up"] * latest
        database.create_workspace(HUMAN, NewWorkspace("after", id="ws-after"))
        assert [ws.id for ws in database.list_workspaces()] == ["ws-after"]

    def test_migration_targets_are_checked(self, db: Database) -> None:
        latest = db.migration_status()[-1].version
        for target in (-1, "1", 1.0, True, None):
            with pytest.raises(ValidationError):
                db.rollback_migrations(target)  # type: ignore[arg-type]
        with pytest.raises(MigrationError):
            db.run_migrations(latest + 1)
        with pytest.raises(MigrationError):
            db.run_migrations(0)  # above the target: use rollback
        assert all(s.state == "applied" for s in db.migration_status())

    # -- the guard --------------------------------------------------------------------------------

    def test_validate_write_with_guard_stamps_and_writes_nothing(self, db: Database) -> None:
        w = seed(db)
        before = snapshot(db)
        ctx = ai_context()
        first = db.validate_write_with_guard(ctx, w.document)
        second = db.validate_write_with_guard(ctx, w.document)
        assert isinstance(first, MutationMetadata)
        assert first.actor_kind is WriteActorKind.AI
        assert (first.actor_id, first.job_id, first.workflow_id) == (
            ctx.actor_id,
            ctx.job_id,
            ctx.workflow_id,
        )
        assert first.resource_id == w.document
        assert isinstance(first.edit_event_id, UUID)
        assert first.edit_event_id != second.edit_event_id
        assert_utc(first.timestamp)
        human = db.validate_write_with_guard(HUMAN, "anything")
        assert human.actor_kind is WriteActorKind.HUMAN and human.job_id is None
        system = db.validate_write_with_guard(SYSTEM, "anything")
        assert system.actor_kind is WriteActorKind.SYSTEM
        assert snapshot(db) == before

    def test_validate_write_with_guard_refuses_silent_ai_edits(self, db: Database) -> None:
        for ctx in (
            WriteContext.ai(None, None),
            WriteContext.ai(uuid.uuid4(), None),
            WriteContext.ai(None, uuid.uuid4()),
        ):
            with pytest.raises(GuardError) as raised:
                db.validate_write_with_guard(ctx, "ws-1")
            assert raised.value.code == SILENT_EDIT
            assert isinstance(raised.value, StorageError)

    def test_validate_write_with_guard_checks_its_input(self, db: Database) -> None:
        problems = _refusals(
            BAD_CONTENT_IDS, lambda v: db.validate_write_with_guard(HUMAN, v), ValidationError
        )
        bad_contexts = (
            None,
            "HUMAN",
            WriteContext("robot"),  # type: ignore[arg-type]
            WriteContext("human"),  # type: ignore[arg-type]
            WriteContext(WriteActorKind.AI, None, "not-a-uuid", uuid.uuid4()),  # type: ignore[arg-type]
            WriteContext(WriteActorKind.AI, None, uuid.uuid4(), 17),  # type: ignore[arg-type]
            WriteContext(WriteActorKind.HUMAN, "nul\x00"),
            WriteContext(WriteActorKind.HUMAN, 5),  # type: ignore[arg-type]
        )
        problems += _refusals(
            bad_contexts, lambda c: db.validate_write_with_guard(c, "ws-1"), ValidationError
        )
        assert not problems, problems

    def test_context_fields_are_normalized(self, db: Database) -> None:
        job_id, workflow_id = uuid.uuid4(), uuid.uuid4()
        ctx = WriteContext("AI", "agent", str(job_id), str(workflow_id).upper())  # type: ignore[arg-type]
        meta = db.validate_write_with_guard(ctx, "ws-x")
        assert meta.actor_kind is WriteActorKind.AI
        assert (meta.job_id, meta.workflow_id) == (job_id, workflow_id)
        ws = db.create_workspace(ctx, NewWorkspace("n", id="ws-x"))
        assert ws.last_actor_kind is WriteActorKind.AI
        assert (ws.last_job_id, ws.last_workflow_id) == (job_id, workflow_id)
        assert db.get_workspace("ws-x") == ws

    @pytest.mark.parametrize(("name", "write"), _WRITE_PARAMS)
    def test_silent_ai_write_is_refused_and_writes_nothing(
        self, db: Database, name: str, write: Write
    ) -> None:
        w = seed(db)
        before = snapshot(db)
        for ctx in (
            WriteContext.ai(None, None, "agent"),
            WriteContext.ai(uuid.uuid4(), None, "agent"),
            WriteContext.ai(None, uuid.uuid4(), "agent"),
        ):
            with pytest.raises(GuardError) as raised:
                write(db, ctx, w)
            assert raised.value.code == SILENT_EDIT
            assert snapshot(db) == before
        # the same write with a complete AI context is accepted and traced
        ctx = ai_context()
        write(db, ctx, w)
        after = snapshot(db)
        assert after != before
        stamped = [
            row
            for value in after.values()
            for row in (value if isinstance(value, list) else [value])
            if getattr(row, "last_job_id", None) == ctx.job_id
        ]
        if not name.startswith("delete_"):  # a deletion leaves no row to stamp
            assert stamped, "the accepted AI write left no row stamped with its job id"
            for row in stamped:
                assert row.last_actor_kind is WriteActorKind.AI
                assert row.last_workflow_id == ctx.workflow_id
                assert row.last_actor_id == ctx.actor_id

    @pytest.mark.parametrize(("name", "write"), _WRITE_PARAMS)
    def test_custom_guard_refusal_writes_nothing(
        self, database_factory: Callable[..., Database], name: str, write: Write
    ) -> None:
        plain = database_factory()
        w = seed(plain)
        guard = RecordingGuard(refuse_prefix="")  # refuses every write
        guarded = database_factory(guard=guard)
        before = snapshot(guarded)
        with pytest.raises(GuardError):
            write(guarded, HUMAN, w)
        assert guard.calls, "the custom guard was not consulted"
        ctx, resource = guard.calls[-1]
        assert isinstance(ctx, WriteContext) and ctx.actor_kind is WriteActorKind.HUMAN
        assert isinstance(resource, str) and resource
        assert snapshot(guarded) == before
        # the default guard lets the same human write through
        write(plain, HUMAN, w)
        assert snapshot(plain) != before

    def test_custom_guard_is_consulted_with_the_resource_id(
        self, database_factory: Callable[..., Database]
    ) -> None:
        guard = RecordingGuard(actor_id="stamped-by-guard")
        db = database_factory(guard=guard)
        w = seed(db)
        resources = [r for _, r in guard.calls]
        assert resources[:4] == [w.workspace, w.other_workspace, w.document, w.other_document]
        assert w.blocks[0] in resources and w.canvas in resources
        ws = db.get_workspace(w.workspace)
        assert ws is not None and ws.last_actor_id == "stamped-by-guard"
        with pytest.raises(GuardError):
            db.create_workspace(HUMAN, NewWorkspace("n", id="forbidden-ws"))
        with pytest.raises(GuardError):
            db.create_block(HUMAN, NewBlock(w.document, "p", 1, "x", id="forbidden-b"))
        assert db.get_workspace("forbidden-ws") is None
        with pytest.raises(NotFoundError):
            db.get_block("forbidden-b")
        with pytest.raises(GuardError):
            db.validate_write_with_guard(HUMAN, "forbidden-x")
        ctx = guard.calls[-1][0]
        assert ctx.actor_kind is WriteActorKind.HUMAN and ctx.actor_id == HUMAN.actor_id
        # each write names the row it changes (the document or canvas for a replacement)
        writes: list[tuple[Callable[[], Any], str]] = [
            (lambda: db.update_block(HUMAN, w.blocks[0], BlockUpdate(kind="k")), w.blocks[0]),
            (lambda: db.delete_block(HUMAN, w.blocks[1]), w.blocks[1]),
            (lambda: db.replace_blocks(HUMAN, w.document, []), w.document),
            (lambda: db.update_canvas_graph(HUMAN, w.canvas, [], []), w.canvas),
            (lambda: db.delete_canvas(HUMAN, w.canvas), w.canvas),
            (lambda: db.delete_document(HUMAN, w.document), w.document),
            (lambda: db.delete_workspace(HUMAN, w.workspace), w.workspace),
        ]
        for write, resource in writes:
            calls = len(guard.calls)
            write()
            assert [r for _, r in guard.calls[calls:]] == [resource]

    def test_custom_guard_can_relax_the_rule_but_not_the_schema(
        self, database_factory: Callable[..., Database]
    ) -> None:
        db = database_factory(guard=RecordingGuard(allow_ai_without_workflow=True))
        job_id = uuid.uuid4()
        ws = db.create_workspace(WriteContext.ai(job_id, None), NewWorkspace("n", id="ws-ai"))
        assert (ws.last_actor_kind, ws.last_job_id, ws.last_workflow_id) == (
            WriteActorKind.AI,
            job_id,
            None,
        )
        assert db.get_workspace("ws-ai") == ws
        # the schema itself refuses an AI edit without a job id
        with pytest.raises(ValidationError):
            db.create_workspace(WriteContext.ai(None, None), NewWorkspace("n", id="ws-ai-2"))
        assert db.get_workspace("ws-ai-2") is None
        assert [x.id for x in db.list_workspaces()] == ["ws-ai"]

    def test_faulty_custom_guards_are_guard_errors(
        self, database_factory: Callable[..., Database]
    ) -> None:
        class Raising:
            def validate_write(self, ctx: WriteContext, resource_id: str) -> MutationMetadata:
                raise RuntimeError("guard crashed")

        class ReturnsNone:
            def validate_write(self, ctx: WriteContext, resource_id: str) -> Any:
                return None

        class BadMetadata:
            def __init__(self, **changes: Any) -> None:
                self.changes = changes

            def validate_write(self, ctx: WriteContext, resource_id: str) -> MutationMetadata:
                meta = DefaultStorageGuard().validate_write(ctx, resource_id)
                return replace(meta, **self.changes)

        guards = (
            Raising(),
            ReturnsNone(),
            BadMetadata(timestamp=datetime(2024, 1, 1)),
            BadMetadata(timestamp="2024-01-01"),
            BadMetadata(actor_kind="robot"),
            BadMetadata(edit_event_id="not-a-uuid"),
            BadMetadata(job_id=42),
            BadMetadata(actor_id="nul\x00"),
        )
        for guard in guards:
            db = database_factory(guard=guard)
            with pytest.raises(GuardError):
                db.create_workspace(HUMAN, NewWorkspace("n", id="ws-1"))
            assert db.list_workspaces() == [], guard
        with pytest.raises(ValidationError):
            database_factory(guard=object())

    def test_custom_guard_metadata_types_are_normalized(
        self, database_factory: Callable[..., Database]
    ) -> None:
        job_id, workflow_id = uuid.uuid4(), uuid.uuid4()
        plus_five = timezone(timedelta(hours=5))
        moment = datetime(2030, 6, 1, 12, 0, 0, 123456, tzinfo=plus_five)

        class Loose:
            def validate_write(self, ctx: WriteContext, resource_id: str) -> MutationMetadata:
                return MutationMetadata(
                    "AI",  # type: ignore[arg-type]
                    "agent",
                    str(job_id),  # type: ignore[arg-type]
                    str(workflow_id),  # type: ignore[arg-type]
                    str(uuid.UUID(int=99)),  # type: ignore[arg-type]
                    resource_id,
                    moment,
                )

        db = database_factory(guard=Loose())
        ws = db.create_workspace(HUMAN, NewWorkspace("n", id="ws-loose"))
        assert ws.last_actor_kind is WriteActorKind.AI
        assert (ws.last_job_id, ws.last_workflow_id) == (job_id, workflow_id)
        assert ws.edit_event_id == uuid.UUID(int=99)
        assert ws.created_at == moment and ws.created_at.tzinfo is not plus_five
        assert_utc(ws.created_at)
        assert db.get_workspace("ws-loose") == ws

    # -- traceability -----------------------------------------------------------------------------

    def test_traceability_columns_are_persisted(self, db: Database) -> None:
        w = seed(db, SYSTEM)
        ws = db.get_workspace(w.workspace)
        assert ws is not None
        assert (ws.last_actor_kind, ws.last_actor_id) == (WriteActorKind.SYSTEM, SYSTEM.actor_id)
        assert ws.last_job_id is None and ws.last_workflow_id is None
        ctx = ai_context()
        block = db.update_block(ctx, w.blocks[0], BlockUpdate(kind="rewritten"))
        assert block.last_actor_kind is WriteActorKind.AI
        assert (block.last_actor_id, block.last_job_id, block.last_workflow_id) == (
            ctx.actor_id,
            ctx.job_id,
            ctx.workflow_id,
        )
        assert db.get_block(w.blocks[0]) == block
        # other rows keep their own stamp
        untouched = db.get_block(w.blocks[1])
        assert untouched.last_actor_kind is WriteActorKind.SYSTEM
        human = db.update_block(HUMAN, w.blocks[0], BlockUpdate(kind="again"))
        assert (human.last_actor_kind, human.last_actor_id) == (
            WriteActorKind.HUMAN,
            HUMAN.actor_id,
        )
        assert human.last_job_id is None and human.last_workflow_id is None
        assert db.get_block(w.blocks[0]) == human

    def test_edit_event_id_is_fresh_for_every_write(self, db: Database) -> None:
        events = []
        ws = db.create_workspace(HUMAN, NewWorkspace("n", id="ws"))
        events.append(ws.edit_event_id)
        doc = db.create_document(HUMAN, NewDocument("ws", "t", id="doc"))
        events.append(doc.edit_event_id)
        block = db.create_block(HUMAN, NewBlock("doc", "p", 1, "x", id="b"))
        events.append(block.edit_event_id)
        for i in range(2):
            block = db.update_block(HUMAN, "b", BlockUpdate(sequence=i))
            events.append(block.edit_event_id)
            assert db.get_block("b").edit_event_id == block.edit_event_id
        replaced = db.replace_blocks(HUMAN, "doc", [NewBlock("doc", "p", 1, "y", id="b")])
        events.append(replaced[0].edit_event_id)
        assert db.get_document("doc").edit_event_id == replaced[0].edit_event_id
        canvas = db.create_canvas(HUMAN, NewCanvas("ws", "t", id="c"))
        events.append(canvas.edit_event_id)
        for _ in range(2):
            graph = db.update_canvas_graph(HUMAN, "c", [NewCanvasNode("k", 0, 0, id="n")], [])
            events.append(graph.canvas.edit_event_id)
            assert graph.nodes[0].edit_event_id == graph.canvas.edit_event_id
            assert db.get_canvas_with_graph("c") == graph
        assert all(isinstance(e, UUID) for e in events)
        assert len(set(events)) == len(events)
        assert db.get_workspace("ws") == ws

    def test_updates_advance_updated_at_and_keep_created_at(self, db: Database) -> None:
        w = seed(db)
        original = db.get_block(w.blocks[0])
        updated = db.update_block(HUMAN, w.blocks[0], BlockUpdate(display_content="shown"))
        assert updated.created_at == original.created_at
        assert updated.updated_at >= original.updated_at
        document = db.get_document(w.document)
        db.replace_blocks(HUMAN, w.document, [])
        touched = db.get_document(w.document)
        assert touched.created_at == document.created_at
        assert touched.updated_at >= document.updated_at
        assert touched.edit_event_id != document.edit_event_id
        canvas = db.get_canvas_with_graph(w.canvas).canvas
        graph = db.update_canvas_graph(HUMAN, w.canvas, [], [])
        assert graph.canvas.created_at == canvas.created_at
        assert graph.canvas.updated_at >= canvas.updated_at
        assert graph.canvas.edit_event_id != canvas.edit_event_id

    # -- workspaces -------------------------------------------------------------------------------

    def test_workspace_round_trip(self, db: Database) -> None:
        assert db.list_workspaces() == []
        ws = db.create_workspace(HUMAN, NewWorkspace("Notes ✍️", id="ws-1"))
        assert (ws.id, ws.name) == ("ws-1", "Notes ✍️")
        assert_utc(ws.created_at)
        assert ws.created_at == ws.updated_at
        assert db.get_workspace("ws-1") == ws
        assert db.list_workspaces() == [ws]
        generated = db.create_workspace(HUMAN, NewWorkspace("generated"))
        assert UUID(generated.id)  # a fresh UUID string
        assert db.get_workspace(generated.id) == generated
        longest = db.create_workspace(HUMAN, NewWorkspace("x", id="é" * 255))
        assert db.get_workspace("é" * 255) == longest

    def test_missing_workspace(self, db: Database) -> None:
        assert db.get_workspace("nope") is None
        with pytest.raises(NotFoundError):
            db.delete_workspace(HUMAN, "nope")
        assert db.list_documents("nope") == []
        assert db.list_canvases("nope") == []
        assert db.search_blocks("nope", "alpha") == []

    def test_duplicate_workspace_is_a_conflict(self, db: Database) -> None:
        w = seed(db)
        before = snapshot(db)
        with pytest.raises(ConflictError):
            db.create_workspace(HUMAN, NewWorkspace("impostor", id=w.workspace))
        assert snapshot(db) == before

    def test_delete_workspace_cascades(self, db: Database) -> None:
        w = seed(db)
        db.delete_workspace(HUMAN, w.workspace)
        assert db.get_workspace(w.workspace) is None
        assert [ws.id for ws in db.list_workspaces()] == [w.other_workspace]
        assert db.list_documents(w.workspace) == []
        assert db.list_canvases(w.workspace) == []
        for document in (w.document, w.other_document):
            with pytest.raises(NotFoundError):
                db.get_document(document)
            assert db.get_blocks(document) == []
        for block in (*w.blocks, w.other_block):
            with pytest.raises(NotFoundError):
                db.get_block(block)
        for canvas in (w.canvas, w.other_canvas):
            with pytest.raises(NotFoundError):
                db.get_canvas_with_graph(canvas)
        assert db.search_blocks(w.workspace, "alpha") == []
        # the ids are free again
        db.create_workspace(HUMAN, NewWorkspace("again", id=w.workspace))
        db.create_document(HUMAN, NewDocument(w.workspace, "t", id=w.document))
        db.create_block(HUMAN, NewBlock(w.document, "p", 1, "alpha", id=w.blocks[0]))
        assert [b.id for b in db.search_blocks(w.workspace, "alpha")] == [w.blocks[0]]

    def test_workspace_input_is_checked(self, db: Database) -> None:
        problems = _refusals(
            BAD_NEW_IDS,
            lambda v: db.create_workspace(HUMAN, NewWorkspace("n", id=v)),
            ValidationError,
        )
        problems += _refusals(
            BAD_TEXT, lambda v: db.create_workspace(HUMAN, NewWorkspace(v)), ValidationError
        )
        problems += _refusals(
            (None, "ws", {"name": "n"}),
            lambda v: db.create_workspace(HUMAN, v),
            ValidationError,
        )
        problems += _refusals(
            (None, "HUMAN", 1), lambda c: db.create_workspace(c, NewWorkspace("n")), ValidationError
        )
        assert not problems, problems
        assert db.list_workspaces() == []

    # -- documents --------------------------------------------------------------------------------

    def test_document_round_trip(self, db: Database) -> None:
        w = seed(db)
        doc = db.create_document(HUMAN, NewDocument(w.other_workspace, "Título", id="doc-x"))
        assert (doc.id, doc.workspace_id, doc.title) == ("doc-x", w.other_workspace, "Título")
        assert_utc(doc.created_at)
        assert db.get_document("doc-x") == doc
        assert db.list_documents(w.other_workspace) == [doc]
        generated = db.create_document(HUMAN, NewDocument(w.other_workspace, "g"))
        assert UUID(generated.id)
        assert db.get_document(generated.id) == generated

    def test_document_failures(self, db: Database) -> None:
        w = seed(db)
        before = snapshot(db)
        with pytest.raises(NotFoundError):
            db.get_document("nope")
        with pytest.raises(NotFoundError):
            db.delete_document(HUMAN, "nope")
        with pytest.raises(ConflictError):
            db.create_document(HUMAN, NewDocument(w.workspace, "t", id=w.document))
        with pytest.raises(ConflictError):  # ids are unique across workspaces
            db.create_document(HUMAN, NewDocument(w.other_workspace, "t", id=w.other_document))
        with pytest.raises(NotFoundError, match=r"^workspace 'no-such-workspace' does not exist$"):
            db.create_document(HUMAN, NewDocument("no-such-workspace", "t", id="doc-x"))
        problems = _refusals(
            BAD_CONTENT_IDS,
            lambda v: db.create_document(HUMAN, NewDocument(v, "t")),
            ValidationError,
        )
        problems += _refusals(
            BAD_NEW_IDS,
            lambda v: db.create_document(HUMAN, NewDocument(w.workspace, "t", id=v)),
            ValidationError,
        )
        problems += _refusals(
            BAD_TEXT,
            lambda v: db.create_document(HUMAN, NewDocument(w.workspace, v)),
            ValidationError,
        )
        problems += _refusals(
            (NewWorkspace("n"), None), lambda v: db.create_document(HUMAN, v), ValidationError
        )
        assert not problems, problems
        assert snapshot(db) == before

    def test_delete_document_cascades_to_blocks(self, db: Database) -> None:
        w = seed(db)
        db.delete_document(HUMAN, w.document)
        with pytest.raises(NotFoundError):
            db.get_document(w.document)
        assert db.get_blocks(w.document) == []
        for block in w.blocks:
            with pytest.raises(NotFoundError):
                db.get_block(block)
        assert db.search_blocks(w.workspace, "alpha") == []
        assert [d.id for d in db.list_documents(w.workspace)] == [w.other_document]
        assert [b.id for b in db.get_blocks(w.other_document)] == [w.other_block]

    # -- blocks -----------------------------------------------------------------------------------

    def test_block_round_trip_and_defaults(self, db: Database) -> None:
        w = seed(db)
        block = db.create_block(HUMAN, NewBlock(w.other_document, "code", -5, "print(1)"))
        assert UUID(block.id)
        assert (block.document_id, block.kind, block.sequence) == (w.other_document, "code", -5)
        assert block.raw_content == block.display_content == "print(1)"
        assert block.derived_content == {}
        assert_utc(block.created_at)
        assert db.get_block(block.id) == block
        full = db.create_block(
            HUMAN,
            NewBlock(
                w.other_document,
                "quote",
                2**63 - 1,
                "raw **md**",
                display_content="<b>md</b>",
                derived_content={"links": ["a", "b"], "score": 0.25},
                id="blk-full",
            ),
        )
        assert full.display_content == "<b>md</b>"
        assert json_equal(full.derived_content, {"links": ["a", "b"], "score": 0.25})
        assert db.get_block("blk-full") == full

    def test_block_failures(self, db: Database) -> None:
        w = seed(db)
        before = snapshot(db)
        with pytest.raises(NotFoundError):
            db.get_block("nope")
        with pytest.raises(NotFoundError):
            db.delete_block(HUMAN, "nope")
        with pytest.raises(NotFoundError):
            db.update_block(HUMAN, "nope", BlockUpdate(kind="k"))
        taken = f"^block {w.blocks[0]!r} already exists$"
        with pytest.raises(ConflictError, match=taken):
            db.create_block(HUMAN, NewBlock(w.document, "p", 1, "intruder", id=w.blocks[0]))
        with pytest.raises(ConflictError):  # ids are unique across documents
            db.create_block(HUMAN, NewBlock(w.document, "p", 1, "intruder", id=w.other_block))
        with pytest.raises(NotFoundError, match=r"^document 'no-such-document' does not exist$"):
            db.create_block(HUMAN, NewBlock("no-such-document", "p", 1, "intruder", id="b-x"))
        problems = _refusals(
            BAD_NEW_IDS,
            lambda v: db.create_block(HUMAN, NewBlock(w.document, "p", 1, "intruder", id=v)),
            ValidationError,
        )
        problems += _refusals(
            BAD_CONTENT_IDS,
            lambda v: db.create_block(HUMAN, NewBlock(v, "p", 1, "intruder")),
            ValidationError,
        )
        problems += _refusals(
            (NewDocument(w.workspace, "t"), None, "block"),
            lambda v: db.create_block(HUMAN, v),
            ValidationError,
        )
        assert not problems, problems
        assert snapshot(db) == before

    def test_blocks_ordered_by_sequence_then_id(self, db: Database) -> None:
        w = seed(db)
        specs = [
            (3, "b"),
            (1, "z"),
            (-(2**63), "low"),
            (1, "a"),
            (2**63 - 1, "high"),
            (1, "Z"),
            (1, "é"),
            (1, "😀"),
            (1, "\uff41"),
            (1, "_"),
            (1, "a2"),
            (0, "mid"),
        ]
        for sequence, block_id in specs:
            db.create_block(HUMAN, NewBlock(w.other_document, "p", sequence, "x", id=block_id))
        expected = sorted((*specs, (1, w.other_block)))
        got = db.get_blocks(w.other_document)
        assert [(b.sequence, b.id) for b in got] == expected
        assert got == [db.get_block(b.id) for b in got]

    def test_update_block(self, db: Database) -> None:
        w = seed(db)
        original = db.get_block(w.blocks[0])
        kind = db.update_block(HUMAN, w.blocks[0], BlockUpdate(kind="heading"))
        assert kind.kind == "heading"
        assert (kind.sequence, kind.raw_content, kind.display_content) == (
            original.sequence,
            original.raw_content,
            original.display_content,
        )
        assert kind.derived_content == original.derived_content
        assert db.get_block(w.blocks[0]) == kind
        everything = db.update_block(
            HUMAN,
            w.blocks[0],
            BlockUpdate(
                kind="p",
                sequence=-(2**63),
                raw_content="fresh words",
                display_content="Fresh words",
                derived_content={"v": [1, 2.5, None]},
            ),
        )
        assert (everything.kind, everything.sequence) == ("p", -(2**63))
        assert (everything.raw_content, everything.display_content) == (
            "fresh words",
            "Fresh words",
        )
        assert json_equal(everything.derived_content, {"v": [1, 2.5, None]})
        assert everything.created_at == original.created_at
        assert db.get_block(w.blocks[0]) == everything
        nothing = db.update_block(HUMAN, w.blocks[0], BlockUpdate())
        assert (nothing.kind, nothing.raw_content) == ("p", "fresh words")
        assert db.get_block(w.blocks[0]) == nothing
        # falsy values are values, not "leave unchanged"
        for derived in (False, 0, "", [], {}, 0.0):
            falsy = db.update_block(HUMAN, w.blocks[0], BlockUpdate(derived_content=derived))
            assert json_equal(falsy.derived_content, derived), derived
            assert json_equal(db.get_block(w.blocks[0]).derived_content, derived), derived
        empty = db.update_block(HUMAN, w.blocks[0], BlockUpdate(raw_content="", kind=""))
        assert (empty.raw_content, empty.kind) == ("", "")
        assert db.get_block(w.blocks[0]) == empty

    def test_update_block_refusals_change_nothing(self, db: Database) -> None:
        w = seed(db)
        before = snapshot(db)
        block_id = w.blocks[0]
        updates: list[Any] = [None, {"kind": "k"}, NewBlock(w.document, "p", 1, "x")]
        updates += [BlockUpdate(kind=v) for v in BAD_TEXT]
        updates += [BlockUpdate(raw_content=v) for v in BAD_TEXT]
        updates += [BlockUpdate(display_content=v) for v in BAD_TEXT]
        updates += [BlockUpdate(sequence=v) for v in BAD_INTEGERS if v is not None]
        updates += [BlockUpdate(derived_content=v) for v in BAD_JSON]
        problems = _refusals(
            tuple(updates), lambda u: db.update_block(HUMAN, block_id, u), ValidationError
        )
        problems += _refusals(
            BAD_CONTENT_IDS,
            lambda v: db.update_block(HUMAN, v, BlockUpdate(kind="k")),
            ValidationError,
        )
        assert not problems, problems
        assert snapshot(db) == before

    def test_delete_block(self, db: Database) -> None:
        w = seed(db)
        db.delete_block(HUMAN, w.blocks[0])
        with pytest.raises(NotFoundError):
            db.get_block(w.blocks[0])
        with pytest.raises(NotFoundError):
            db.delete_block(HUMAN, w.blocks[0])
        assert [b.id for b in db.get_blocks(w.document)] == [w.blocks[1]]
        assert db.search_blocks(w.workspace, "alpha") == []
        assert [b.id for b in db.search_blocks(w.workspace, "gamma")] == [w.blocks[1]]

    def test_replace_blocks(self, db: Database) -> None:
        w = seed(db)
        new = [
            NewBlock(w.document, "p", 2, "replacement two", id="r-2"),
            NewBlock(w.document, "p", 1, "replacement one", id="r-1"),
            NewBlock(w.document, "p", 1, "replacement zero", id="r-0"),
            NewBlock(w.document, "p", 3, "reuses an old id", id=w.blocks[0]),
        ]
        ctx = ai_context()
        result = db.replace_blocks(ctx, w.document, new)
        assert [(b.sequence, b.id) for b in result] == [
            (1, "r-0"),
            (1, "r-1"),
            (2, "r-2"),
            (3, w.blocks[0]),
        ]
        assert db.get_blocks(w.document) == result
        assert all(b.last_job_id == ctx.job_id for b in result)
        with pytest.raises(NotFoundError):
            db.get_block(w.blocks[1])
        assert db.search_blocks(w.workspace, "gamma") == []
        assert {b.id for b in db.search_blocks(w.workspace, "replacement")} == {
            "r-0",
            "r-1",
            "r-2",
        }
        assert db.search_blocks(w.workspace, "alpha") == []
        document = db.get_document(w.document)
        assert document.last_job_id == ctx.job_id
        assert document.edit_event_id == result[0].edit_event_id
        assert [b.id for b in db.get_blocks(w.other_document)] == [w.other_block]
        assert db.replace_blocks(HUMAN, w.document, []) == []
        assert db.get_blocks(w.document) == []
        assert db.replace_blocks(HUMAN, w.document, ()) == []

    def test_replace_blocks_refusals_change_nothing(self, db: Database) -> None:
        w = seed(db)
        before = snapshot(db)
        doc = w.document
        good = NewBlock(doc, "p", 1, "replacement", id="r-1")
        cases: list[tuple[str, Any, Any, type]] = [
            ("missing document", "no-such-doc", [], NotFoundError),
            (
                "block of another document",
                doc,
                [good, NewBlock(w.other_document, "p", 1, "x")],
                ValidationError,
            ),
            ("repeated id", doc, [good, good], ValidationError),
            ("not a list", doc, good, ValidationError),
            ("a string", doc, "blocks", ValidationError),
            ("a generator", doc, (b for b in [good]), ValidationError),
            ("not a block", doc, [good, NewDocument(w.workspace, "t")], ValidationError),
            (
                "NaN in the last block",
                doc,
                [good, NewBlock(doc, "p", 2, "x", derived_content=math.nan)],
                ValidationError,
            ),
            ("NUL in a block", doc, [good, NewBlock(doc, "p", 2, "x\x00")], ValidationError),
            (
                "sequence beyond 64 bits",
                doc,
                [good, NewBlock(doc, "p", 2**63, "x")],
                ValidationError,
            ),
            ("bad document id", "", [], ValidationError),
            # fails in the middle of the transaction, after the old blocks were deleted:
            (
                "id of another document's block",
                doc,
                [good, NewBlock(doc, "p", 2, "intruder", id=w.other_block)],
                ConflictError,
            ),
        ]
        problems = _refused_without_change(
            db,
            before,
            [
                (name, partial(db.replace_blocks, HUMAN, document_id, blocks), error)
                for name, document_id, blocks, error in cases
            ],
        )
        assert not problems, problems

    def test_block_values_round_trip(self, db: Database) -> None:
        w = seed(db)
        problems = []
        for i, text in enumerate(("", *GOOD_TEXT)):
            block = db.create_block(
                HUMAN, NewBlock(w.document, text, i, text, display_content=text, id=f"t{i}")
            )
            stored = db.get_block(f"t{i}")
            if stored != block or (stored.kind, stored.raw_content, stored.display_content) != (
                text,
                text,
                text,
            ):
                problems.append(f"text {text[:40]!r} did not round-trip")
        for i, sequence in enumerate(GOOD_INTEGERS):
            db.update_block(HUMAN, "t0", BlockUpdate(sequence=sequence))
            stored_sequence = db.get_block("t0").sequence
            if type(stored_sequence) is not int or stored_sequence != sequence:
                problems.append(f"sequence {sequence} came back as {stored_sequence!r} ({i})")
        for i, value in enumerate(GOOD_JSON):
            db.update_block(HUMAN, "t0", BlockUpdate(derived_content=value))
            stored_json = db.get_block("t0").derived_content
            if not json_equal(stored_json, value):
                problems.append(f"JSON {value!r:.60} came back as {stored_json!r:.60} ({i})")
        assert not problems, problems

    def test_deep_json_is_readable_or_refused(self, db: Database) -> None:
        w = seed(db)

        def nested(levels: int) -> Any:
            value: Any = {"leaf": True}
            for i in range(levels - 1):
                value = [value] if i % 2 else {"k": value}
            return value

        deep = nested(400)
        db.create_block(HUMAN, NewBlock(w.document, "p", 5, "deep", derived_content=deep, id="d"))

        def read_from_deep_stack(frames: int) -> Any:
            if frames:
                return read_from_deep_stack(frames - 1)
            return db.get_block("d").derived_content

        # accepted means readable, also by a caller with a deep stack of its own
        assert read_from_deep_stack(300) == deep
        assert db.get_blocks(w.document)[-1].derived_content == deep
        # near the interpreter's recursion limit: whatever is accepted must read back
        unreadable = []
        for levels in (600, 700, 800, 850, 900, 950, 980, 990, 995):
            value = nested(levels)
            try:
                db.update_block(HUMAN, "d", BlockUpdate(derived_content=value))
            except ValidationError:
                continue
            try:
                if read_from_deep_stack(100) != value:
                    unreadable.append(f"{levels} levels: read back different")
            except Exception as exc:
                unreadable.append(f"{levels} levels: {type(exc).__name__}")
        assert not unreadable, unreadable
        cyclic: list[Any] = []
        cyclic.append(cyclic)
        before = snapshot(db)
        problems = _refusals(
            (nested(5_000), nested(100_000), cyclic),
            lambda v: db.update_block(HUMAN, w.blocks[0], BlockUpdate(derived_content=v)),
            ValidationError,
        )
        assert not problems, [p[-200:] for p in problems]
        assert snapshot(db) == before

    # -- search -----------------------------------------------------------------------------------

    def test_search_blocks(self, db: Database) -> None:
        w = seed(db)
        doc = w.other_document
        db.replace_blocks(
            HUMAN,
            doc,
            [
                NewBlock(doc, "p", 1, "The quick brown fox", id="s-fox"),
                NewBlock(doc, "p", 2, "the lazy dog; THE END, the end", id="s-dog"),
                NewBlock(doc, "p", 3, "Straße und naïve Café", id="s-de"),
                NewBlock(doc, "p", 4, "emoji 😀 and 日本語 words", id="s-emoji"),
                NewBlock(doc, "p", 5, "fox " + "a" * 150, id="s-long"),
            ],
        )
        db.create_block(HUMAN, NewBlock(w.document, "p", 9, "the fox again", id="s-other-doc"))
        db.create_document(HUMAN, NewDocument(w.other_workspace, "t", id="doc-far"))
        db.create_block(HUMAN, NewBlock("doc-far", "p", 1, "the fox elsewhere", id="s-far"))

        def ids(query: str, limit: int = 50) -> list[str]:
            return [b.id for b in db.search_blocks(w.workspace, query, limit)]

        # best score first (more occurrences, shorter block), then block id
        assert ids("the") == ["s-dog", "s-other-doc", "s-fox"]
        assert ids("THE") == ids("the")
        assert ids("the end") == ["s-dog"]
        assert ids("fox quick") == ["s-fox"]
        assert ids("fox") == ["s-long", "s-other-doc", "s-fox"]  # 2, 3 and 4 words
        assert ids("fox", limit=2) == ["s-long", "s-other-doc"]
        hits = db.search_hits(w.workspace, "fox")
        assert [h.block.id for h in hits] == ids("fox")
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
        assert all("**fox**" in h.snippet for h in hits)
        assert [h.block.id for h in db.search_hits(w.workspace, "fox", 1, 1)] == ["s-other-doc"]
        assert ids("STRASSE café") == ["s-de"]
        assert ids("日本語") == ["s-emoji"]
        assert ids("A" * 150) == ["s-long"]
        assert ids("a" * 149) == []
        assert ids("missing") == []
        assert ids("fox missing") == []
        for empty in ("", "  ,;!  "):  # nothing to search for: refused
            with pytest.raises(ValidationError, match="no words"):
                ids(empty)
        assert [b.id for b in db.search_blocks(w.other_workspace, "fox")] == ["s-far"]
        for block in db.search_blocks(w.workspace, "the"):
            assert block == db.get_block(block.id)
        # the projection follows updates and deletes
        db.update_block(HUMAN, "s-fox", BlockUpdate(raw_content="a slow hound"))
        assert ids("quick") == [] and ids("hound") == ["s-fox"]
        db.update_block(HUMAN, "s-fox", BlockUpdate(display_content="display only"))
        assert ids("display") == [] and ids("hound") == ["s-fox"]
        db.delete_block(HUMAN, "s-dog")
        assert ids("end") == []

    def test_search_input_is_checked(self, db: Database) -> None:
        w = seed(db)
        problems = _refusals(
            BAD_CONTENT_IDS, lambda v: db.search_blocks(v, "alpha"), ValidationError
        )
        problems += _refusals(
            (None, 5, b"alpha", "nul\x00", "\ud800"),
            lambda q: db.search_blocks(w.workspace, q),
            ValidationError,
        )
        problems += _refusals(
            (0, -1, 10_001, 2**63, True, 1.0, "5", None),
            lambda n: db.search_blocks(w.workspace, "alpha", n),
            ValidationError,
        )
        many_terms = " ".join(f"term{i}" for i in range(65))
        problems += _refusals(
            (many_terms,), lambda q: db.search_blocks(w.workspace, q), ValidationError
        )
        assert not problems, problems
        assert [b.id for b in db.search_blocks(w.workspace, "alpha", 10_000)] == [w.blocks[0]]
        sixty_four = " ".join(["alpha"] + [f"term{i}" for i in range(63)])
        assert db.search_blocks(w.workspace, sixty_four) == []

    # -- canvases ---------------------------------------------------------------------------------

    def test_canvas_round_trip(self, db: Database) -> None:
        w = seed(db)
        canvas = db.create_canvas(HUMAN, NewCanvas(w.other_workspace, "Board ✏️", id="c-x"))
        assert (canvas.id, canvas.workspace_id, canvas.title) == (
            "c-x",
            w.other_workspace,
            "Board ✏️",
        )
        assert_utc(canvas.created_at)
        assert db.list_canvases(w.other_workspace) == [canvas]
        graph = db.get_canvas_with_graph("c-x")
        assert (graph.canvas, graph.nodes, graph.edges) == (canvas, [], [])
        generated = db.create_canvas(HUMAN, NewCanvas(w.other_workspace, "g"))
        assert UUID(generated.id)
        assert db.get_canvas_with_graph(generated.id).canvas == generated

    def test_canvas_graph_round_trip_in_stored_order(self, db: Database) -> None:
        w = seed(db)
        nodes = [
            NewCanvasNode("z-kind", 1.5, -2.25, {"label": "Zed", "tags": ["a"]}, id="z"),
            NewCanvasNode("a-kind", 0, 0, id="a"),
            NewCanvasNode("m-kind", 5e-324, 1.7976931348623157e308, [1, 2], id="m"),
            NewCanvasNode("😀", -math.inf, math.inf, "text", id="😀"),
        ]
        edges = [
            NewCanvasEdge("m", "z", "depends", id="e-z"),
            NewCanvasEdge("z", "a", "link", id="e-a"),
            NewCanvasEdge("a", "a", "self", id="e-m"),
            NewCanvasEdge("😀", "m", "link"),
        ]
        ctx = ai_context()
        graph = db.update_canvas_graph(ctx, w.canvas, nodes, edges)
        assert [n.id for n in graph.nodes] == ["z", "a", "m", "😀"]
        assert [e.id for e in graph.edges][:3] == ["e-z", "e-a", "e-m"]
        assert UUID(graph.edges[3].id)
        assert db.get_canvas_with_graph(w.canvas) == graph
        first = graph.nodes[0]
        assert (first.canvas_id, first.kind) == (w.canvas, "z-kind")
        assert float_identical(first.position_x, 1.5)
        assert json_equal(first.data, {"label": "Zed", "tags": ["a"]})
        assert json_equal(graph.nodes[1].data, {})
        assert float_identical(graph.nodes[2].position_x, 5e-324)
        assert graph.nodes[3].position_x == -math.inf
        edge = graph.edges[0]
        assert (edge.from_node_id, edge.to_node_id, edge.kind) == ("m", "z", "depends")
        assert all(n.last_job_id == ctx.job_id for n in graph.nodes)
        assert all(e.last_workflow_id == ctx.workflow_id for e in graph.edges)
        assert graph.canvas.last_job_id == ctx.job_id
        # the other canvas is untouched; an empty graph clears
        other = db.get_canvas_with_graph(w.other_canvas)
        assert [n.id for n in other.nodes] == list(w.other_nodes)
        cleared = db.update_canvas_graph(HUMAN, w.canvas, [], [])
        assert (cleared.nodes, cleared.edges) == ([], [])
        assert db.get_canvas_with_graph(w.canvas) == cleared
        # replacing with the same ids works (old rows go first)
        again = db.update_canvas_graph(HUMAN, w.canvas, nodes[:2], edges[1:2])
        assert db.get_canvas_with_graph(w.canvas) == again

    def test_canvas_positions_round_trip(self, db: Database) -> None:
        w = seed(db)
        nodes = [NewCanvasNode("k", x, -x, id=f"n{i}") for i, x in enumerate(GOOD_FLOATS)]
        db.update_canvas_graph(HUMAN, w.canvas, nodes, [])
        stored = db.get_canvas_with_graph(w.canvas).nodes
        problems = []
        for value, node in zip(GOOD_FLOATS, stored, strict=True):
            # a number is a double; SQLite cannot keep the sign of zero, so no backend does
            expected = float(value) + 0.0
            if not float_identical(node.position_x, expected):
                problems.append(f"{value!r} came back as {node.position_x!r}")
            if not float_identical(node.position_y, float(-value) + 0.0):
                problems.append(f"{-value!r} came back as {node.position_y!r}")
        assert not problems, problems

    def test_canvas_failures_change_nothing(self, db: Database) -> None:
        w = seed(db)
        before = snapshot(db)
        c = w.canvas
        node = NewCanvasNode("k", 0, 0, id="fresh")
        with pytest.raises(NotFoundError):
            db.get_canvas_with_graph("nope")
        with pytest.raises(NotFoundError):
            db.delete_canvas(HUMAN, "nope")
        with pytest.raises(ConflictError):
            db.create_canvas(HUMAN, NewCanvas(w.workspace, "t", id=c))
        with pytest.raises(NotFoundError, match=r"^workspace 'no-such-workspace' does not exist$"):
            db.create_canvas(HUMAN, NewCanvas("no-such-workspace", "t", id="c-x"))
        cases: list[tuple[str, Any, Any, Any, type]] = [
            ("missing canvas", "nope", [node], [], NotFoundError),
            ("bad canvas id", "", [], [], ValidationError),
            (
                "edge to a node outside the graph",
                c,
                [node],
                [NewCanvasEdge("fresh", w.nodes[0], "k")],
                ValidationError,
            ),
            ("repeated node id", c, [node, node], [], ValidationError),
            (
                "repeated edge id",
                c,
                [node],
                [
                    NewCanvasEdge("fresh", "fresh", "k", id="e"),
                    NewCanvasEdge("fresh", "fresh", "k", id="e"),
                ],
                ValidationError,
            ),
            ("NaN position", c, [node, NewCanvasNode("k", math.nan, 0)], [], ValidationError),
            (
                "inexact integer position",
                c,
                [node, NewCanvasNode("k", 0, 2**53 + 1)],
                [],
                ValidationError,
            ),
            (
                "NaN in data",
                c,
                [node, NewCanvasNode("k", 0, 0, {"x": math.nan})],
                [],
                ValidationError,
            ),
            ("NUL in kind", c, [node, NewCanvasNode("k\x00", 0, 0)], [], ValidationError),
            ("nodes not a list", c, node, [], ValidationError),
            ("edges not a list", c, [node], "edges", ValidationError),
            ("not a node", c, [NewBlock("d", "p", 1, "x")], [], ValidationError),
            ("not an edge", c, [node], [node], ValidationError),
            ("bad edge end", c, [node], [NewCanvasEdge("fresh", "", "k")], ValidationError),
            # fail in the middle of the transaction, after the old graph was deleted:
            (
                "node id of another canvas",
                c,
                [node, NewCanvasNode("k", 0, 0, id=w.other_nodes[0])],
                [],
                ConflictError,
            ),
            (
                "edge id of another canvas",
                c,
                [node],
                [NewCanvasEdge("fresh", "fresh", "k", id=w.other_edge)],
                ConflictError,
            ),
            (
                "edge to a colliding node",
                c,
                [node, NewCanvasNode("k", 0, 0, id=w.other_nodes[1])],
                [NewCanvasEdge("fresh", w.other_nodes[1], "k")],
                ConflictError,
            ),
        ]
        problems = _refused_without_change(
            db,
            before,
            [
                (name, partial(db.update_canvas_graph, HUMAN, canvas_id, nodes, edges), error)
                for name, canvas_id, nodes, edges, error in cases
            ],
        )
        problems += _refusals(
            BAD_NEW_IDS,
            lambda v: db.update_canvas_graph(HUMAN, c, [NewCanvasNode("k", 0, 0, id=v)], []),
            ValidationError,
        )
        problems += _refusals(
            BAD_FLOATS,
            lambda v: db.update_canvas_graph(HUMAN, c, [NewCanvasNode("k", v, 0)], []),
            ValidationError,
        )
        problems += _refusals(
            BAD_CONTENT_IDS,
            lambda v: db.create_canvas(HUMAN, NewCanvas(v, "t")),
            ValidationError,
        )
        problems += _refusals(
            BAD_TEXT, lambda v: db.create_canvas(HUMAN, NewCanvas(w.workspace, v)), ValidationError
        )
        assert not problems, problems
        assert snapshot(db) == before

    def test_delete_canvas(self, db: Database) -> None:
        w = seed(db)
        db.delete_canvas(HUMAN, w.canvas)
        with pytest.raises(NotFoundError):
            db.get_canvas_with_graph(w.canvas)
        with pytest.raises(NotFoundError):
            db.delete_canvas(HUMAN, w.canvas)
        assert [c.id for c in db.list_canvases(w.workspace)] == [w.other_canvas]
        # its node and edge ids are free again
        graph = db.update_canvas_graph(
            HUMAN,
            w.other_canvas,
            [NewCanvasNode("k", 0, 0, id=w.nodes[0])],
            [NewCanvasEdge(w.nodes[0], w.nodes[0], "k", id=w.edge)],
        )
        assert db.get_canvas_with_graph(w.other_canvas) == graph

    # -- deterministic ordering -------------------------------------------------------------------

    def test_lists_ordered_by_created_at_then_id(
        self, database_factory: Callable[..., Database]
    ) -> None:
        t0 = datetime(2030, 1, 1, tzinfo=UTC)
        same = t0 + timedelta(days=1)
        # created_at: ids written later get earlier timestamps, and many share one
        plan = [
            ("late", t0 + timedelta(days=3)),
            ("b", same),
            ("Z", same),
            ("a", same),
            ("early", t0 + timedelta(microseconds=1)),
            ("é", same),
            ("😀", same),
            ("\uff41", same),
            ("_", same),
            ("~", same),
            ("a2", same),
            ("first", t0),
        ]
        times = [t for _, t in plan]
        guard = RecordingGuard(clock=clock(*times, *times, *times, *times))
        db = database_factory(guard=guard)
        expected = [i for i, _ in sorted(plan, key=lambda p: (p[1], p[0]))]
        for workspace_id, _ in plan:
            db.create_workspace(HUMAN, NewWorkspace("n", id=workspace_id))
        assert [ws.id for ws in db.list_workspaces()] == expected
        for document_id, _ in plan:
            db.create_document(HUMAN, NewDocument("a", "t", id=f"{document_id}"))
        assert [d.id for d in db.list_documents("a")] == expected
        for canvas_id, _ in plan:
            db.create_canvas(HUMAN, NewCanvas("b", "t", id=canvas_id))
        assert [c.id for c in db.list_canvases("b")] == expected
        listed = db.list_workspaces()
        assert [ws.created_at for ws in listed] == sorted(t for _, t in plan)
        assert listed == [db.get_workspace(ws.id) for ws in listed]

    # -- AI jobs ----------------------------------------------------------------------------------

    def test_ai_job_round_trip(self, db: Database) -> None:
        job_id, trace_id = uuid.uuid4(), uuid.uuid4()
        refs = [EntityRef("blk-1", "block"), EntityRef("doc-1", "document")]
        ops = [
            PlannedOperation(OperationType.WRITE, EntityRef("blk-1", "block"), "rewrite"),
            PlannedOperation(OperationType.READ, EntityRef("doc-1", "document")),
            PlannedOperation(OperationType.PLAN, EntityRef("x", "y"), ""),
            PlannedOperation(OperationType.EXECUTE, EntityRef("ü", "😀"), "run"),
        ]
        job = db.create_ai_job(
            NewAiJob(
                trace_id=trace_id,
                job_kind="summarize",
                protocol_id="protocol-ü",
                profile_id="profile",
                capability_profile_id="caps",
                access_mode=AccessMode.PREVIEW_ONLY,
                safety_mode=SafetyMode.EXPERIMENTAL,
                entity_refs=refs,
                planned_operations=ops,
                status_reason="created by the suite",
                metrics=JobMetrics(1, 2, 3, 4, 5, 2**63 - 1),
                job_inputs={"prompt": "Summarize ✍️", "n": [1, 2.5, None, True]},
                is_pinned=True,
                id=job_id,
            )
        )
        assert isinstance(job, AiJob)
        assert (job.id, job.trace_id, job.workflow_run_id) == (job_id, trace_id, None)
        assert (job.job_kind, job.status, job.status_reason) == (
            "summarize",
            JobState.QUEUED,
            "created by the suite",
        )
        assert (job.access_mode, job.safety_mode) == (
            AccessMode.PREVIEW_ONLY,
            SafetyMode.EXPERIMENTAL,
        )
        assert job.entity_refs == refs and job.planned_operations == ops
        assert job.metrics == JobMetrics(1, 2, 3, 4, 5, 2**63 - 1)
        assert json_equal(job.job_inputs, {"prompt": "Summarize ✍️", "n": [1, 2.5, None, True]})
        assert job.job_outputs is None and job.error_message is None
        assert job.is_pinned is True
        assert_utc(job.created_at)
        assert job.created_at == job.updated_at
        assert db.get_ai_job(job_id) == job
        assert db.get_ai_job(str(job_id)) == job
        assert db.get_ai_job(str(job_id).upper()) == job
        minimal = db.create_ai_job(new_job(access_mode="apply_scoped", safety_mode="strict"))
        assert isinstance(minimal.id, UUID)
        assert (minimal.access_mode, minimal.safety_mode) == (
            AccessMode.APPLY_SCOPED,
            SafetyMode.STRICT,
        )
        assert (minimal.entity_refs, minimal.planned_operations) == ([], [])
        assert minimal.metrics == JobMetrics()
        assert (minimal.job_inputs, minimal.is_pinned, minimal.status_reason) == (None, False, "")
        assert db.get_ai_job(minimal.id) == minimal
        from_strings = db.create_ai_job(new_job(id=str(uuid.UUID(int=5)), trace_id=str(trace_id)))
        assert (from_strings.id, from_strings.trace_id) == (uuid.UUID(int=5), trace_id)
        assert db.get_ai_job(uuid.UUID(int=5)) == from_strings

    def test_ai_job_failures(self, db: Database) -> None:
        job = db.create_ai_job(new_job())
        before = snapshot(db, job_ids=(job.id,))
        with pytest.raises(NotFoundError):
            db.get_ai_job(uuid.uuid4())
        with pytest.raises(ConflictError):
            db.create_ai_job(new_job(id=job.id))
        with pytest.raises(ConflictError):
            db.create_ai_job(new_job(id=str(job.id).upper()))
        bad_jobs: list[Any] = [None, {"job_kind": "x"}, "job"]
        bad_jobs += [new_job(id=v) for v in BAD_UUIDS if v is not None]
        bad_jobs += [new_job(trace_id=v) for v in BAD_UUIDS]
        bad_jobs += [new_job(job_kind=v) for v in ("", *BAD_TEXT, None)]
        for name in ("protocol_id", "profile_id", "capability_profile_id", "status_reason"):
            bad_jobs += [new_job(**{name: v}) for v in (*BAD_TEXT, None)]
        bad_jobs += [new_job(access_mode=v) for v in ("bogus", "ANALYSIS_ONLY", None, 1, "")]
        bad_jobs += [new_job(safety_mode=v) for v in ("bogus", "Strict", None, 0)]
        bad_jobs += [
            new_job(entity_refs=v)
            for v in (None, "refs", EntityRef("a", "b"), [("a", "b")], [EntityRef("a\x00", "b")])
        ]
        bad_jobs += [
            new_job(planned_operations=[PlannedOperation(v, EntityRef("a", "b"))])  # type: ignore[arg-type]
            for v in ("delete", "READ", None)
        ]
        bad_jobs += [
            new_job(planned_operations=v)
            for v in (
                [EntityRef("a", "b")],
                [PlannedOperation(OperationType.READ, "target")],  # type: ignore[arg-type]
                [PlannedOperation(OperationType.READ, EntityRef("a", "b"), "\ud800")],
                None,
            )
        ]
        bad_jobs += [
            new_job(metrics=v)
            for v in (
                None,
                {"duration_ms": 1},
                JobMetrics(duration_ms=-1),
                JobMetrics(total_tokens=2**63),
                JobMetrics(input_tokens=1.5),  # type: ignore[arg-type]
                JobMetrics(output_tokens=True),  # type: ignore[arg-type]
            )
        ]
        bad_jobs += [new_job(job_inputs=v) for v in BAD_JSON]
        bad_jobs += [new_job(is_pinned=v) for v in (1, 0, "true", None)]
        problems = _refusals(tuple(bad_jobs), db.create_ai_job, ValidationError)
        problems += _refusals(BAD_UUIDS, db.get_ai_job, ValidationError)
        assert not problems, problems
        assert snapshot(db, job_ids=(job.id,)) == before

    def test_update_ai_job_status(self, db: Database) -> None:
        job = db.create_ai_job(new_job(job_inputs={"in": 1}))
        run = db.create_workflow_run(job.id, JobState.RUNNING)
        trace = uuid.uuid4()
        running = db.update_ai_job_status(
            JobStatusUpdate(
                job.id,
                JobState.RUNNING,
                "started",
                metrics=JobMetrics(duration_ms=10, total_tokens=2),
                workflow_run_id=run.id,
                trace_id=trace,
                job_outputs={"partial": [1.5, "x"]},
            )
        )
        assert running.status is JobState.RUNNING and running.status_reason == "started"
        assert running.metrics == JobMetrics(duration_ms=10, total_tokens=2)
        assert (running.workflow_run_id, running.trace_id) == (run.id, trace)
        assert json_equal(running.job_outputs, {"partial": [1.5, "x"]})
        assert json_equal(running.job_inputs, {"in": 1})
        assert running.created_at == job.created_at
        assert running.updated_at >= job.updated_at
        assert db.get_ai_job(job.id) == running
        # fields left None keep their values
        failed = db.update_ai_job_status(
            JobStatusUpdate(str(job.id), "failed", "gave up", error_message="boom ✗")  # type: ignore[arg-type]
        )
        assert (failed.status, failed.status_reason, failed.error_message) == (
            JobState.FAILED,
            "gave up",
            "boom ✗",
        )
        assert failed.metrics == running.metrics
        assert (failed.workflow_run_id, failed.trace_id) == (run.id, trace)
        assert json_equal(failed.job_outputs, {"partial": [1.5, "x"]})
        assert db.get_ai_job(job.id) == failed
        for state in JobState:
            assert db.update_ai_job_status(JobStatusUpdate(job.id, state)).status is state
            assert db.get_ai_job(job.id).status is state

    def test_update_ai_job_status_refusals_change_nothing(self, db: Database) -> None:
        job = db.create_ai_job(new_job())
        before = snapshot(db, job_ids=(job.id,))
        with pytest.raises(NotFoundError):
            db.update_ai_job_status(JobStatusUpdate(uuid.uuid4(), JobState.RUNNING))
        updates: list[Any] = [None, job, {"job_id": job.id}]
        updates += [JobStatusUpdate(v, JobState.RUNNING) for v in BAD_UUIDS]  # type: ignore[arg-type]
        updates += [
            JobStatusUpdate(job.id, v)  # type: ignore[arg-type]
            for v in ("bogus", "RUNNING", None, 3, "")
        ]
        updates += [
            JobStatusUpdate(job.id, JobState.RUNNING, status_reason=v)  # type: ignore[arg-type]
            for v in (*BAD_TEXT, None)
        ]
        updates += [
            JobStatusUpdate(job.id, JobState.FAILED, error_message=v)  # type: ignore[arg-type]
            for v in BAD_TEXT
        ]
        updates += [
            JobStatusUpdate(job.id, JobState.RUNNING, metrics=v)  # type: ignore[arg-type]
            for v in ({"duration_ms": 1}, JobMetrics(entities_read=-1), JobMetrics(2**64))
        ]
        updates += [
            JobStatusUpdate(job.id, JobState.RUNNING, workflow_run_id=v)  # type: ignore[arg-type]
            for v in BAD_UUIDS
            if v is not None
        ]
        updates += [
            JobStatusUpdate(job.id, JobState.RUNNING, trace_id=v)  # type: ignore[arg-type]
            for v in BAD_UUIDS
            if v is not None
        ]
        updates += [JobStatusUpdate(job.id, JobState.RUNNING, job_outputs=v) for v in BAD_JSON]
        problems = _refusals(tuple(updates), db.update_ai_job_status, ValidationError)
        assert not problems, problems
        assert snapshot(db, job_ids=(job.id,)) == before

    def test_job_outputs_and_pinning(self, db: Database) -> None:
        job = db.create_ai_job(new_job())
        problems = []
        for value in GOOD_JSON:
            assert db.set_job_outputs(job.id, value) is None
            stored = db.get_ai_job(job.id).job_outputs
            if not json_equal(stored, value):
                problems.append(f"{value!r:.60} came back as {stored!r:.60}")
        assert not problems, problems
        db.set_job_outputs(str(job.id), {"final": True})
        assert db.get_ai_job(job.id).job_outputs == {"final": True}
        db.set_job_outputs(job.id, None)
        assert db.get_ai_job(job.id).job_outputs is None
        assert db.set_job_pinned(job.id) is None
        assert db.get_ai_job(job.id).is_pinned is True
        db.set_job_pinned(job.id, False)
        assert db.get_ai_job(job.id).is_pinned is False
        db.set_job_pinned(str(job.id), True)
        pinned = db.get_ai_job(job.id)
        assert pinned.is_pinned is True and pinned.updated_at >= job.updated_at
        before = snapshot(db, job_ids=(job.id,))
        with pytest.raises(NotFoundError):
            db.set_job_outputs(uuid.uuid4(), {"a": 1})
        with pytest.raises(NotFoundError):
            db.set_job_pinned(uuid.uuid4(), True)
        problems = _refusals(BAD_JSON, lambda v: db.set_job_outputs(job.id, v), ValidationError)
        problems += _refusals(BAD_UUIDS, lambda v: db.set_job_outputs(v, {}), ValidationError)
        problems += _refusals(
            (1, 0, "yes", None), lambda v: db.set_job_pinned(job.id, v), ValidationError
        )
        problems += _refusals(BAD_UUIDS, lambda v: db.set_job_pinned(v, True), ValidationError)
        assert not problems, problems
        assert snapshot(db, job_ids=(job.id,)) == before

    # -- workflows --------------------------------------------------------------------------------

    def test_workflow_runs(self, db: Database) -> None:
        job = db.create_ai_job(new_job())
        started = now()
        run = db.create_workflow_run(job.id, JobState.QUEUED)
        assert isinstance(run.id, UUID) and run.job_id == job.id
        assert (run.status, run.error_message) == (JobState.QUEUED, None)
        assert_utc(run.last_heartbeat)
        assert started <= run.last_heartbeat <= now()
        assert run.created_at == run.updated_at
        beat = datetime(2031, 2, 3, 4, 5, 6, 789012, tzinfo=timezone(timedelta(hours=-7)))
        explicit = db.create_workflow_run(str(job.id), "running", beat)  # type: ignore[arg-type]
        assert explicit.status is JobState.RUNNING
        assert explicit.last_heartbeat == beat
        assert_utc(explicit.last_heartbeat)
        failed = db.update_workflow_run_status(explicit.id, JobState.FAILED, "boom")
        assert (failed.id, failed.job_id, failed.status, failed.error_message) == (
            explicit.id,
            job.id,
            JobState.FAILED,
            "boom",
        )
        assert failed.last_heartbeat == beat and failed.created_at == explicit.created_at
        assert failed.updated_at >= explicit.updated_at
        cleared = db.update_workflow_run_status(str(explicit.id), "completed")  # type: ignore[arg-type]
        assert (cleared.status, cleared.error_message) == (JobState.COMPLETED, None)
        later = beat + timedelta(seconds=1, microseconds=1)
        assert db.heartbeat_workflow(explicit.id, later) is None
        assert db.update_workflow_run_status(explicit.id, JobState.RUNNING).last_heartbeat == later

    def test_workflow_run_failures(self, db: Database) -> None:
        job = db.create_ai_job(new_job())
        run = db.create_workflow_run(job.id, JobState.RUNNING, now() - timedelta(hours=1))
        before = snapshot(db, job_ids=(job.id,), run_ids=(run.id,))
        stalled_before = db.find_stalled_workflows(60)
        missing = uuid.uuid4()
        with pytest.raises(NotFoundError, match=f"^AI job {missing} does not exist$"):
            db.create_workflow_run(missing, JobState.RUNNING)
        with pytest.raises(NotFoundError):
            db.update_workflow_run_status(uuid.uuid4(), JobState.FAILED)
        with pytest.raises(NotFoundError):
            db.heartbeat_workflow(uuid.uuid4(), now())
        problems = _refusals(
            BAD_UUIDS, lambda v: db.create_workflow_run(v, JobState.RUNNING), ValidationError
        )
        problems += _refusals(
            ("bogus", "RUNNING", None, 1),
            lambda v: db.create_workflow_run(job.id, v),
            ValidationError,
        )
        bad_times = (
            datetime(2024, 1, 1),
            datetime.now(),
            "2024-01-01T00:00:00+00:00",
            1_700_000_000,
            date(2024, 1, 1),
            datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1))),
            datetime(9999, 12, 31, 23, tzinfo=timezone(timedelta(hours=-5))),
        )
        problems += _refusals(
            bad_times,
            lambda v: db.create_workflow_run(job.id, JobState.RUNNING, v),
            ValidationError,
        )
        problems += _refusals(
            BAD_UUIDS, lambda v: db.update_workflow_run_status(v, JobState.RUNNING), ValidationError
        )
        problems += _refusals(
            ("bogus", None), lambda v: db.update_workflow_run_status(run.id, v), ValidationError
        )
        problems += _refusals(
            BAD_TEXT,
            lambda v: db.update_workflow_run_status(run.id, JobState.FAILED, v),
            ValidationError,
        )
        problems += _refusals(BAD_UUIDS, lambda v: db.heartbeat_workflow(v, now()), ValidationError)
        problems += _refusals(
            (*bad_times, None), lambda v: db.heartbeat_workflow(run.id, v), ValidationError
        )
        assert not problems, problems
        assert snapshot(db, job_ids=(job.id,), run_ids=(run.id,)) == before
        assert db.find_stalled_workflows(60) == stalled_before

    def test_find_stalled_workflows(self, db: Database) -> None:
        job = db.create_ai_job(new_job())
        hour_ago = now() - timedelta(hours=1)
        stale = db.create_workflow_run(job.id, JobState.RUNNING, hour_ago)
        fresh = db.create_workflow_run(job.id, JobState.RUNNING)
        finished = db.create_workflow_run(job.id, JobState.FAILED, hour_ago)
        older = db.create_workflow_run(job.id, JobState.RUNNING, hour_ago - timedelta(hours=1))
        queued = db.create_workflow_run(job.id, JobState.QUEUED, hour_ago)
        found = db.find_stalled_workflows(60)
        assert found == sorted([stale, older], key=lambda r: (r.created_at, str(r.id)))
        assert [r.id for r in db.find_stalled_workflows(90 * 60)] == [older.id]
        assert db.find_stalled_workflows(3 * 3600) == []
        assert {r.id for r in db.find_stalled_workflows(0.0)} >= {stale.id, older.id}
        assert fresh.id not in {r.id for r in found}
        assert finished.id not in {r.id for r in found} and queued.id not in {r.id for r in found}
        db.heartbeat_workflow(stale.id, now())
        assert [r.id for r in db.find_stalled_workflows(60)] == [older.id]
        db.update_workflow_run_status(older.id, JobState.STALLED)
        assert db.find_stalled_workflows(60) == []
        db.update_workflow_run_status(queued.id, JobState.RUNNING)
        assert [r.id for r in db.find_stalled_workflows(60)] == [queued.id]
        problems = _refusals(
            (-1, -0.001, math.nan, math.inf, 10**11, True, "60", None, Decimal(60)),
            db.find_stalled_workflows,
            ValidationError,
        )
        assert not problems, problems

    def test_node_executions(self, db: Database) -> None:
        job = db.create_ai_job(new_job())
        run = db.create_workflow_run(job.id, JobState.RUNNING)
        other_run = db.create_workflow_run(job.id, JobState.RUNNING)
        started = datetime(2030, 5, 6, 7, 8, 9, 101112, tzinfo=timezone(timedelta(hours=9)))
        first = db.create_workflow_node_execution(
            NewNodeExecution(
                run.id, "node-a", "llm", JobState.RUNNING, 0, started, {"prompt": ["x", 1.5]}
            )
        )
        assert isinstance(first.id, UUID) and first.workflow_run_id == run.id
        assert (first.node_id, first.node_type, first.status, first.sequence) == (
            "node-a",
            "llm",
            JobState.RUNNING,
            0,
        )
        assert json_equal(first.input_payload, {"prompt": ["x", 1.5]})
        assert (first.output_payload, first.error_message, first.finished_at) == (None,) * 3
        assert first.started_at == started
        assert_utc(first.started_at)
        assert_utc(first.created_at)
        second_id = uuid.UUID(int=2**128 - 1)
        second = db.create_workflow_node_execution(
            NewNodeExecution(
                str(run.id),  # type: ignore[arg-type]
                "node-b",
                "tool",
                "queued",  # type: ignore[arg-type]
                2**63 - 1,
                now(),
                id=str(second_id),  # type: ignore[arg-type]
            )
        )
        assert (second.id, second.status, second.input_payload) == (
            second_id,
            JobState.QUEUED,
            None,
        )
        listed = db.list_workflow_node_executions(run.id)
        assert listed == sorted([first, second], key=lambda e: (e.created_at, str(e.id)))
        assert db.list_workflow_node_executions(str(run.id)) == listed  # type: ignore[arg-type]
        assert db.list_workflow_node_executions(other_run.id) == []
        assert db.list_workflow_node_executions(uuid.uuid4()) == []
        # a terminal status sets finished_at; output None keeps the stored output
        done = db.update_workflow_node_execution_status(
            first.id, JobState.COMPLETED, {"answer": 42}
        )
        assert done.status is JobState.COMPLETED
        assert json_equal(done.output_payload, {"answer": 42})
        assert done.finished_at is not None
        assert_utc(done.finished_at)
        assert done.started_at == started and done.created_at == first.created_at
        kept = db.update_workflow_node_execution_status(
            first.id, JobState.FAILED, None, "it broke ✗"
        )
        assert json_equal(kept.output_payload, {"answer": 42})
        assert kept.error_message == "it broke ✗"
        assert kept.finished_at is not None
        running = db.update_workflow_node_execution_status(second.id, JobState.RUNNING)
        assert running.finished_at is None and running.error_message is None
        for state in JobState:
            updated = db.update_workflow_node_execution_status(second.id, state)
            assert updated.status is state
            if state in TERMINAL_JOB_STATES:
                assert updated.finished_at is not None
        listed = db.list_workflow_node_executions(run.id)
        assert {e.id: e for e in listed}[first.id] == kept
        assert {e.id: e for e in listed}[second.id] == updated

    def test_node_execution_failures(self, db: Database) -> None:
        job = db.create_ai_job(new_job())
        run = db.create_workflow_run(job.id, JobState.RUNNING)
        execution = db.create_workflow_node_execution(
            NewNodeExecution(run.id, "n", "t", JobState.RUNNING, 0, now(), {"in": 1})
        )
        before = snapshot(db, job_ids=(job.id,), run_ids=(run.id,))
        with pytest.raises(ConflictError):
            db.create_workflow_node_execution(
                NewNodeExecution(run.id, "n", "t", JobState.RUNNING, 1, now(), id=execution.id)
            )
        missing = uuid.uuid4()
        with pytest.raises(NotFoundError, match=f"^workflow run {missing} does not exist$"):
            db.create_workflow_node_execution(
                NewNodeExecution(missing, "n", "t", JobState.RUNNING, 1, now())
            )
        with pytest.raises(NotFoundError):
            db.update_workflow_node_execution_status(uuid.uuid4(), JobState.FAILED)

        def execution_with(**changes: Any) -> NewNodeExecution:
            return replace(
                NewNodeExecution(run.id, "n", "t", JobState.RUNNING, 1, now()), **changes
            )

        bad: list[Any] = [None, {"workflow_run_id": run.id}]
        bad += [execution_with(workflow_run_id=v) for v in BAD_UUIDS]
        bad += [execution_with(id=v) for v in BAD_UUIDS if v is not None]
        bad += [execution_with(node_id=v) for v in (*BAD_TEXT, None)]
        bad += [execution_with(node_type=v) for v in (*BAD_TEXT, None)]
        bad += [execution_with(status=v) for v in ("bogus", None, "Running")]
        bad += [execution_with(sequence=v) for v in BAD_INTEGERS]
        bad += [
            execution_with(started_at=v)
            for v in (datetime(2024, 1, 1), "2024-01-01", None, date(2024, 1, 1))
        ]
        bad += [execution_with(input_payload=v) for v in BAD_JSON]
        problems = _refusals(tuple(bad), db.create_workflow_node_execution, ValidationError)
        problems += _refusals(
            BAD_UUIDS,
            lambda v: db.update_workflow_node_execution_status(v, JobState.FAILED),
            ValidationError,
        )
        problems += _refusals(
            ("bogus", None),
            lambda v: db.update_workflow_node_execution_status(execution.id, v),
            ValidationError,
        )
        problems += _refusals(
            BAD_JSON,
            lambda v: db.update_workflow_node_execution_status(execution.id, JobState.FAILED, v),
            ValidationError,
        )
        problems += _refusals(
            BAD_TEXT,
            lambda v: db.update_workflow_node_execution_status(
                execution.id, JobState.FAILED, None, v
            ),
            ValidationError,
        )
        problems += _refusals(BAD_UUIDS, db.list_workflow_node_executions, ValidationError)
        assert not problems, problems
        assert snapshot(db, job_ids=(job.id,), run_ids=(run.id,)) == before

    def test_payloads_and_timestamps_round_trip(self, db: Database) -> None:
        job = db.create_ai_job(new_job())
        run = db.create_workflow_run(job.id, JobState.RUNNING)
        zones = [
            UTC,
            timezone(timedelta(hours=5, minutes=30)),
            timezone(timedelta(hours=-12)),
            timezone(timedelta(hours=14)),
            timezone(timedelta(seconds=1)),
            timezone(timedelta(hours=-3, microseconds=7)),
        ]
        moments = [
            datetime(1, 1, 1, tzinfo=UTC),
            datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
            datetime(1970, 1, 1, tzinfo=UTC),
            datetime(2000, 2, 29, 12, 0, 0, 1, tzinfo=UTC),
            datetime(2038, 1, 19, 3, 14, 8, tzinfo=UTC),
            datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        ]
        moments += [datetime(2024, 3, 10, 2, 30, 0, 654321, tzinfo=z) for z in zones]
        problems = []
        for i, moment in enumerate(moments):
            payload = GOOD_JSON[i % len(GOOD_JSON)]
            created = db.create_workflow_node_execution(
                NewNodeExecution(run.id, f"n{i}", "t", JobState.RUNNING, i, moment, payload)
            )
            if created.started_at != moment or created.started_at.utcoffset() != timedelta(0):
                problems.append(f"returned {created.started_at!r} for {moment!r}")
        for i, execution in enumerate(
            sorted(db.list_workflow_node_executions(run.id), key=lambda e: e.sequence)
        ):
            moment = moments[i]
            if execution.started_at != moment or execution.started_at.utcoffset() != timedelta(0):
                problems.append(f"stored {execution.started_at!r} for {moment!r}")
            if not json_equal(execution.input_payload, GOOD_JSON[i % len(GOOD_JSON)]):
                problems.append(f"payload {execution.input_payload!r:.60} changed")
        for moment in moments:
            db.heartbeat_workflow(run.id, moment)
            stored = db.update_workflow_run_status(run.id, JobState.RUNNING).last_heartbeat
            if stored != moment or stored.utcoffset() != timedelta(0):
                problems.append(f"heartbeat {moment!r} came back as {stored!r}")
        assert not problems, problems

    # -- retention --------------------------------------------------------------------------------

    def test_prune_ai_jobs(self, db: Database) -> None:
        terminal = [
            JobState.COMPLETED,
            JobState.FAILED,
            JobState.CANCELLED,
            JobState.POISONED,
            JobState.COMPLETED_WITH_ISSUES,
        ]
        jobs = []
        for state in terminal:
            job = db.create_ai_job(new_job(job_inputs={"state": state.value}))
            db.update_ai_job_status(JobStatusUpdate(job.id, state, job_outputs=[state.value]))
            jobs.append(db.get_ai_job(job.id))
        pinned = db.create_ai_job(new_job(is_pinned=True))
        db.update_ai_job_status(JobStatusUpdate(pinned.id, JobState.COMPLETED))
        running = db.create_ai_job(new_job())
        db.update_ai_job_status(JobStatusUpdate(running.id, JobState.RUNNING))
        queued = db.create_ai_job(new_job())
        run = db.create_workflow_run(jobs[0].id, JobState.COMPLETED)
        db.create_workflow_node_execution(
            NewNodeExecution(run.id, "n", "t", JobState.COMPLETED, 0, now())
        )
        all_ids = tuple(j.id for j in (*jobs, pinned, running, queued))
        newest_first = sorted(jobs, key=lambda j: (j.created_at, str(j.id)), reverse=True)
        future = now() + timedelta(days=1)

        # nothing has expired yet
        report = db.prune_ai_jobs(now() - timedelta(days=1), 0)
        assert (report.items_scanned, report.items_pruned, report.total_bytes_freed) == (0, 0, 0)
        assert report.pruned_job_ids == ()

        before = snapshot(db, job_ids=all_ids, run_ids=(run.id,))
        dry = db.prune_ai_jobs(future, 2, dry_run=True)
        assert dry.dry_run is True
        assert_utc(dry.timestamp)
        assert dry.items_scanned == 6  # every expired terminal job, pinned included
        assert (dry.items_pruned, dry.items_spared_pinned, dry.items_spared_window) == (3, 1, 2)
        assert set(dry.pruned_job_ids) == {j.id for j in newest_first[2:]}
        assert dry.total_bytes_freed > 0
        assert snapshot(db, job_ids=all_ids, run_ids=(run.id,)) == before

        real = db.prune_ai_jobs(future, 2)
        assert real.dry_run is False
        assert (
            real.items_scanned,
            real.items_pruned,
            real.items_spared_pinned,
            real.items_spared_window,
            real.total_bytes_freed,
            set(real.pruned_job_ids),
        ) == (
            dry.items_scanned,
            dry.items_pruned,
            dry.items_spared_pinned,
            dry.items_spared_window,
            dry.total_bytes_freed,
            set(dry.pruned_job_ids),
        )
        for job in newest_first[2:]:
            with pytest.raises(NotFoundError):
                db.get_ai_job(job.id)
        for job in (*newest_first[:2], pinned, running, queued):
            assert db.get_ai_job(job.id).id == job.id
        if jobs[0].id in real.pruned_job_ids:  # its run and node executions went with it
            assert db.list_workflow_node_executions(run.id) == []

        # pinned jobs are never pruned; unpinned they are
        everything = db.prune_ai_jobs(future, 0)
        assert everything.items_pruned == 2 and everything.items_spared_pinned == 1
        assert db.get_ai_job(pinned.id).is_pinned
        db.set_job_pinned(pinned.id, False)
        last = db.prune_ai_jobs(future, 0)
        assert last.pruned_job_ids == (pinned.id,)
        assert db.get_ai_job(running.id).status is JobState.RUNNING
        assert db.get_ai_job(queued.id).status is JobState.QUEUED
        assert db.list_workflow_node_executions(run.id) == []

    def test_prune_input_is_checked(self, db: Database) -> None:
        job = db.create_ai_job(new_job())
        db.update_ai_job_status(JobStatusUpdate(job.id, JobState.COMPLETED))
        before = snapshot(db, job_ids=(job.id,))
        future = now() + timedelta(days=1)
        problems = _refusals(
            (datetime.now(), "2024-01-01", None, 0, date.today()),
            lambda v: db.prune_ai_jobs(v, 0),
            ValidationError,
        )
        problems += _refusals(
            (-1, 2**63, 1.0, True, "1", None),
            lambda v: db.prune_ai_jobs(future, v),
            ValidationError,
        )
        problems += _refusals(
            (1, 0, "yes", None), lambda v: db.prune_ai_jobs(future, 0, v), ValidationError
        )
        assert not problems, problems
        assert snapshot(db, job_ids=(job.id,)) == before
        assert db.prune_ai_jobs(future, 2**63 - 1).items_spared_window == 1

    # -- malformed ids everywhere -----------------------------------------------------------------

    def test_malformed_content_ids_are_refused_everywhere(self, db: Database) -> None:
        w = seed(db)
        before = snapshot(db)
        calls: dict[str, Callable[[Any], Any]] = {
            "get_workspace": db.get_workspace,
            "delete_workspace": lambda v: db.delete_workspace(HUMAN, v),
            "list_documents": db.list_documents,
            "get_document": db.get_document,
            "delete_document": lambda v: db.delete_document(HUMAN, v),
            "get_blocks": db.get_blocks,
            "get_block": db.get_block,
            "delete_block": lambda v: db.delete_block(HUMAN, v),
            "replace_blocks": lambda v: db.replace_blocks(HUMAN, v, []),
            "list_canvases": db.list_canvases,
            "get_canvas_with_graph": db.get_canvas_with_graph,
            "delete_canvas": lambda v: db.delete_canvas(HUMAN, v),
            "update_canvas_graph": lambda v: db.update_canvas_graph(HUMAN, v, [], []),
            "edge from": lambda v: db.update_canvas_graph(
                HUMAN, w.canvas, [NewCanvasNode("k", 0, 0, id="n")], [NewCanvasEdge(v, "n", "k")]
            ),
        }
        new_id_calls = {
            "edge id": lambda v: db.update_canvas_graph(
                HUMAN,
                w.canvas,
                [NewCanvasNode("k", 0, 0, id="n")],
                [NewCanvasEdge("n", "n", "k", id=v)],
            ),
            "node id": lambda v: db.update_canvas_graph(
                HUMAN, w.canvas, [NewCanvasNode("k", 0, 0, id=v)], []
            ),
            "new workspace id": lambda v: db.create_workspace(HUMAN, NewWorkspace("n", id=v)),
            "new canvas id": lambda v: db.create_canvas(HUMAN, NewCanvas(w.workspace, "t", id=v)),
        }
        problems = []
        for name, call in calls.items():
            problems += [f"{name}: {p}" for p in _refusals(BAD_CONTENT_IDS, call, ValidationError)]
        for name, call in new_id_calls.items():
            problems += [f"{name}: {p}" for p in _refusals(BAD_NEW_IDS, call, ValidationError)]
        assert not problems, problems
        assert snapshot(db) == before

    def test_malformed_uuids_are_refused_everywhere(self, db: Database) -> None:
        job = db.create_ai_job(new_job())
        run = db.create_workflow_run(job.id, JobState.RUNNING)
        before = snapshot(db, job_ids=(job.id,), run_ids=(run.id,))
        calls: dict[str, Callable[[Any], Any]] = {
            "get_ai_job": db.get_ai_job,
            "set_job_outputs": lambda v: db.set_job_outputs(v, {}),
            "set_job_pinned": lambda v: db.set_job_pinned(v, True),
            "update_ai_job_status": lambda v: db.update_ai_job_status(
                JobStatusUpdate(v, JobState.RUNNING)
            ),
            "create_workflow_run": lambda v: db.create_workflow_run(v, JobState.RUNNING),
            "update_workflow_run_status": lambda v: db.update_workflow_run_status(
                v, JobState.RUNNING
            ),
            "heartbeat_workflow": lambda v: db.heartbeat_workflow(v, now()),
            "create_workflow_node_execution": lambda v: db.create_workflow_node_execution(
                NewNodeExecution(v, "n", "t", JobState.RUNNING, 0, now())
            ),
            "update_workflow_node_execution_status": (
                lambda v: db.update_workflow_node_execution_status(v, JobState.RUNNING)
            ),
            "list_workflow_node_executions": db.list_workflow_node_executions,
            "ai context job id": lambda v: db.create_workspace(
                WriteContext.ai(v or "x", uuid.uuid4()), NewWorkspace("n")
            ),
            "ai context workflow id": lambda v: db.create_workspace(
                WriteContext.ai(uuid.uuid4(), v or "x"), NewWorkspace("n")
            ),
        }
        problems = []
        for name, call in calls.items():
            problems += [f"{name}: {p}" for p in _refusals(BAD_UUIDS, call, ValidationError)]
        assert not problems, problems
        assert snapshot(db, job_ids=(job.id,), run_ids=(run.id,)) == before
        assert db.list_workspaces() == []

    # -- values every content text field must store, or refuse ------------------------------------

    def test_text_fields_round_trip_or_are_refused(self, db: Database) -> None:
        w = seed(db)
        job = db.create_ai_job(new_job())
        run = db.create_workflow_run(job.id, JobState.RUNNING)
        execution = db.create_workflow_node_execution(
            NewNodeExecution(run.id, "n", "t", JobState.RUNNING, 0, now())
        )
        counter = iter(range(10**6))

        def fresh() -> str:
            return f"id-{next(counter)}"

        def graph_node_kind(v: Any) -> tuple[Any, Any]:
            graph = db.update_canvas_graph(HUMAN, w.canvas, [NewCanvasNode(v, 0, 0, id="k")], [])
            return graph.nodes[0].kind, db.get_canvas_with_graph(w.canvas).nodes[0].kind

        def graph_edge_kind(v: Any) -> tuple[Any, Any]:
            graph = db.update_canvas_graph(
                HUMAN, w.canvas, [NewCanvasNode("k", 0, 0, id="k")], [NewCanvasEdge("k", "k", v)]
            )
            return graph.edges[0].kind, db.get_canvas_with_graph(w.canvas).edges[0].kind

        def job_field(name: str) -> Callable[[Any], tuple[Any, Any]]:
            def write(v: Any) -> tuple[Any, Any]:
                created = db.create_ai_job(new_job(**{name: v}))
                return getattr(created, name), getattr(db.get_ai_job(created.id), name)

            return write

        def status_field(name: str) -> Callable[[Any], tuple[Any, Any]]:
            def write(v: Any) -> tuple[Any, Any]:
                updated = db.update_ai_job_status(
                    JobStatusUpdate(job.id, JobState.FAILED, **{name: v})
                )
                return getattr(updated, name), getattr(db.get_ai_job(job.id), name)

            return write

        def entity(v: Any) -> tuple[Any, Any]:
            ref = EntityRef(v, v)
            op = PlannedOperation(OperationType.WRITE, ref, v)
            created = db.create_ai_job(new_job(entity_refs=[ref], planned_operations=[op]))
            stored = db.get_ai_job(created.id)
            expected = ([ref], [op])
            return (
                v if (created.entity_refs, created.planned_operations) == expected else None,
                v if (stored.entity_refs, stored.planned_operations) == expected else None,
            )

        def execution_field(name: str) -> Callable[[Any], tuple[Any, Any]]:
            def write(v: Any) -> tuple[Any, Any]:
                created = db.create_workflow_node_execution(
                    replace(
                        NewNodeExecution(run.id, "n", "t", JobState.RUNNING, 0, now()), **{name: v}
                    )
                )
                stored = {e.id: e for e in db.list_workflow_node_executions(run.id)}[created.id]
                return getattr(created, name), getattr(stored, name)

            return write

        def execution_error(v: Any) -> tuple[Any, Any]:
            updated = db.update_workflow_node_execution_status(
                execution.id, JobState.FAILED, None, v
            )
            stored = {e.id: e for e in db.list_workflow_node_executions(run.id)}[execution.id]
            return updated.error_message, stored.error_message

        def run_error(v: Any) -> tuple[Any, Any]:
            first = db.update_workflow_run_status(run.id, JobState.FAILED, v)
            return first.error_message, db.update_workflow_run_status(
                run.id, JobState.FAILED, v
            ).error_message

        def actor_id(v: Any) -> tuple[Any, Any]:
            ws = db.create_workspace(WriteContext.human(v), NewWorkspace("n", id=fresh()))
            stored = db.get_workspace(ws.id)
            return ws.last_actor_id, stored.last_actor_id if stored else None

        def block_field(name: str) -> Callable[[Any], tuple[Any, Any]]:
            def write(v: Any) -> tuple[Any, Any]:
                fields = {"kind": "p", "raw_content": "x", **{name: v}}
                block = db.create_block(
                    HUMAN,
                    NewBlock(
                        w.other_document,
                        fields["kind"],
                        0,
                        fields["raw_content"],
                        display_content=fields.get("display_content"),
                        id=fresh(),
                    ),
                )
                return getattr(block, name), getattr(db.get_block(block.id), name)

            return write

        def block_update(v: Any) -> tuple[Any, Any]:
            block = db.update_block(HUMAN, w.blocks[0], BlockUpdate(raw_content=v))
            return block.raw_content, db.get_block(w.blocks[0]).raw_content

        fields: dict[str, Callable[[Any], tuple[Any, Any]]] = {
            "workspace name": lambda v: (
                (ws := db.create_workspace(HUMAN, NewWorkspace(v, id=fresh()))).name,
                db.get_workspace(ws.id).name,  # type: ignore[union-attr]
            ),
            "document title": lambda v: (
                (d := db.create_document(HUMAN, NewDocument(w.workspace, v, id=fresh()))).title,
                db.get_document(d.id).title,
            ),
            "canvas title": lambda v: (
                (c := db.create_canvas(HUMAN, NewCanvas(w.workspace, v, id=fresh()))).title,
                db.get_canvas_with_graph(c.id).canvas.title,
            ),
            "block kind": block_field("kind"),
            "block raw_content": block_field("raw_content"),
            "block display_content": block_field("display_content"),
            "block update raw_content": block_update,
            "node kind": graph_node_kind,
            "edge kind": graph_edge_kind,
            "job_kind": job_field("job_kind"),
            "protocol_id": job_field("protocol_id"),
            "profile_id": job_field("profile_id"),
            "capability_profile_id": job_field("capability_profile_id"),
            "status_reason": job_field("status_reason"),
            "update status_reason": status_field("status_reason"),
            "update error_message": status_field("error_message"),
            "entity refs and planned operations": entity,
            "node_id": execution_field("node_id"),
            "node_type": execution_field("node_type"),
            "node execution error_message": execution_error,
            "run error_message": run_error,
            "actor_id": actor_id,
        }
        problems = []
        for name, write in fields.items():
            for text in (*GOOD_TEXT, ""):
                if text == "" and name == "job_kind":
                    continue
                try:
                    returned, stored = write(text)
                except Exception as exc:
                    problems.append(f"{name} {text[:30]!r}: {type(exc).__name__}: {exc}")
                    continue
                if returned != text or stored != text:
                    problems.append(f"{name} {text[:30]!r} came back as {stored!r:.40}")
            state = snapshot(db, job_ids=(job.id,), run_ids=(run.id,))
            problems += [f"{name}: {p}" for p in _refusals(BAD_TEXT, write, ValidationError)]
            if snapshot(db, job_ids=(job.id,), run_ids=(run.id,)) != state:
                problems.append(f"{name}: a refused write changed the database")
        assert not problems, problems

    def test_enum_values_are_checked(self, db: Database) -> None:
        job = db.create_ai_job(new_job())
        run = db.create_workflow_run(job.id, JobState.RUNNING)
        for state in JobState:
            assert db.create_workflow_run(job.id, state.value).status is state  # type: ignore[arg-type]
            assert db.update_workflow_run_status(run.id, state).status is state
        for mode in AccessMode:
            assert db.create_ai_job(new_job(access_mode=mode.value)).access_mode is mode
        for safety in SafetyMode:
            assert db.create_ai_job(new_job(safety_mode=safety.value)).safety_mode is safety
        for op_type in OperationType:
            op = PlannedOperation(op_type.value, EntityRef("a", "b"))  # type: ignore[arg-type]
            created = db.create_ai_job(new_job(planned_operations=[op]))
            assert db.get_ai_job(created.id).planned_operations[0].op_type is op_type
        for kind in WriteActorKind:
            ctx = WriteContext(kind.value, "x", uuid.uuid4(), uuid.uuid4())  # type: ignore[arg-type]
            assert db.create_workspace(ctx, NewWorkspace("n")).last_actor_kind is kind
        before = snapshot(db, job_ids=(job.id,), run_ids=(run.id,))
        unknown = ("bogus", "", "QUEUED", "Queued ", None, 0, JobState)
        problems = _refusals(unknown, lambda v: db.create_workflow_run(job.id, v), ValidationError)
        problems += _refusals(
            unknown, lambda v: db.update_workflow_run_status(run.id, v), ValidationError
        )
        problems += _refusals(
            ("human", "Ai", "robot", None, 1),
            lambda v: db.create_workspace(WriteContext(v), NewWorkspace("n")),  # type: ignore[arg-type]
            ValidationError,
        )
        assert not problems, problems
        assert snapshot(db, job_ids=(job.id,), run_ids=(run.id,)) == before
        assert len(db.list_workspaces()) == len(WriteActorKind)
