"""The fixed workload, run against every implementation on every backend.

Each repeat gives every (backend, implementation) a fresh database migrated
by handshake_storage, runs the workloads below in order, then compares the
content every implementation left (all tables, including the ``block_search``
projection; see common.VOLATILE for the columns generated at call time) and
the results of the reads. The search workload runs on one shared,
read-only 100,000-block workspace per backend.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

from handshake_storage import open_database
from handshake_storage.backends.base import WRITE

from .common import (
    ACTOR_ID,
    ACTOR_KIND,
    BLOCK_COLS,
    SEARCH_COLS,
    TABLES,
    TextGen,
    content_digest,
    index_rows,
    job_uuid,
    new_event_id,
    now,
    trace_uuid,
)
from .env import Backend
from .impl_handshake import HandshakeImpl
from .impl_raw import RawImpl
from .impl_sqlalchemy_core import CoreImpl
from .impl_sqlalchemy_orm import OrmImpl

IMPLS: dict[str, Any] = {
    "raw": RawImpl,
    "handshake": HandshakeImpl,
    "sa_core": CoreImpl,
    "sa_orm": OrmImpl,
}

WS = "ws-bench"
DOC_CREATE = "doc-create"
DOC_REPLACE = "doc-replace"
CANVAS = "canvas-bench"
SEARCH_WS = "ws-search"

WORKLOADS = (
    ("create_block", "create_block x{create} into one document"),
    ("get_block", "get_block x{create}"),
    ("update_block", "update_block x{create}"),
    ("replace_blocks", "replace_blocks of {replace_size} blocks x{replace_calls}"),
    ("get_blocks", "get_blocks of a {replace_size}-block document x{get_blocks_calls}"),
    ("update_canvas_graph", "update_canvas_graph {nodes} nodes + {edges} edges x{graph_calls}"),
    ("get_canvas_with_graph", "get_canvas_with_graph x{get_graph_calls}"),
    ("job_lifecycle", "AI job create/running/outputs/completed x{jobs}"),
    ("search_blocks", "search_blocks on a {search_blocks}-block workspace x{search_calls}"),
)


@dataclass(frozen=True)
class Sizes:
    create: int = 5000
    replace_size: int = 1000
    replace_calls: int = 20
    get_blocks_calls: int = 200
    nodes: int = 500
    edges: int = 500
    graph_calls: int = 20
    get_graph_calls: int = 200
    jobs: int = 2000
    search_blocks: int = 100_000
    search_calls: int = 200
    repeats: int = 5

    @classmethod
    def quick(cls) -> Sizes:
        return cls(
            create=300,
            replace_size=200,
            replace_calls=4,
            get_blocks_calls=30,
            nodes=100,
            edges=100,
            graph_calls=4,
            get_graph_calls=30,
            jobs=100,
            search_blocks=5000,
            search_calls=30,
            repeats=2,
        )

    def describe(self, key: str) -> str:
        return dict(WORKLOADS)[key].format(**self.__dict__)


class Data:
    """Every input of the workload, generated once, deterministically."""

    def __init__(self, sizes: Sizes) -> None:
        gen = TextGen(seed=1)
        self.sizes = sizes
        self.create = [(f"blk-{i:06d}", "paragraph", i, gen.text()) for i in range(sizes.create)]
        self.updates = [(b[0], gen.text()) for b in self.create]
        self.replace = [
            [
                (f"rep-{r:02d}-{i:05d}", "paragraph", i, gen.text())
                for i in range(sizes.replace_size)
            ]
            for r in range(sizes.replace_calls)
        ]
        self.graphs = []
        for r in range(sizes.graph_calls):
            nodes = [
                (f"n-{r:02d}-{i:04d}", "note", i * 1.5, -i / 3, {"label": f"node {i}", "r": r})
                for i in range(sizes.nodes)
            ]
            edges = [
                (
                    f"e-{r:02d}-{i:04d}",
                    nodes[i % sizes.nodes][0],
                    nodes[(i * 7 + 1) % sizes.nodes][0],
                    "link",
                )
                for i in range(sizes.edges)
            ]
            self.graphs.append((nodes, edges))
        self.jobs = [
            {
                "id": job_uuid(i),
                "trace_id": trace_uuid(i),
                "entity_id": self.create[i % sizes.create][0],
                "inputs": {"prompt": f"summarize block {i}", "max_tokens": 256},
                "outputs": {"summary": f"summary of block {i} — ok", "tokens": i % 300},
                "metrics": {
                    "duration_ms": i,
                    "total_tokens": 300 + i,
                    "input_tokens": 200,
                    "output_tokens": 100 + i,
                    "entities_read": 1,
                    "entities_written": 0,
                },
            }
            for i in range(sizes.jobs)
        ]
        qgen = TextGen(seed=2)
        self.queries = [qgen.query() for _ in range(sizes.search_calls)]


# -- timing ---------------------------------------------------------------------------


def _timed(
    fn: Callable[..., Any],
    calls: Sequence[tuple[Any, ...]],
    around: AbstractContextManager[Any] | None = None,
) -> tuple[float, Any, Any]:
    """(microseconds per call, first result, last result)."""
    gc.collect()
    first = last = None
    with around or nullcontext():
        start = time.perf_counter_ns()
        for i, args in enumerate(calls):
            last = fn(*args)
            if i == 0:
                first = last
        elapsed = time.perf_counter_ns() - start
    return elapsed / 1000 / max(1, len(calls)), first, last


Hook = Callable[[str], AbstractContextManager[Any] | None]

#: Operations per chunk when implementations take turns (see run_interleaved).
CHUNK = {
    "create_block": 100,
    "get_block": 250,
    "update_block": 100,
    "replace_blocks": 1,
    "get_blocks": 10,
    "update_canvas_graph": 1,
    "get_canvas_with_graph": 10,
    "job_lifecycle": 25,
    "search_blocks": 10,
}


def _steps(impl: Any, data: Data) -> list[tuple[str, Callable[..., Any], list[tuple[Any, ...]]]]:
    s = data.sizes

    def lifecycle(job: dict[str, Any]) -> None:
        impl.job_create(job)
        impl.job_running(job)
        impl.job_set_outputs(job)
        impl.job_completed(job)

    return [
        ("create_block", impl.create_block, [(DOC_CREATE, *b) for b in data.create]),
        ("get_block", impl.get_block, [(b[0],) for b in data.create]),
        ("update_block", impl.update_block, list(data.updates)),
        ("replace_blocks", impl.replace_blocks, [(DOC_REPLACE, b) for b in data.replace]),
        ("get_blocks", impl.get_blocks, [(DOC_REPLACE,)] * s.get_blocks_calls),
        ("update_canvas_graph", impl.update_canvas_graph, [(CANVAS, *g) for g in data.graphs]),
        ("get_canvas_with_graph", impl.get_canvas_with_graph, [(CANVAS,)] * s.get_graph_calls),
        ("job_lifecycle", lifecycle, [(j,) for j in data.jobs]),
    ]


def run_interleaved(
    impls: dict[str, Any], data: Data, hook: Hook | None = None, rotate: int = 0
) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, Any]]]:
    """Run every workload but search on each implementation (each on its own
    database), the implementations taking turns chunk by chunk, so that they
    share the machine's load alike. Returns (workload -> impl -> us/op,
    impl -> results of the reads). ``hook(workload)`` may return a context
    manager (a profiler) to run each of that workload's chunks in."""
    names = list(impls)
    for impl in impls.values():
        impl.create_workspace(WS, "Bench workspace")
        impl.create_document(DOC_CREATE, WS, "Created block by block")
        impl.create_document(DOC_REPLACE, WS, "Replaced in bulk")
        impl.create_canvas(CANVAS, WS, "Bench canvas")
    steps = {name: _steps(impl, data) for name, impl in impls.items()}
    us: dict[str, dict[str, float]] = {}
    results: dict[str, dict[str, list[Any]]] = {n: {} for n in names}
    for k, (workload, _, calls) in enumerate(steps[names[0]]):
        us[workload] = _interleave(
            workload,
            {n: steps[n][k][1] for n in names},
            calls,
            hook,
            rotate + k,
            results,
        )
    seen: dict[str, dict[str, Any]] = {}
    for name, impl in impls.items():
        r = results[name]
        seen[name] = {
            "get_block": [impl.block_id(r["get_block"][0]), impl.block_id(r["get_block"][-1])],
            "get_blocks": impl.block_ids(r["get_blocks"][0]),
            "get_canvas_with_graph": impl.graph_ids(r["get_canvas_with_graph"][0]),
        }
    return us, seen


def _interleave(
    workload: str,
    fns: dict[str, Callable[..., Any]],
    calls: Sequence[tuple[Any, ...]],
    hook: Hook | None,
    rotate: int,
    results: dict[str, dict[str, list[Any]]],
) -> dict[str, float]:
    names = list(fns)
    names = names[rotate % len(names) :] + names[: rotate % len(names)]
    size = CHUNK[workload]
    total = dict.fromkeys(names, 0)
    for start in range(0, len(calls), size):
        chunk = calls[start : start + size]
        for name in names:
            fn = fns[name]
            # Each turn starts from a collected heap, outside the timing: the
            # collections a turn's own allocations set off stay in its time,
            # but none of them collects the garbage of the turn before it
            # (another implementation's).
            gc.collect()
            with (hook(workload) if hook else None) or nullcontext():
                t0 = time.perf_counter_ns()
                first = last = fn(*chunk[0])
                for args in chunk[1:]:
                    last = fn(*args)
                total[name] += time.perf_counter_ns() - t0
            if start == 0:
                results[name][workload] = [first, last]
            else:
                results[name][workload][1] = last
    return {n: total[n] / 1000 / max(1, len(calls)) for n in fns}


def run_search(
    impls: dict[str, Any], data: Data, hook: Hook | None = None, rotate: int = 0
) -> tuple[dict[str, float], dict[str, list[list[str]]]]:
    calls = [(SEARCH_WS, q, 50) for q in data.queries]
    results: dict[str, dict[str, list[Any]]] = {n: {} for n in impls}
    us = _interleave(
        "search_blocks",
        {n: i.search_blocks for n, i in impls.items()},
        calls,
        hook,
        rotate,
        results,
    )
    lists = {n: [i.block_ids(i.search_blocks(*c)) for c in calls] for n, i in impls.items()}
    return us, lists


# -- content --------------------------------------------------------------------------


#: What two implementations' ledgers must agree on.
LEDGER_COLUMNS = ("scope", "seq", "pos", "actor_kind", "operation", "subject_table", "subject_id")


def snapshot(backend: Backend, url: str) -> dict[str, tuple[int, str]]:
    """Per table: (rows, digest of the non-volatile columns)."""
    conn = backend.raw_connect(url)
    try:
        out = {}
        for table in TABLES:
            cur = conn.execute(f"SELECT * FROM {table}")
            columns = [d[0] for d in cur.description]
            out[table] = content_digest(cur.fetchall(), columns)
        # The change ledger: the same change sets, in the same order per scope
        # (stamps, event ids and payload encodings are the writer's own).
        cur = conn.execute(f"SELECT {', '.join(LEDGER_COLUMNS)} FROM sync_changes")
        out["sync_changes"] = content_digest(cur.fetchall(), LEDGER_COLUMNS)
        return out
    finally:
        conn.close()


# -- the shared search workspace --------------------------------------------------------


def build_search_db(backend: Backend, n_blocks: int, words: tuple[int, int] | None = None) -> str:
    """A migrated database with one workspace of ``n_blocks`` blocks (100
    docs), each of ``words`` (min, max) Zipf-distributed words."""
    url = backend.new_url()
    gen = TextGen(seed=3)
    per_doc = max(1, n_blocks // 100)
    n_docs = (n_blocks + per_doc - 1) // per_doc
    with open_database(url) as db:
        adapter = db._adapter
        ts = adapter.encode_timestamp(now())
        trace = (ACTOR_KIND, ACTOR_ID, None, None)
        with adapter.transaction(WRITE) as s:
            adapter.bulk_insert(
                s,
                "workspaces",
                (
                    "id",
                    "name",
                    "created_at",
                    "updated_at",
                    "last_actor_kind",
                    "last_actor_id",
                    "last_job_id",
                    "last_workflow_id",
                    "edit_event_id",
                ),
                [(SEARCH_WS, "Search", ts, ts, *trace, new_event_id())],
            )
            adapter.bulk_insert(
                s,
                "documents",
                (
                    "id",
                    "workspace_id",
                    "title",
                    "created_at",
                    "updated_at",
                    "last_actor_kind",
                    "last_actor_id",
                    "last_job_id",
                    "last_workflow_id",
                    "edit_event_id",
                ),
                [
                    (f"sdoc-{d:03d}", SEARCH_WS, f"Doc {d}", ts, ts, *trace, new_event_id())
                    for d in range(n_docs)
                ],
            )
            blocks = []
            terms: list[tuple[Any, ...]] = []
            for i in range(n_blocks):
                raw = gen.text(gen.rng.randint(*words) if words else None)
                bid = f"sblk-{i:07d}"
                blocks.append(
                    (
                        bid,
                        f"sdoc-{i // per_doc:03d}",
                        "paragraph",
                        i % per_doc,
                        raw,
                        raw,
                        "{}",
                        ts,
                        ts,
                        *trace,
                        new_event_id(),
                    )
                )
                terms.extend((*r, SEARCH_WS) for r in index_rows(bid, raw))
            adapter.bulk_insert(
                s,
                "blocks",
                BLOCK_COLS,
                blocks,
            )
            adapter.bulk_insert(s, "block_search", SEARCH_COLS, terms)
        if backend.name == "postgresql":
            with adapter.transaction() as s:
                s.execute("ANALYZE")
    return url
