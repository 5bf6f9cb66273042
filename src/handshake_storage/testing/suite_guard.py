"""Conformance tests: the storage guard and traceability (no silent edits)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any
from uuid import UUID

import pytest

from ..database import Database
from ..errors import (
    GuardError,
    NotFoundError,
    StorageError,
    ValidationError,
)
from ..guard import SILENT_EDIT, DefaultStorageGuard, MutationMetadata, WriteContext
from ..models import (
    BlockUpdate,
    NewBlock,
    NewCanvas,
    NewCanvasNode,
    NewDocument,
    NewWorkspace,
    WriteActorKind,
)
from .support import (
    BAD_CONTENT_IDS,
    HUMAN,
    SYSTEM,
    WRITE_PARAMS,
    RecordingGuard,
    Write,
    ai_context,
    assert_utc,
    refusals,
    seed,
    snapshot,
)


class GuardTests:
    """Conformance tests (part of StorageConformance):
    the storage guard and traceability (no silent edits)."""

    # -- the guard ---------------------------------------------------------------------------------

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
        problems = refusals(
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
        problems += refusals(
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

    @pytest.mark.parametrize(("name", "write"), WRITE_PARAMS)
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

    @pytest.mark.parametrize(("name", "write"), WRITE_PARAMS)
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

    # -- traceability ------------------------------------------------------------------------------

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
