"""Conformance tests: AI jobs, workflows and retention."""

from __future__ import annotations

import math
import uuid
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest

from ..database import Database
from ..errors import (
    ConflictError,
    NotFoundError,
    ValidationError,
)
from ..models import (
    TERMINAL_JOB_STATES,
    AccessMode,
    AiJob,
    EntityRef,
    JobMetrics,
    JobState,
    JobStatusUpdate,
    NewAiJob,
    NewNodeExecution,
    OperationType,
    PlannedOperation,
    SafetyMode,
)
from .support import (
    BAD_INTEGERS,
    BAD_JSON,
    BAD_TEXT,
    BAD_UUIDS,
    GOOD_JSON,
    assert_utc,
    json_equal,
    new_job,
    now,
    refusals,
    snapshot,
)


class JobTests:
    """Conformance tests (part of StorageConformance):
    AI jobs, workflows and retention."""

    # -- AI jobs -----------------------------------------------------------------------------------

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
        problems = refusals(tuple(bad_jobs), db.create_ai_job, ValidationError)
        problems += refusals(BAD_UUIDS, db.get_ai_job, ValidationError)
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
        problems = refusals(tuple(updates), db.update_ai_job_status, ValidationError)
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
        problems = refusals(BAD_JSON, lambda v: db.set_job_outputs(job.id, v), ValidationError)
        problems += refusals(BAD_UUIDS, lambda v: db.set_job_outputs(v, {}), ValidationError)
        problems += refusals(
            (1, 0, "yes", None), lambda v: db.set_job_pinned(job.id, v), ValidationError
        )
        problems += refusals(BAD_UUIDS, lambda v: db.set_job_pinned(v, True), ValidationError)
        assert not problems, problems
        assert snapshot(db, job_ids=(job.id,)) == before

    # -- workflows ---------------------------------------------------------------------------------

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
        problems = refusals(
            BAD_UUIDS, lambda v: db.create_workflow_run(v, JobState.RUNNING), ValidationError
        )
        problems += refusals(
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
        problems += refusals(
            bad_times,
            lambda v: db.create_workflow_run(job.id, JobState.RUNNING, v),
            ValidationError,
        )
        problems += refusals(
            BAD_UUIDS, lambda v: db.update_workflow_run_status(v, JobState.RUNNING), ValidationError
        )
        problems += refusals(
            ("bogus", None), lambda v: db.update_workflow_run_status(run.id, v), ValidationError
        )
        problems += refusals(
            BAD_TEXT,
            lambda v: db.update_workflow_run_status(run.id, JobState.FAILED, v),
            ValidationError,
        )
        problems += refusals(BAD_UUIDS, lambda v: db.heartbeat_workflow(v, now()), ValidationError)
        problems += refusals(
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
        problems = refusals(
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
        problems = refusals(tuple(bad), db.create_workflow_node_execution, ValidationError)
        problems += refusals(
            BAD_UUIDS,
            lambda v: db.update_workflow_node_execution_status(v, JobState.FAILED),
            ValidationError,
        )
        problems += refusals(
            ("bogus", None),
            lambda v: db.update_workflow_node_execution_status(execution.id, v),
            ValidationError,
        )
        problems += refusals(
            BAD_JSON,
            lambda v: db.update_workflow_node_execution_status(execution.id, JobState.FAILED, v),
            ValidationError,
        )
        problems += refusals(
            BAD_TEXT,
            lambda v: db.update_workflow_node_execution_status(
                execution.id, JobState.FAILED, None, v
            ),
            ValidationError,
        )
        problems += refusals(BAD_UUIDS, db.list_workflow_node_executions, ValidationError)
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

    # -- retention ---------------------------------------------------------------------------------

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
        problems = refusals(
            (datetime.now(), "2024-01-01", None, 0, date.today()),
            lambda v: db.prune_ai_jobs(v, 0),
            ValidationError,
        )
        problems += refusals(
            (-1, 2**63, 1.0, True, "1", None),
            lambda v: db.prune_ai_jobs(future, v),
            ValidationError,
        )
        problems += refusals(
            (1, 0, "yes", None), lambda v: db.prune_ai_jobs(future, 0, v), ValidationError
        )
        assert not problems, problems
        assert snapshot(db, job_ids=(job.id,)) == before
        assert db.prune_ai_jobs(future, 2**63 - 1).items_spared_window == 1
