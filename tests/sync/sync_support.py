"""Helpers for the sync tests: replica pairs on every backend pair, and
reading a replica's whole state through the API."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from handshake_storage import AccessMode, Database, NewAiJob, SafetyMode, WriteContext

PAIRS = [("sqlite", "sqlite"), ("sqlite", "postgresql"), ("postgresql", "postgresql")]
ADA = WriteContext.human("ada")
BOB = WriteContext.human("bob")


def replicas(
    request: pytest.FixtureRequest, tmp_path: Path, kinds: tuple[str, ...]
) -> Iterator[list[Database]]:
    """Fresh migrated databases, one per entry of ``kinds``, each its own replica
    (the test templates are file/database clones, so each is re-identified)."""
    from conftest import DatabaseFactory

    factories = {}
    for kind in set(kinds):
        (tmp_path / kind).mkdir(exist_ok=True)
        factories[kind] = DatabaseFactory(kind, request, tmp_path / kind)
    dbs = []
    for kind in kinds:
        db = factories[kind].open()
        db.reidentify()
        dbs.append(db)
    yield dbs
    for factory in factories.values():
        factory.cleanup()


def content(db: Database) -> dict[str, Any]:
    """Everything the API can read back about content and jobs."""
    state: dict[str, Any] = {}
    for ws in db.list_workspaces():
        state["ws", ws.id] = ws
        for doc in db.list_documents(ws.id):
            state["doc", doc.id] = doc
            state["blocks", doc.id] = db.get_blocks(doc.id)
        for canvas in db.list_canvases(ws.id):
            state["graph", canvas.id] = db.get_canvas_with_graph(canvas.id)
    return state


def job_input() -> NewAiJob:
    """An AI job to create (each call a new trace)."""
    return NewAiJob(
        trace_id=uuid.uuid4(),
        job_kind="summarize",
        protocol_id="p",
        profile_id="prof",
        capability_profile_id="cap",
        access_mode=AccessMode.APPLY_SCOPED,
        safety_mode=SafetyMode.NORMAL,
    )
