"""Conformance tests: canvases and their graphs, and list order."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any
from uuid import UUID

import pytest

from ..database import Database
from ..errors import (
    ConflictError,
    NotFoundError,
    ValidationError,
)
from ..models import (
    NewBlock,
    NewCanvas,
    NewCanvasEdge,
    NewCanvasNode,
    NewDocument,
    NewWorkspace,
)
from .support import (
    BAD_CONTENT_IDS,
    BAD_FLOATS,
    BAD_NEW_IDS,
    BAD_TEXT,
    GOOD_FLOATS,
    HUMAN,
    RecordingGuard,
    ai_context,
    assert_utc,
    clock,
    float_identical,
    json_equal,
    refusals,
    refused_without_change,
    seed,
    snapshot,
)


class CanvasTests:
    """Conformance tests (part of StorageConformance):
    canvases and their graphs, and list order."""

    # -- canvases ----------------------------------------------------------------------------------

    def test_canvas_round_trip(self, db: Database) -> None:
        w = seed(db)
        canvas = db.create_canvas(HUMAN, NewCanvas(w.other_workspace, "Board ✏️", id="c-x"))
        assert (canvas.id, canvas.workspace_id, canvas.title) == (
            "c-x",
            w.other_workspace,
            "Board ✏️",
        )
        assert_utc(canvas.created_at)
        assert db.list_canvases(w.other_workspace) == [canvas]
        graph = db.get_canvas_with_graph("c-x")
        assert (graph.canvas, graph.nodes, graph.edges) == (canvas, [], [])
        generated = db.create_canvas(HUMAN, NewCanvas(w.other_workspace, "g"))
        assert UUID(generated.id)
        assert db.get_canvas_with_graph(generated.id).canvas == generated

    def test_canvas_graph_round_trip_in_stored_order(self, db: Database) -> None:
        w = seed(db)
        nodes = [
            NewCanvasNode("z-kind", 1.5, -2.25, {"label": "Zed", "tags": ["a"]}, id="z"),
            NewCanvasNode("a-kind", 0, 0, id="a"),
            NewCanvasNode("m-kind", 5e-324, 1.7976931348623157e308, [1, 2], id="m"),
            NewCanvasNode("😀", -math.inf, math.inf, "text", id="😀"),
        ]
        edges = [
            NewCanvasEdge("m", "z", "depends", id="e-z"),
            NewCanvasEdge("z", "a", "link", id="e-a"),
            NewCanvasEdge("a", "a", "self", id="e-m"),
            NewCanvasEdge("😀", "m", "link"),
        ]
        ctx = ai_context()
        graph = db.update_canvas_graph(ctx, w.canvas, nodes, edges)
        assert [n.id for n in graph.nodes] == ["z", "a", "m", "😀"]
        assert [e.id for e in graph.edges][:3] == ["e-z", "e-a", "e-m"]
        assert UUID(graph.edges[3].id)
        assert db.get_canvas_with_graph(w.canvas) == graph
        first = graph.nodes[0]
        assert (first.canvas_id, first.kind) == (w.canvas, "z-kind")
        assert float_identical(first.position_x, 1.5)
        assert json_equal(first.data, {"label": "Zed", "tags": ["a"]})
        assert json_equal(graph.nodes[1].data, {})
        assert float_identical(graph.nodes[2].position_x, 5e-324)
        assert graph.nodes[3].position_x == -math.inf
        edge = graph.edges[0]
        assert (edge.from_node_id, edge.to_node_id, edge.kind) == ("m", "z", "depends")
        assert all(n.last_job_id == ctx.job_id for n in graph.nodes)
        assert all(e.last_workflow_id == ctx.workflow_id for e in graph.edges)
        assert graph.canvas.last_job_id == ctx.job_id
        # the other canvas is untouched; an empty graph clears
        other = db.get_canvas_with_graph(w.other_canvas)
        assert [n.id for n in other.nodes] == list(w.other_nodes)
        cleared = db.update_canvas_graph(HUMAN, w.canvas, [], [])
        assert (cleared.nodes, cleared.edges) == ([], [])
        assert db.get_canvas_with_graph(w.canvas) == cleared
        # replacing with the same ids works (old rows go first)
        again = db.update_canvas_graph(HUMAN, w.canvas, nodes[:2], edges[1:2])
        assert db.get_canvas_with_graph(w.canvas) == again

    def test_canvas_positions_round_trip(self, db: Database) -> None:
        w = seed(db)
        nodes = [NewCanvasNode("k", x, -x, id=f"n{i}") for i, x in enumerate(GOOD_FLOATS)]
        db.update_canvas_graph(HUMAN, w.canvas, nodes, [])
        stored = db.get_canvas_with_graph(w.canvas).nodes
        problems = []
        for value, node in zip(GOOD_FLOATS, stored, strict=True):
            # a number is a double; SQLite cannot keep the sign of zero, so no backend does
            expected = float(value) + 0.0
            if not float_identical(node.position_x, expected):
                problems.append(f"{value!r} came back as {node.position_x!r}")
            if not float_identical(node.position_y, float(-value) + 0.0):
                problems.append(f"{-value!r} came back as {node.position_y!r}")
        assert not problems, problems

    def test_canvas_failures_change_nothing(self, db: Database) -> None:
        w = seed(db)
        before = snapshot(db)
        c = w.canvas
        node = NewCanvasNode("k", 0, 0, id="fresh")
        with pytest.raises(NotFoundError):
            db.get_canvas_with_graph("nope")
        with pytest.raises(NotFoundError):
            db.delete_canvas(HUMAN, "nope")
        with pytest.raises(ConflictError):
            db.create_canvas(HUMAN, NewCanvas(w.workspace, "t", id=c))
        with pytest.raises(NotFoundError, match=r"^workspace 'no-such-workspace' does not exist$"):
            db.create_canvas(HUMAN, NewCanvas("no-such-workspace", "t", id="c-x"))
        cases: list[tuple[str, Any, Any, Any, type]] = [
            ("missing canvas", "nope", [node], [], NotFoundError),
            ("bad canvas id", "", [], [], ValidationError),
            (
                "edge to a node outside the graph",
                c,
                [node],
                [NewCanvasEdge("fresh", w.nodes[0], "k")],
                ValidationError,
            ),
            ("repeated node id", c, [node, node], [], ValidationError),
            (
                "repeated edge id",
                c,
                [node],
                [
                    NewCanvasEdge("fresh", "fresh", "k", id="e"),
                    NewCanvasEdge("fresh", "fresh", "k", id="e"),
                ],
                ValidationError,
            ),
            ("NaN position", c, [node, NewCanvasNode("k", math.nan, 0)], [], ValidationError),
            (
                "inexact integer position",
                c,
                [node, NewCanvasNode("k", 0, 2**53 + 1)],
                [],
                ValidationError,
            ),
            (
                "NaN in data",
                c,
                [node, NewCanvasNode("k", 0, 0, {"x": math.nan})],
                [],
                ValidationError,
            ),
            ("NUL in kind", c, [node, NewCanvasNode("k\x00", 0, 0)], [], ValidationError),
            ("nodes not a list", c, node, [], ValidationError),
            ("edges not a list", c, [node], "edges", ValidationError),
            ("not a node", c, [NewBlock("d", "p", 1, "x")], [], ValidationError),
            ("not an edge", c, [node], [node], ValidationError),
            ("bad edge end", c, [node], [NewCanvasEdge("fresh", "", "k")], ValidationError),
            # fail in the middle of the transaction, after the old graph was deleted:
            (
                "node id of another canvas",
                c,
                [node, NewCanvasNode("k", 0, 0, id=w.other_nodes[0])],
                [],
                ConflictError,
            ),
            (
                "edge id of another canvas",
                c,
                [node],
                [NewCanvasEdge("fresh", "fresh", "k", id=w.other_edge)],
                ConflictError,
            ),
            (
                "edge to a colliding node",
                c,
                [node, NewCanvasNode("k", 0, 0, id=w.other_nodes[1])],
                [NewCanvasEdge("fresh", w.other_nodes[1], "k")],
                ConflictError,
            ),
        ]
        problems = refused_without_change(
            db,
            before,
            [
                (name, partial(db.update_canvas_graph, HUMAN, canvas_id, nodes, edges), error)
                for name, canvas_id, nodes, edges, error in cases
            ],
        )
        problems += refusals(
            BAD_NEW_IDS,
            lambda v: db.update_canvas_graph(HUMAN, c, [NewCanvasNode("k", 0, 0, id=v)], []),
            ValidationError,
        )
        problems += refusals(
            BAD_FLOATS,
            lambda v: db.update_canvas_graph(HUMAN, c, [NewCanvasNode("k", v, 0)], []),
            ValidationError,
        )
        problems += refusals(
            BAD_CONTENT_IDS,
            lambda v: db.create_canvas(HUMAN, NewCanvas(v, "t")),
            ValidationError,
        )
        problems += refusals(
            BAD_TEXT, lambda v: db.create_canvas(HUMAN, NewCanvas(w.workspace, v)), ValidationError
        )
        assert not problems, problems
        assert snapshot(db) == before

    def test_delete_canvas(self, db: Database) -> None:
        w = seed(db)
        db.delete_canvas(HUMAN, w.canvas)
        with pytest.raises(NotFoundError):
            db.get_canvas_with_graph(w.canvas)
        with pytest.raises(NotFoundError):
            db.delete_canvas(HUMAN, w.canvas)
        assert [c.id for c in db.list_canvases(w.workspace)] == [w.other_canvas]
        # its node and edge ids are free again
        graph = db.update_canvas_graph(
            HUMAN,
            w.other_canvas,
            [NewCanvasNode("k", 0, 0, id=w.nodes[0])],
            [NewCanvasEdge(w.nodes[0], w.nodes[0], "k", id=w.edge)],
        )
        assert db.get_canvas_with_graph(w.other_canvas) == graph

    # -- deterministic ordering --------------------------------------------------------------------

    def test_lists_ordered_by_created_at_then_id(
        self, database_factory: Callable[..., Database]
    ) -> None:
        t0 = datetime(2030, 1, 1, tzinfo=UTC)
        same = t0 + timedelta(days=1)
        # created_at: ids written later get earlier timestamps, and many share one
        plan = [
            ("late", t0 + timedelta(days=3)),
            ("b", same),
            ("Z", same),
            ("a", same),
            ("early", t0 + timedelta(microseconds=1)),
            ("é", same),
            ("😀", same),
            ("\uff41", same),
            ("_", same),
            ("~", same),
            ("a2", same),
            ("first", t0),
        ]
        times = [t for _, t in plan]
        guard = RecordingGuard(clock=clock(*times, *times, *times, *times))
        db = database_factory(guard=guard)
        expected = [i for i, _ in sorted(plan, key=lambda p: (p[1], p[0]))]
        for workspace_id, _ in plan:
            db.create_workspace(HUMAN, NewWorkspace("n", id=workspace_id))
        assert [ws.id for ws in db.list_workspaces()] == expected
        for document_id, _ in plan:
            db.create_document(HUMAN, NewDocument("a", "t", id=f"{document_id}"))
        assert [d.id for d in db.list_documents("a")] == expected
        for canvas_id, _ in plan:
            db.create_canvas(HUMAN, NewCanvas("b", "t", id=canvas_id))
        assert [c.id for c in db.list_canvases("b")] == expected
        listed = db.list_workspaces()
        assert [ws.created_at for ws in listed] == sorted(t for _, t in plan)
        assert listed == [db.get_workspace(ws.id) for ws in listed]
