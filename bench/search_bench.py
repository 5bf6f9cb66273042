"""Search against the engines' own ranked full-text queries, same data, same run.

``python -m bench.search_bench [--blocks 100000] [--queries 20] [--runs 3]``

Per backend, one workspace of ``--blocks`` Zipf-distributed blocks (about
246 characters each), with the project's ``block_search`` rows and its
engine index, and beside them the engine's own index on ``blocks.raw_content``
(SQLite: an FTS5 table over the blocks; PostgreSQL: a GIN index on
``to_tsvector('simple', raw_content)``). Then, interleaved query by query:

* six query types (1 common word, 1 rare, 2 common, rare + common, 3 common,
  rare + 2 common), ``--queries`` each, ``--runs`` times: the project's
  ``search_blocks`` (and ``search_hits`` with snippets) against the engine's
  ranked query written directly against the driver (FTS5 ``ORDER BY rank
  LIMIT 50``; ``ORDER BY ts_rank(...) DESC LIMIT 50``), returning the same
  block rows. Medians in ms, and how many blocks each type matches;
* index size: ``block_search`` with its engine index and keys vs the native
  index alone; rebuild (``indexes rebuild block_search``) vs building the
  native index;
* writes: create_block, update_block, replace_blocks of 1,000 blocks through
  the API vs a raw-driver write that keeps the native index current (the
  raw floor of bench/impl_raw.py without the search rows), interleaved.

Prints a table and writes bench/results/search.json.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    __package__ = "bench"

from handshake_storage import open_database, rebuildable, search
from handshake_storage.backends.base import AUTOCOMMIT

from .common import BLOCK_COLS, TextGen, median
from .env import Backend, PostgresServer, make_workdir
from .impl_handshake import HandshakeImpl
from .impl_raw import RawImpl
from .workloads import SEARCH_WS, build_search_db

RESULTS = Path(__file__).resolve().parent / "results"
TYPES = ("1 common", "1 rare", "2 common", "rare + common", "3 common", "rare + 2 common")
WORDS = (30, 40)  # words per block: about 246 characters


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- the engine's own index and query ---------------------------------------------------------

NATIVE = {
    "sqlite": [
        "CREATE VIRTUAL TABLE native_fts USING fts5(raw_content, content=blocks, "
        "content_rowid=rowid)",
        "INSERT INTO native_fts(native_fts) VALUES ('rebuild')",
    ],
    "postgresql": [
        "CREATE INDEX native_gin ON blocks USING gin (to_tsvector('simple', raw_content))",
        "ANALYZE blocks",
    ],
}
#: keeps the FTS5 table current on block writes, for the raw write floor
SQLITE_TRIGGERS = [
    "CREATE TRIGGER native_ai AFTER INSERT ON blocks BEGIN "
    "INSERT INTO native_fts(rowid, raw_content) VALUES (new.rowid, new.raw_content); END",
    "CREATE TRIGGER native_ad AFTER DELETE ON blocks BEGIN INSERT INTO native_fts"
    "(native_fts, rowid, raw_content) VALUES ('delete', old.rowid, old.raw_content); END",
    "CREATE TRIGGER native_au AFTER UPDATE ON blocks BEGIN INSERT INTO native_fts"
    "(native_fts, rowid, raw_content) VALUES ('delete', old.rowid, old.raw_content); "
    "INSERT INTO native_fts(rowid, raw_content) VALUES (new.rowid, new.raw_content); END",
]
COLS = ", ".join(f"b.{c}" for c in BLOCK_COLS)
NATIVE_QUERY = {
    "sqlite": f"SELECT {COLS} FROM native_fts f JOIN blocks b ON b.rowid = f.rowid "
    "WHERE native_fts MATCH ? ORDER BY rank LIMIT 50",
    "postgresql": f"SELECT {COLS} FROM blocks b, plainto_tsquery('simple', %s) q "
    "WHERE to_tsvector('simple', b.raw_content) @@ q "
    "ORDER BY ts_rank(to_tsvector('simple', b.raw_content), q) DESC LIMIT 50",
}
NATIVE_COUNT = {
    "sqlite": "SELECT count(*) FROM native_fts WHERE native_fts MATCH ?",
    "postgresql": "SELECT count(*) FROM blocks b "
    "WHERE to_tsvector('simple', b.raw_content) @@ plainto_tsquery('simple', %s)",
}


def connect(backend: Backend, url: str) -> Any:
    conn = backend.raw_connect(url)
    if backend.name == "postgresql":
        conn.autocommit = True
    else:
        conn.isolation_level = None
    return conn


def build_native(backend: Backend, url: str) -> float:
    """(Re)build the engine's own index over blocks.raw_content; seconds taken."""
    conn = connect(backend, url)
    try:
        create, fill = NATIVE[backend.name]
        if backend.name == "postgresql":
            conn.execute("DROP INDEX IF EXISTS native_gin")
            started = time.perf_counter()
            conn.execute(create)
            seconds = time.perf_counter() - started
            conn.execute(fill)  # ANALYZE
            return seconds
        if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'native_fts'").fetchone():
            conn.execute(create)
        started = time.perf_counter()
        conn.execute(fill)  # 'rebuild' from the blocks
        return time.perf_counter() - started
    finally:
        conn.close()


def sizes(backend: Backend, url: str) -> dict[str, int]:
    conn = connect(backend, url)
    try:
        if backend.name == "postgresql":
            project, native, blocks = conn.execute(
                "SELECT pg_total_relation_size('block_search'), "
                "pg_relation_size('native_gin'), pg_total_relation_size('blocks')"
            ).fetchone()
        else:
            rows = dict(conn.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name"))
            project = sum(v for k, v in rows.items() if "block_search" in k)
            native = sum(v for k, v in rows.items() if k.startswith("native_fts"))
            blocks = sum(v for k, v in rows.items() if k in ("blocks",) or "autoindex_blocks" in k)
        return {"project": project, "native": native, "blocks": blocks}
    finally:
        conn.close()


# -- queries ------------------------------------------------------------------------------------


def pick_queries(url: str, n: int, backend: Backend) -> dict[str, list[str]]:
    """Words by document frequency, from the first 5,000 blocks: common = the
    20 most frequent; rare = words in 5 to 40 of those blocks."""
    conn = connect(backend, url)
    try:
        texts = [r[0] for r in conn.execute("SELECT raw_content FROM blocks LIMIT 5000")]
    finally:
        conn.close()
    df: dict[str, int] = {}
    for text in texts:
        for w in set(search.terms(text)):
            df[w] = df.get(w, 0) + 1
    ranked = sorted(df, key=lambda w: (-df[w], w))
    common = ranked[:20]
    rare = [w for w in ranked if 5 <= df[w] <= 40] or ranked[-50:]
    rng = random.Random(11)
    make = {
        "1 common": lambda: [rng.choice(common)],
        "1 rare": lambda: [rng.choice(rare)],
        "2 common": lambda: rng.sample(common, 2),
        "rare + common": lambda: [rng.choice(rare), rng.choice(common)],
        "3 common": lambda: rng.sample(common, 3),
        "rare + 2 common": lambda: [rng.choice(rare), *rng.sample(common, 2)],
    }
    return {t: [" ".join(make[t]()) for _ in range(n)] for t in TYPES}


def run_queries(
    backend: Backend, url: str, queries: dict[str, list[str]], runs: int
) -> dict[str, dict[str, float]]:
    db = open_database(url)
    conn = connect(backend, url)
    native_sql, count_sql = NATIVE_QUERY[backend.name], NATIVE_COUNT[backend.name]
    out = {}
    try:
        for t in TYPES:
            samples: dict[str, list[float]] = {"project": [], "hits": [], "native": []}
            matches = []
            for q in queries[t]:
                matches.append(conn.execute(count_sql, (q,)).fetchone()[0])
                for _ in range(runs):
                    for name, fn in (
                        ("project", lambda q=q: db.search_blocks(SEARCH_WS, q, 50)),
                        ("native", lambda q=q: conn.execute(native_sql, (q,)).fetchall()),
                        ("hits", lambda q=q: db.search_hits(SEARCH_WS, q, 50)),
                    ):
                        started = time.perf_counter()
                        fn()
                        samples[name].append((time.perf_counter() - started) * 1000)
            out[t] = {k: median(v) for k, v in samples.items()}
            out[t]["matches"] = median(matches)
    finally:
        conn.close()
        db.close()
    return out


# -- writes ------------------------------------------------------------------------------------


def run_writes(backend: Backend, n: int, rounds: int) -> dict[str, dict[str, float]]:
    """API vs raw floor with the native index, interleaved in chunks."""
    project_url, floor_url = backend.new_url(), backend.new_url()
    conn = connect(backend, floor_url)
    for sql in NATIVE[backend.name][:1]:
        conn.execute(sql)
    if backend.name == "sqlite":
        for sql in SQLITE_TRIGGERS:
            conn.execute(sql)
    conn.close()
    impls = {
        "project": HandshakeImpl(backend.name, project_url),
        "floor": RawImpl(backend.name, floor_url),
    }
    impls["floor"].index_rows = lambda block_id, raw: []  # the floor keeps only the native index
    gen = TextGen(seed=5)
    texts = [gen.text(gen.rng.randint(*WORDS)) for _ in range(n)]
    samples: dict[str, dict[str, list[float]]] = {
        w: {k: [] for k in impls} for w in ("create_block", "update_block", "replace_blocks")
    }
    try:
        for impl in impls.values():
            impl.create_workspace("ws", "w")
            impl.create_document("doc", "ws", "d")
            impl.create_document("rdoc", "ws", "r")
        chunk = 50
        for start in range(0, n, chunk):
            for name, impl in impls.items():
                t0 = time.perf_counter()
                for i in range(start, min(n, start + chunk)):
                    impl.create_block("doc", f"b{i}", "p", i, texts[i])
                samples["create_block"][name].append((time.perf_counter() - t0) * 1e6 / chunk)
        for start in range(0, n, chunk):
            for name, impl in impls.items():
                t0 = time.perf_counter()
                for i in range(start, min(n, start + chunk)):
                    impl.update_block(f"b{i}", texts[(i + 1) % n])
                samples["update_block"][name].append((time.perf_counter() - t0) * 1e6 / chunk)
        for r in range(rounds):
            blocks = [(f"r{r}-{i}", "p", i, texts[(i + r) % n]) for i in range(n)]
            for name, impl in impls.items():
                t0 = time.perf_counter()
                impl.replace_blocks("rdoc", blocks)
                samples["replace_blocks"][name].append((time.perf_counter() - t0) * 1e6)
    finally:
        for impl in impls.values():
            impl.close()
        backend.drop(project_url)
        backend.drop(floor_url)
    return {w: {k: median(v) for k, v in per.items()} for w, per in samples.items()}


# -- the run ------------------------------------------------------------------------------------


def run_backend(backend: Backend, args: argparse.Namespace) -> dict[str, Any]:
    log(f"{backend.name}: loading {args.blocks} blocks")
    url = build_search_db(backend, args.blocks, WORDS)
    native_build = build_native(backend, url)
    with open_database(url) as db:
        started = time.perf_counter()
        rebuildable.rebuild(db, ["block_search"])
        rebuild = time.perf_counter() - started
        if backend.name == "postgresql":
            with db._adapter.transaction(AUTOCOMMIT) as s:
                s.execute("ANALYZE")
    native_rebuild = build_native(backend, url)
    result: dict[str, Any] = {
        "sizes": sizes(backend, url),
        "rebuild_s": {"project": rebuild, "native": native_rebuild, "native_first": native_build},
    }
    log(f"{backend.name}: queries")
    queries = pick_queries(url, args.queries, backend)
    result["queries"] = run_queries(backend, url, queries, args.runs)
    result["examples"] = {t: queries[t][:2] for t in TYPES}
    backend.drop(url)
    log(f"{backend.name}: writes")
    result["writes_us"] = run_writes(backend, args.write_blocks, args.rounds)
    return result


def report(results: dict[str, Any]) -> None:
    for name, r in results.items():
        print(f"\n== {name}: medians ==")
        print(
            f"{'query type':18s}{'matches':>9s}{'project':>11s}{'with snippets':>15s}"
            f"{'native':>10s}{'ratio':>8s}"
        )
        for t in TYPES:
            q = r["queries"][t]
            print(
                f"{t:18s}{q['matches']:>9,.0f}{q['project']:>9.2f}ms{q['hits']:>13.2f}ms"
                f"{q['native']:>8.2f}ms{q['project'] / q['native']:>7.2f}x"
            )
        s = r["sizes"]
        mib = {k: v / 2**20 for k, v in s.items()}
        print(
            f"index size: project {mib['project']:.1f} MiB, native {mib['native']:.1f} MiB "
            f"({s['project'] / max(s['native'], 1):.2f}x); blocks {mib['blocks']:.1f} MiB"
        )
        b = r["rebuild_s"]
        print(
            f"rebuild: project {b['project']:.2f} s, native build {b['native']:.2f} s "
            f"({b['project'] / b['native']:.2f}x)"
        )
        for w, per in r["writes_us"].items():
            print(
                f"{w:15s} project {per['project']:>10,.0f} us  floor {per['floor']:>10,.0f} us "
                f"({per['project'] / per['floor']:.2f}x)"
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.search_bench", description=__doc__)
    parser.add_argument("--blocks", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=20, help="queries per type")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--write-blocks", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5, help="replace_blocks calls")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--postgres-url", default=None)
    parser.add_argument("--output", type=Path, default=RESULTS / "search.json")
    args = parser.parse_args(argv)
    workdir = make_workdir()
    names = args.backends.split(",")
    pg = PostgresServer(args.postgres_url, workdir) if "postgresql" in names else None
    results = {}
    try:
        for n in names:
            results[n] = run_backend(Backend(n, workdir, pg), args)
    finally:
        if pg is not None:
            pg.close()
    report(results)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(
        json.dumps(
            {"args": vars(args) | {"output": str(args.output)}, "results": results},
            indent=2,
            default=str,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
