"""Property tests: random valid and invalid values through the API, on both backends at once.

One SQLite and one PostgreSQL database (migrated copies of the session
templates) are opened once for this module, with the same small world in
each. Every Hypothesis example applies the *same* operation to both and
requires the same outcome: either both succeed with identical observations
(the value read back equals the value written, compared strictly: ``1`` is
not ``1.0`` is not ``True``, ``0.0`` is not ``-0.0``, dict key order counts)
or both refuse it with the same error class. Each test also checks the
outcome against an independent model of what the API promises (which
values must be refused with ``ValidationError``, what a stored value reads
back as). An exception that is not a ``StorageError`` fails the test.

What is generated (examples per test in ``EXAMPLES``):

* text — arbitrary Unicode (every category, including lone surrogates and
  NUL), emoji, line/paragraph separators, noncharacters, very long strings,
  and non-strings (ints, bytes, None) — into workspace names, document and
  canvas titles, block kind/raw/display content, canvas node kinds, AI job
  fields, entity refs and planned operations, node execution ids/types and
  error messages, and the actor id of a write context;
* integers — the full signed 64-bit range, the +-2**63 boundaries and
  beyond, unbounded integers, and bools/floats/strings/None — into block
  sequences (create and update), node execution sequences, job metrics
  (non-negative), search limits and ``prune_ai_jobs(min_versions)``;
* floats — every double (NaN, +-inf, -0.0, subnormals, extremes) plus
  integers exact and inexact as doubles, huge integers and non-numbers —
  as canvas node positions (several nodes per example, order checked);
* JSON documents — nested lists and dicts of None/bool/int (unbounded)/
  float (incl. NaN, +-inf, -0.0)/text (incl. NUL and lone surrogates), with
  invalid parts mixed in: non-string keys, tuples, sets, bytes, datetimes —
  into block derived content (create and update), canvas node data, job
  inputs and outputs (three ways) and node execution payloads;
* datetimes — years 1 to 9999 with microseconds, naive or with UTC, a
  fixed offset (to the microsecond) or an IANA zone (incl. imaginary and
  ambiguous local times), plus dates, strings and numbers — as node
  execution start times, run heartbeats (create and update) and prune
  cutoffs;
* UUIDs — as ``UUID``, canonical/upper-case/hex/braced/URN strings, and
  garbage (random text, ints, bytes, None) — as job, trace, run and node
  execution ids and in AI write contexts;
* content ids — random text up to 300 characters, the 255-character
  limit, non-strings — created, read back and deleted as workspace ids;
* block lists — random ids (Unicode), sequences (with ties and the 64-bit
  extremes) and words, sometimes with one invalid or colliding block — for
  ``replace_blocks`` (order by sequence then id, atomicity), then random
  searches compared with the model of tests/search_model.py (matches and scores).
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import search_model
from handshake_storage import (
    AccessMode,
    BlockUpdate,
    Database,
    EntityRef,
    JobMetrics,
    JobState,
    JobStatusUpdate,
    NewAiJob,
    NewBlock,
    NewCanvas,
    NewCanvasNode,
    NewDocument,
    NewNodeExecution,
    NewWorkspace,
    OperationType,
    PlannedOperation,
    SafetyMode,
    StorageError,
    ValidationError,
    WriteActorKind,
    WriteContext,
)
from handshake_storage.errors import ConflictError, GuardError, NotFoundError

HUMAN = WriteContext.human("properties")
INT64 = (-(2**63), 2**63 - 1)

#: Examples per test; the whole module stays well under 90 s on 2 cores.
EXAMPLES = 300

PROPERTY_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# -- the two databases ----------------------------------------------------------------------------


@dataclass(frozen=True)
class World:
    """The same fixed rows in each database (jobs and runs get their own ids)."""

    workspace: str = "prop-ws"
    search_workspace: str = "prop-search"  # holds only `document`
    document: str = "prop-doc"  # its blocks are replaced by the block-list test
    scratch: str = "prop-scratch"  # per-example blocks go here
    other_document: str = "prop-other"
    other_block: str = "prop-other-block"
    canvas: str = "prop-canvas"


WORLD = World()


def build_world(db: Database) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID]:
    w = WORLD
    db.create_workspace(HUMAN, NewWorkspace("properties", id=w.workspace))
    db.create_workspace(HUMAN, NewWorkspace("search", id=w.search_workspace))
    db.create_document(HUMAN, NewDocument(w.search_workspace, "blocks", id=w.document))
    for document in (w.scratch, w.other_document):
        db.create_document(HUMAN, NewDocument(w.workspace, document, id=document))
    db.create_block(HUMAN, NewBlock(w.other_document, "p", 0, "other", id=w.other_block))
    db.create_canvas(HUMAN, NewCanvas(w.workspace, "canvas", id=w.canvas))
    job = db.create_ai_job(new_job())
    run = db.create_workflow_run(job.id, JobState.RUNNING)
    execution = db.create_workflow_node_execution(
        NewNodeExecution(run.id, "n", "t", JobState.RUNNING, 0, datetime.now(UTC))
    )
    return job.id, run.id, execution.id


@dataclass
class Side:
    db: Database
    job_id: uuid.UUID
    run_id: uuid.UUID
    execution_id: uuid.UUID


@pytest.fixture(scope="module")
def both(migrated_pair: Any) -> Iterator[tuple[Side, Side]]:
    with migrated_pair("properties") as (sqlite_db, pg_db):
        sides = (Side(sqlite_db, *build_world(sqlite_db)), Side(pg_db, *build_world(pg_db)))
        assert [s.db.backend for s in sides] == ["sqlite", "postgresql"]
        yield sides


# -- running one operation on both ----------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    ok: bool
    value: Any  # the observation, or the error class


def attempt(side: Side, op: Callable[[Side], Any]) -> Outcome:
    try:
        return Outcome(True, op(side))
    except StorageError as exc:
        return Outcome(False, type(exc))


def identical(a: Any, b: Any) -> bool:
    """Equality that tells apart 1 / 1.0 / True, 0.0 / -0.0, dict key orders,
    and datetimes in different zones; NaN equals NaN."""
    if type(a) is not type(b):
        return False
    if type(a) is float:
        return a.hex() == b.hex() if a == a else b != b
    if type(a) is dict:
        return list(a) == list(b) and all(identical(a[k], b[k]) for k in a)
    if type(a) in (list, tuple):
        return len(a) == len(b) and all(identical(x, y) for x, y in zip(a, b, strict=True))
    if type(a) is datetime:
        return a == b and a.utcoffset() == b.utcoffset()
    return bool(a == b)


def on_both(pair: tuple[Side, Side], op: Callable[[Side], Any]) -> Outcome:
    """Apply ``op`` to each database; the outcomes must be identical."""
    first, second = (attempt(side, op) for side in pair)
    assert first.ok == second.ok, f"sqlite: {first}, postgresql: {second}"
    if first.ok:
        assert identical(first.value, second.value), f"sqlite: {first}, postgresql: {second}"
    else:
        assert first.value is second.value, f"sqlite: {first.value}, postgresql: {second.value}"
    return first


def note(label: str, outcome: Outcome) -> None:
    """Count outcomes per label in Hypothesis' statistics (--hypothesis-show-statistics)."""
    event(f"{label}: {'accepted' if outcome.ok else outcome.value.__name__}")


def per_side(pair: tuple[Side, Side], op: Callable[[Side], Any]) -> list[Any]:
    """``op`` on each database, for observations that differ between them (ids, stamps)."""
    return [op(side) for side in pair]


def expect(outcome: Outcome, valid: bool, value: Any = None) -> None:
    """The outcome the API promises: a refusal with ValidationError, or success."""
    if valid:
        assert outcome.ok, f"refused with {outcome.value.__name__} ({value!r:.200})"
    else:
        assert not outcome.ok, f"accepted {value!r:.200}: {outcome.value!r:.200}"
        assert outcome.value is ValidationError, outcome.value


def new_job(**fields: Any) -> NewAiJob:
    values: dict[str, Any] = {
        "trace_id": uuid.UUID(int=1),
        "job_kind": "property",
        "protocol_id": "p",
        "profile_id": "p",
        "capability_profile_id": "c",
        "access_mode": AccessMode.ANALYSIS_ONLY,
        "safety_mode": SafetyMode.NORMAL,
    }
    values.update(fields)
    return NewAiJob(**values)


def fresh_id() -> str:
    return uuid.uuid4().hex


# -- the models: which values must be accepted ----------------------------------------------------


def storable_text(value: Any) -> bool:
    if not isinstance(value, str) or "\x00" in value:
        return False
    return not any("\ud800" <= ch <= "\udfff" for ch in value)


def storable_integer(value: Any, *, minimum: int = INT64[0]) -> bool:
    return type(value) is int and minimum <= value <= INT64[1]


def storable_number(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    if isinstance(value, float):
        return not math.isnan(value)
    try:
        return float(value) == value
    except OverflowError:
        return False


def storable_json(value: Any) -> bool:
    if value is None or type(value) in (bool, int):
        return True
    if type(value) is float:
        return math.isfinite(value)
    if type(value) is str:
        return storable_text(value.replace("\x00", ""))  # NUL is escaped in JSON
    if type(value) is list:
        return all(storable_json(v) for v in value)
    if type(value) is dict:
        return all(
            type(k) is str and storable_json(k) and storable_json(v) for k, v in value.items()
        )
    return False


def utc_instant(value: Any) -> datetime | None:
    """The UTC datetime the API must store for ``value``, or None if it must refuse it."""
    if not isinstance(value, datetime) or value.utcoffset() is None:
        return None
    try:
        return value.astimezone(UTC)
    except (OverflowError, ValueError):
        return None


def as_uuid(value: Any) -> uuid.UUID | None:
    if type(value) is uuid.UUID:
        return value
    if isinstance(value, str):
        try:
            return uuid.UUID(value)
        except ValueError:
            return None
    return None


# -- strategies -----------------------------------------------------------------------------------

SPECIAL_TEXT = [
    "",
    "\x00",
    "a\x00b",
    "\ud800",
    "x\udfffy",
    "\ud83d\ude00",  # a surrogate *pair* as two code points: still not valid text
    "😀👩‍👩‍👧‍👦🏳️‍🌈",
    "\u2028\u2029\ufeff\ufffe\uffff\U0010ffff",
    "e\u0301\u200d\u200b",
    "\x01\x1f\x7f\x80\x9f",
    "'; DROP TABLE blocks; -- %s ? $1 {C}",
    "x" * 5_000,
    "é" * 1_000,
]
any_char = st.one_of(
    st.characters(exclude_categories=()),  # every code point, surrogates included
    st.sampled_from(["\x00", "\ud800", "\udfff", "😀", "é", "\u2028", "a", " "]),
)
texts = st.one_of(
    st.text(any_char, max_size=40),
    st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=40),
    st.sampled_from(SPECIAL_TEXT),
)
non_strings = st.one_of(st.integers(), st.binary(max_size=4), st.none(), st.floats())

int_boundaries = st.sampled_from(
    [0, 1, -1, 2**31, 2**53 + 1, INT64[0], INT64[1], 2**63, -(2**63) - 1, 2**64, -(2**64), 10**30]
)
integers = st.one_of(
    st.integers(*INT64),
    st.integers(-2, 12_000),
    st.integers(),
    int_boundaries,
    st.booleans(),
    st.floats(allow_nan=False, width=64),
    st.sampled_from(["1", None, Decimal(1)]),
)

float_specials = st.sampled_from(
    [
        0.0,
        -0.0,
        5e-324,
        -5e-324,
        2.2250738585072014e-308,
        2.225073858507201e-308,
        1.7976931348623157e308,
        -1.7976931348623157e308,
        math.inf,
        -math.inf,
        math.nan,
        -math.nan,
        0.1,
        2**53,
        2**53 + 1,
        10**308,
        10**309,
    ]
)
numbers = st.one_of(
    st.floats(),
    st.floats(allow_nan=False),
    st.floats(allow_nan=False),
    float_specials,
    st.integers(-(2**60), 2**60),
    st.integers(),
    st.sampled_from([True, "1.5", None, Decimal("1.5")]),
)

json_keys = st.one_of(
    st.text(any_char, max_size=8),
    st.sampled_from(["", "a", "\x00", "\ud800"]),
    st.integers(-3, 3),  # invalid: not a string
    st.just(None),
    st.tuples(st.integers(0, 1)),
)
json_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(any_char, max_size=12),
    st.sampled_from([-0.0, 5e-324, 1.7976931348623157e308, 2**64, -(2**70), 1.0, 0]),
)
bad_json_leaves = st.one_of(
    st.binary(max_size=3),
    st.sampled_from(
        [(1, 2), {1, 2}, datetime(2024, 1, 1, tzinfo=UTC), uuid.UUID(int=3), Decimal("1.5")]
    ),
)
json_values = st.recursive(
    st.one_of(json_leaves, bad_json_leaves),
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(json_keys, children, max_size=4),
        st.tuples(children),
    ),
    max_leaves=12,
)
# mostly valid documents, often invalid
json_documents = st.one_of(
    st.recursive(
        json_leaves,
        lambda c: st.one_of(
            st.lists(c, max_size=4), st.dictionaries(st.text(any_char, max_size=8), c, max_size=4)
        ),
        max_leaves=16,
    ),
    json_values,
)

fixed_offsets = st.builds(
    timezone,
    st.timedeltas(
        min_value=timedelta(hours=-23, minutes=-59), max_value=timedelta(hours=23, minutes=59)
    ),
)
zones = st.one_of(st.none(), st.just(UTC), fixed_offsets, st.timezones())
datetimes = st.one_of(
    st.datetimes(timezones=zones),
    st.sampled_from(
        [
            datetime(1, 1, 1, tzinfo=UTC),
            datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
            datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1))),
            datetime(9999, 12, 31, 23, tzinfo=timezone(timedelta(hours=-2))),
            datetime(2024, 1, 1),
        ]
    ),
    st.dates(),
    st.sampled_from(["2024-01-01T00:00:00+00:00", 1_700_000_000, 1.5, None]),
)

uuid_forms = st.uuids().flatmap(
    lambda u: st.sampled_from(
        [u, str(u), str(u).upper(), u.hex, f"{{{u}}}", f"urn:uuid:{u}", str(u)[:-1], u.int]
    )
)
uuids = st.one_of(uuid_forms, st.text(any_char, max_size=40), st.binary(max_size=16), st.none())

content_ids = st.one_of(
    st.text(any_char, max_size=300),
    st.text(st.sampled_from("aé😀-_ "), min_size=250, max_size=260),
    st.sampled_from(["", "x" * 255, "x" * 256, "😀" * 255, "\x00", "a\ud800"]),
    st.integers(),
    st.binary(max_size=4),
)


# -- text -----------------------------------------------------------------------------------------


def _text_targets() -> dict[str, Callable[[Side, Any], tuple[Any, Any]]]:
    w = WORLD

    def workspace_name(s: Side, v: Any) -> tuple[Any, Any]:
        ws = s.db.create_workspace(HUMAN, NewWorkspace(v, id=fresh_id()))
        stored = s.db.get_workspace(ws.id)
        s.db.delete_workspace(HUMAN, ws.id)
        return ws.name, stored.name if stored else None

    def document_title(s: Side, v: Any) -> tuple[Any, Any]:
        doc = s.db.create_document(HUMAN, NewDocument(w.workspace, v, id=fresh_id()))
        return doc.title, s.db.get_document(doc.id).title

    def canvas_title(s: Side, v: Any) -> tuple[Any, Any]:
        canvas = s.db.create_canvas(HUMAN, NewCanvas(w.workspace, v, id=fresh_id()))
        return canvas.title, s.db.get_canvas_with_graph(canvas.id).canvas.title

    def block(field: str) -> Callable[[Side, Any], tuple[Any, Any]]:
        def write(s: Side, v: Any) -> tuple[Any, Any]:
            values = {"kind": "p", "raw_content": "x", "display_content": None, field: v}
            created = s.db.create_block(
                HUMAN,
                NewBlock(
                    w.scratch,
                    values["kind"],
                    0,
                    values["raw_content"],
                    display_content=values["display_content"],
                    id=fresh_id(),
                ),
            )
            return getattr(created, field), getattr(s.db.get_block(created.id), field)

        return write

    def block_update(s: Side, v: Any) -> tuple[Any, Any]:
        created = s.db.create_block(HUMAN, NewBlock(w.scratch, "p", 0, "x", id=fresh_id()))
        updated = s.db.update_block(HUMAN, created.id, BlockUpdate(raw_content=v))
        return updated.raw_content, s.db.get_block(created.id).raw_content

    def node_kind(s: Side, v: Any) -> tuple[Any, Any]:
        graph = s.db.update_canvas_graph(HUMAN, w.canvas, [NewCanvasNode(v, 0, 0)], [])
        return graph.nodes[0].kind, s.db.get_canvas_with_graph(w.canvas).nodes[0].kind

    def job(field: str) -> Callable[[Side, Any], tuple[Any, Any]]:
        def write(s: Side, v: Any) -> tuple[Any, Any]:
            created = s.db.create_ai_job(new_job(**{field: v}))
            return getattr(created, field), getattr(s.db.get_ai_job(created.id), field)

        return write

    def status(field: str) -> Callable[[Side, Any], tuple[Any, Any]]:
        def write(s: Side, v: Any) -> tuple[Any, Any]:
            update = JobStatusUpdate(s.job_id, JobState.RUNNING, **{field: v})
            return getattr(s.db.update_ai_job_status(update), field), getattr(
                s.db.get_ai_job(s.job_id), field
            )

        return write

    def entity(s: Side, v: Any) -> tuple[Any, Any]:
        op = PlannedOperation(OperationType.PLAN, EntityRef(v, "kind"), v)
        created = s.db.create_ai_job(
            new_job(entity_refs=[EntityRef("id", v)], planned_operations=[op])
        )
        stored = s.db.get_ai_job(created.id)
        assert stored.entity_refs == created.entity_refs
        return created.planned_operations[0].description, (
            stored.entity_refs[0].entity_kind,
            stored.planned_operations[0].target.entity_id,
            stored.planned_operations[0].description,
        )

    def execution(field: str) -> Callable[[Side, Any], tuple[Any, Any]]:
        def write(s: Side, v: Any) -> tuple[Any, Any]:
            values = {"node_id": "n", "node_type": "t", field: v}
            created = s.db.create_workflow_node_execution(
                NewNodeExecution(
                    s.run_id,
                    values["node_id"],
                    values["node_type"],
                    JobState.RUNNING,
                    0,
                    datetime.now(UTC),
                )
            )
            listed = {e.id: e for e in s.db.list_workflow_node_executions(s.run_id)}
            return getattr(created, field), getattr(listed[created.id], field)

        return write

    def execution_error(s: Side, v: Any) -> tuple[Any, Any]:
        updated = s.db.update_workflow_node_execution_status(
            s.execution_id, JobState.FAILED, None, v
        )
        listed = {e.id: e for e in s.db.list_workflow_node_executions(s.run_id)}
        return updated.error_message, listed[s.execution_id].error_message

    def run_error(s: Side, v: Any) -> tuple[Any, Any]:
        run = s.db.update_workflow_run_status(s.run_id, JobState.RUNNING, v)
        return run.error_message, s.db.update_workflow_run_status(
            s.run_id, JobState.RUNNING, v
        ).error_message

    def actor(s: Side, v: Any) -> tuple[Any, Any]:
        created = s.db.create_block(
            WriteContext.human(v), NewBlock(w.scratch, "p", 0, "x", id=fresh_id())
        )
        return created.last_actor_id, s.db.get_block(created.id).last_actor_id

    return {
        "workspace name": workspace_name,
        "document title": document_title,
        "canvas title": canvas_title,
        "block kind": block("kind"),
        "block raw_content": block("raw_content"),
        "block display_content": block("display_content"),
        "block update raw_content": block_update,
        "node kind": node_kind,
        "job_kind": job("job_kind"),
        "protocol_id": job("protocol_id"),
        "capability_profile_id": job("capability_profile_id"),
        "status_reason": job("status_reason"),
        "update status_reason": status("status_reason"),
        "update error_message": status("error_message"),
        "entity refs and operations": entity,
        "node_id": execution("node_id"),
        "node_type": execution("node_type"),
        "execution error_message": execution_error,
        "run error_message": run_error,
        "actor id": actor,
    }


TEXT_TARGETS = _text_targets()


@PROPERTY_SETTINGS
@given(
    target=st.sampled_from(sorted(TEXT_TARGETS)),
    value=st.one_of(texts, texts, texts, non_strings),
)
def test_text_round_trips_or_is_refused_alike(
    both: tuple[Side, Side], target: str, value: Any
) -> None:
    write = TEXT_TARGETS[target]
    outcome = on_both(both, lambda s: write(s, value))
    note(target, outcome)
    valid = storable_text(value)
    if target == "job_kind" and value == "":
        valid = False
    if value is None and target in (
        "block display_content",
        "update error_message",
        "execution error_message",
        "run error_message",
        "actor id",
    ):
        valid = True  # None means "the default" / "no value" for these
    if value is None and target == "block update raw_content":
        valid = True  # None leaves the field unchanged
        assert outcome.ok and outcome.value == ("x", "x")
        return
    if value is None and target == "block display_content":
        assert outcome.ok and outcome.value == ("x", "x")  # defaults to the raw content
        return
    expect(outcome, valid, value)
    if outcome.ok:
        returned, stored = outcome.value
        if target == "entity refs and operations":
            assert returned == value and stored == (value, value, value)
        else:
            assert returned == value and stored == value, (returned, stored)


# -- integers -------------------------------------------------------------------------------------


def _integer_targets() -> dict[str, Callable[[Side, Any], Any]]:
    w = WORLD

    def block_sequence(s: Side, v: Any) -> Any:
        created = s.db.create_block(HUMAN, NewBlock(w.scratch, "p", v, "x", id=fresh_id()))
        stored = s.db.get_block(created.id).sequence
        assert identical(stored, created.sequence)
        return stored

    def block_update(s: Side, v: Any) -> Any:
        created = s.db.create_block(HUMAN, NewBlock(w.scratch, "p", 0, "x", id=fresh_id()))
        updated = s.db.update_block(HUMAN, created.id, BlockUpdate(sequence=v))
        stored = s.db.get_block(created.id).sequence
        assert identical(stored, updated.sequence)
        return stored

    def execution_sequence(s: Side, v: Any) -> Any:
        created = s.db.create_workflow_node_execution(
            NewNodeExecution(s.run_id, "n", "t", JobState.RUNNING, v, datetime.now(UTC))
        )
        listed = {e.id: e for e in s.db.list_workflow_node_executions(s.run_id)}
        assert identical(listed[created.id].sequence, created.sequence)
        return listed[created.id].sequence

    def metrics(s: Side, v: Any) -> Any:
        created = s.db.create_ai_job(new_job(metrics=JobMetrics(total_tokens=v)))
        stored = s.db.get_ai_job(created.id).metrics
        assert stored == created.metrics
        return stored.total_tokens

    def metrics_update(s: Side, v: Any) -> Any:
        update = JobStatusUpdate(s.job_id, JobState.RUNNING, metrics=JobMetrics(duration_ms=v))
        returned = s.db.update_ai_job_status(update).metrics
        assert returned == s.db.get_ai_job(s.job_id).metrics
        return returned.duration_ms

    def search_limit(s: Side, v: Any) -> Any:
        return [b.id for b in s.db.search_blocks(w.workspace, "other", v)]

    def prune_window(s: Side, v: Any) -> Any:
        report = s.db.prune_ai_jobs(datetime(2000, 1, 1, tzinfo=UTC), v, dry_run=True)
        return report.items_pruned

    return {
        "block sequence": block_sequence,
        "block update sequence": block_update,
        "execution sequence": execution_sequence,
        "metrics": metrics,
        "metrics update": metrics_update,
        "search limit": search_limit,
        "prune min_versions": prune_window,
    }


INTEGER_TARGETS = _integer_targets()


@PROPERTY_SETTINGS
@given(target=st.sampled_from(sorted(INTEGER_TARGETS)), value=integers)
def test_integers_round_trip_or_are_refused_alike(
    both: tuple[Side, Side], target: str, value: Any
) -> None:
    outcome = on_both(both, lambda s: INTEGER_TARGETS[target](s, value))
    note(target, outcome)
    if target.startswith("metrics") or target == "prune min_versions":
        valid = storable_integer(value, minimum=0)
    elif target == "search limit":
        valid = storable_integer(value) and 1 <= value <= 10_000
    else:
        valid = storable_integer(value)
    if value is None and target == "block update sequence":
        valid = True  # None leaves the sequence unchanged
        assert outcome.ok and outcome.value == 0
        return
    expect(outcome, valid, value)
    if outcome.ok and target == "search limit":
        assert outcome.value == [WORLD.other_block]
    elif outcome.ok and target == "prune min_versions":
        assert outcome.value == 0
    elif outcome.ok:
        assert identical(outcome.value, value), (outcome.value, value)


# -- floats ---------------------------------------------------------------------------------------


@PROPERTY_SETTINGS
@given(positions=st.lists(st.tuples(numbers, numbers), min_size=1, max_size=4))
def test_floats_round_trip_or_are_refused_alike(
    both: tuple[Side, Side], positions: list[tuple[Any, Any]]
) -> None:
    def write(s: Side) -> Any:
        nodes = [NewCanvasNode("k", x, y, id=f"n{i}") for i, (x, y) in enumerate(positions)]
        graph = s.db.update_canvas_graph(HUMAN, WORLD.canvas, nodes, [])
        stored = s.db.get_canvas_with_graph(WORLD.canvas)
        assert stored == graph
        return [(n.id, n.position_x, n.position_y) for n in stored.nodes]

    def stamps(s: Side) -> Any:
        return [(n.id, n.edit_event_id) for n in s.db.get_canvas_with_graph(WORLD.canvas).nodes]

    before = per_side(both, stamps)
    outcome = on_both(both, write)
    note("positions", outcome)
    valid = all(storable_number(v) for pair in positions for v in pair)
    expect(outcome, valid, positions)
    if outcome.ok:
        # a number is a double, in the order given; no backend keeps the sign of zero
        expected = [(f"n{i}", float(x) + 0.0, float(y) + 0.0) for i, (x, y) in enumerate(positions)]
        assert identical(outcome.value, expected), (outcome.value, expected)
    else:
        assert per_side(both, stamps) == before  # nothing was written


# -- JSON -----------------------------------------------------------------------------------------


def _json_targets() -> dict[str, tuple[Callable[[Side, Any], Any], Any]]:
    """name -> (write and read back, what a top-level None stores)."""
    w = WORLD

    def derived(s: Side, v: Any) -> Any:
        created = s.db.create_block(
            HUMAN, NewBlock(w.scratch, "p", 0, "x", derived_content=v, id=fresh_id())
        )
        stored = s.db.get_block(created.id).derived_content
        assert identical(stored, created.derived_content)
        return stored

    def derived_update(s: Side, v: Any) -> Any:
        created = s.db.create_block(HUMAN, NewBlock(w.scratch, "p", 0, "x", id=fresh_id()))
        updated = s.db.update_block(HUMAN, created.id, BlockUpdate(derived_content=v))
        stored = s.db.get_block(created.id).derived_content
        assert identical(stored, updated.derived_content)
        return stored

    def node_data(s: Side, v: Any) -> Any:
        graph = s.db.update_canvas_graph(HUMAN, w.canvas, [NewCanvasNode("k", 0, 0, v)], [])
        stored = s.db.get_canvas_with_graph(w.canvas).nodes[0].data
        assert identical(stored, graph.nodes[0].data)
        return stored

    def job_inputs(s: Side, v: Any) -> Any:
        created = s.db.create_ai_job(new_job(job_inputs=v))
        stored = s.db.get_ai_job(created.id).job_inputs
        assert identical(stored, created.job_inputs)
        return stored

    def outputs(s: Side, v: Any) -> Any:
        created = s.db.create_ai_job(new_job())
        s.db.set_job_outputs(created.id, v)
        return s.db.get_ai_job(created.id).job_outputs

    def status_outputs(s: Side, v: Any) -> Any:
        created = s.db.create_ai_job(new_job())
        updated = s.db.update_ai_job_status(
            JobStatusUpdate(created.id, JobState.COMPLETED, job_outputs=v)
        )
        stored = s.db.get_ai_job(created.id).job_outputs
        assert identical(stored, updated.job_outputs)
        return stored

    def execution_input(s: Side, v: Any) -> Any:
        created = s.db.create_workflow_node_execution(
            NewNodeExecution(s.run_id, "n", "t", JobState.RUNNING, 0, datetime.now(UTC), v)
        )
        listed = {e.id: e for e in s.db.list_workflow_node_executions(s.run_id)}
        assert identical(listed[created.id].input_payload, created.input_payload)
        return listed[created.id].input_payload

    def execution_output(s: Side, v: Any) -> Any:
        created = s.db.create_workflow_node_execution(
            NewNodeExecution(s.run_id, "n", "t", JobState.RUNNING, 0, datetime.now(UTC))
        )
        updated = s.db.update_workflow_node_execution_status(created.id, JobState.COMPLETED, v)
        listed = {e.id: e for e in s.db.list_workflow_node_executions(s.run_id)}
        assert identical(listed[created.id].output_payload, updated.output_payload)
        return updated.output_payload

    return {
        "block derived_content": (derived, {}),
        "block update derived_content": (derived_update, {}),
        "canvas node data": (node_data, {}),
        "job inputs": (job_inputs, None),
        "set_job_outputs": (outputs, None),
        "status job_outputs": (status_outputs, None),
        "execution input": (execution_input, None),
        "execution output": (execution_output, None),
    }


JSON_TARGETS = _json_targets()


@PROPERTY_SETTINGS
@given(target=st.sampled_from(sorted(JSON_TARGETS)), value=json_documents)
def test_json_round_trips_or_is_refused_alike(
    both: tuple[Side, Side], target: str, value: Any
) -> None:
    write, none_stores = JSON_TARGETS[target]
    outcome = on_both(both, lambda s: write(s, value))
    note(target, outcome)
    expect(outcome, storable_json(value), value)
    if outcome.ok:
        expected = none_stores if value is None else value
        assert identical(outcome.value, expected), (outcome.value, expected)


# -- datetimes ------------------------------------------------------------------------------------


def _datetime_targets() -> dict[str, Callable[[Side, Any], Any]]:
    def started_at(s: Side, v: Any) -> Any:
        created = s.db.create_workflow_node_execution(
            NewNodeExecution(s.run_id, "n", "t", JobState.RUNNING, 0, v)
        )
        listed = {e.id: e for e in s.db.list_workflow_node_executions(s.run_id)}
        assert identical(listed[created.id].started_at, created.started_at)
        return created.started_at

    def created_heartbeat(s: Side, v: Any) -> Any:
        run = s.db.create_workflow_run(s.job_id, JobState.QUEUED, v)
        stored = s.db.update_workflow_run_status(run.id, JobState.QUEUED).last_heartbeat
        assert identical(stored, run.last_heartbeat)
        return "now" if v is None else stored

    def heartbeat(s: Side, v: Any) -> Any:
        s.db.heartbeat_workflow(s.run_id, v)
        return s.db.update_workflow_run_status(s.run_id, JobState.RUNNING).last_heartbeat

    def cutoff(s: Side, v: Any) -> Any:
        report = s.db.prune_ai_jobs(v, 10**6, dry_run=True)
        assert report.items_pruned == 0 and report.dry_run
        return None

    return {
        "node execution started_at": started_at,
        "run created with heartbeat": created_heartbeat,
        "heartbeat_workflow": heartbeat,
        "prune cutoff": cutoff,
    }


DATETIME_TARGETS = _datetime_targets()


@PROPERTY_SETTINGS
@given(target=st.sampled_from(sorted(DATETIME_TARGETS)), value=datetimes)
def test_datetimes_round_trip_or_are_refused_alike(
    both: tuple[Side, Side], target: str, value: Any
) -> None:
    outcome = on_both(both, lambda s: DATETIME_TARGETS[target](s, value))
    note(target, outcome)
    instant = utc_instant(value)
    if value is None and target == "run created with heartbeat":
        assert outcome.ok and outcome.value == "now"  # None means "now"
        return
    expect(outcome, instant is not None, value)
    if outcome.ok and target != "prune cutoff":
        stored = outcome.value
        assert stored == instant and stored.utcoffset() == timedelta(0), (stored, instant)
        assert stored.microsecond == instant.microsecond


# -- UUIDs ----------------------------------------------------------------------------------------


#: Explicit ids already used (the same in both databases), per table.
USED_IDS: dict[str, set[uuid.UUID]] = {"job id": set(), "execution id": set()}


@PROPERTY_SETTINGS
@given(
    target=st.sampled_from(["job id", "trace id", "execution id", "read job", "ai context"]),
    value=uuids,
)
def test_uuids_are_accepted_in_every_form_or_refused_alike(
    both: tuple[Side, Side], target: str, value: Any
) -> None:
    key = as_uuid(value)

    def write(s: Side) -> Any:
        if target == "job id":
            created = s.db.create_ai_job(new_job(id=value))
            assert s.db.get_ai_job(created.id) == created
            return "fresh" if value is None else created.id
        if target == "trace id":
            created = s.db.create_ai_job(new_job(trace_id=value))
            assert s.db.get_ai_job(created.id) == created
            return created.trace_id
        if target == "execution id":
            created = s.db.create_workflow_node_execution(
                NewNodeExecution(
                    s.run_id, "n", "t", JobState.RUNNING, 0, datetime.now(UTC), id=value
                )
            )
            listed = {e.id: e for e in s.db.list_workflow_node_executions(s.run_id)}
            assert listed[created.id] == created
            return "fresh" if value is None else created.id
        if target == "read job":
            return s.db.get_ai_job(value).id
        ctx = WriteContext.ai(value, value)
        created = s.db.create_block(ctx, NewBlock(WORLD.scratch, "p", 0, "x", id=fresh_id()))
        stored = s.db.get_block(created.id)
        assert stored == created and stored.last_actor_kind is WriteActorKind.AI
        return stored.last_job_id, stored.last_workflow_id

    outcome = on_both(both, write)
    note(target, outcome)
    if value is None and target in USED_IDS:
        assert outcome.ok and outcome.value == "fresh"  # None asks for a fresh id
    elif value is None and target == "ai context":
        assert not outcome.ok and outcome.value is GuardError  # an AI write needs the ids
    elif target == "read job":
        if key in USED_IDS["job id"]:
            assert outcome.ok and outcome.value == key
        else:
            assert not outcome.ok
            assert outcome.value is (NotFoundError if key is not None else ValidationError)
    elif target in USED_IDS and key in USED_IDS[target]:
        assert not outcome.ok and outcome.value is ConflictError
    else:
        expect(outcome, key is not None, value)
        if outcome.ok:
            assert outcome.value == ((key, key) if target == "ai context" else key)
            if target in USED_IDS:
                USED_IDS[target].add(key)


# -- content ids ----------------------------------------------------------------------------------


@PROPERTY_SETTINGS
@given(value=content_ids)
def test_content_ids_round_trip_or_are_refused_alike(both: tuple[Side, Side], value: Any) -> None:
    def write(s: Side) -> Any:
        created = s.db.create_workspace(HUMAN, NewWorkspace("n", id=value))
        try:
            assert s.db.get_workspace(value) == created
            assert created in s.db.list_workspaces()
            document = s.db.create_document(HUMAN, NewDocument(value, "t", id=value))
            assert s.db.list_documents(value) == [document]
            assert s.db.get_document(value) == document
        finally:
            s.db.delete_workspace(HUMAN, created.id)
        assert s.db.get_workspace(value) is None
        return created.id

    outcome = on_both(both, write)
    note("workspace id", outcome)
    valid = storable_text(value) and 1 <= len(value) <= 255
    expect(outcome, valid, value)
    if outcome.ok:
        assert outcome.value == value
    reads = on_both(both, lambda s: s.db.get_document(value))
    assert not reads.ok and reads.value is (NotFoundError if valid else ValidationError)


# -- block lists: ordering, atomicity, search -----------------------------------------------------

WORDS = ["alpha", "Beta", "GAMMA", "straße", "STRASSE", "café", "日本", "x" * 120, "_", "7"]
block_ids = st.text(st.sampled_from("abAB_-é😀\uff41~0"), min_size=1, max_size=4)
block_specs = st.lists(
    st.tuples(
        block_ids,
        st.one_of(st.integers(-2, 2), st.sampled_from(INT64)),
        st.lists(
            st.one_of(
                st.sampled_from(WORDS), st.sampled_from(WORDS), st.text(any_char, max_size=5)
            ),
            max_size=5,
        ),
    ),
    min_size=1,
    max_size=8,
    unique_by=lambda spec: spec[0],
)
spoilers = st.one_of(
    st.none(),
    st.sampled_from(["nul", "surrogate", "sequence", "duplicate", "collision", "foreign"]),
)


@PROPERTY_SETTINGS
@given(
    specs=block_specs,
    spoiler=spoilers,
    picks=st.lists(
        st.one_of(st.integers(0, 99), st.integers(0, 99), st.text(any_char, max_size=4)),
        min_size=1,
        max_size=2,
    ),
    limit=st.integers(1, 5),
)
def test_block_lists_order_atomicity_and_search_agree(
    both: tuple[Side, Side],
    specs: list[tuple[str, int, list[str]]],
    spoiler: str | None,
    picks: list[int | str],
    limit: int,
) -> None:
    doc = WORLD.document
    valid_specs = [(i, s, " ".join(ws)) for i, s, ws in specs if storable_text(" ".join(ws))]
    blocks = [NewBlock(doc, "p", s, text, id=i) for i, s, text in valid_specs]
    if spoiler == "nul":
        blocks.append(NewBlock(doc, "p", 0, "bad\x00text"))
    elif spoiler == "surrogate":
        blocks.append(NewBlock(doc, "p", 0, "ok", id="\udc00"))
    elif spoiler == "sequence":
        blocks.append(NewBlock(doc, "p", 2**63, "ok"))
    elif spoiler == "duplicate" and blocks:
        blocks.append(blocks[0])
    elif spoiler == "collision":  # only fails inside the transaction
        blocks.append(NewBlock(doc, "p", 0, "ok", id=WORLD.other_block))
    elif spoiler == "foreign":
        blocks.append(NewBlock(WORLD.other_document, "p", 0, "ok"))
    failing = spoiler is not None and not (spoiler == "duplicate" and not blocks)

    def stamps(s: Side) -> Any:
        return [(b.id, b.edit_event_id) for b in s.db.get_blocks(doc)]

    before = per_side(both, stamps)
    outcome = on_both(
        both,
        lambda s: [
            (b.id, b.sequence, b.raw_content) for b in s.db.replace_blocks(HUMAN, doc, blocks)
        ],
    )
    note(f"replace_blocks ({spoiler or 'valid'})", outcome)
    stored = on_both(
        both, lambda s: [(b.id, b.sequence, b.raw_content) for b in s.db.get_blocks(doc)]
    )
    if failing:
        assert not outcome.ok
        expected_error = ConflictError if spoiler == "collision" else ValidationError
        assert outcome.value is expected_error
        assert per_side(both, stamps) == before  # nothing was written
        current = [(i, s, t) for i, s, t in stored.value]
    else:
        assert outcome.ok
        expected = sorted(valid_specs, key=lambda spec: (spec[1], spec[0]))
        assert outcome.value == expected and stored.value == expected
        current = expected

    # search: compared with the model of tests/search_model.py, hits and scores
    # query words: mostly words of the stored blocks, sometimes anything
    words = [word for _, _, text in current for word in re.findall(r"\w+", text)] or WORDS
    query = [words[p % len(words)] if isinstance(p, int) else p for p in picks]
    query_text = " ".join(query)
    found = on_both(
        both,
        lambda s: [
            (h.block.id, h.score)
            for h in s.db.search_hits(WORLD.search_workspace, query_text, limit)
        ],
    )
    if not storable_text(query_text):
        expect(found, False, query_text)
        event("search: ValidationError")
        return
    try:
        expected_hits = search_model.ranked({i: t for i, _, t in current}, query_text)[:limit]
    except search_model.Malformed:
        expect(found, False, query_text)
        event("search: malformed query")
        return
    assert found.ok and found.value == expected_hits, (found.value, expected_hits)
    event(f"search hits: {len(found.value)}")


def test_properties_compare_two_different_backends(both: tuple[Side, Side]) -> None:
    lite, pg = both
    assert (lite.db.backend, pg.db.backend) == ("sqlite", "postgresql")
    lite.db.ping()
    pg.db.ping()
    assert identical(date(2024, 1, 1), date(2024, 1, 1))
    assert (
        not identical(1, 1.0)
        and not identical(0.0, -0.0)
        and not identical({"a": 1, "b": 2}, {"b": 2, "a": 1})
    )
