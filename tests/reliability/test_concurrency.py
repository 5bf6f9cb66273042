"""Many processes and threads at once: no double apply, no lost write, no interleaving.

* Eight processes migrate one empty database at the same moment: one applies
  every migration, seven wait for it and find nothing to do.
* Eight writer threads (sharing one Database, or each with its own) hammer
  one SQLite file or one PostgreSQL database with every kind of write while
  readers run: no call fails (no "database is locked" reaches a caller) and
  every acknowledged write is there afterwards, as written.
* Eight threads replace the blocks of ONE document (or the graph of one
  canvas) over and over: every read in between, and the final state, is
  exactly one writer's generation, never an interleaving of two.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from reliability_support import (
    actor,
    child_env,
    expected_blocks,
    expected_graph,
    expected_terms,
    generation_blocks,
    generation_graph,
    new_job,
    observed_blocks,
    observed_graph,
    observed_terms,
    rows,
)

from handshake_storage import (
    BlockUpdate,
    JobState,
    JobStatusUpdate,
    NewBlock,
    NewCanvas,
    NewDocument,
    NewNodeExecution,
    NewWorkspace,
    StorageError,
    WriteContext,
    rebuildable,
)
from handshake_storage.migrator import LOG_TABLE, VERSION_TABLE, load_migrations

THREADS = 8
LATEST = load_migrations()[-1].version

#: argv: URL, go-file. Waits for the go-file, migrates, prints what it applied.
MIGRATOR = r"""
import sys, time
from pathlib import Path
from handshake_storage import open_database
url, go = sys.argv[1:3]
db = open_database(url)
print("ready", flush=True)
while not Path(go).exists():
    time.sleep(0.001)
plan = db.run_migrations()
print("applied", len(plan.steps), flush=True)
db.close()
"""


def run_threads(target: Any, count: int = THREADS) -> list[BaseException]:
    """Run ``target(i)`` in ``count`` threads started together; their errors."""
    errors: list[BaseException] = []
    barrier = threading.Barrier(count)

    def body(i: int) -> None:
        try:
            barrier.wait()
            target(i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    return errors


# -- eight migrating processes -----------------------------------------------------------------


def test_eight_processes_migrating_at_once_apply_each_migration_exactly_once(databases, tmp_path):
    url = databases.url()
    go = tmp_path / "go"
    children = [
        subprocess.Popen(
            [sys.executable, "-c", MIGRATOR, url, str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=child_env(),
        )
        for _ in range(8)
    ]
    for child in children:  # every one has imported the package and opened the database
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
    go.touch()
    outputs = [child.communicate(timeout=120) for child in children]

    assert [c.returncode for c in children] == [0] * 8, outputs
    assert [err for _, err in outputs] == [""] * 8
    applied = sorted(out.strip() for out, _ in outputs)
    assert applied == ["applied 0"] * 7 + [f"applied {LATEST}"]

    db = databases.open(url)
    assert rows(db, f"SELECT version FROM {VERSION_TABLE} ORDER BY version") == [
        (v,) for v in range(1, LATEST + 1)
    ]
    assert sorted(rows(db, f"SELECT version, action FROM {LOG_TABLE}")) == [
        (v, "up") for v in range(1, LATEST + 1)
    ]
    assert db.schema() == databases.open().schema()  # the complete schema, once


# -- eight writer threads ----------------------------------------------------------------------

ROUNDS = 12


@pytest.mark.slow
@pytest.mark.parametrize("sharing", ["one-database", "database-per-thread"])
def test_eight_writer_threads_lose_nothing_and_never_see_locked(databases, sharing):
    url = databases.url(migrated=True)
    main = databases.open(url)
    main.create_workspace(WriteContext.system(), NewWorkspace("shared", id="ws"))
    main.create_document(WriteContext.system(), NewDocument("ws", "shared", id="shared"))
    handles = (
        [main] * THREADS
        if sharing == "one-database"
        else [databases.open(url) for _ in range(THREADS)]
    )
    jobs: dict[int, list[Any]] = {}
    runs: dict[int, list[Any]] = {}
    read_errors: list[BaseException] = []
    stop = threading.Event()

    def writer(t: int) -> None:
        db = handles[t]
        ctx = WriteContext.human(f"writer-{t}")
        db.create_document(ctx, NewDocument("ws", f"own {t}", id=f"own-{t}"))
        jobs[t], runs[t] = [], []
        for r in range(ROUNDS):
            db.create_block(ctx, NewBlock("shared", "p", r, f"t{t} r{r} shared", id=f"s-{t}-{r}"))
            db.update_block(ctx, f"s-{t}-{r}", BlockUpdate(raw_content=f"t{t} r{r} updated"))
            db.replace_blocks(
                ctx,
                f"own-{t}",
                [NewBlock(f"own-{t}", "p", k, f"t{t} round{r} k{k}") for k in range(5)],
            )
            job = db.create_ai_job(new_job(t * 100 + r))
            jobs[t].append(job.id)
            db.update_ai_job_status(JobStatusUpdate(job.id, JobState.COMPLETED, f"done {t}/{r}"))
            run = db.create_workflow_run(job.id, JobState.RUNNING)
            runs[t].append(run.id)
            db.create_workflow_node_execution(
                NewNodeExecution(run.id, f"n{r}", "t", JobState.RUNNING, r, datetime.now(UTC))
            )
            db.heartbeat_workflow(run.id, datetime(2030, 1, 1, tzinfo=UTC) + timedelta(t, r))

    def reader() -> None:
        try:
            while not stop.is_set():
                main.get_blocks("shared")
                main.search_blocks("ws", "shared")
                main.list_documents("ws")
                main.find_stalled_workflows(3600)
        except BaseException as exc:
            read_errors.append(exc)

    readers = [threading.Thread(target=reader) for _ in range(2)]
    for r in readers:
        r.start()
    try:
        errors = run_threads(writer)
    finally:
        stop.set()
        for r in readers:
            r.join(60)
    assert errors == [], [f"{type(e).__name__}: {e}" for e in errors]
    assert read_errors == [], [f"{type(e).__name__}: {e}" for e in read_errors]

    # every acknowledged write is there, as written
    shared = {b.id: b.raw_content for b in main.get_blocks("shared")}
    assert shared == {
        f"s-{t}-{r}": f"t{t} r{r} updated" for t in range(THREADS) for r in range(ROUNDS)
    }
    for t in range(THREADS):
        own = [b.raw_content for b in main.get_blocks(f"own-{t}")]
        assert own == [f"t{t} round{ROUNDS - 1} k{k}" for k in range(5)]
        for r, job_id in enumerate(jobs[t]):
            job = main.get_ai_job(job_id)
            assert (job.status, job.status_reason) == (JobState.COMPLETED, f"done {t}/{r}")
        for r, run_id in enumerate(runs[t]):
            [execution] = main.list_workflow_node_executions(run_id)
            assert execution.node_id == f"n{r}"
    counts = {
        table: rows(main, f"SELECT COUNT(*) FROM {table}")[0][0]
        for table in ("blocks", "ai_jobs", "workflow_runs", "workflow_node_executions")
    }
    total = THREADS * ROUNDS
    assert counts == {
        "blocks": total + THREADS * 5,
        "ai_jobs": total,
        "workflow_runs": total,
        "workflow_node_executions": total,
    }
    assert all(r.equal for r in rebuildable.verify(main))


# -- one document, eight writers ----------------------------------------------------------------

GENERATIONS_PER_THREAD = 6


def _generation(thread: int, k: int) -> int:
    return 1000 * (thread + 1) + k


@pytest.mark.slow
@pytest.mark.parametrize("operation", ["replace_blocks", "update_canvas_graph"])
def test_concurrent_replacements_of_one_document_serialize(databases, operation):
    url = databases.url(migrated=True)
    db = databases.open(url)
    db.create_workspace(WriteContext.system(), NewWorkspace("ws", id="ws"))
    db.create_document(WriteContext.system(), NewDocument("ws", "doc", id="doc"))
    db.create_canvas(WriteContext.system(), NewCanvas("ws", "canvas", id="canvas"))
    handles = [databases.open(url) for _ in range(THREADS)]
    stop = threading.Event()
    seen: Counter[Any] = Counter()
    problems: list[str] = []

    def state() -> Any:
        if operation == "replace_blocks":
            observed = observed_blocks(db, "doc")
            if not observed:
                return 0
            stamps = {r[7] for r in observed}
            if len(stamps) != 1:
                return f"mix of {sorted(stamps)}"
            generation = int(next(iter(stamps))[4:])
            return generation if observed == expected_blocks("doc", generation) else "garbled"
        nodes, edges, _ = observed_graph(db, "canvas")
        if not nodes and not edges:
            return 0
        stamps = {n[4]["generation"] for n in nodes}
        if len(stamps) != 1:
            return f"mix of {sorted(stamps)}"
        generation = stamps.pop()
        return generation if (nodes, edges) == expected_graph(generation)[:2] else "garbled"

    def reader() -> None:
        while not stop.is_set():
            try:
                found = state()
            except StorageError as exc:
                problems.append(f"{type(exc).__name__}: {exc}")
                return
            seen[found] += 1
            if not isinstance(found, int):
                problems.append(found)

    def writer(t: int) -> None:
        for k in range(GENERATIONS_PER_THREAD):
            generation = _generation(t, k)
            if operation == "replace_blocks":
                handles[t].replace_blocks(
                    actor(generation), "doc", generation_blocks("doc", generation)
                )
            else:
                nodes, edges = generation_graph(generation)
                handles[t].update_canvas_graph(actor(generation), "canvas", nodes, edges)

    watcher = threading.Thread(target=reader)
    watcher.start()
    try:
        errors = run_threads(writer)
    finally:
        stop.set()
        watcher.join(60)
    assert errors == [], [f"{type(e).__name__}: {e}" for e in errors]
    assert problems == [], problems[:5]
    assert sum(seen.values()) >= 2, seen  # the reader did look while they wrote

    final = state()
    # one writer's last generation: whichever committed last wins whole
    assert final in {_generation(t, GENERATIONS_PER_THREAD - 1) for t in range(THREADS)}, final
    if operation == "replace_blocks":
        assert db.get_document("doc").last_actor_id == f"gen-{final}"
        assert observed_terms(db, "ws") == expected_terms("ws", "doc", final)
        assert all(r.equal for r in rebuildable.verify(db))
    else:
        assert db.get_canvas_with_graph("canvas").canvas.last_actor_id == f"gen-{final}"


def test_the_helpers_agree_on_generations():
    """The consistency checks above would notice a mix (guards the test itself)."""
    a, b = generation_blocks("doc", 1), generation_blocks("doc", 2)
    assert {x.id for x in a} & {x.id for x in b}  # some ids are reused across generations
    assert {x.raw_content for x in a}.isdisjoint({x.raw_content for x in b})
    assert expected_blocks("doc", 1) != expected_blocks("doc", 2)
    nodes1, _ = generation_graph(1)
    nodes2, _ = generation_graph(2)
    assert {n.id for n in nodes1} & {n.id for n in nodes2}
