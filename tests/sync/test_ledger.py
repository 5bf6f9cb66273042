"""The change ledger: one immutable change set per committed API write, in
the write's own transaction, with the write's provenance and row images by
column name; replica ids; heartbeat coalescing; ``db.changes`` filters; the
clock. Runs on both backends."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sync_support import job_input

from handshake_storage import (
    BlockUpdate,
    GuardError,
    JobState,
    JobStatusUpdate,
    NewBlock,
    NewCanvas,
    NewCanvasEdge,
    NewCanvasNode,
    NewDocument,
    NewNodeExecution,
    NewWorkspace,
    NotFoundError,
    ValidationError,
    WriteActorKind,
    WriteContext,
    ledger,
)
from handshake_storage.queries import HLC_MAX_COUNTER
from handshake_storage.transfer import copy_database

HUMAN = WriteContext.human("ada")


def new_job(db):
    return db.create_ai_job(job_input())


def stored_image(db, table: str, key: str, columns: list[str]) -> list:
    """The row as stored, in the JSON form the ledger uses."""
    with db._adapter.transaction() as s:
        row = s.execute(
            db._adapter.compile(f"SELECT {', '.join(columns)} FROM {table} WHERE id = ?"), (key,)
        ).fetchone()
    return [
        ledger._json_default(v) if isinstance(v, datetime) else (bool(v) if c == "is_pinned" else v)
        for c, v in zip(columns, row, strict=True)
    ]


def test_every_write_appends_one_change_set_with_its_provenance(db) -> None:
    job = new_job(db)
    run = db.create_workflow_run(job.id, JobState.RUNNING)
    ai = WriteContext.ai(job.id, run.id, "model-x")
    ws = db.create_workspace(HUMAN, NewWorkspace("W"))
    doc = db.create_document(ai, NewDocument(ws.id, "T"))
    block = db.create_block(ai, NewBlock(doc.id, "p", 1, "hello"))
    db.update_block(HUMAN, block.id, BlockUpdate(raw_content="hi"))
    updated_image = stored_image(
        db, "blocks", block.id, ["id", "raw_content", "display_content", "updated_at"]
    )
    db.replace_blocks(HUMAN, doc.id, [NewBlock(doc.id, "p", 1, "a"), NewBlock(doc.id, "p", 2, "b")])
    canvas = db.create_canvas(HUMAN, NewCanvas(ws.id, "C"))
    db.update_canvas_graph(
        ai,
        canvas.id,
        [NewCanvasNode("n", 0.5, 1.5, id="n1"), NewCanvasNode("n", 2.0, 3.0, id="n2")],
        [NewCanvasEdge("n1", "n2", "e", id="e1")],
    )
    execution = db.create_workflow_node_execution(
        NewNodeExecution(run.id, "node", "llm", JobState.RUNNING, 1, datetime.now(UTC))
    )
    db.update_workflow_node_execution_status(execution.id, JobState.COMPLETED, {"ok": 1})
    db.update_ai_job_status(JobStatusUpdate(job.id, JobState.COMPLETED, "done"))
    db.set_job_outputs(job.id, {"summary": "x"})
    db.set_job_pinned(job.id)
    db.update_workflow_run_status(run.id, JobState.COMPLETED)
    db.delete_canvas(HUMAN, canvas.id)

    changes = db.changes()
    # the clock is per scope: order across scopes is by wall time only
    ops = sorted(c.operation for c in changes)
    assert ops == sorted(
        [
            "create_ai_job",
            "create_workflow_run",
            "create_workspace",
            "create_document",
            "create_block",
            "update_block",
            "replace_blocks",
            "create_canvas",
            "update_canvas_graph",
            "create_workflow_node_execution",
            "update_workflow_node_execution_status",
            "update_ai_job_status",
            "set_job_outputs",
            "set_job_pinned",
            "update_workflow_run_status",
            "delete_canvas",
        ]
    )
    replica = db.replica_id
    assert {c.origin_id for c in changes} == {replica}
    assert all(c.status == "applied" for c in changes)
    # Per scope, sequence numbers and positions count up from 1 without gaps.
    for scope in {c.scope for c in changes}:
        seqs = [c.seq for c in changes if c.scope == scope]
        assert seqs == list(range(1, len(seqs) + 1))
        assert [c.position for c in changes if c.scope == scope] == seqs
    # Within a scope, stamps increase in write order.
    for scope in {c.scope for c in changes}:
        mine = sorted((c for c in changes if c.scope == scope), key=lambda c: c.seq)
        assert [c.hlc for c in mine] == sorted(c.hlc for c in mine)
    by_op = {c.operation: c for c in changes}
    # Content writes carry the guard's metadata, persisted on the row too.
    created = by_op["create_block"]
    assert created.workspace_id == ws.id
    assert (created.actor_kind, created.actor_id) == (WriteActorKind.AI, "model-x")
    assert (created.job_id, created.workflow_id) == (job.id, run.id)
    assert created.edit_event_id == block.edit_event_id
    assert created.payload["base"] == str(doc.edit_event_id)
    # Row images by column name equal the stored rows.
    image = created.payload["put"][0]
    assert image["table"] == "blocks" and image["columns"][0] == "id"
    update = by_op["update_block"].payload["put"][0]
    assert update["columns"] == [
        "id",
        "raw_content",
        "display_content",
        "updated_at",
        "last_actor_kind",
        "last_actor_id",
        "last_job_id",
        "last_workflow_id",
        "edit_event_id",
    ]
    assert update["rows"][0][:4] == updated_image
    replaced = by_op["replace_blocks"]
    assert (replaced.subject_table, replaced.subject_id) == ("documents", doc.id)
    assert replaced.payload["replaced"] == [
        {"table": "blocks", "rows": [[block.id, str(by_op["update_block"].edit_event_id)]]}
    ]
    new_blocks = {g["table"]: g for g in replaced.payload["put"]}["blocks"]
    assert sorted(r[4] for r in new_blocks["rows"]) == ["a", "b"]
    job_image = by_op["set_job_pinned"].payload["put"][0]
    assert job_image["rows"][0] == stored_image(db, "ai_jobs", str(job.id), job_image["columns"])
    assert by_op["set_job_pinned"].workspace_id is None
    assert by_op["set_job_pinned"].actor_kind is WriteActorKind.SYSTEM
    # A delete records what it removed, cascade included, as it saw it.
    deleted = {g["table"]: g["rows"] for g in by_op["delete_canvas"].payload["delete"]}
    assert set(deleted) == {"canvases", "canvas_nodes", "canvas_edges"}
    assert sorted(r[0] for r in deleted["canvas_nodes"]) == ["n1", "n2"]


def test_a_refused_or_failed_write_appends_nothing(db) -> None:
    ws = db.create_workspace(HUMAN, NewWorkspace("W"))
    before = db.changes()
    with pytest.raises(GuardError):
        db.create_document(WriteContext.ai(None, None), NewDocument(ws.id, "T"))
    with pytest.raises(NotFoundError):
        db.update_block(HUMAN, "missing", BlockUpdate(raw_content="x"))
    with pytest.raises(NotFoundError):
        db.delete_document(HUMAN, "missing")
    with pytest.raises(NotFoundError):
        db.heartbeat_workflow(uuid.uuid4(), datetime.now(UTC))
    assert db.changes() == before


def test_heartbeats_are_coalesced(db) -> None:
    job = new_job(db)
    run = db.create_workflow_run(job.id, JobState.RUNNING)
    start = datetime.now(UTC)
    for i in range(30):
        db.heartbeat_workflow(run.id, start + timedelta(seconds=i))
    db.update_workflow_run_status(run.id, JobState.COMPLETED)
    ops = Counter(c.operation for c in db.changes())
    assert ops["heartbeat_workflow"] == 1
    beat = next(c for c in db.changes() if c.operation == "heartbeat_workflow")
    assert beat.payload["put"][0]["rows"][0][1] == ledger._json_default(
        start + timedelta(seconds=29)
    )


def test_changes_filters_by_workspace_job_actor_and_time(db) -> None:
    job = new_job(db)
    run = db.create_workflow_run(job.id, JobState.RUNNING)
    ai = WriteContext.ai(job.id, run.id, "model")
    a = db.create_workspace(HUMAN, NewWorkspace("A"))
    b = db.create_workspace(WriteContext.human("bob"), NewWorkspace("B"))
    middle = datetime.now(UTC)
    doc = db.create_document(ai, NewDocument(b.id, "by ai"))
    db.create_block(ai, NewBlock(doc.id, "p", 1, "x"))
    assert [c.operation for c in db.changes(workspace_id=a.id)] == ["create_workspace"]
    assert [c.operation for c in db.changes(job_id=job.id)] == ["create_document", "create_block"]
    assert [c.subject_id for c in db.changes(actor_id="bob")] == [b.id]
    assert {c.operation for c in db.changes(actor_kind=WriteActorKind.AI)} == {
        "create_document",
        "create_block",
    }
    assert [c.operation for c in db.changes(since=middle)] == ["create_document", "create_block"]
    assert len(db.changes(until=middle)) == 4
    assert len(db.changes(limit=2)) == 2


def test_changes_come_in_the_order_written_across_workspaces_within_one_millisecond(
    db, monkeypatch
) -> None:
    """Each scope has its own clock counter: writes to a workspace and then to
    the jobs' scope in one millisecond get stamps (T, 2) and (T, 0), so the
    stamp order is not the write order; ``changes()`` is by write time."""
    monkeypatch.setattr(ledger, "wall_clock_ms", lambda: 1_796_000_000_000)
    ws = db.create_workspace(HUMAN, NewWorkspace("W"))
    doc = db.create_document(HUMAN, NewDocument(ws.id, "D"))
    db.create_block(HUMAN, NewBlock(doc.id, "p", 1, "x"))
    new_job(db)
    written = ["create_workspace", "create_document", "create_block", "create_ai_job"]
    assert [c.operation for c in db.changes()] == written
    assert [c.operation for c in sorted(db.changes(), key=lambda c: c.hlc)] != written


def test_every_database_gets_its_own_replica_id_and_copy_gives_a_new_one(databases) -> None:
    first = databases.open(databases.url(migrated=False))
    first.run_migrations()
    second = databases.open(databases.url(migrated=False))
    second.run_migrations()
    assert first.replica_id != second.replica_id
    uuid.UUID(first.replica_id)
    first.create_workspace(HUMAN, NewWorkspace("W"))
    target_url = databases.url()
    copy_database(first._adapter.url.raw, target_url)
    copied = databases.open(target_url)
    assert copied.replica_id not in (first.replica_id, second.replica_id)
    # The ledger came along, with its origin untouched.
    assert [(c.origin_id, c.seq) for c in copied.changes()] == [(first.replica_id, 1)]
    ws = copied.create_workspace(HUMAN, NewWorkspace("on the copy"))
    mine = [c for c in copied.changes() if c.subject_id == ws.id]
    assert [(c.origin_id, c.seq) for c in mine] == [(copied.replica_id, 1)]


def test_the_clock_never_runs_backwards(db, monkeypatch) -> None:
    ws = db.create_workspace(HUMAN, NewWorkspace("W"))
    now = ledger.wall_clock_ms()
    monkeypatch.setattr(ledger, "wall_clock_ms", lambda: now - 86_400_000)  # a day back
    doc = db.create_document(HUMAN, NewDocument(ws.id, "T"))
    db.create_block(HUMAN, NewBlock(doc.id, "p", 1, "x"))
    stamps = [c.hlc for c in db.changes(workspace_id=ws.id)]
    assert stamps == sorted(stamps) and len(set(stamps)) == 3
    walls = [ledger.stamp_parts(s)[0] for s in stamps]
    assert walls[1] == walls[2] == walls[0]  # held at the highest wall seen, counter moving


def test_concurrent_writers_get_distinct_gapless_sequence_numbers(db) -> None:
    ws = db.create_workspace(HUMAN, NewWorkspace("W"))
    doc = db.create_document(HUMAN, NewDocument(ws.id, "T"))
    errors: list[BaseException] = []

    def write(worker: int) -> None:
        try:
            for i in range(15):
                db.create_block(HUMAN, NewBlock(doc.id, "p", worker * 100 + i, "text"))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors
    changes = db.changes(workspace_id=ws.id)
    assert sorted(c.seq for c in changes) == list(range(1, 63))
    # Sequence order is stamp order: numbers were given in commit order.
    assert [c.seq for c in sorted(changes, key=lambda c: c.hlc)] == list(range(1, 63))


def test_the_stamp_the_database_writes_has_the_ledger_format(db, monkeypatch) -> None:
    """The append numbers and stamps a change set in SQL (``{hlc_stamp}``):
    wall padded to 13 digits, counter to 6, then the origin, as
    ``ledger.stamp`` writes it; the counter rolls over into the wall."""
    ws = db.create_workspace(HUMAN, NewWorkspace("W"))
    monkeypatch.setattr(ledger, "wall_clock_ms", lambda: 7)  # far behind the scope's clock
    with db._adapter.transaction() as s:
        s.execute(
            db._adapter.compile("UPDATE sync_counters SET hlc_counter = ? WHERE scope = ?"),
            (HLC_MAX_COUNTER - 1, ws.id),
        )
    for title in ("a", "b"):
        db.create_document(HUMAN, NewDocument(ws.id, title))
    first, second, third = db.changes(workspace_id=ws.id)
    wall = ledger.stamp_parts(first.hlc)[0]
    assert second.hlc == ledger.stamp(wall, HLC_MAX_COUNTER, db.replica_id)
    assert third.hlc == ledger.stamp(wall + 1, 0, db.replica_id)
    assert len(third.hlc.split(".")[0]) == 13 and len(third.hlc.split(".")[1]) == 6


def test_concurrent_first_writes_of_a_scope_each_get_their_change_set(databases) -> None:
    """Writers that open the same scope at once (here the jobs' scope of a
    fresh database): one opens its counter row, the others tick it; every
    change set is numbered, none lost or doubled."""
    db = databases.open()
    start = threading.Barrier(4)
    errors: list[BaseException] = []

    def write() -> None:
        try:
            start.wait(30)
            for _ in range(3):
                new_job(db)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors
    jobs = [c for c in db.changes(limit=1000) if c.operation == "create_ai_job"]
    assert sorted(c.seq for c in jobs) == list(range(1, 13))
    assert len({c.position for c in jobs}) == 12


def test_the_combined_statements_write_what_the_portable_ones_write(databases) -> None:
    """Where the backend does several statements' work in one (the append as
    a WITH that modifies rows; update_block returning the block as it found
    it), the ledger is exactly what the portable statements write: numbers,
    positions, counters, and each change set's prev and base."""
    ledgers = []
    for combined in (True, False):
        db = databases.open()
        if combined and not db._adapter.features.combines_statements:
            pytest.skip("this backend has only the portable statements")
        db._adapter.features = replace(db._adapter.features, combines_statements=combined)
        ws = db.create_workspace(HUMAN, NewWorkspace("W"))
        doc = db.create_document(HUMAN, NewDocument(ws.id, "T"))
        block = db.create_block(HUMAN, NewBlock(doc.id, "p", 1, "x"))
        db.update_block(HUMAN, block.id, BlockUpdate(raw_content="y"))
        db.update_block(HUMAN, block.id, BlockUpdate(kind="h1"))
        new_job(db)
        changes = db.changes(limit=100)
        order = {str(c.edit_event_id): i for i, c in enumerate(changes)}
        ledgers.append(
            [
                (
                    c.scope == ws.id,
                    c.seq,
                    c.position,
                    c.operation,
                    ledger.stamp_parts(c.hlc)[1:],
                    order.get(c.payload.get("prev")),
                    order.get(c.payload.get("base")),
                )
                for c in changes
            ]
        )
    assert ledgers[0] == ledgers[1]
    assert [entry[1] for entry in ledgers[0]] == [1, 2, 3, 4, 5, 1]
    # each update's prev is the version before it
    assert [entry[5] for entry in ledgers[0]][3:5] == [2, 3]


@pytest.mark.parametrize("combined", [True, False], ids=["combined", "portable"])
def test_a_writer_waiting_on_a_scope_another_is_opening_gets_the_next_number(
    databases, combined
) -> None:
    """Two first writers of one scope on PostgreSQL: the second blocks on the
    counter row the first is opening; when the first commits, the second
    numbers its change set after it (seq 2), in either form of the append.
    (SQLite starts the second writer only after the first commits.)"""
    db = databases.open()
    if db.backend != "postgresql":
        pytest.skip("SQLite serializes writers: the second starts after the first commits")
    db._adapter.features = replace(db._adapter.features, combines_statements=combined)
    append = db._ledger.append
    first = db._adapter.transaction()
    s1 = first.__enter__()
    append(s1, None, "create_ai_job", "scope-x", ("ai_jobs", "one"), {"put": []})
    errors: list[BaseException] = []

    def second() -> None:
        try:
            with db._adapter.transaction() as s2:
                append(s2, None, "create_ai_job", "scope-x", ("ai_jobs", "two"), {"put": []})
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    waiter = threading.Thread(target=second)
    waiter.start()
    deadline = time.monotonic() + 60
    waiting = (
        "SELECT COUNT(*) FROM pg_stat_activity "
        "WHERE wait_event_type = 'Lock' AND datname = current_database()"
    )
    while db._adapter.fetch(waiting, (), one=True)[0] < 1:
        assert time.monotonic() < deadline, "the second writer never waited"
        time.sleep(0.02)
    first.__exit__(None, None, None)
    waiter.join(60)
    assert not errors
    mine = [(c.subject_id, c.seq) for c in db.changes(workspace_id="scope-x")]
    assert mine == [("one", 1), ("two", 2)]


@pytest.mark.parametrize("bad", [0, -1, True, "10", 1.0, 10**9])
def test_every_limit_is_refused_with_one_message(db, bad) -> None:
    """The reads that take a ``limit`` refuse a bad one alike: an integer
    within the read's own bounds, named in the same words."""
    reads = {
        "changes": (lambda: db.changes(limit=bad), 1_000_000),
        "conflicts": (lambda: db.conflicts(limit=bad), 100_000),
        "export_changes": (lambda: db.export_changes({}, limit=bad), 100_000),
        "search_blocks": (lambda: db.search_blocks("ws", "word", limit=bad), 10_000),
    }
    for name, (read, high) in reads.items():
        with pytest.raises(ValidationError) as caught:
            read()
        assert str(caught.value) == f"limit must be an integer between 1 and {high}", name


def test_a_deadlock_on_the_ledger_append_runs_the_write_again(databases) -> None:
    """A real deadlock on PostgreSQL at the ledger's append: another session
    holds the scope's counter row and, once the write waits for it (the
    append comes last, after the block's UPDATE), asks for the block the
    write updated. The write waited first, so its own deadlock check aborts
    it; the retry rule runs it again, and it lands once: one change set,
    numbers without a gap, the content written."""
    db = databases.open()
    if db.backend != "postgresql":
        pytest.skip("SQLite serializes writers: no deadlock between two of them")
    ws = db.create_workspace(HUMAN, NewWorkspace("W"))
    doc = db.create_document(HUMAN, NewDocument(ws.id, "T"))
    block = db.create_block(HUMAN, NewBlock(doc.id, "p", 1, "x"))
    adapter = db._adapter
    begun = []
    begin = adapter.begin

    def counting_begin(conn, mode):
        begun.append(threading.current_thread().name)
        begin(conn, mode)

    other = adapter.transaction()
    s = other.__enter__()
    try:
        s.execute(
            adapter.compile(
                "SELECT seq FROM sync_counters WHERE scope = ? AND origin_id = ? FOR UPDATE"
            ),
            (ws.id, db.replica_id),
        ).fetchone()
        adapter.begin = counting_begin  # type: ignore[method-assign]
        errors: list[BaseException] = []

        def write() -> None:
            try:
                db.update_block(HUMAN, block.id, BlockUpdate(raw_content="y"))
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        writer = threading.Thread(target=write, name="writer")
        writer.start()
        waiting = (
            "SELECT COUNT(*) FROM pg_stat_activity "
            "WHERE wait_event_type = 'Lock' AND datname = current_database()"
        )
        deadline = time.monotonic() + 60
        while adapter.fetch(waiting, (), one=True)[0] < 1:  # the write waits at its append
            assert time.monotonic() < deadline, "the write never waited for the counter row"
            time.sleep(0.01)
        s.execute(adapter.compile("SELECT 1 FROM blocks WHERE id = ? FOR UPDATE"), (block.id,))
        other.__exit__(None, None, None)
    except BaseException as exc:
        other.__exit__(type(exc), exc, None)
        raise
    writer.join(60)
    assert not writer.is_alive() and not errors, errors
    assert begun.count("writer") >= 2  # the deadlock's victim ran again
    assert db.get_block(block.id).raw_content == "y"
    mine = db.changes(workspace_id=ws.id)
    assert [c.operation for c in mine].count("update_block") == 1
    assert sorted(c.seq for c in mine) == list(range(1, len(mine) + 1))


def test_a_sync_vector_with_a_bad_sequence_number_is_refused(db) -> None:
    """A vector comes from the peer: a sequence number that is not an
    integer from 0 to 2^63-1 is a ValidationError with one message (a
    negative one, for an origin this replica has, used to raise KeyError)."""
    db.create_workspace(HUMAN, NewWorkspace("W", id="ws"))
    for seq in (-1, 2**63, True, "3", 1.0, None):
        for vector in ({"ws": {db.replica_id: seq}}, {"ws": {"another-origin": seq}}):
            with pytest.raises(ValidationError) as caught:
                db.export_changes(vector)
            assert str(caught.value) == (
                "a sync vector maps origin ids to sequence numbers (integers from 0 to "
                f"{2**63 - 1})"
            ), seq
    assert len(db.export_changes({"ws": {db.replica_id: 0}})["changes"]) == 1
