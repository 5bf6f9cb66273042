"""Scale: latency of the point operations with 10k and with 1M blocks.

For each backend and size, a database migrated by handshake_storage is
bulk-loaded with that many blocks (1,000 per document, with their
``block_search``; PostgreSQL then gets ``VACUUM ANALYZE`` and a CHECKPOINT,
SQLite a WAL checkpoint). Then, for handshake_storage and the raw floor, on
both databases at once, taking turns 50 operations at a time: get_block and
update_block of random blocks, create_block into an existing document, and
get_blocks of a 100-block document. Median of the repeats; the target is 1M
within 1.5x of 10k for handshake_storage.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable, Iterator
from typing import Any

from handshake_storage import StorageError, open_database
from handshake_storage.backends.base import AUTOCOMMIT, WRITE
from handshake_storage.search import COLUMNS as SEARCH_COLS
from handshake_storage.search import index_rows

from .common import ACTOR_ID, ACTOR_KIND, BLOCK_COLS, TRACE_COLS, TextGen, median, new_event_id, now
from .env import Backend
from .workloads import IMPLS, _timed

TARGET = 1.5
OPS = ("get_block", "update_block", "create_block", "get_blocks_100")


def _blocks(n: int, ts: Any) -> Iterator[tuple[Any, ...]]:
    gen = TextGen(seed=5)
    rng = random.Random(5)
    trace = (ACTOR_KIND, ACTOR_ID, None, None)
    for i in range(n):
        raw = gen.text(rng.randint(4, 8))
        yield (
            f"s-{i:07d}",
            f"sd-{i // 1000:04d}",
            "paragraph",
            i % 1000,
            raw,
            raw,
            "{}",
            ts,
            ts,
            *trace,
            new_event_id(),
        )


def build(backend: Backend, n: int) -> str:
    url = backend.new_url()
    with open_database(url) as db:
        a = db._adapter
        ts = a.encode_timestamp(now())
        trace = (ACTOR_KIND, ACTOR_ID, None, None)
        n_docs = (n + 999) // 1000
        with a.transaction(WRITE) as s:
            a.bulk_insert(
                s,
                "workspaces",
                ("id", "name", "created_at", "updated_at", *TRACE_COLS),
                [("ws-scale", "Scale", ts, ts, *trace, new_event_id())],
            )
            docs = [
                (f"sd-{d:04d}", "ws-scale", f"Doc {d}", ts, ts, *trace, new_event_id())
                for d in range(n_docs)
            ]
            docs += [
                (name, "ws-scale", name, ts, ts, *trace, new_event_id())
                for name in ("doc-point", "doc-new")
            ]
            a.bulk_insert(
                s,
                "documents",
                ("id", "workspace_id", "title", "created_at", "updated_at", *TRACE_COLS),
                docs,
            )
            point = [
                (
                    f"p-{i:03d}",
                    "doc-point",
                    "paragraph",
                    i,
                    f"point block {i}",
                    f"point block {i}",
                    "{}",
                    ts,
                    ts,
                    *trace,
                    new_event_id(),
                )
                for i in range(100)
            ]
            a.bulk_insert(s, "blocks", BLOCK_COLS, _chain(point, _blocks(n, ts)))
            a.bulk_insert(
                s,
                "block_search",
                SEARCH_COLS,
                (
                    (*t, "ws-scale")
                    for b in _chain(point, _blocks(n, ts))
                    for t in index_rows(b[0], b[4])
                ),
            )
        with a.transaction(AUTOCOMMIT) as s:
            if backend.name == "postgresql":
                s.execute("VACUUM ANALYZE")
            else:
                s.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        if backend.name == "postgresql":
            # Write the load's dirty pages out now rather than during the
            # measurement (needs superuser or pg_checkpoint; best effort).
            with contextlib.suppress(StorageError), a.transaction(AUTOCOMMIT) as s:
                s.execute("CHECKPOINT")
    return url


def _chain(*iterables: Any) -> Iterator[Any]:
    for it in iterables:
        yield from it


def _calls(n: int, impl_name: str, rep: int, k: int) -> dict[str, list[tuple[Any, ...]]]:
    rng = random.Random(1000 + rep)
    gen = TextGen(seed=100 + rep)
    return {
        "get_block": [(f"s-{rng.randrange(n):07d}",) for _ in range(k)],
        "update_block": [(f"s-{rng.randrange(n):07d}", gen.text(6)) for _ in range(k)],
        "create_block": [
            ("doc-new", f"new-{impl_name}-{rep}-{i}", "paragraph", i, gen.text(6)) for i in range(k)
        ],
        "get_blocks_100": [("doc-point",)] * (k // 4),
    }


def measure(
    backend: Backend, urls: dict[int, str], impls: tuple[str, ...], rep: int, k: int
) -> dict[str, dict[int, dict[str, float]]]:
    """impl -> size -> op -> us/op; the (impl, size) pairs take turns, 50 ops
    at a time, so they share the machine's load alike."""
    opened = {(i, n): IMPLS[i](backend.name, url) for i in impls for n, url in urls.items()}
    try:
        calls = {(i, n): _calls(n, i, rep, k) for i, n in opened}
        for (i, n), impl in opened.items():  # warm up each connection
            _timed(impl.get_block, calls[(i, n)]["get_block"][: k // 10])
        out: dict[str, dict[int, dict[str, float]]] = {i: {n: {} for n in urls} for i in impls}
        order = list(opened)
        for op in OPS:
            method = "get_blocks" if op == "get_blocks_100" else op
            total = dict.fromkeys(order, 0)
            count = len(calls[order[0]][op])
            for start in range(0, count, 50):
                for key in order:
                    fn = getattr(opened[key], method)
                    chunk = calls[key][op][start : start + 50]
                    t0 = time.perf_counter_ns()
                    for args in chunk:
                        fn(*args)
                    total[key] += time.perf_counter_ns() - t0
                order = order[1:] + order[:1]
            for (i, n), ns in total.items():
                out[i][n][op] = ns / 1000 / count
        return out
    finally:
        for impl in opened.values():
            impl.close()


def run(backends: list[Backend], *, quick: bool, log: Callable[[str], None]) -> dict[str, Any]:
    sizes = (1_000, 50_000) if quick else (10_000, 1_000_000)
    k = 300 if quick else 2000
    repeats = 2 if quick else 3
    impls = ("raw", "handshake")
    res: dict[str, Any] = {"sizes": sizes, "ops_per_sample": k, "repeats": repeats, "median_us": {}}
    for b in backends:
        urls = {}
        for n in sizes:
            log(f"scale: {b.name} building {n:,} blocks")
            urls[n] = build(b, n)
        samples = {i: {n: {o: [] for o in OPS} for n in sizes} for i in impls}
        for rep in range(repeats):
            for i, per_size in measure(b, urls, impls, rep, k).items():
                for n, per_op in per_size.items():
                    for op, v in per_op.items():
                        samples[i][n][op].append(v)
            log(f"scale: {b.name} repeat {rep + 1}/{repeats} measured")
        for url in urls.values():
            b.drop(url)
        res["median_us"][b.name] = {
            str(n): {i: {o: median(samples[i][n][o]) for o in OPS} for i in impls} for n in sizes
        }
    return res


def print_table(res: dict[str, Any]) -> list[str]:
    small, big = (str(s) for s in res["sizes"])
    print(f"\n== scale: median us/op with {int(small):,} vs {int(big):,} blocks ==")
    print(f"{'backend':11s}{'operation':16s}{'impl':11s}{small:>12s}{big:>12s}{'ratio':>8s}")
    misses = []
    for backend, per in res["median_us"].items():
        for op in OPS:
            for impl in ("raw", "handshake"):
                a, c = per[small][impl][op], per[big][impl][op]
                print(f"{backend:11s}{op:16s}{impl:11s}{a:>12.1f}{c:>12.1f}{c / a:>7.2f}x")
                if impl == "handshake" and c / a > TARGET:
                    misses.append(
                        f"scale {backend} {op}: {c / a:.2f}x at {int(big):,} vs {int(small):,} "
                        f"blocks (target <= {TARGET}x)"
                    )
    return misses
