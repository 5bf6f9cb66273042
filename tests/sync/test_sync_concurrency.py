"""Sync under real concurrency, on every backend pair (SQLite-SQLite,
SQLite-PostgreSQL, PostgreSQL-PostgreSQL): import and prune read and then
write, so they are run at once by real threads and processes, with barriers
so that the overlap is real.

What is asserted holds under every interleaving: every caller finishes
without an exception, each change set is applied exactly once on each side
(the import reports add up, ledger keys are unique and the same everywhere,
the conflict log has no entry twice), and after a settling sync nothing
moves and the replicas read identical through the API, with equal digests.
"""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sync_support import ADA, BOB, PAIRS, content, job_input, replicas

from handshake_storage import (
    BlockUpdate,
    Database,
    JobState,
    JobStatusUpdate,
    NewBlock,
    NewDocument,
    NewWorkspace,
    open_database,
)
from handshake_storage.sync import ImportReport, SyncReport, exchange, sync_databases

T = TypeVar("T")

#: Longest any concurrent caller may take before the test calls it stuck.
JOIN_SECONDS = 120.0

#: Three replicas in a line (A - B - C), covering every backend pair.
TRIPLES = [
    ("sqlite", "sqlite", "sqlite"),
    ("sqlite", "postgresql", "sqlite"),
    ("postgresql", "postgresql", "postgresql"),
]


@pytest.fixture(params=PAIRS, ids=["-".join(p) for p in PAIRS])
def pair(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[list[Database]]:
    yield from replicas(request, tmp_path, request.param)


@pytest.fixture(params=TRIPLES, ids=["-".join(t) for t in TRIPLES])
def triple(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[list[Database]]:
    yield from replicas(request, tmp_path, request.param)


@pytest.fixture
def import_runs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the import transactions run (first runs and retries alike)."""
    runs: list[int] = []
    real = exchange._import_once

    def counted(*args: Any) -> ImportReport:
        runs.append(1)  # list.append is atomic: threads may call at once
        return real(*args)

    monkeypatch.setattr(exchange, "_import_once", counted)
    return runs


# -- helpers ------------------------------------------------------------------------------


def url(db: Database) -> str:
    return db._adapter.url.raw


def together(count: int, work: Callable[[int], T]) -> list[T]:
    """Run ``work(0..count-1)`` in ``count`` threads released at once by a
    barrier; their results. Any exception in any thread fails the test, and
    so does a thread still running after ``JOIN_SECONDS`` (a deadlock)."""
    barrier = threading.Barrier(count)
    results: dict[int, T] = {}
    errors: list[tuple[int, BaseException]] = []

    def body(i: int) -> None:
        try:
            barrier.wait(JOIN_SECONDS)
            results[i] = work(i)
        except BaseException as exc:  # reported below, with the thread's number
            errors.append((i, exc))
            barrier.abort()

    threads = [threading.Thread(target=body, args=(i,), daemon=True) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(JOIN_SECONDS)
    assert not [t for t in threads if t.is_alive()], "a concurrent caller never finished"
    assert not errors, errors
    return [results[i] for i in range(count)]


def ledger_keys(db: Database) -> list[tuple[str, str, int]]:
    return sorted((c.origin_id, c.workspace_id or "", c.seq) for c in db.changes(limit=100_000))


def per_origin(db: Database) -> Counter[tuple[str, str]]:
    """Ledger rows per (origin, scope)."""
    return Counter((origin, scope) for origin, scope, _ in ledger_keys(db))


def conflict_keys(db: Database) -> list[tuple[Any, ...]]:
    """What identifies a conflict entry apart from its random id: one loss of
    one change set to another on one row."""
    return [
        (
            e.kind,
            e.table_name,
            e.row_id,
            e.loser_provenance.get("edit_event_id"),
            e.winner_provenance.get("edit_event_id"),
        )
        for e in db.conflicts(limit=100_000)
    ]


def assert_applied_once(dbs: Sequence[Database]) -> None:
    """No change set or conflict entry twice on any replica."""
    for db in dbs:
        keys = ledger_keys(db)
        assert len(keys) == len(set(keys)), f"a change set was applied twice on {db.url}"
        logged = conflict_keys(db)
        assert len(logged) == len(set(logged)), f"a conflict was logged twice on {db.url}"


def assert_converged(dbs: Sequence[Database]) -> None:
    """Every pair of replicas has nothing left to move, reads identical
    through the API, has equal digests and the same ledger (unpruned)."""
    assert_applied_once(dbs)
    for i, first in enumerate(dbs):
        for second in dbs[i + 1 :]:
            assert sync_databases(first, second).moved == 0
    state, digests = content(dbs[0]), dbs[0].content_digests()
    for db in dbs[1:]:
        assert content(db) == state
        assert db.content_digests() == digests
        assert per_origin(db) == per_origin(dbs[0])
        assert ledger_keys(db) == ledger_keys(dbs[0])


def seed(db: Database, name: str, blocks: int = 6) -> str:
    """A workspace ``name`` with one document of ``blocks`` blocks; the document id."""
    ws = db.create_workspace(ADA, NewWorkspace(name, id=name))
    doc = db.create_document(ADA, NewDocument(ws.id, f"{name} doc", id=f"{name}-doc"))
    db.replace_blocks(
        ADA,
        doc.id,
        [NewBlock(doc.id, "p", i, f"{name} {i}", id=f"{name}-b{i}") for i in range(blocks)],
    )
    return doc.id


def fresh_edits(db: Database, mine: str, shared: str, tag: str) -> int:
    """Edits of a replica after a sync: new blocks and a document in its own
    workspace, updates of blocks the other replica edits too (conflicts), a
    replacement of its own document's blocks, an AI job. The change sets made."""
    before = len(db.changes(limit=100_000))
    for i in range(4):
        for ws in (mine, shared):
            db.update_block(ADA, f"{ws}-b{i}", BlockUpdate(raw_content=f"{tag} edit {i}"))
    db.update_block(BOB, f"{shared}-b4", BlockUpdate(kind=f"{tag}-kind"))
    for i in range(8):
        db.create_block(BOB, NewBlock(f"{mine}-doc", "p", 10 + i, f"{tag} new {i}"))
    doc = db.create_document(BOB, NewDocument(mine, f"{tag} second"))
    db.replace_blocks(
        BOB, doc.id, [NewBlock(doc.id, "p", i, f"{tag} replaced {i}") for i in range(3)]
    )
    job = db.create_ai_job(job_input())
    db.update_ai_job_status(JobStatusUpdate(job.id, JobState.RUNNING, "started"))
    return len(db.changes(limit=100_000)) - before


def of_origin(db: Database, origin: str) -> dict[tuple[str, str], int]:
    """Ledger rows per scope of one origin."""
    return {k: n for k, n in per_origin(db).items() if k[0] == origin}


def synced_then_edited(a: Database, b: Database, *, both: bool = True) -> tuple[int, int]:
    """Each side seeds its workspace, one sync shares them, then fresh edits
    on ``a`` (and on ``b``, with ``both``): the change sets each then made."""
    seed(a, "wa")
    seed(b, "wb")
    sync_databases(a, b)
    made_a = fresh_edits(a, "wa", "wb", "a")
    return made_a, fresh_edits(b, "wb", "wa", "b") if both else 0


# -- 1. several syncs of one pair at once -------------------------------------------------


def test_concurrent_syncs_of_one_pair_apply_every_change_set_exactly_once(
    pair: list[Database], import_runs: list[int]
) -> None:
    a, b = pair
    made_a, made_b = synced_then_edited(a, b)
    urls = url(a), url(b)

    def one_sync(i: int) -> SyncReport:
        # each its own Database objects, as separate callers have; small and
        # large batches, so the imports of one sync overlap those of others
        return sync_databases(*urls, batch_size=5 if i % 2 else 500)

    del import_runs[:]
    reports = together(4, one_sync)
    # Importers of the same change sets wait for each other (the marks are
    # claimed first) instead of failing and retrying: one run per batch.
    assert len(import_runs) == sum(r.batches for r in reports)
    # Each change set was applied by exactly one of the syncs, in each direction.
    assert sum(r.pushed.applied + r.pushed.rejected for r in reports) == made_a
    assert sum(r.pulled.applied + r.pulled.rejected for r in reports) == made_b
    assert_converged([a, b])
    for block in ("wa-b0", "wb-b3"):
        assert a.get_block(block).raw_content in ("a edit 0", "b edit 0", "a edit 3", "b edit 3")
        assert a.get_block(block) == b.get_block(block)


def _sync_process(urls: tuple[str, str], batch_size: int, barrier: Any, out: Any) -> None:
    """One sync in a process of its own (spawned): its report's counts, or the error."""
    try:
        barrier.wait(JOIN_SECONDS)
        report = sync_databases(*urls, batch_size=batch_size)
        out.put(("ok", report.pushed.applied + report.pushed.rejected, report.pulled.applied))
    except BaseException as exc:  # reported to the test
        out.put(("error", f"{type(exc).__name__}: {exc}", 0))


def test_concurrent_sync_processes_of_one_pair_apply_every_change_set_exactly_once(
    pair: list[Database],
) -> None:
    a, b = pair
    made_a, made_b = synced_then_edited(a, b)
    ctx = multiprocessing.get_context("spawn")
    barrier, out = ctx.Barrier(3), ctx.Queue()
    procs = [
        ctx.Process(target=_sync_process, args=((url(a), url(b)), size, barrier, out))
        for size in (4, 500, 7)
    ]
    for p in procs:
        p.start()
    results = [out.get(timeout=JOIN_SECONDS) for _ in procs]
    for p in procs:
        p.join(JOIN_SECONDS)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    assert [r for r in results if r[0] != "ok"] == []
    assert sum(r[1] for r in results) == made_a
    assert sum(r[2] for r in results) == made_b
    assert_converged([a, b])


# -- 2. one batch imported by several threads at once -------------------------------------


def test_one_batch_imported_by_several_threads_at_once_is_applied_by_exactly_one(
    pair: list[Database], import_runs: list[int]
) -> None:
    a, b = pair
    synced_then_edited(a, b, both=False)
    # b's own concurrent edits of the same rows: the batch has field conflicts
    for i in range(4):
        b.update_block(BOB, f"wb-b{i}", BlockUpdate(raw_content=f"b edit {i}"))
    batch = a.export_changes(b.sync_vector())
    count = len(batch["changes"])
    assert batch["complete"] and count > 20
    conflicts_before = len(b.conflicts(limit=100_000))
    others = [open_database(url(b)) for _ in range(2)]
    try:
        # two threads share the test's Database, two have their own
        importers = [b, b, *others]
        del import_runs[:]
        reports: list[ImportReport] = together(4, lambda i: importers[i].import_changes(batch))
    finally:
        for db in others:
            db.close()
    winners = [r for r in reports if r.applied + r.rejected]
    assert len(winners) == 1, reports
    (winner,) = winners
    assert winner.applied + winner.rejected == count and winner.skipped == 0
    assert all(r.skipped == count and r.conflicts == 0 for r in reports if r is not winner)
    # the others waited for the winner's commit, then skipped: none had to retry
    assert len(import_runs) == 4
    # nothing doubled: the ledger holds each once, the log each loss once
    assert len(b.conflicts(limit=100_000)) == conflicts_before + winner.conflicts
    assert winner.conflicts > 0
    assert_applied_once([b])
    assert of_origin(b, a.replica_id) == of_origin(a, a.replica_id)
    assert b.import_changes(batch).skipped == count
    sync_databases(a, b)
    assert_converged([a, b])


# -- 3. overlapping syncs while writers write ----------------------------------------------


def test_overlapping_syncs_of_three_replicas_under_writers_converge(
    triple: list[Database],
) -> None:
    a, b, c = triple
    seed(a, "wa")
    seed(c, "wc")
    sync_databases(a, b)
    sync_databases(b, c)
    sync_databases(a, b)
    writers_done = threading.Event()
    writers_left, lock = [2], threading.Lock()

    def write(db: Database, mine: str, shared: str) -> int:
        try:
            for i in range(12):
                db.create_block(BOB, NewBlock(f"{mine}-doc", "p", 100 + i, f"{mine} live {i}"))
                db.update_block(ADA, f"{shared}-b{i % 3}", BlockUpdate(raw_content=f"{mine} {i}"))
                db.update_block(ADA, f"{mine}-b{i % 3}", BlockUpdate(kind=f"{mine}-{i}"))
        finally:
            with lock:
                writers_left[0] -= 1
                if not writers_left[0]:
                    writers_done.set()
        return 12

    def keep_syncing(first: Database, second: Database) -> int:
        rounds = 0
        while not writers_done.is_set() or rounds < 2:
            sync_databases(first, second, batch_size=4)
            rounds += 1
        return rounds

    def work(i: int) -> int:
        try:
            if i < 2:
                return write(*[(a, "wa", "wc"), (c, "wc", "wa")][i])
            # A-B, B-C, and B-C again the other way round, all at once
            return keep_syncing(*[(a, b), (b, c), (c, b)][i - 2])
        except BaseException:
            writers_done.set()  # let the syncers stop: the error is reported
            raise

    rounds = together(5, work)
    assert rounds[:2] == [12, 12]
    assert min(rounds[2:]) >= 2
    # settle along the line: A's reach C through B, C's reach A through B
    sync_databases(a, b)
    sync_databases(b, c)
    sync_databases(a, b)
    assert_converged([a, b, c])
    for db in (a, b, c):
        assert len(db.get_blocks("wa-doc")) == 6 + 12
        assert len(db.get_blocks("wc-doc")) == 6 + 12


# -- 4. ledger prune while syncs run -------------------------------------------------------


def test_ledger_prune_during_syncs_loses_nothing_and_syncs_still_complete(
    pair: list[Database],
) -> None:
    a, b = pair
    seed(a, "wa")
    seed(b, "wb")
    for i in range(15):  # history for the prunes to compact
        a.update_block(ADA, "wa-b0", BlockUpdate(raw_content=f"a history {i}"))
        b.update_block(BOB, "wb-b0", BlockUpdate(raw_content=f"b history {i}"))
    sync_databases(a, b)
    sync_databases(a, b)  # each side has recorded the other as a peer
    fresh_edits(a, "wa", "wb", "a")
    fresh_edits(b, "wb", "wa", "b")
    urls = url(a), url(b)
    pruned: dict[str, int] = {}

    def work(i: int) -> int:
        if i < 2:  # prune each side, again and again, while the syncs run
            db = (a, b)[i]
            total = 0
            for _ in range(3):
                total += db.prune_ledger().pruned
                time.sleep(0.01)
            pruned["ab"[i]] = total
            return total
        return sync_databases(*urls, batch_size=4).moved

    moved = together(4, work)
    assert pruned["a"] > 0 and pruned["b"] > 0  # the old history was stable
    assert sum(moved[2:]) > 0
    final = sync_databases(a, b, verify=True)  # no PrunedError: nobody fell behind
    assert final.verified
    assert sync_databases(a, b).moved == 0
    assert_applied_once([a, b])
    assert content(a) == content(b)
    assert a.content_digests() == b.content_digests()
    assert a.sync_vector() == b.sync_vector()
    # nothing lost: every edit made before and during the syncs is on both sides
    for db in (a, b):
        assert db.get_block("wa-b0").raw_content in ("a edit 0", "b edit 0")
        assert len(db.get_blocks("wa-doc")) == len(db.get_blocks("wb-doc")) == 6 + 8
        assert sum(len(db.list_documents(ws)) for ws in ("wa", "wb")) == 4
    # and a prune after all that still leaves a ledger both sides can sync from
    a.prune_ledger()
    b.update_block(BOB, "wa-b1", BlockUpdate(raw_content="after the prunes"))
    sync_databases(a, b)
    assert a.get_block("wa-b1").raw_content == "after the prunes"


def test_a_sync_whose_cursor_a_prune_passed_meanwhile_is_not_told_to_re_copy(
    pair: list[Database],
) -> None:
    """The interleaving behind test 4's rare failure, made deterministic: a
    sync reads the receiver's vector once and carries it forward; meanwhile
    another sync brings the receiver further and records it as a peer, and a
    prune of the sender passes the first sync's cursor. The receiver is not
    behind, so the first sync must go on (it used to get PrunedError)."""
    a, b = pair
    seed(a, "wa")
    sync_databases(a, b)
    sync_databases(a, b)  # peers recorded
    for i in range(12):
        a.update_block(ADA, "wa-b0", BlockUpdate(raw_content=f"a {i}"))
    meanwhile: list[int] = []

    def progress(direction: str, moved: int, batches: int) -> None:
        if not meanwhile:  # after the first batch of the first sync's push
            sync_databases(a, b)  # b now has everything, and a knows it
            meanwhile.append(a.prune_ledger().pruned)

    report = sync_databases(a, b, batch_size=1, progress=progress)
    assert meanwhile[0] >= 10  # the prune passed the first sync's cursor
    assert report.pushed.applied >= 1
    assert sync_databases(a, b).moved == 0
    assert content(a) == content(b)
    assert b.get_block("wa-b0").raw_content == "a 11"


def test_a_prune_that_deadlocks_is_run_again_and_completes(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """A real deadlock on PostgreSQL: another session holds the last change
    set the prune deletes and, once the prune waits for it, asks for the
    first one, which the prune holds. The prune waited first, so its own
    deadlock check (``deadlock_timeout``) aborts it; the retry rule runs it
    again and it completes (it used to raise ConflictError at once)."""
    import psycopg

    gen = replicas(request, tmp_path, ("postgresql", "postgresql"))
    a, b = next(gen)
    try:
        seed(a, "wa")
        for i in range(6):
            a.update_block(ADA, "wa-b0", BlockUpdate(raw_content=f"a {i}"))
        sync_databases(a, b)
        sync_databases(a, b)  # b recorded as a peer: everything of a is stable
        changes = a.changes(limit=100_000)
        newest: dict = {}  # per subject, and per field of it: the highest stamp (kept)
        for ch in changes:
            subject = (ch.subject_table, ch.subject_id)
            fields = [
                (*subject, column)
                for g in ch.payload.get("put", ())
                if g["table"] == subject[0]
                for row in g["rows"]
                if row[0] == subject[1]
                for column in g["columns"][1:]
            ]
            for key in (subject, *fields):
                if ch.hlc > newest.get(key, ""):
                    newest[key] = ch.hlc
        kept = set(newest.values())
        doomed = sorted((ch.origin_id, ch.scope, ch.seq) for ch in changes if ch.hlc not in kept)
        assert len(doomed) >= 2 and a.prune_ledger(dry_run=True).pruned == len(doomed)
        lock = "SELECT 1 FROM sync_changes WHERE origin_id = %s AND scope = %s AND seq = %s"
        with (
            psycopg.connect(url(a)) as other,
            psycopg.connect(url(a), autocommit=True) as watch,
        ):
            other.execute(lock + " FOR UPDATE", doomed[-1])

            def waiting() -> int:
                q = (
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock'"
                )
                return watch.execute(q).fetchone()[0]  # type: ignore[index]

            def prune(i: int) -> int:
                if i == 0:
                    return a.prune_ledger().pruned
                deadline = time.monotonic() + JOIN_SECONDS
                while not waiting():  # the prune holds the first, waits for the last
                    assert time.monotonic() < deadline
                    time.sleep(0.01)
                other.execute(lock + " FOR UPDATE", doomed[0])  # waits: a cycle
                other.commit()
                return 0

            pruned, _ = together(2, prune)
        assert pruned == len(doomed)
        left = {(ch.origin_id, ch.scope, ch.seq) for ch in a.changes(limit=100_000)}
        assert left.isdisjoint(doomed)
        a.update_block(ADA, "wa-b0", BlockUpdate(raw_content="after"))
        sync_databases(a, b)
        assert b.get_block("wa-b0").raw_content == "after"
    finally:
        next(gen, None)
