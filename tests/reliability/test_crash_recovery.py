"""SIGKILL at seeded random points: nothing is lost, nothing is mixed.

A worker process (forked from ``victim.py``, see ``reliability_support``)
runs an operation in a loop and reports each step; the test kills it with
SIGKILL after a seeded random number of steps plus a seeded random delay
scaled to the measured length of one step, so kills land before, inside and
after the write (and, on PostgreSQL, while the server still finishes the
dead client's transaction). After every kill the database is opened as it
is and must be consistent:

* ``replace_blocks``: the document's blocks are exactly one generation (the
  last one reported done, or the one in flight), with the parent document
  stamped by the same generation, and the ``block_search`` rows equal
  a rebuild from the blocks;
* ``update_canvas_graph``: nodes and edges are exactly one generation;
* ``migrate`` (looping up to the latest and back down to 0): a clean
  version — a gapless history, a log that matches it, and a schema equal to
  a reference database migrated straight to that version;
* ``copy``: the target is either complete (every table's digest equals the
  source's, the API reads back the same content) or untouched (no table; a
  new SQLite file holds no table), and the source never changes.

The seeded slow-migration kill points of ``tests/test_migration_concurrency.py``
(inside a 400k-row migration, during PostgreSQL's COMMIT) are not repeated
here; these kill points are many and random over the shipped migrations,
up and down.
"""

from __future__ import annotations

import random
import signal
import statistics
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from reliability_support import (
    actor,
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
    table_digests,
    victim_url,
    wait_until_quiet,
    zygote,
)

from conftest import BACKENDS, DatabaseFactory
from handshake_storage import (
    Database,
    JobState,
    NewCanvas,
    NewDocument,
    NewNodeExecution,
    NewWorkspace,
    WriteContext,
    open_database,
    rebuildable,
)
from handshake_storage.migrator import BOOKKEEPING_TABLES, LOG_TABLE, VERSION_TABLE, Migrator
from handshake_storage.migrator import load_migrations as _load

#: Kill points per operation and backend (the issue asks for at least 20).
KILLS = 22
LATEST = _load()[-1].version
KILLED = -signal.SIGKILL


@pytest.fixture
def other_databases(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    other = next(b for b in BACKENDS if b != backend)
    (tmp_path / "other").mkdir()
    factory = DatabaseFactory(other, request, tmp_path / "other")
    yield factory
    factory.cleanup()


# -- replace_blocks and update_canvas_graph ----------------------------------------------------


def generation_of(actor_id: str | None) -> int | None:
    if actor_id is None or not actor_id.startswith("gen-"):
        return None
    return int(actor_id[4:])


def blocks_state(db: Database, document_id: str) -> int:
    """The generation the document is at; fails on anything but exactly one."""
    document = db.get_document(document_id)
    generation = generation_of(document.last_actor_id)
    assert generation is not None, document
    observed = observed_blocks(db, document_id)
    assert observed == expected_blocks(document_id, generation), (
        f"document stamped by generation {generation}, blocks are not exactly that generation: "
        f"{Counter(r[7] for r in observed)}"
    )
    return generation


def canvas_state(db: Database, canvas_id: str) -> int:
    nodes, edges, stamp = observed_graph(db, canvas_id)
    generation = generation_of(stamp)
    assert generation is not None, stamp
    expected_nodes, expected_edges, _ = expected_graph(generation)
    assert nodes == expected_nodes, f"canvas stamped by {generation}; nodes differ"
    assert edges == expected_edges, f"canvas stamped by {generation}; edges differ"
    return generation


OPERATIONS = {
    "replace_blocks": ("replace", blocks_state),
    "update_canvas_graph": ("canvas", canvas_state),
}


@pytest.mark.slow
@pytest.mark.parametrize("operation", list(OPERATIONS))
def test_a_killed_writer_leaves_the_old_or_the_new_content_never_a_mix(
    databases, backend, operation, record_property
):
    url = databases.url(migrated=True)
    db = databases.open(url)
    db.create_workspace(WriteContext.system(), NewWorkspace("crash", id="ws"))
    db.create_document(WriteContext.system(), NewDocument("ws", "doc", id="doc"))
    db.create_canvas(WriteContext.system(), NewCanvas("ws", "canvas", id="canvas"))
    db.replace_blocks(actor(0), "doc", generation_blocks("doc", 0))
    nodes, edges = generation_graph(0)
    db.update_canvas_graph(actor(0), "canvas", nodes, edges)
    op, state_of = OPERATIONS[operation]
    target = {"document": "doc"} if op == "replace" else {"canvas": "canvas"}
    rng = random.Random(f"{operation}/{backend}")
    outcomes: Counter[str] = Counter()

    with zygote() as z:
        # Calibration: three generations end to end give the length of one write.
        worker = z.run(op, url=victim_url(url), first=1, last=3, **target)
        assert worker.finish() == 0, worker.events
        typical = statistics.median(e["s"] for e in worker.of("done"))
        current = state_of(db, target.get("document") or target["canvas"])
        assert current == 3
        generation = 4
        for _ in range(KILLS):
            worker = z.run(op, url=victim_url(url), first=generation, last=10**6, **target)
            nth = generation + rng.randint(0, 1)
            worker.wait_for(lambda e, nth=nth: e["ev"] == "start" and e["gen"] == nth)
            time.sleep(rng.uniform(0, 1.3) * typical)
            worker.kill()
            assert worker.exit_status == KILLED, worker.events
            started = max(e["gen"] for e in worker.of("start"))
            # the last generation known to be committed: reported done, or else
            # the state found after the previous kill
            done = max((e["gen"] for e in worker.of("done")), default=current)
            wait_until_quiet(db)

            found = state_of(db, target.get("document") or target["canvas"])
            assert found in (done, started), (found, done, started)
            current = found
            if started > done:
                outcomes["killed mid-write: kept old" if found == done else "mid-write: new"] += 1
            else:
                outcomes["killed between writes"] += 1
            if op == "replace":  # the search projection is exactly the blocks' terms
                assert observed_terms(db, "ws") == expected_terms("ws", "doc", found)
            generation = started + 1

    # The kills did land inside writes, and a write cut short left no trace.
    assert outcomes["killed mid-write: kept old"] >= 1, outcomes
    assert sum(outcomes.values()) == KILLS
    record_property("kill_outcomes", dict(outcomes))
    assert all(r.equal for r in rebuildable.verify(db)), rebuildable.verify(db)
    # the other content was never touched by the writer
    if op == "replace":
        assert canvas_state(db, "canvas") == 0
        assert db.search_blocks("ws", f"gen{generation - 1} gen{generation - 2}") == []
    else:
        assert blocks_state(db, "doc") == 0


# -- migrate ------------------------------------------------------------------------------------


def content_schema(db: Database) -> Any:
    return db.schema().without(*BOOKKEEPING_TABLES)


def clean_version(db: Database, reference: dict[int, Any]) -> int:
    """The version the database is at, after checking it is a clean one."""
    schema = db.schema()
    if VERSION_TABLE in schema.tables:
        versions = [r[0] for r in rows(db, f"SELECT version FROM {VERSION_TABLE} ORDER BY version")]
        log = rows(db, f"SELECT version, action FROM {LOG_TABLE}")
    else:
        versions, log = [], []
    version = len(versions)
    assert versions == list(range(1, version + 1)), f"history is not a prefix: {versions}"
    for v in range(1, LATEST + 1):
        ups = sum(1 for r in log if r == (v, "up"))
        downs = sum(1 for r in log if r == (v, "down"))
        assert ups - downs == (1 if v <= version else 0), (v, ups, downs, versions)
    assert schema.without(*BOOKKEEPING_TABLES) == reference[version], f"at version {version}"
    return version


@pytest.mark.slow
def test_a_killed_migrator_up_or_down_leaves_a_clean_version(databases, backend, record_property):
    reference_db = databases.open(migrated=False)
    reference = {0: content_schema(reference_db)}
    for version in range(1, LATEST + 1):
        reference_db.run_migrations(version)
        reference[version] = content_schema(reference_db)
    assert reference[0].tables == {}

    url = databases.url()
    db = databases.open(url)
    rng = random.Random(f"migrate/{backend}")
    versions_seen: Counter[int] = Counter()
    with zygote() as z:
        worker = z.run("migrate", url=victim_url(url), rounds=1)
        assert worker.finish() == 0, worker.events
        steps = len(worker.events)
        assert clean_version(db, reference) == 0
        for _ in range(KILLS):
            worker = z.run("migrate", url=victim_url(url), rounds=10**6)
            nth = rng.randint(1, steps)
            worker.wait_for_count(nth)
            time.sleep(rng.choice([0, 0, rng.uniform(0, 0.005), rng.uniform(0, 0.05)]))
            worker.kill()
            assert worker.exit_status == KILLED, worker.events
            wait_until_quiet(db)
            versions_seen[clean_version(db, reference)] += 1

    record_property("versions_after_kills", dict(versions_seen))
    assert sum(versions_seen.values()) == KILLS
    assert len(versions_seen) >= 2, versions_seen  # the kills did not all land alike
    Migrator(db._adapter).migrate()
    assert clean_version(db, reference) == LATEST
    assert [s.state for s in db.migration_status()] == ["applied"] * LATEST


# -- copy ---------------------------------------------------------------------------------------


def populate_source(db: Database) -> None:
    ctx = WriteContext.system("source")
    db.create_workspace(ctx, NewWorkspace("source ✓", id="src-ws"))
    for d in range(3):
        doc = f"src-doc-{d}"
        db.create_document(ctx, NewDocument("src-ws", f"document {d}", id=doc))
        db.replace_blocks(actor(d), doc, generation_blocks(doc, d))
    db.create_canvas(ctx, NewCanvas("src-ws", "canvas", id="src-canvas"))
    nodes, edges = generation_graph(7)
    db.update_canvas_graph(actor(7), "src-canvas", nodes, edges)
    for k in range(5):
        job = db.create_ai_job(new_job(k))
        run = db.create_workflow_run(job.id, JobState.RUNNING)
        db.create_workflow_node_execution(
            NewNodeExecution(run.id, "node", "llm", JobState.RUNNING, k, run.created_at, {"k": k})
        )


def target_is_empty(url: str) -> bool:
    if url.startswith("sqlite:"):
        path = Path(url[len("sqlite:///") :])
        if not path.exists():
            return True
    with open_database(url) as target:
        return target.schema().tables == {}


@pytest.mark.slow
def test_a_killed_copy_leaves_the_target_complete_or_untouched(
    databases, other_databases, backend, record_property
):
    source = other_databases.open()
    populate_source(source)
    source_url = source._adapter.url.raw
    before = table_digests(source)
    source_blocks = {d: source.get_blocks(f"src-doc-{d}") for d in range(3)}
    rng = random.Random(f"copy/{backend}")
    outcomes: Counter[str] = Counter()

    def new_target() -> str:
        return databases.url()

    # any PostgreSQL handle sees the sessions of every database on the server
    server = source if source.backend == "postgresql" else databases.open()

    with zygote() as z:
        target = new_target()
        worker = z.run("copy", source=victim_url(source_url), target=victim_url(target), batch=64)
        assert worker.finish() == 0, worker.events
        events = worker.of("progress")
        begun, copied = worker.of("start")[0]["t"], worker.of("copied")[0]["t"]
        total, tail = copied - begun, copied - events[-1]["t"]
        assert_complete(target, before, source_blocks)
        target = new_target()
        for point in range(KILLS):
            worker = z.run(
                "copy", source=victim_url(source_url), target=victim_url(target), batch=64
            )
            if point % 2:  # after a given number of rows, or in the tail (rebuild, verify)
                nth = rng.randint(1, len(events))
                worker.wait_for_count(nth, "progress")
                last = nth == len(events)
                time.sleep(rng.uniform(0, 1.3) * tail if last else rng.uniform(0, 0.01))
            else:  # at a random moment of the second half, commit included
                start = worker.wait_for(lambda e: e["ev"] == "start")["t"]
                time.sleep(max(0.0, start + rng.uniform(0.5, 1.1) * total - time.monotonic()))
            worker.kill()
            assert worker.exit_status in (KILLED, 0), worker.events
            wait_until_quiet(server)
            if worker.of("copied") or not target_is_empty(target):
                assert_complete(target, before, source_blocks)
                outcomes["complete"] += 1
                target = new_target()
            else:
                outcomes["untouched"] += 1  # and it is reused for the next kill point

    record_property("copy_seconds", round(total, 3))
    record_property("copy_outcomes", dict(outcomes))
    assert outcomes["untouched"] >= 1, outcomes
    assert sum(outcomes.values()) == KILLS
    assert table_digests(source) == before  # the source never changes


def assert_complete(url: str, expected: dict[str, Any], blocks: dict[int, Any]) -> None:
    with open_database(url) as copy:
        # all but the replica id, which a copy makes anew (sync_replica)
        new = {n: d for n, d in table_digests(copy).items() if n != "sync_replica"}
        assert new == {n: d for n, d in expected.items() if n != "sync_replica"}
        for d, source_blocks in blocks.items():
            assert copy.get_blocks(f"src-doc-{d}") == source_blocks
        assert all(r.equal for r in rebuildable.verify(copy))
        assert [s.state for s in copy.migration_status()] == ["applied"] * LATEST
