"""Edge cases of the conflict rules found by adversarial probing, on every
backend pair: each asserts that two replicas converge (identical API reads,
equal digests) and that what lost is in the conflict log."""

from __future__ import annotations

import pytest
from sync_support import ADA, BOB, PAIRS, content, replicas

from handshake_storage import (
    NewBlock,
    NewCanvas,
    NewCanvasNode,
    NewDocument,
    NewWorkspace,
    ledger,
)
from handshake_storage.sync import sync_databases


@pytest.fixture(params=PAIRS, ids=["-".join(p) for p in PAIRS])
def pair(request, tmp_path):
    yield from replicas(request, tmp_path, request.param)


@pytest.fixture(autouse=True)
def ticking_clock(monkeypatch):
    """Each clock reading strictly later than the one before: which of two
    concurrent writes is the later one is then the order they are made in."""
    real, last = ledger.wall_clock_ms, [0]

    def tick() -> int:
        last[0] = max(real(), last[0] + 1)
        return last[0]

    monkeypatch.setattr(ledger, "wall_clock_ms", tick)


def converged(a, b) -> None:
    for _ in range(3):
        if not sync_databases(a, b).moved:
            break
    assert content(a) == content(b)
    assert a.content_digests() == b.content_digests()


def test_a_same_id_created_later_elsewhere_starts_an_empty_generation_on_both(pair) -> None:
    """A document (canvas) id created on both replicas: the later creation
    wins the row's fields, its generation included, so the earlier one's
    children lose on both sides, not only where they arrive late."""
    a, b = pair
    a.create_workspace(ADA, NewWorkspace("W", id="ws"))
    converged(a, b)
    a.create_document(ADA, NewDocument("ws", "ada's", id="doc"))
    a.create_block(ADA, NewBlock("doc", "p", 0, "ada's block", id="ab"))
    a.create_canvas(ADA, NewCanvas("ws", "ada's", id="cv"))
    a.update_canvas_graph(ADA, "cv", [NewCanvasNode("n", 1.0, 2.0, id="n1")], [])
    b.create_document(BOB, NewDocument("ws", "bob's", id="doc"))  # later: wins
    b.create_canvas(BOB, NewCanvas("ws", "bob's", id="cv"))
    converged(a, b)
    for db in (a, b):
        assert db.get_document("doc").title == "bob's"
        assert db.get_blocks("doc") == []
        graph = db.get_canvas_with_graph("cv")
        assert (graph.canvas.title, graph.nodes) == ("bob's", [])
        stale = db.conflicts(kind="stale_generation")
        lost = {c.row_id for c in stale} | {c.table_name for c in stale}
        assert "ab" in lost and ({"n1", "cv"} & lost), stale
