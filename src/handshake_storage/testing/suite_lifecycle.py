"""Conformance tests: the database's lifecycle and migrations."""

from __future__ import annotations

import inspect
import re
import sys
from collections.abc import Callable
from typing import Any

import pytest

from ..database import Database
from ..errors import (
    BackendUnavailableError,
    MigrationError,
    ValidationError,
)
from ..models import (
    BlockUpdate,
    JobState,
    JobStatusUpdate,
    NewBlock,
    NewCanvas,
    NewDocument,
    NewNodeExecution,
    NewWorkspace,
)
from .support import (
    CANONICAL_TABLES,
    CONTENT_TABLES,
    HUMAN,
    TRACE_COLUMNS,
    new_job,
    now,
    seed,
)


class LifecycleTests:
    """Conformance tests (part of StorageConformance):
    the database's lifecycle and migrations."""

    # -- the suite itself --------------------------------------------------------------------------

    def test_suite_exercises_every_public_method(self) -> None:
        # every module of the suite (this package), not just this one
        source = "".join(
            inspect.getsource(module)
            for name, module in sorted(sys.modules.items())
            if name.startswith(f"{__package__}.")
        )
        public = sorted(name for name in dir(Database) if not name.startswith("_"))
        missing = [name for name in public if not re.search(rf"\.{name}\b", source)]
        assert public and not missing, f"conformance suite does not exercise: {missing}"

    # -- lifecycle ---------------------------------------------------------------------------------

    def test_ping(self, db: Database) -> None:
        assert db.ping() is None

    def test_identity_properties(self, db: Database) -> None:
        assert isinstance(db.backend, str) and db.backend
        assert isinstance(db.url, str) and db.url
        assert db.url in repr(db)
        info = db.describe()
        assert info and all(isinstance(k, str) and isinstance(v, str) for k, v in info.items())
        assert db.exists() is True  # a migrated database is there

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
            "exists": lambda: db.exists(),
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

    # -- migrations --------------------------------------------------------------------------------

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
