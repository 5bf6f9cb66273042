"""Point-read latency through the pool: normal descriptors vs descriptors >= 1024.

    python -m bench.pool_latency [--calls 5000] [--backends sqlite,postgresql]

For each backend, in one run and taking turns chunk by chunk: the raw driver
(one connection, one cursor: the floor), ``Database.get_workspace`` with the
pooled connection on a normal descriptor, and the same with every new
descriptor >= 1024 (the process first opens ~1,030 files). Prints the p50
and p90 per call in microseconds and the ratio of each p50 to the floor's,
plus how many connections each pool opened (1 means the pooled connection was
reused for every call). Run it against another checkout's package with
``PYTHONPATH=/path/to/src`` to compare before and after.
"""

from __future__ import annotations

import argparse
import os
import resource
import sqlite3
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    __package__ = "bench"

import psycopg

from bench.env import Backend, PostgresServer, make_workdir, sqlite_path
from handshake_storage import NewWorkspace, WriteContext, open_database

CHUNK = 100


def _high_fds() -> list[int]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard >= 1200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1200), hard))
    filler = []
    while True:
        fd = os.open(os.devnull, os.O_RDONLY)
        filler.append(fd)
        if fd >= 1030:
            return filler


def _counting(db: Any) -> list[int]:
    pool = db._adapter.pool
    opened = [0]
    connect = pool._connect

    def counted() -> Any:
        opened[0] += 1
        return connect()

    pool._connect = counted
    return opened


def run(backend: Backend, calls: int) -> dict[str, Any]:
    url = backend.new_url()
    ctx = WriteContext.human("bench")
    normal = open_database(url)
    normal.create_workspace(ctx, NewWorkspace("ws", id="ws"))
    if backend.name == "sqlite":
        raw: Any = sqlite3.connect(sqlite_path(url), isolation_level=None)
        raw_cur = raw.cursor()
        raw_sql = "SELECT id, name FROM workspaces WHERE id = ?"
    else:
        raw = psycopg.connect(url, autocommit=True)
        raw_cur = raw.cursor()
        raw_sql = "SELECT id, name FROM workspaces WHERE id = %s"
    normal.get_workspace("ws")  # the pooled connection exists, on a low descriptor
    normal_opened = _counting(normal)
    filler = _high_fds()
    high = open_database(url)
    high.get_workspace("ws")  # its connection gets a descriptor >= 1024
    high_fd = high._adapter.pool._idle[0]
    high_fd = high_fd.fileno() if hasattr(high_fd, "fileno") else None
    high_opened = _counting(high)
    impls: dict[str, Callable[[], Any]] = {
        "raw driver": lambda: raw_cur.execute(raw_sql, ("ws",)).fetchone(),
        "handshake, fd < 1024": lambda: normal.get_workspace("ws"),
        "handshake, fd >= 1024": lambda: high.get_workspace("ws"),
    }
    samples: dict[str, list[float]] = {name: [] for name in impls}
    clock = time.perf_counter_ns
    for _ in range(max(1, calls // CHUNK)):
        for name, call in impls.items():
            out = samples[name]
            for _ in range(CHUNK):
                t0 = clock()
                call()
                out.append((clock() - t0) / 1000)
    for fd in filler:
        os.close(fd)
    normal.close()
    high.close()
    raw.close()
    backend.drop(url)
    floor = statistics.median(samples["raw driver"])
    return {
        "high_fd": high_fd,
        "opened": {
            "handshake, fd < 1024": normal_opened[0],
            "handshake, fd >= 1024": high_opened[0],
        },
        "rows": [
            (
                name,
                statistics.median(xs),
                statistics.quantiles(xs, n=10)[8],
                statistics.median(xs) / floor,
            )
            for name, xs in samples.items()
        ],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.pool_latency", description=__doc__)
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--postgres-url", default=os.environ.get("HANDSHAKE_BENCH_POSTGRES_URL"))
    args = parser.parse_args(argv)
    workdir = make_workdir()
    names = args.backends.split(",")
    pg = PostgresServer(args.postgres_url, workdir) if "postgresql" in names else None
    import handshake_storage

    print(f"handshake_storage from {Path(handshake_storage.__file__).parent}")
    try:
        for name in names:
            backend = Backend(name, workdir, pg)
            result = run(backend, args.calls)
            backend.close()
            print(f"\n{name}: {args.calls} calls each (pooled fd >= 1024: {result['high_fd']})")
            print(f"  {'implementation':<24} {'p50 us':>8} {'p90 us':>8} {'p50/raw':>8} opened")
            for impl, p50, p90, ratio in result["rows"]:
                opened = result["opened"].get(impl, "")
                print(f"  {impl:<24} {p50:>8.1f} {p90:>8.1f} {ratio:>8.2f} {opened}")
    finally:
        if pg is not None:
            pg.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
