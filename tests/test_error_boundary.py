"""One error boundary per adapter: the same failure is the same class and the
same message on SQLite and PostgreSQL, with scrubbed structured fields and
never the driver's exception as its cause."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from handshake_storage import (
    ConflictError,
    Database,
    JobState,
    NewBlock,
    NewCanvas,
    NewDocument,
    NewNodeExecution,
    NewWorkspace,
    NotFoundError,
    StorageError,
    ValidationError,
    WriteContext,
)
from handshake_storage.backends.base import AUTOCOMMIT, _lookup
from handshake_storage.backends.postgresql import ERROR_RULES as PG_RULES
from handshake_storage.backends.sqlite import ERROR_RULES as SQLITE_RULES

HUMAN = WriteContext.human("ada")
MISSING_JOB = uuid.UUID("00000000-0000-4000-8000-000000000001")
MISSING_RUN = uuid.UUID("00000000-0000-4000-8000-000000000002")


def _seed(db: Database) -> None:
    db.create_workspace(HUMAN, NewWorkspace("w", id="ws"))
    db.create_document(HUMAN, NewDocument("ws", "d", id="doc"))
    db.create_block(HUMAN, NewBlock("doc", "p", 0, "x", id="blk"))


FAILURES: list[tuple[str, Callable[[Database], Any], type[StorageError], str]] = [
    (
        "document in a missing workspace",
        lambda db: db.create_document(HUMAN, NewDocument("nowhere", "t", id="d2")),
        NotFoundError,
        "workspace 'nowhere' does not exist",
    ),
    (
        "block in a missing document",
        lambda db: db.create_block(HUMAN, NewBlock("nodoc", "p", 0, "x", id="b2")),
        NotFoundError,
        "document 'nodoc' does not exist",
    ),
    (
        "canvas in a missing workspace",
        lambda db: db.create_canvas(HUMAN, NewCanvas("nowhere", "t", id="c2")),
        NotFoundError,
        "workspace 'nowhere' does not exist",
    ),
    (
        "run of a missing job",
        lambda db: db.create_workflow_run(MISSING_JOB, JobState.RUNNING),
        NotFoundError,
        f"AI job {MISSING_JOB} does not exist",
    ),
    (
        "execution of a missing run",
        lambda db: db.create_workflow_node_execution(
            NewNodeExecution(MISSING_RUN, "n", "t", JobState.RUNNING, 0, _now())
        ),
        NotFoundError,
        f"workflow run {MISSING_RUN} does not exist",
    ),
    (
        "duplicate workspace",
        lambda db: db.create_workspace(HUMAN, NewWorkspace("again", id="ws")),
        ConflictError,
        "workspace 'ws' already exists",
    ),
    (
        "duplicate block",
        lambda db: db.create_block(HUMAN, NewBlock("doc", "p", 1, "y", id="blk")),
        ConflictError,
        "block 'blk' already exists",
    ),
    (
        "derived_content that is not JSON",
        lambda db: db.create_block(HUMAN, NewBlock("doc", "p", 1, "y", derived_content={1: 2})),
        ValidationError,
        "derived_content has a non-string object key 1; JSON keys are strings",
    ),
]


def _now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


def _raised(db: Database, call: Callable[[Database], Any]) -> StorageError:
    with pytest.raises(StorageError) as raised:
        call(db)
    return raised.value


@pytest.mark.parametrize(("label", "call", "error", "message"), FAILURES, ids=lambda v: str(v))
def test_the_same_failure_reads_the_same_on_both_backends(
    migrated_pair: Any,
    label: str,
    call: Callable[[Database], Any],
    error: type[StorageError],
    message: str,
) -> None:
    with migrated_pair("errors") as (lite, pg):
        seen = []
        for db in (lite, pg):
            _seed(db)
            exc = _raised(db, call)
            assert type(exc) is error, (db.backend, exc)
            assert str(exc) == message, (db.backend, str(exc))
            assert exc.__cause__ is None
            seen.append((type(exc), str(exc), exc.table))
        assert seen[0] == seen[1], label


def test_translated_errors_carry_structured_fields(migrated_pair: Any) -> None:
    with migrated_pair("fields") as (lite, pg):
        for db, code in ((lite, "SQLITE_CONSTRAINT_FOREIGNKEY"), (pg, "23503")):
            exc = _raised(db, FAILURES[1][1])
            assert (exc.backend, exc.backend_code) == (db.backend, code)
        for db, code in ((lite, "SQLITE_CONSTRAINT_PRIMARYKEY"), (pg, "23505")):
            _seed(db)
            exc = _raised(db, FAILURES[5][1])
            assert (exc.backend, exc.backend_code, exc.table) == (db.backend, code, "workspaces")


CONSTRAINTS = [
    (
        "INSERT INTO workspaces (id, name, created_at, updated_at, last_actor_kind, "
        "edit_event_id) VALUES ('w9', 'n', {ts}, {ts}, 'AI', 'e')",
        ValidationError,
        "check constraint ck_workspaces_ai_job failed",
        "ck_workspaces_ai_job",
    ),
    (
        "INSERT INTO workspaces (id, name, created_at, updated_at, last_actor_kind, "
        "edit_event_id) VALUES ('w9', NULL, {ts}, {ts}, 'HUMAN', 'e')",
        ValidationError,
        "workspaces.name must not be null",
        None,
    ),
    (
        "INSERT INTO workspaces (id, name, created_at, updated_at, last_actor_kind, "
        "edit_event_id) VALUES ('ws', 'n', {ts}, {ts}, 'HUMAN', 'e')",
        ConflictError,
        "duplicate key: workspaces already has a row with this id",
        None,
    ),
]


@pytest.mark.parametrize(("sql", "error", "message", "constraint"), CONSTRAINTS)
def test_constraint_failures_translate_alike(
    migrated_pair: Any, sql: str, error: type, message: str, constraint: str | None
) -> None:
    """Constraint failures below the API (another tool's writes, a future
    caller) get the portable rule of the adapter's lookup table."""
    with migrated_pair("constraints") as (lite, pg):
        for db in (lite, pg):
            _seed(db)
            adapter = db._adapter
            with pytest.raises(StorageError) as raised, adapter.transaction(AUTOCOMMIT) as s:
                s.execute(sql.format(ts="CURRENT_TIMESTAMP"))
            exc = raised.value
            assert type(exc) is error and str(exc) == message, (db.backend, str(exc))
            assert exc.__cause__ is None and exc.backend == db.backend
            if constraint is not None:
                assert exc.constraint == constraint
            assert db.get_workspace("w9") is None


def test_lookup_tables_match_codes_by_class() -> None:
    assert _lookup(PG_RULES, "23505") is PG_RULES["23505"]
    assert _lookup(PG_RULES, "23P01") is PG_RULES["23"]  # exclusion: a constraint class
    assert _lookup(PG_RULES, "57P01") is PG_RULES["57P"]  # admin shutdown
    assert _lookup(PG_RULES, "08006") is PG_RULES["08"]
    assert _lookup(PG_RULES, "XX000") is None  # falls back to StorageError
    assert _lookup(SQLITE_RULES, "SQLITE_BUSY_SNAPSHOT") is SQLITE_RULES["SQLITE_BUSY"]
    assert _lookup(SQLITE_RULES, "SQLITE_IOERR_WRITE") is SQLITE_RULES["SQLITE_IOERR"]
    assert _lookup(SQLITE_RULES, "SQLITE_CONSTRAINT_TRIGGER") is SQLITE_RULES["SQLITE_CONSTRAINT"]
    assert _lookup(SQLITE_RULES, "SQLITE_ERROR") is None


def test_a_failure_of_another_statement_is_not_reported_as_the_inserted_row(
    migrated_pair: Any,
) -> None:
    """Only the inserted table's own duplicate key reads "<row> already
    exists": a duplicate key in the change ledger's append (here a change
    set already holding the next sequence number) keeps its own words and
    table, the same on both backends, and the write leaves nothing."""
    with migrated_pair("other-statement") as (lite, pg):
        seen = []
        for db in (lite, pg):
            ws = db.create_workspace(HUMAN, NewWorkspace("w", id="ws"))
            last = db.changes(workspace_id=ws.id)[-1]
            squatter = (
                last.origin_id, "ws", last.seq + 1, 10_000, last.hlc, str(uuid.uuid4()),
                "HUMAN", "ada", None, None, "create_document", "documents", "x", "applied",
                db._adapter.encode_timestamp(last.written_at), "{}",
            )  # fmt: skip
            with db._adapter.transaction() as s:
                s.execute(db._q.ledger_insert, squatter)
            exc = _raised(db, lambda db: db.create_document(HUMAN, NewDocument("ws", "d", id="d")))
            assert type(exc) is ConflictError, (db.backend, exc)
            assert exc.table == "sync_changes", (db.backend, exc)
            assert "already exists" not in str(exc), (db.backend, exc)
            assert db.list_documents("ws") == []
            # nothing of the failed append is left on a session: the next
            # write commits its own
            after = db.create_workspace(HUMAN, NewWorkspace("w2", id="ws2"))
            assert [c.subject_id for c in db.changes(workspace_id="ws2")] == [after.id]
            seen.append(str(exc))
        assert seen[0] == seen[1]
