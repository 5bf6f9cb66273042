"""The benchmark suite: ``python -m bench.run [--quick] [--postgres-url URL]``.

Runs the fixed workload on SQLite and PostgreSQL for four implementations
(handshake_storage, the raw-driver floor, SQLAlchemy Core, SQLAlchemy ORM),
the SQLite -> PostgreSQL copy (handshake-storage copy vs pgloader) and the
scale test (point operations at 10k vs 1M blocks). Prints the tables and
writes bench/results/latest.json. See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: python bench/run.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    __package__ = "bench"

from bench import copy_bench, scale
from bench.common import median
from bench.env import Backend, PostgresServer, make_workdir
from bench.workloads import (
    IMPLS,
    WORKLOADS,
    Data,
    Sizes,
    build_search_db,
    run_interleaved,
    run_search,
    snapshot,
)

RESULTS = Path(__file__).resolve().parent / "results"
FLOOR_TARGET = 1.3


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run_workload_suite(backends: list[Backend], sizes: Sizes, impls: list[str]) -> dict[str, Any]:
    data = Data(sizes)
    samples: dict[str, dict[str, dict[str, list[float]]]] = {
        b.name: {w: {i: [] for i in impls} for w, _ in WORKLOADS} for b in backends
    }
    durability: dict[str, dict[str, Any]] = {b.name: {} for b in backends}
    mismatches: list[str] = []
    digests: dict[str, Any] = {}
    search_urls = {}
    for b in backends:
        log(f"{b.name}: building the {sizes.search_blocks}-block search workspace")
        search_urls[b.name] = build_search_db(b, sizes.search_blocks)

    for rep in range(sizes.repeats):
        for b in backends:
            t0 = time.perf_counter()
            urls = {name: b.new_url() for name in impls}
            opened = {}
            try:
                for name in impls:
                    opened[name] = IMPLS[name](b.name, urls[name])
                    if rep == 0:
                        durability[b.name][name] = opened[name].durability()
                us, reads = run_interleaved(opened, data, rotate=rep)
            finally:
                for impl in opened.values():
                    impl.close()
            for w, per in us.items():
                for name, v in per.items():
                    samples[b.name][w][name].append(v)
            snaps = {name: snapshot(b, urls[name]) for name in impls}
            for url in urls.values():
                b.drop(url)
            opened = {}
            try:
                for name in impls:
                    opened[name] = IMPLS[name](b.name, search_urls[b.name])
                us_search, results = run_search(opened, data, rotate=rep)
            finally:
                for impl in opened.values():
                    impl.close()
            for name, v in us_search.items():
                samples[b.name]["search_blocks"][name].append(v)
            log(f"repeat {rep + 1}/{sizes.repeats} {b.name:10s} {time.perf_counter() - t0:6.1f}s")
            mismatches += _compare(f"repeat {rep + 1} {b.name}", snaps, reads, results)
            digests[b.name] = snaps[impls[0]]
        if len(backends) == 2 and rep == 0:
            a, c = (digests[b.name] for b in backends)
            for table in a:
                if a[table] != c[table]:
                    mismatches.append(
                        f"sqlite vs postgresql: table {table} differs ({a[table]} vs {c[table]})"
                    )
    for b in backends:
        b.drop(search_urls[b.name])

    medians = {
        bn: {w: {i: median(v) for i, v in per.items() if v} for w, per in ws.items()}
        for bn, ws in samples.items()
    }
    return {
        "sizes": sizes.__dict__,
        "workloads": {w: sizes.describe(w) for w, _ in WORKLOADS},
        "durability": durability,
        "samples_us": samples,
        "median_us": medians,
        "content_identical": not mismatches,
        "mismatches": mismatches,
        "table_rows": {bn: {t: d[0] for t, d in snap.items()} for bn, snap in digests.items()},
    }


#: The workloads that write (and so append to the change ledger).
LEDGER_WRITES = frozenset(
    {"create_block", "update_block", "replace_blocks", "update_canvas_graph", "job_lifecycle"}
)


def _compare(where: str, snaps: dict, reads: dict, results: dict) -> list[str]:
    out = []
    names = list(snaps)
    ref = names[0]
    for other in names[1:]:
        for table, value in snaps[ref].items():
            if table == "sync_changes" and not all(IMPLS[n].keeps_ledger for n in (ref, other)):
                continue
            if snaps[other][table] != value:
                out.append(
                    f"{where}: table {table}: {ref} {value[0]} rows / {other} "
                    f"{snaps[other][table][0]} rows, digests differ"
                )
        for key, value in reads[ref].items():
            if reads[other][key] != value:
                out.append(f"{where}: {key} results differ between {ref} and {other}")
        if results[other] != results[ref]:
            out.append(f"{where}: search results differ between {ref} and {other}")
    return out


# -- printing ---------------------------------------------------------------------------


def print_workloads(res: dict[str, Any], impls: list[str]) -> list[str]:
    misses = []
    for backend, per in res["median_us"].items():
        print(
            f"\n== {backend}: median us/op over {res['sizes']['repeats']} repeats "
            f"(ratio to the raw floor) =="
        )
        print(f"   durability: {res['durability'][backend]}")
        header = f"{'workload':24s}" + "".join(f"{i:>20s}" for i in impls)
        print(header)
        for w, _ in WORKLOADS:
            row = per[w]
            floor = row.get("raw")
            cells = []
            for i in impls:
                v = row.get(i)
                if v is None:
                    cells.append(f"{'-':>20s}")
                    continue
                ratio = f"({v / floor:.2f}x)" if floor else ""
                cells.append(f"{_fmt(v):>12s} {ratio:>7s}")
            print(f"{w:24s}" + "".join(cells))
            hs, core = row.get("handshake"), row.get("sa_core")
            if hs is not None and floor and hs / floor > FLOOR_TARGET:
                misses.append(
                    f"{backend} {w}: handshake {hs / floor:.2f}x the floor "
                    f"(target <= {FLOOR_TARGET}x)"
                )
            if hs is not None and core is not None and hs >= core:
                # SQLAlchemy Core writes no change ledger: for a write it does
                # less work than handshake, so only its reads make a fair target.
                unfair = w in LEDGER_WRITES and not IMPLS["sa_core"].keeps_ledger
                misses.append(
                    f"{backend} {w}: handshake {_fmt(hs)} us >= SQLAlchemy Core {_fmt(core)} us"
                    + (" (which writes no ledger)" if unfair else "")
                )
        print("   " + "; ".join(f"{w}: {d}" for w, d in res["workloads"].items()))
    print(f"\ncontent identical across implementations: {res['content_identical']}")
    for m in res["mismatches"]:
        print(f"   MISMATCH {m}")
    return misses


def _fmt(v: float) -> str:
    return f"{v:,.1f}" if v < 1000 else f"{v:,.0f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, a fast smoke run")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("HANDSHAKE_BENCH_POSTGRES_URL"),
        help="a server where the user may create databases (default: a throwaway pgserver)",
    )
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--impls", default=",".join(IMPLS))
    parser.add_argument(
        "--parts", default="workloads,copy,scale", help="any of workloads,copy,scale"
    )
    parser.add_argument("--repeats", type=int, help="override the number of repeats")
    parser.add_argument("--output", type=Path, default=RESULTS / "latest.json")
    args = parser.parse_args(argv)

    sizes = Sizes.quick() if args.quick else Sizes()
    if args.repeats:
        sizes = Sizes(**{**sizes.__dict__, "repeats": args.repeats})
    parts = set(args.parts.split(","))
    impls = args.impls.split(",")
    workdir = make_workdir()
    names = args.backends.split(",")
    pg = PostgresServer(args.postgres_url, workdir) if "postgresql" in names else None
    backends = [Backend(n, workdir, pg) for n in names]
    out: dict[str, Any] = {
        "mode": "quick" if args.quick else "full",
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "sqlite": sqlite3.sqlite_version,
            "postgresql": pg.settings() if pg else None,
        },
    }
    misses: list[str] = []
    try:
        if "workloads" in parts:
            out["workloads"] = run_workload_suite(backends, sizes, impls)
            misses += print_workloads(out["workloads"], impls)
        if "copy" in parts and pg is not None:
            sqlite_backend = (
                next(b for b in backends if b.name == "sqlite")
                if any(b.name == "sqlite" for b in backends)
                else Backend("sqlite", workdir)
            )
            out["copy"] = copy_bench.run(sqlite_backend, pg, workdir, quick=args.quick, log=log)
            misses += copy_bench.print_table(out["copy"])
        if "scale" in parts:
            out["scale"] = scale.run(backends, quick=args.quick, log=log)
            misses += scale.print_table(out["scale"])
    finally:
        for b in backends:
            b.close()
        if pg is not None:
            pg.close()
        shutil.rmtree(workdir, ignore_errors=True)
    out["targets_missed"] = misses
    print("\n== targets ==")
    print("all met" if not misses else "\n".join(f"MISSED {m}" for m in misses))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(out, indent=2, default=str))
    log(f"results written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
