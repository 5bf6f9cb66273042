"""Conformance tests: input the API refuses or stores exactly, everywhere."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from ..database import Database
from ..errors import (
    ValidationError,
)
from ..guard import WriteContext
from ..models import (
    AccessMode,
    BlockUpdate,
    EntityRef,
    JobState,
    JobStatusUpdate,
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
from .support import (
    BAD_CONTENT_IDS,
    BAD_NEW_IDS,
    BAD_TEXT,
    BAD_UUIDS,
    GOOD_TEXT,
    HUMAN,
    new_job,
    now,
    refusals,
    seed,
    snapshot,
)


class InputTests:
    """Conformance tests (part of StorageConformance):
    input the API refuses or stores exactly, everywhere."""

    # -- malformed ids everywhere ------------------------------------------------------------------

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
            problems += [f"{name}: {p}" for p in refusals(BAD_CONTENT_IDS, call, ValidationError)]
        for name, call in new_id_calls.items():
            problems += [f"{name}: {p}" for p in refusals(BAD_NEW_IDS, call, ValidationError)]
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
            problems += [f"{name}: {p}" for p in refusals(BAD_UUIDS, call, ValidationError)]
        assert not problems, problems
        assert snapshot(db, job_ids=(job.id,), run_ids=(run.id,)) == before
        assert db.list_workspaces() == []

    # -- values every content text field must store, or refuse -------------------------------------

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
            problems += [f"{name}: {p}" for p in refusals(BAD_TEXT, write, ValidationError)]
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
        problems = refusals(unknown, lambda v: db.create_workflow_run(job.id, v), ValidationError)
        problems += refusals(
            unknown, lambda v: db.update_workflow_run_status(run.id, v), ValidationError
        )
        problems += refusals(
            ("human", "Ai", "robot", None, 1),
            lambda v: db.create_workspace(WriteContext(v), NewWorkspace("n")),  # type: ignore[arg-type]
            ValidationError,
        )
        assert not problems, problems
        assert snapshot(db, job_ids=(job.id,), run_ids=(run.id,)) == before
        assert len(db.list_workspaces()) == len(WriteActorKind)
