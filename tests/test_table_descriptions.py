"""The table descriptions (tables.py) agree with the migrations, and the rows,
records and images derived from them are right, on both backends."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest

from handshake_storage import (
    Database,
    JobStatusUpdate,
    NewAiJob,
    NewBlock,
    NewCanvas,
    NewCanvasEdge,
    NewCanvasNode,
    NewDocument,
    NewNodeExecution,
    NewWorkspace,
    ValidationError,
    WriteContext,
)
from handshake_storage.models import (
    AccessMode,
    CanvasNode,
    EntityRef,
    JobState,
    SafetyMode,
)
from handshake_storage.record import Record
from handshake_storage.tables import (
    BLOCKS,
    BY_NAME,
    CANONICAL,
    CANVAS_EDGES,
    CANVAS_NODES,
    STAMP,
    WORKSPACES,
)

HUMAN = WriteContext.human("ada")


def _fill(db: Database) -> None:
    """At least one row in every canonical table, with NULLs and non-ASCII text."""
    ws = db.create_workspace(HUMAN, NewWorkspace("Straße"))
    doc = db.create_document(HUMAN, NewDocument(ws.id, "doc"))
    db.create_block(HUMAN, NewBlock(doc.id, "p", 1, "hello", derived_content={"k": [1, 2.5]}))
    canvas = db.create_canvas(HUMAN, NewCanvas(ws.id, "c"))
    db.update_canvas_graph(
        WriteContext.ai(uuid.uuid4(), uuid.uuid4(), "agent"),
        canvas.id,
        [NewCanvasNode("n", 1.5, -2.25, id="n1"), NewCanvasNode("n", 0.1, 3.0, id="n2")],
        [NewCanvasEdge("n1", "n2", "e", id="e1")],
    )
    job = db.create_ai_job(
        NewAiJob(
            uuid.uuid4(),
            "summarize",
            "p",
            "pr",
            "cap",
            AccessMode.PREVIEW_ONLY,
            SafetyMode.STRICT,
            entity_refs=[EntityRef("b1", "block")],
            job_inputs={"q": "x"},
            is_pinned=True,
        )
    )
    db.update_ai_job_status(JobStatusUpdate(job.id, JobState.RUNNING))
    run = db.create_workflow_run(job.id, JobState.RUNNING)
    db.create_workflow_node_execution(
        NewNodeExecution(run.id, "n", "t", JobState.RUNNING, 0, datetime.now(UTC))
    )


def test_every_description_matches_the_migrated_schema(db: Database) -> None:
    live = db.schema()
    for table in CANONICAL:
        shape = live.tables[table.name]
        columns = {c.name: c for c in shape.columns}
        assert set(columns) == set(table.names), table.name
        for column in table.columns:
            got = columns[column.name]
            assert got.family == column.codec.family, f"{table.name}.{column.name}"
            assert got.nullable == column.nullable, f"{table.name}.{column.name}"
        assert shape.primary_key == (table.key,), table.name
        if table.parent is not None:
            refs = {(fk.columns, fk.ref_table, fk.on_delete) for fk in shape.foreign_keys}
            assert ((table.parent.column,), table.parent.table, "CASCADE") in refs, table.name
            assert table.parent.table in BY_NAME


def test_row_images_round_trip_through_json_for_every_table(db: Database) -> None:
    _fill(db)
    adapter = db._adapter
    for table in CANONICAL:
        with adapter.transaction() as s:
            rows = list(adapter.stream(s, f"SELECT {table.select_list} FROM {table.name}"))
        assert rows, table.name
        for row in rows:
            image = table.image(row, adapter.decode_timestamp)
            assert list(image) == list(table.names)
            again = table.from_image(json.loads(json.dumps(image)), adapter.encode_timestamp)
            assert again == tuple(row), table.name


def test_image_values_are_the_documented_json_forms(db: Database) -> None:
    _fill(db)
    adapter = db._adapter
    with adapter.transaction() as s:
        (row,) = list(adapter.stream(s, f"SELECT {BLOCKS.select_list} FROM blocks"))
    image = BLOCKS.image(row, adapter.decode_timestamp)
    assert image["derived_content"] == {"k": [1, 2.5]}
    assert image["last_actor_kind"] == "HUMAN" and image["last_job_id"] is None
    assert datetime.fromisoformat(image["created_at"]).utcoffset().total_seconds() == 0
    assert uuid.UUID(image["edit_event_id"])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"surprise": 1}, "blocks has no column(s) surprise"),
        ({"kind": None}, "blocks.kind must not be null"),
        ({"sequence": "7"}, "blocks.sequence must be an integer"),
        ({"last_actor_kind": "ROBOT"}, "blocks.last_actor_kind must be one of"),
        ({"created_at": "yesterday"}, "blocks.created_at is not an ISO 8601 timestamp"),
        ({"created_at": "2026-01-01 10:00:00"}, "blocks.created_at is a naive datetime"),
        ({"edit_event_id": "nope"}, "blocks.edit_event_id must be a UUID"),
        ({"derived_content": {"x": float("nan")}}, "blocks.derived_content contains nan"),
        ({"raw_content": "a\x00b"}, "blocks.raw_content contains a NUL"),
    ],
)
def test_from_image_refuses_what_the_table_cannot_store(change: dict, message: str) -> None:
    image = {
        "id": "b1",
        "document_id": "d1",
        "kind": "p",
        "sequence": 1,
        "raw_content": "x",
        "display_content": "x",
        "derived_content": {},
        "created_at": "2026-01-01T10:00:00.000001+00:00",
        "updated_at": "2026-01-01T10:00:00.000001+00:00",
        "last_actor_kind": "HUMAN",
        "last_actor_id": None,
        "last_job_id": None,
        "last_workflow_id": None,
        "edit_event_id": str(uuid.uuid4()),
    }
    BLOCKS.from_image(image, lambda ts: ts)  # the unchanged image is accepted
    with pytest.raises(ValidationError) as raised:
        BLOCKS.from_image({**image, **change}, lambda ts: ts)
    assert message in str(raised.value)


def test_rows_are_built_by_name_in_table_order() -> None:
    make = CANVAS_NODES.maker("kind", "id", "ordinal", "canvas_id", "position_x", "position_y",
                              "data", "created_at", "updated_at", "last_actor_kind",
                              "edit_event_id")  # fmt: skip
    row = make("k", "n1", 3, "c1", 1.0, 2.0, "{}", "t0", "t1", "HUMAN", "e")
    assert row[CANVAS_NODES.at["id"]] == "n1" and row[CANVAS_NODES.at["ordinal"]] == 3
    assert row[CANVAS_NODES.at["last_actor_id"]] is None  # nullable, not given
    assert WORKSPACES.row(
        id="w", name="n", created_at=1, updated_at=2, last_actor_kind="HUMAN", edit_event_id="e"
    ) == ("w", "n", 1, 2, "HUMAN", None, None, None, "e")
    with pytest.raises(TypeError, match="NOT NULL"):
        CANVAS_NODES.maker("id", "canvas_id")
    with pytest.raises(TypeError, match="unknown or repeated"):
        CANVAS_NODES.maker("id", "id")
    with pytest.raises(TypeError):
        WORKSPACES.row(id="w", name="n")  # NOT NULL columns missing


def test_a_maker_with_a_tail_appends_the_last_columns_as_given() -> None:
    by_name = CANVAS_EDGES.maker("kind", "id", "ordinal", "canvas_id", "from_node_id",
                                 "to_node_id", *STAMP)  # fmt: skip
    with_tail = CANVAS_EDGES.maker("kind", "id", "ordinal", "canvas_id", "from_node_id",
                                   "to_node_id", tail=STAMP)  # fmt: skip
    stamp = ("t0", "t1", "AI", "actor", "job", "flow", "e")
    assert with_tail("k", "e1", 2, "c1", "a", "b", stamp) == by_name(
        "k", "e1", 2, "c1", "a", "b", *stamp
    )
    with pytest.raises(TypeError, match="not its last columns"):
        CANVAS_EDGES.maker("id", "canvas_id", tail=("created_at",))
    with pytest.raises(TypeError, match="unknown or repeated"):
        CANVAS_EDGES.maker("id", "created_at", tail=STAMP)
    with pytest.raises(TypeError, match="NOT NULL"):
        CANVAS_EDGES.maker("id", "canvas_id", tail=STAMP)


def test_records_read_fields_by_column_name_not_position() -> None:
    # canvas_nodes stores the ordinal between canvas_id and kind; it is no field
    row = CANVAS_NODES.maker(*CANVAS_NODES.names)(
        "n1", "c1", 7, "kind", 1.0, 2.0, '{"a":1}', "2026-01-01 00:00:00.000000+00:00",
        "2026-01-01 00:00:00.000000+00:00", "HUMAN", None, None, None, str(uuid.uuid4()),
    )  # fmt: skip
    node = CanvasNode._from_row(row, datetime.fromisoformat)
    assert (node.id, node.canvas_id, node.kind, node.data) == ("n1", "c1", "kind", {"a": 1})
    assert "ordinal" not in node._fields
    with pytest.raises(TypeError, match="has no column"):

        class Wrong(Record, table=WORKSPACES):
            __slots__ = ()
            nickname: str
