"""Shared helpers for the rebuildable-object, search and copy tests.

``populate`` writes a workload that touches every canonical table with
values that are hard to carry between backends; ``api_state`` reads a
database back through every list/get method of the API; ``table_digests``
computes each table's order-independent content digest through the adapter
(the internal handle is fine in tests; drivers are never imported).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from handshake_storage import (
    AccessMode,
    BlockUpdate,
    Database,
    EntityRef,
    JobMetrics,
    JobState,
    JobStatusUpdate,
    NewAiJob,
    NewBlock,
    NewCanvas,
    NewCanvasEdge,
    NewCanvasNode,
    NewDocument,
    NewNodeExecution,
    NewWorkspace,
    OperationType,
    PlannedOperation,
    SafetyMode,
    WriteContext,
)
from handshake_storage.backends.base import SNAPSHOT
from handshake_storage.digest import TableDigest

HUMAN = WriteContext.human("tester")
SYSTEM = WriteContext.system("copier")
OTHER = {"sqlite": "postgresql", "postgresql": "sqlite"}
LONG_AGO = datetime(2020, 2, 29, 23, 59, 59, 999_999, tzinfo=UTC)

#: Terms searched for in every workspace by ``api_state``.
SEARCH_TERMS = (
    "alpha",
    "straße",
    "東京",
    "x" * 130,
    "fox quick",
    "missing",
    '"quick brown"',
    "stra*",
    "fox -alpha",
    "alpha OR 東京",
)


def ai() -> WriteContext:
    return WriteContext.ai(uuid.uuid4(), uuid.uuid4(), "agent")


@dataclass
class Workload:
    workspaces: list[str] = field(default_factory=list)
    blocks: list[str] = field(default_factory=list)
    jobs: list[uuid.UUID] = field(default_factory=list)
    runs: list[uuid.UUID] = field(default_factory=list)


def populate(db: Database, prefix: str = "") -> Workload:
    """Content, canvases, jobs, runs and node executions with awkward values."""
    w = Workload()
    for n, name in enumerate(("Ünïcode wörkspace 👋", "second\nline\ttab", "'quoted' \"x\"")):
        ws = f"{prefix}ws-{n}"
        db.create_workspace(HUMAN if n != 1 else ai(), NewWorkspace(name, id=ws))
        w.workspaces.append(ws)
        for d in range(2):
            doc = f"{prefix}doc-{n}-{d}"
            db.create_document(SYSTEM, NewDocument(ws, f"Document {d} ∑ {name}", id=doc))
            blocks = [
                NewBlock(
                    doc,
                    ("paragraph", "heading", "code")[i % 3],
                    (i * 7) % 5 - 2,
                    text,
                    display_content=None if i % 2 else f"<p>{text}</p>",
                    derived_content=derived,
                    id=f"{prefix}blk-{n}-{d}-{i}",
                )
                for i, (text, derived) in enumerate(
                    [
                        ("The quick brown fox, the FOX!", {"big": 2**70, "f": 0.1}),
                        ("Straße STRASSE strasse — ẞ", [1.5e308, -0.0, None, True]),
                        ("東京 と 日本語; Москва", {"nested": {"ü": ["ß", "\u2028"]}}),
                        ("alpha " + "x" * 130 + " ALPHA alpha", None),
                        ("emoji 😀 and ﬁle; don't stop", {"int64": 2**63 - 1}),
                        ("", {}),
                    ]
                )
            ]
            db.replace_blocks(HUMAN, doc, blocks)
            w.blocks += [b.id for b in blocks if b.id]
        first = f"{prefix}blk-{n}-0-0"
        db.update_block(ai(), first, BlockUpdate(raw_content=f"alpha fox quick {n}", sequence=99))
        canvas = f"{prefix}cnv-{n}"
        db.create_canvas(HUMAN, NewCanvas(ws, f"Canvas {n}", id=canvas))
        nodes = [
            NewCanvasNode("note", 0.1 * k, -1e-300 * k, {"k": k, "π": 3.141592653589793}, id=nid)
            for k, nid in enumerate(f"{prefix}node-{n}-{k}" for k in range(3))
        ]
        edges = [
            NewCanvasEdge(nodes[0].id, nodes[1].id, "link", id=f"{prefix}edge-{n}-0"),  # type: ignore[arg-type]
            NewCanvasEdge(nodes[1].id, nodes[2].id, "flow", id=f"{prefix}edge-{n}-1"),  # type: ignore[arg-type]
        ]
        db.update_canvas_graph(HUMAN, canvas, nodes, edges)
    for k in range(3):
        job = db.create_ai_job(
            NewAiJob(
                trace_id=uuid.uuid4(),
                job_kind=f"kind-{k}",
                protocol_id="proto",
                profile_id="profile",
                capability_profile_id="caps",
                access_mode=AccessMode.APPLY_SCOPED,
                safety_mode=SafetyMode.STRICT,
                entity_refs=[EntityRef(w.blocks[k], "block")],
                planned_operations=[
                    PlannedOperation(OperationType.WRITE, EntityRef(w.blocks[k], "block"), "edit")
                ],
                status_reason="queued ✓",
                metrics=JobMetrics(duration_ms=2**40, total_tokens=k),
                job_inputs={"prompt": "héllo", "n": [k, 2.5]},
                is_pinned=k == 0,
            )
        )
        w.jobs.append(job.id)
        run = db.create_workflow_run(job.id, JobState.RUNNING, last_heartbeat=LONG_AGO)
        w.runs.append(run.id)
        db.update_ai_job_status(
            JobStatusUpdate(job.id, JobState.COMPLETED if k else JobState.FAILED, "done")
        )
        db.set_job_outputs(job.id, {"answer": 42, "text": "日本"})
        execution = db.create_workflow_node_execution(
            NewNodeExecution(run.id, "node-a", "llm", JobState.RUNNING, k, LONG_AGO, {"in": [1, 2]})
        )
        db.update_workflow_node_execution_status(
            execution.id, JobState.COMPLETED, output={"out": None}
        )
        db.heartbeat_workflow(run.id, LONG_AGO + timedelta(microseconds=k + 1))
    return w


def api_state(db: Database, w: Workload) -> dict[Any, Any]:
    """Everything the API can read back, keyed by what was read."""
    state: dict[Any, Any] = {"workspaces": db.list_workspaces()}
    for ws in w.workspaces:
        state["workspace", ws] = db.get_workspace(ws)
        documents = db.list_documents(ws)
        state["documents", ws] = documents
        for document in documents:
            state["document", document.id] = db.get_document(document.id)
            blocks = db.get_blocks(document.id)
            state["blocks", document.id] = blocks
            for block in blocks:
                state["block", block.id] = db.get_block(block.id)
        canvases = db.list_canvases(ws)
        state["canvases", ws] = canvases
        for canvas in canvases:
            state["graph", canvas.id] = db.get_canvas_with_graph(canvas.id)
        for term in SEARCH_TERMS:
            state["search", ws, term] = db.search_hits(ws, term)
    for job in w.jobs:
        state["job", job] = db.get_ai_job(job)
    for run in w.runs:
        state["executions", run] = db.list_workflow_node_executions(run)
    state["stalled"] = db.find_stalled_workflows(3600)
    report = db.prune_ai_jobs(datetime.now(UTC) + timedelta(days=1), 0, dry_run=True)
    state["prune"] = (report.items_scanned, report.items_pruned, report.items_spared_pinned)
    state["migrations"] = db.migration_status()
    return state


def table_digests(db: Database) -> dict[str, TableDigest]:
    """Every table's row count and content digest, read in one snapshot."""
    adapter = db._adapter
    with adapter.transaction(SNAPSHOT) as session:
        schema = adapter.introspect(session)
        digests = {}
        for name, table in schema.tables.items():
            columns = ", ".join(c.name for c in table.columns)
            digest = TableDigest([c.family for c in table.columns], adapter.decode_timestamp)
            digests[name] = digest.add_all(adapter.stream(session, f"SELECT {columns} FROM {name}"))
    return digests


def execute(db: Database, sql: str, params: tuple[Any, ...] = ()) -> None:
    """Run a statement behind the API's back (to tamper with derived data)."""
    with db._adapter.transaction() as session:
        session.execute(db._adapter.compile(sql), params)


def scalar(db: Database, sql: str, params: tuple[Any, ...] = ()) -> Any:
    with db._adapter.transaction(SNAPSHOT) as session:
        return session.execute(db._adapter.compile(sql), params).fetchone()[0]


def with_password(url: str, password: str) -> tuple[str, str]:
    """``url`` carrying a password: its own if it has one, else ``password``
    (the test servers trust local connections, so any password works)."""
    parts = urlsplit(url)
    if parts.password:
        return url, parts.password
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    netloc = f"{parts.username or 'postgres'}:{password}@{host}{port}"
    return urlunsplit(parts._replace(netloc=netloc)), password


def both_backends(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """Body of a ``factories`` fixture: a database factory (as in conftest) for
    each backend, for tests that need SQLite and PostgreSQL at once."""
    from conftest import BACKENDS, DatabaseFactory

    made = {}
    for b in BACKENDS:
        (tmp_path / b).mkdir()
        made[b] = DatabaseFactory(b, request, tmp_path / b)
    yield made
    for factory in made.values():
        factory.cleanup()
