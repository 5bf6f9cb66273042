"""SQLite -> PostgreSQL: ``handshake-storage copy`` vs pgloader on the same data.

The source is a generated SQLite database (workspaces, documents, blocks,
canvases with nodes and edges, AI jobs, workflow runs and node executions;
at least 300,000 canonical rows in full mode) plus its ``block_search``
projection.

* handshake: ``handshake-storage copy --from SQLITE --to EMPTY_PG`` — one
  transaction that migrates the target, copies the canonical tables,
  rebuilds ``block_search`` and verifies every table's row count and digest.
* pgloader (Debian package): into a target migrated beforehand by
  handshake_storage (not timed), ``data only``, every table but the
  migration bookkeeping, including the ``block_search`` rows (pgloader does
  not know the projection is derived; copying it is what leaves its target
  complete). Its result is then checked (not timed) with the same digests.

Both run as child processes: wall time, and peak RSS (the child's own
``VmHWM``, see ``_run_measured``). rows/s = canonical rows of the source / wall time, the same
numerator for both. Handshake copy also runs at a third of the size to
show whether its peak memory grows with the database.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from handshake_storage import open_database
from handshake_storage.backends.base import SNAPSHOT, WRITE
from handshake_storage.digest import TableDigest
from handshake_storage.search import COLUMNS as SEARCH_COLS
from handshake_storage.search import index_rows

from .common import (
    ACTOR_ID,
    ACTOR_KIND,
    TRACE_COLS,
    TextGen,
    median,
    new_event_id,
    now,
)
from .env import Backend, PostgresServer

CANONICAL = (
    "workspaces",
    "documents",
    "blocks",
    "canvases",
    "canvas_nodes",
    "canvas_edges",
    "ai_jobs",
    "workflow_runs",
    "workflow_node_executions",
)
MEMORY_TARGET_MIB = 150
SPEED_TARGET = 1.5


def generate_source(path: Path, n_blocks: int) -> dict[str, int]:
    """A migrated SQLite database with ~1.55 * n_blocks canonical rows."""
    url = f"sqlite:///{path}"
    gen = TextGen(seed=11)
    n_ws = 10
    n_docs = max(1, n_blocks // 1000)
    n_canvases = max(1, n_blocks // 2000)
    per_canvas = 100
    n_jobs = n_blocks // 5
    n_execs = n_blocks // 20
    counts: dict[str, int] = {}
    with open_database(url) as db:
        db.run_migrations()
        a = db._adapter
        enc = a.encode_timestamp
        ts = enc(now())

        def trace(i: int) -> tuple[Any, ...]:
            if i % 3 == 0:
                return ("AI", None, str(_uuid(7, i)), str(_uuid(8, i)), new_event_id())
            return (ACTOR_KIND, ACTOR_ID, None, None, new_event_id())

        def put(table: str, columns: tuple[str, ...], rows: Iterator[tuple[Any, ...]]) -> None:
            counts[table] = a.bulk_insert(s, table, columns, rows)

        with a.transaction(WRITE) as s:
            put(
                "workspaces",
                ("id", "name", "created_at", "updated_at", *TRACE_COLS),
                ((f"ws-{w}", f"Workspace {w}", ts, ts, *trace(w)) for w in range(n_ws)),
            )
            put(
                "documents",
                ("id", "workspace_id", "title", "created_at", "updated_at", *TRACE_COLS),
                (
                    (f"doc-{d}", f"ws-{d % n_ws}", f"Document {d} ✓", ts, ts, *trace(d))
                    for d in range(n_docs)
                ),
            )
            blocks = [
                (f"b-{i:07d}", f"doc-{i % n_docs}", "paragraph", i // n_docs, gen.text())
                for i in range(n_blocks)
            ]
            put(
                "blocks",
                (
                    "id",
                    "document_id",
                    "kind",
                    "sequence",
                    "raw_content",
                    "display_content",
                    "derived_content",
                    "created_at",
                    "updated_at",
                    *TRACE_COLS,
                ),
                (
                    (
                        b[0],
                        b[1],
                        b[2],
                        b[3],
                        b[4],
                        b[4].upper(),
                        '{"level":1,"tags":["x"]}',
                        ts,
                        ts,
                        *trace(i),
                    )
                    for i, b in enumerate(blocks)
                ),
            )
            put(
                "block_search",
                SEARCH_COLS,
                (
                    (*row, f"ws-{(i % n_docs) % n_ws}")
                    for i, b in enumerate(blocks)
                    for row in index_rows(b[0], b[4])
                ),
            )
            put(
                "canvases",
                ("id", "workspace_id", "title", "created_at", "updated_at", *TRACE_COLS),
                (
                    (f"c-{c}", f"ws-{c % n_ws}", f"Canvas {c}", ts, ts, *trace(c))
                    for c in range(n_canvases)
                ),
            )
            put(
                "canvas_nodes",
                (
                    "id",
                    "canvas_id",
                    "ordinal",
                    "kind",
                    "position_x",
                    "position_y",
                    "data",
                    "created_at",
                    "updated_at",
                    *TRACE_COLS,
                ),
                (
                    (
                        f"n-{c}-{k}",
                        f"c-{c}",
                        k,
                        "note",
                        k * 0.1,
                        -k / 7,
                        f'{{"label":"n{k}"}}',
                        ts,
                        ts,
                        *trace(k),
                    )
                    for c in range(n_canvases)
                    for k in range(per_canvas)
                ),
            )
            put(
                "canvas_edges",
                (
                    "id",
                    "canvas_id",
                    "ordinal",
                    "from_node_id",
                    "to_node_id",
                    "kind",
                    "created_at",
                    "updated_at",
                    *TRACE_COLS,
                ),
                (
                    (
                        f"e-{c}-{k}",
                        f"c-{c}",
                        k,
                        f"n-{c}-{k}",
                        f"n-{c}-{(k * 7 + 1) % per_canvas}",
                        "link",
                        ts,
                        ts,
                        *trace(k),
                    )
                    for c in range(n_canvases)
                    for k in range(per_canvas)
                ),
            )
            states = ("queued", "running", "completed", "failed", "cancelled")
            put(
                "ai_jobs",
                (
                    "id",
                    "trace_id",
                    "workflow_run_id",
                    "job_kind",
                    "status",
                    "status_reason",
                    "error_message",
                    "protocol_id",
                    "profile_id",
                    "capability_profile_id",
                    "access_mode",
                    "safety_mode",
                    "entity_refs",
                    "planned_operations",
                    "metrics",
                    "job_inputs",
                    "job_outputs",
                    "is_pinned",
                    "created_at",
                    "updated_at",
                ),
                (
                    (
                        str(_uuid(1, j)),
                        str(_uuid(2, j)),
                        str(_uuid(3, j)),
                        "summarize",
                        states[j % 5],
                        "",
                        "boom" if j % 5 == 3 else None,
                        "proto-1",
                        "default",
                        "cap-read",
                        "analysis_only",
                        "normal",
                        f'[{{"entity_id":"b-{j:07d}","entity_kind":"block"}}]',
                        "[]",
                        '{"duration_ms":12,"total_tokens":300}',
                        '{"prompt":"summarize"}',
                        None if j % 2 else '{"summary":"ok"}',
                        j % 50 == 0,
                        ts,
                        ts,
                    )
                    for j in range(n_jobs)
                ),
            )
            put(
                "workflow_runs",
                (
                    "id",
                    "job_id",
                    "status",
                    "error_message",
                    "last_heartbeat",
                    "created_at",
                    "updated_at",
                ),
                (
                    (str(_uuid(3, j)), str(_uuid(1, j)), states[j % 5], None, ts, ts, ts)
                    for j in range(n_jobs)
                ),
            )
            put(
                "workflow_node_executions",
                (
                    "id",
                    "workflow_run_id",
                    "node_id",
                    "node_type",
                    "status",
                    "sequence",
                    "input_payload",
                    "output_payload",
                    "error_message",
                    "started_at",
                    "finished_at",
                    "created_at",
                    "updated_at",
                ),
                (
                    (
                        str(_uuid(4, x)),
                        str(_uuid(3, x % max(1, n_jobs))),
                        f"node-{x % 7}",
                        "llm",
                        "completed",
                        x,
                        '{"in":1}',
                        '{"out":2}',
                        None,
                        ts,
                        ts,
                        ts,
                        ts,
                    )
                    for x in range(n_execs)
                ),
            )
    return counts


def _uuid(kind: int, i: int) -> Any:
    import uuid

    return uuid.UUID(int=(kind << 120) | i)


# -- running the tools ---------------------------------------------------------------------


def _run_measured(cmd: list[str], log_path: Path) -> tuple[float, float, int]:
    """(wall seconds, peak RSS MiB, exit code) of a child process.

    Peak RSS is the child's ``VmHWM`` (Linux), polled every 10 ms: unlike
    ``ru_maxrss`` from ``wait4`` it is reset by ``exec``, so it does not count
    the image of this (large) benchmark process that the child inherits
    between fork and exec.
    """
    status = None
    peak = 0.0
    with open(log_path, "wb") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        status_file = Path(f"/proc/{proc.pid}/status")
        while (status := proc.poll()) is None:
            try:
                for line in status_file.read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        peak = int(line.split()[1]) / 1024
            except (OSError, ValueError):
                pass
            time.sleep(0.01)
        seconds = time.perf_counter() - start
    return seconds, peak, status


def handshake_cli() -> str:
    candidate = Path(sys.executable).parent / "handshake-storage"
    return str(candidate) if candidate.exists() else shutil.which("handshake-storage") or ""


def run_handshake_copy(src: Path, pg: PostgresServer, workdir: Path) -> dict[str, Any]:
    name = pg.create()
    try:
        seconds, rss, code = _run_measured(
            [handshake_cli(), "copy", "--from", f"sqlite:///{src}", "--to", pg.url_for(name)],
            workdir / "handshake-copy.log",
        )
        if code != 0:
            raise RuntimeError(
                f"handshake-storage copy failed:\n{(workdir / 'handshake-copy.log').read_text()}"
            )
        return {"seconds": seconds, "peak_rss_mib": rss, "verified": True}
    finally:
        pg.drop(name)


def run_pgloader(src: Path, pg: PostgresServer, workdir: Path) -> dict[str, Any]:
    name = pg.create()
    url = pg.url_for(name)
    try:
        with open_database(url) as db:
            db.run_migrations()
        load = workdir / "copy.load"
        load.write_text(
            "LOAD DATABASE\n"
            f"  FROM sqlite://{src}\n"
            f"  INTO {pg.pgloader_url(name)}\n"
            "  WITH data only, create no tables, create no indexes, reset no sequences\n"
            "  EXCLUDING TABLE NAMES LIKE 'schema_migrations', 'schema_migration_log';\n"
        )
        seconds, rss, code = _run_measured(["pgloader", str(load)], workdir / "pgloader.log")
        log_text = (workdir / "pgloader.log").read_text(errors="replace")
        if code != 0:
            raise RuntimeError(f"pgloader failed:\n{log_text[-4000:]}")
        verified, differences = _verify(src, url)
        return {
            "seconds": seconds,
            "peak_rss_mib": rss,
            "verified": verified,
            "differences": differences,
            "log_tail": log_text[-2500:],
        }
    finally:
        pg.drop(name)


def _verify(src: Path, target_url: str) -> tuple[bool, list[str]]:
    """Row counts and content digests of every table, as handshake copy checks them."""
    differences = []
    with open_database(f"sqlite:///{src}", read_only=True) as a, open_database(target_url) as b:
        for table in (*CANONICAL, "block_search"):
            digests = []
            for db in (a, b):
                adapter = db._adapter
                with adapter.transaction(SNAPSHOT) as s:
                    schema = adapter.introspect(s)
                    cols = schema.tables[table].columns
                    digest = TableDigest([c.family for c in cols], adapter.decode_timestamp)
                    digest.add_all(
                        adapter.stream(s, f"SELECT {', '.join(c.name for c in cols)} FROM {table}")
                    )
                digests.append(digest)
            if digests[0] != digests[1]:
                differences.append(f"{table}: source {digests[0]!r}, target {digests[1]!r}")
    return not differences, differences


# -- the suite -----------------------------------------------------------------------------------


def run(
    sqlite: Backend, pg: PostgresServer, workdir: Path, *, quick: bool, log: Callable[[str], None]
) -> dict[str, Any]:
    n_blocks = 10_000 if quick else 200_000
    repeats = 1 if quick else 3
    out: dict[str, Any] = {"sizes": []}
    if not shutil.which("pgloader"):
        log("pgloader is not installed (apt-get install pgloader): skipping it")
    for n, tools in ((n_blocks // 3, ("handshake",)), (n_blocks, ("handshake", "pgloader"))):
        src = workdir / f"copy-source-{n}.db"
        log(f"copy: generating a SQLite source with {n} blocks")
        counts = generate_source(src, n)
        canonical = sum(v for k, v in counts.items() if k in CANONICAL)
        entry: dict[str, Any] = {
            "blocks": n,
            "canonical_rows": canonical,
            "search_rows": counts["block_search"],
            "source_mib": src.stat().st_size / 2**20,
            "tools": {},
        }
        for tool in tools:
            if tool == "pgloader" and not shutil.which("pgloader"):
                continue
            runs = []
            for r in range(repeats):
                log(f"copy: {tool} {canonical} rows, run {r + 1}/{repeats}")
                fn = run_handshake_copy if tool == "handshake" else run_pgloader
                runs.append(fn(src, pg, workdir))
            secs = median([x["seconds"] for x in runs])
            entry["tools"][tool] = {
                "seconds": secs,
                "rows_per_s": canonical / secs,
                "peak_rss_mib": max(x["peak_rss_mib"] for x in runs),
                "verified": all(x["verified"] for x in runs),
                "differences": runs[-1].get("differences", []),
                "runs": [{k: v for k, v in x.items() if k != "log_tail"} for x in runs],
                "log_tail": runs[-1].get("log_tail"),
            }
        out["sizes"].append(entry)
        src.unlink()
    return out


def print_table(res: dict[str, Any]) -> list[str]:
    print("\n== copy SQLite -> PostgreSQL (median wall time; rows = canonical rows) ==")
    print(
        f"{'tool':12s}{'rows':>10s}{'+terms':>10s}{'seconds':>10s}{'rows/s':>12s}"
        f"{'peak MiB':>10s}  verified"
    )
    for entry in res["sizes"]:
        for tool, r in entry["tools"].items():
            print(
                f"{tool:12s}{entry['canonical_rows']:>10,d}{entry['search_rows']:>10,d}"
                f"{r['seconds']:>10.1f}{r['rows_per_s']:>12,.0f}{r['peak_rss_mib']:>10.1f}  "
                f"{r['verified']}" + (f" {r['differences']}" if r["differences"] else "")
            )
    misses = []
    big = res["sizes"][-1]["tools"]
    small = res["sizes"][0]["tools"]
    hs = big.get("handshake")
    pl = big.get("pgloader")
    if hs and pl:
        ratio = hs["rows_per_s"] / pl["rows_per_s"]
        print(f"handshake / pgloader rows/s: {ratio:.2f}x (target >= {SPEED_TARGET}x)")
        if ratio < SPEED_TARGET:
            misses.append(f"copy: {ratio:.2f}x pgloader's rows/s (target >= {SPEED_TARGET}x)")
    if hs:
        growth = hs["peak_rss_mib"] / small["handshake"]["peak_rss_mib"]
        print(
            f"handshake peak RSS {hs['peak_rss_mib']:.1f} MiB at full size, "
            f"{growth:.2f}x that at a third of the size"
        )
        if hs["peak_rss_mib"] >= MEMORY_TARGET_MIB:
            misses.append(f"copy: peak RSS {hs['peak_rss_mib']:.0f} MiB >= {MEMORY_TARGET_MIB}")
        if growth > 1.15:
            misses.append(f"copy: peak RSS grows with the database ({growth:.2f}x for 3x rows)")
    return misses
