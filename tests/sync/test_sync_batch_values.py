"""A batch comes from another machine: every value its change sets write is
checked against the column's codec before any statement runs, so each
backend refuses the same values with the same message and stores nothing —
instead of one backend storing what the other refuses (text in an integer
column, a NUL in text), storing it differently (1.5 rounded into an
integer), or refusing it in its driver's words."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
from sync_support import ADA, content, job_input, replicas

from handshake_storage import (
    NewBlock,
    NewCanvas,
    NewCanvasNode,
    NewDocument,
    NewWorkspace,
    ValidationError,
)


@pytest.fixture
def source_and_targets(request, tmp_path):
    """A SQLite replica with a block, a canvas node and an AI job in its
    ledger, and an empty replica of each backend to import into."""
    yield from replicas(request, tmp_path, ("sqlite", "sqlite", "postgresql"))


Batch = dict[str, Any]


def _put(batch: Batch, table: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the change, its put group) of the first change set writing ``table``."""
    for change in batch["changes"]:
        for group in change["payload"].get("put", ()):
            if group["table"] == table:
                return change, group
    raise AssertionError(f"no change set writes {table}")


def _set(table: str, column: str, value: Any) -> Callable[[Batch], None]:
    def damage(batch: Batch) -> None:
        _, group = _put(batch, table)
        group["rows"][0][group["columns"].index(column)] = value

    return damage


def _change(field: str, value: Any) -> Callable[[Batch], None]:
    def damage(batch: Batch) -> None:
        batch["changes"][0][field] = value

    return damage


def _hlc(make: Callable[[str], str]) -> Callable[[Batch], None]:
    def damage(batch: Batch) -> None:
        change = batch["changes"][0]
        change["hlc"] = make(change["origin"])

    return damage


DAMAGES = {
    "integer as text": (_set("blocks", "sequence", "3"), "blocks.sequence must be an integer"),
    "integer as float": (_set("blocks", "sequence", 1.5), "blocks.sequence must be an integer"),
    "integer as bool": (_set("blocks", "sequence", True), "blocks.sequence must be an integer"),
    "integer beyond 64 bits": (
        _set("blocks", "sequence", 2**63),
        "blocks.sequence does not fit in a signed 64-bit integer",
    ),
    "NUL in text": (_set("blocks", "raw_content", "a\x00b"), "blocks.raw_content contains a NUL"),
    "list as text": (_set("blocks", "raw_content", ["a"]), "blocks.raw_content must be a string"),
    "null in a NOT NULL column": (_set("blocks", "kind", None), "blocks.kind must not be null"),
    "invalid JSON text": (
        _set("blocks", "derived_content", "{not json"),
        "blocks.derived_content is not valid JSON text",
    ),
    "NaN in JSON text": (
        _set("canvas_nodes", "data", '{"x": NaN}'),
        "canvas_nodes.data is not valid JSON text",
    ),
    "a parsed document for JSON text": (
        _set("canvas_nodes", "data", {"x": 1}),
        "canvas_nodes.data must be a string",
    ),
    "text as a number": (
        _set("canvas_nodes", "position_x", "1.5"),
        "canvas_nodes.position_x must be a number",
    ),
    "NaN as a number": (
        _set("canvas_nodes", "position_x", float("nan")),
        "canvas_nodes.position_x is NaN",
    ),
    "a bad timestamp": (_set("blocks", "created_at", "yesterday"), "blocks.created_at is not an"),
    "a naive timestamp": (
        _set("blocks", "created_at", "2026-01-01 10:00:00"),
        "blocks.created_at is a naive datetime",
    ),
    "a bad UUID": (_set("blocks", "edit_event_id", "nope"), "blocks.edit_event_id must be a UUID"),
    "an unknown enum value": (
        _set("blocks", "last_actor_kind", "ROBOT"),
        "blocks.last_actor_kind must be one of",
    ),
    "text as a boolean": (_set("ai_jobs", "is_pinned", "yes"), "ai_jobs.is_pinned must be a bool"),
    "2 as a boolean": (_set("ai_jobs", "is_pinned", 2), "ai_jobs.is_pinned must be a bool"),
    "a seq beyond 64 bits": (_change("seq", 2**63), "seq must be a positive 64-bit integer"),
    "a stamp with letters": (_hlc(lambda o: f"abc.000000.{o}"), "is not a stamp of its origin"),
    "a stamp in another form": (
        _hlc(lambda o: f"+1796120141145.000000.{o}"),
        "is not a stamp of its origin",
    ),
    "a stamp's wall beyond its width": (
        _hlc(lambda o: f"{10**13}.000000.{o}"),
        "is not a stamp of its origin",
    ),
    "a bad event id": (_change("edit_event_id", "nope"), "edit_event_id must be a UUID"),
    "an unknown actor kind": (_change("actor_kind", "ROBOT"), "actor_kind must be one of"),
    "a written_at that is no text": (_change("written_at", 5), "written_at must be an ISO 8601"),
    "a table sync does not write": (
        lambda b: _put(b, "blocks")[1].update(table="sync_replica"),
        "touches table 'sync_replica', which sync does not write",
    ),
}


def test_a_value_no_column_can_hold_is_refused_alike_and_nothing_changes(
    source_and_targets,
) -> None:
    source, *targets = source_and_targets
    ws = source.create_workspace(ADA, NewWorkspace("W", id="ws"))
    doc = source.create_document(ADA, NewDocument(ws.id, "Doc", id="doc"))
    source.create_block(ADA, NewBlock(doc.id, "p", 0, "hello", id="b0"))
    canvas = source.create_canvas(ADA, NewCanvas(ws.id, "C", id="cv"))
    source.update_canvas_graph(ADA, canvas.id, [NewCanvasNode("k", 1.0, 2.0, {"a": 1})], [])
    source.create_ai_job(job_input())
    batch = source.export_changes({})
    before = [(content(t), t.sync_vector(), t.content_digests()) for t in targets]
    refused: dict[str, list[str]] = {}
    for name, (damage, expected) in DAMAGES.items():
        damaged = copy.deepcopy(batch)
        damage(damaged)
        for target in targets:
            with pytest.raises(ValidationError) as caught:
                target.import_changes(damaged)
            refused.setdefault(name, []).append(str(caught.value))
        assert expected in refused[name][0], (name, refused[name][0])
    # The same words on both backends, and neither stored anything.
    assert {n: m for n, m in refused.items() if m[0] != m[1]} == {}
    assert [(content(t), t.sync_vector(), t.content_digests()) for t in targets] == before
    # The undamaged batch applies on both, and reads back the same.
    for target in targets:
        assert target.import_changes(batch).applied == len(batch["changes"])
    assert content(targets[0]) == content(targets[1]) == content(source)
