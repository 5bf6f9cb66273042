"""Sync benchmark: what the change ledger costs and how fast change sets apply.

    python -m bench.sync_bench [--postgres-url URL] [--repeats 5] [--changes 2000]

1. Writes with the ledger vs the same writes without it: the same API calls
   on a database migrated to the latest version and on one migrated to the
   version before the ledger (no ledger tables: the append is skipped),
   taking turns repeat by repeat; medians and ratios per backend. Beside it,
   the baseline: the raw floor's creates and updates (``bench.impl_raw``)
   with its change ledger (the same SQL, tables and indexes) and without it,
   which is the least the same ledger can cost a write here.
2. Applying N change sets of a mixed workload (creates, updates, block
   replacements, deletes, jobs) SQLite -> PostgreSQL and PostgreSQL ->
   SQLite: change sets per second, beside the raw floor applying the same
   exported batches with the same rows, ledger and search index
   (``sync_floor.py``); both verified by comparing table digests with the
   source; peak RSS growth during the sync, at N/4 and at N (flat in N:
   the second is not larger).
3. An incremental sync with nothing new between a local SQLite file and a
   local PostgreSQL: median wall time.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from handshake_storage import (
    AccessMode,
    BlockUpdate,
    JobState,
    NewAiJob,
    NewBlock,
    NewDocument,
    NewWorkspace,
    SafetyMode,
    WriteContext,
    open_database,
)
from handshake_storage.migrator import load_migrations
from handshake_storage.sync import sync_databases

from .env import Backend, PostgresServer, make_workdir
from .impl_raw import RawImpl
from .sync_floor import RawApplier

HUMAN = WriteContext.human("bench")
LEDGER_VERSION = next(m.version for m in load_migrations() if m.description == "change_ledger")


def write_workload(db: Any, n: int = 200) -> None:
    """Creates, updates and replacements: the write paths the ledger touches."""
    ws = db.create_workspace(HUMAN, NewWorkspace("bench"))
    doc = db.create_document(HUMAN, NewDocument(ws.id, "doc"))
    ids = [db.create_block(HUMAN, NewBlock(doc.id, "p", i, f"word {i} text")).id for i in range(n)]
    for i, key in enumerate(ids):
        db.update_block(HUMAN, key, BlockUpdate(raw_content=f"edited {i}"))
    for r in range(10):
        db.replace_blocks(
            HUMAN, doc.id, [NewBlock(doc.id, "p", i, f"gen {r} block {i}") for i in range(50)]
        )


def mixed_workload(db: Any, changes: int) -> None:
    """About ``changes`` change sets of every kind."""
    ws = db.create_workspace(HUMAN, NewWorkspace("mixed"))
    job = db.create_ai_job(
        NewAiJob(
            trace_id=uuid.uuid4(),
            job_kind="k",
            protocol_id="p",
            profile_id="p",
            capability_profile_id="c",
            access_mode=AccessMode.APPLY_SCOPED,
            safety_mode=SafetyMode.NORMAL,
        )
    )
    run = db.create_workflow_run(job.id, JobState.RUNNING)
    ai = WriteContext.ai(job.id, run.id, "model")
    made = 4
    while made < changes:
        doc = db.create_document(HUMAN, NewDocument(ws.id, "d"))
        blocks = [db.create_block(ai, NewBlock(doc.id, "p", i, f"block {i}")).id for i in range(5)]
        for key in blocks:
            db.update_block(HUMAN, key, BlockUpdate(raw_content="updated text"))
        db.replace_blocks(HUMAN, doc.id, [NewBlock(doc.id, "p", i, f"r {i}") for i in range(5)])
        db.update_workflow_run_status(run.id, JobState.RUNNING)
        made += 13
        if made % 5 == 0:
            db.delete_document(HUMAN, doc.id)
            made += 1


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_writes(backend: Backend, repeats: int) -> tuple[float, float]:
    with_ledger, without = [], []
    for _ in range(repeats):
        for into, version in ((with_ledger, None), (without, LEDGER_VERSION - 1)):
            url = backend.new_url(migrated=False)
            with open_database(url) as db:
                db.run_migrations(version)
                into.append(timed(lambda db=db: write_workload(db)))
            backend.drop(url)
    return statistics.median(with_ledger), statistics.median(without)


def floor_write_workload(impl: RawImpl, n: int = 200) -> None:
    """The creates and updates of ``write_workload``, by the raw floor."""
    impl.create_workspace("ws", "bench")
    impl.create_document("doc", "ws", "doc")
    for i in range(n):
        impl.create_block("doc", f"b{i}", "p", i, f"word {i} text")
    for i in range(n):
        impl.update_block(f"b{i}", f"edited {i}")


def without_ledger(impl: RawImpl) -> None:
    """The floor with its ledger work taken out: no append, and the reads a
    change set needs replaced by a constant row of the same shape."""
    mark = "%s::text" if impl.pg else "?"
    impl.ledger.append = lambda *args, **kwargs: None  # type: ignore[method-assign]
    impl.ledger.document_seen = f"SELECT 'ws', 'x' WHERE {mark} IS NOT NULL OR TRUE"
    impl.ledger.block_seen = f"SELECT 'b', 'x', 'ws', 'x' WHERE {mark} IS NOT NULL OR TRUE"


def bench_floor_writes(backend: Backend, repeats: int) -> tuple[float, float]:
    """What the same change ledger costs the raw floor's writes (same SQL,
    tables and indexes): the least any implementation of it can cost here."""
    with_ledger, without = [], []
    for rep in range(repeats):
        order = ((with_ledger, True), (without, False))
        for into, keep in order if rep % 2 == 0 else order[::-1]:
            url = backend.new_url()
            impl = RawImpl(backend.name, url)
            try:
                if not keep:
                    without_ledger(impl)
                into.append(timed(lambda impl=impl: floor_write_workload(impl)))
            finally:
                impl.close()
            backend.drop(url)
    return statistics.median(with_ledger), statistics.median(without)


def floor_sync(src: Any, floor: RawApplier, batch_size: int = 500) -> int:
    """What ``sync_databases(src, dst, direction="push")`` moves, applied by the floor."""
    since: dict[str, dict[str, int]] = {}
    moved = 0
    while True:
        batch = src.export_changes(since, limit=batch_size)
        if not batch["changes"]:
            break
        moved += floor.apply(batch)
        for c in batch["changes"]:
            origins = since.setdefault(c["workspace"] or "", {})
            origins[c["origin"]] = max(origins.get(c["origin"], 0), c["seq"])
        if batch["complete"]:
            break
    return moved


@dataclass
class Applied:
    changes: int
    seconds: float  # handshake_storage: sync_databases(src, dst, direction="push")
    floor_seconds: float  # the raw floor applying the same exported batches
    equal: bool  # target digests equal the source's, for both
    grew_mib: float  # peak RSS growth during the sync


def bench_apply(source: Backend, target: Backend, changes: int) -> Applied:
    src_url = source.new_url(migrated=False)
    with open_database(src_url) as src:
        src.run_migrations()
        mixed_workload(src, changes)
        n = len(src.changes(limit=1_000_000))
        dst_url, floor_url = target.new_url(), target.new_url()
        src.export_changes({}, limit=500)  # warm: neither side pays for the first read
        floor = RawApplier(target.name, floor_url)
        try:
            floor_seconds = timed(lambda: floor_sync(src, floor))
        finally:
            floor.close()
        with open_database(dst_url) as dst:
            before = rss_mib()
            seconds = timed(lambda: sync_databases(src, dst, direction="push"))
            grew = rss_mib() - before
            digests = src.content_digests()
            equal = digests == dst.content_digests()
        with open_database(floor_url) as copy:
            equal = equal and digests == copy.content_digests()
        target.drop(dst_url)
        target.drop(floor_url)
    source.drop(src_url)
    return Applied(n, seconds, floor_seconds, equal, grew)


def bench_noop(a: Backend, b: Backend, repeats: int) -> float:
    url_a, url_b = a.new_url(migrated=False), b.new_url(migrated=False)
    with open_database(url_a) as da, open_database(url_b) as db_:
        da.run_migrations()
        db_.run_migrations()
        mixed_workload(da, 300)
        sync_databases(da, db_)
        times = [timed(lambda: sync_databases(da, db_)) for _ in range(repeats)]
    a.drop(url_a)
    b.drop(url_b)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres-url", default=None)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--changes", type=int, default=2000)
    args = parser.parse_args()
    workdir = make_workdir()
    pg = PostgresServer(args.postgres_url, workdir)
    sqlite, postgresql = Backend("sqlite", workdir), Backend("postgresql", workdir, pg)
    try:
        print("| measurement | value | target |")
        print("|---|---|---|")
        for b in (sqlite, postgresql):
            with_l, without = bench_writes(b, args.repeats)
            print(
                f"| {b.name} writes with / without ledger (median of {args.repeats}) | "
                f"{with_l * 1000:.0f} ms / {without * 1000:.0f} ms = {with_l / without:.2f}x "
                "| <= 1.15x |"
            )
            floor_with, floor_without = bench_floor_writes(b, args.repeats)
            print(
                f"| {b.name} raw floor's creates and updates with / without the same ledger "
                f"(median of {args.repeats}) | {floor_with * 1000:.0f} ms / "
                f"{floor_without * 1000:.0f} ms = {floor_with / floor_without:.2f}x | baseline |"
            )
        for src, dst, target in ((sqlite, postgresql, 2000), (postgresql, sqlite, 5000)):
            # a quarter of the size first: RSS growth that follows N shows at N
            small = bench_apply(src, dst, max(args.changes // 4, 50))
            runs = [bench_apply(src, dst, args.changes) for _ in range(args.repeats)]
            n = runs[0].changes
            ours = statistics.median(r.seconds for r in runs)
            floor = statistics.median(r.floor_seconds for r in runs)
            equal = small.equal and all(r.equal for r in runs)
            print(
                f"| apply {n} change sets {src.name} -> {dst.name} (median of {len(runs)}) | "
                f"{n / ours:,.0f}/s ({ours:.2f} s) beside the raw floor {n / floor:,.0f}/s "
                f"({floor:.2f} s) = {ours / floor:.2f}x; digests {'equal' if equal else 'DIFFER'}"
                f"; peak RSS +{small.grew_mib:.1f} MiB at {small.changes}, "
                f"+{max(r.grew_mib for r in runs):.1f} MiB at {n} | >= {target:,}/s |"
            )
        noop = bench_noop(sqlite, postgresql, 20)
        print(
            f"| no-op sync sqlite <-> postgresql (median of 20) | {noop * 1000:.1f} ms | < 50 ms |"
        )
    finally:
        sqlite.close()
        postgresql.close()
        pg.close()


if __name__ == "__main__":
    main()
