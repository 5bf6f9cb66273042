"""Profile one workload of one implementation with pyinstrument.

    python -m bench.profile --backend postgresql --impl handshake --workload get_block

Runs the workload sequence once (full sizes unless ``--quick``) on a fresh
database and profiles only the named workload(s); prints pyinstrument's text
report (``--html FILE`` for the interactive one).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    __package__ = "bench"

from pyinstrument import Profiler

from bench.env import Backend, PostgresServer, make_workdir
from bench.workloads import (
    IMPLS,
    WORKLOADS,
    Data,
    Sizes,
    build_search_db,
    run_interleaved,
    run_search,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--impl", choices=tuple(IMPLS), default="handshake")
    parser.add_argument(
        "--workload", action="append", required=True, choices=[w for w, _ in WORKLOADS]
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--postgres-url", default=os.environ.get("HANDSHAKE_BENCH_POSTGRES_URL"))
    parser.add_argument("--interval", type=float, default=0.0001, help="sampling interval (s)")
    parser.add_argument("--html", type=Path)
    args = parser.parse_args(argv)

    sizes = Sizes.quick() if args.quick else Sizes()
    data = Data(sizes)
    workdir = make_workdir()
    pg = PostgresServer(args.postgres_url, workdir) if args.backend == "postgresql" else None
    backend = Backend(args.backend, workdir, pg)
    profiler = Profiler(interval=args.interval)

    def hook(name: str) -> AbstractContextManager[Any] | None:
        return profiler if name in args.workload else None

    try:
        if args.workload == ["search_blocks"]:
            url = build_search_db(backend, sizes.search_blocks)
            impl = IMPLS[args.impl](backend.name, url)
            us, _ = run_search({args.impl: impl}, data, hook)
            impl.close()
            print(f"search_blocks: {us[args.impl]:,.1f} us/op")
        else:
            url = backend.new_url()
            impl = IMPLS[args.impl](backend.name, url)
            us_all, _ = run_interleaved({args.impl: impl}, data, hook)
            impl.close()
            for name in args.workload:
                print(f"{name}: {us_all[name][args.impl]:,.1f} us/op")
    finally:
        backend.close()
        if pg is not None:
            pg.close()
        shutil.rmtree(workdir, ignore_errors=True)
    if args.html:
        args.html.write_text(profiler.output_html())
    else:
        print(profiler.output_text(unicode=True, color=False, show_all=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
