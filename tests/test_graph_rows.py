"""``inputs.graph_rows`` (update_canvas_graph's rows) checks a graph the way
it did item by item: the same rows for a good graph, the same first
ValidationError message for a bad one — though it skips the identifier
check of an edge end that is one of the graph's node ids and checks the
graph's rules over all rows at once before looking for the offender.

The reference is the former per-item code: every edge end checked as an
identifier, then the graph rules one row at a time.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from handshake_storage import NewBlock, NewCanvasEdge, NewCanvasNode, inputs
from handshake_storage import validation as check
from handshake_storage.errors import ValidationError
from handshake_storage.tables import CANVAS_EDGES, CANVAS_NODES, STAMP

STAMP_VALUES = ("2026-01-01 00:00:00.000000", "2026-01-01 00:00:00.000000", "HUMAN", "ada")
STAMP_VALUES += (None, None, "event")
assert len(STAMP_VALUES) == len(STAMP)


def reference(canvas_id: str, nodes: list[Any], edges: list[Any]) -> Any:
    node_rows = [inputs._node_row(n, canvas_id, i, STAMP_VALUES) for i, n in enumerate(nodes)]
    edge_rows = []
    for i, edge in enumerate(edges):
        new = inputs.expect(edge, NewCanvasEdge, "edge")
        edge_rows.append(
            CANVAS_EDGES.row(
                id=inputs.new_id(new.id),
                canvas_id=canvas_id,
                ordinal=i,
                from_node_id=check.identifier(new.from_node_id, "from_node_id"),
                to_node_id=check.identifier(new.to_node_id, "to_node_id"),
                kind=check.text(new.kind, "kind"),
                **dict(zip(STAMP, STAMP_VALUES, strict=True)),
            )
        )
    at_node, at_edge = CANVAS_NODES.at["id"], CANVAS_EDGES.at["id"]
    node_ids = inputs._unique_ids(node_rows, at_node, "node")
    inputs._unique_ids(edge_rows, at_edge, "edge")
    for e in edge_rows:
        for end in (e[CANVAS_EDGES.at["from_node_id"]], e[CANVAS_EDGES.at["to_node_id"]]):
            if end not in node_ids:
                raise ValidationError(
                    f"edge {e[at_edge]!r} refers to node {end!r}, not in the graph"
                )
    return node_rows, edge_rows


def outcome(fn: Any, *args: Any) -> tuple[str, Any]:
    try:
        return "built", fn(*args)
    except ValidationError as exc:
        return "refused", str(exc)


def built(nodes: list[Any], edges: list[Any]) -> tuple[str, Any]:
    return outcome(inputs.graph_rows, "c", nodes, edges, STAMP_VALUES)


class Named(str):
    pass


def test_a_good_graph_gives_the_reference_rows() -> None:
    nodes = [NewCanvasNode("k", i, -i / 3, {"i": i}, id=f"n{i}") for i in range(5)]
    edges = [NewCanvasEdge(f"n{i}", f"n{(i + 2) % 5}", "e", id=f"e{i}") for i in range(5)]
    got = built(nodes, edges)
    assert got == outcome(reference, "c", nodes, edges)
    node_rows, edge_rows = got[1]
    assert [r[CANVAS_NODES.at["ordinal"]] for r in node_rows] == list(range(5))
    assert edge_rows[1][CANVAS_EDGES.at["to_node_id"]] == "n3"


def test_the_first_problem_in_item_order_is_the_one_reported() -> None:
    n = NewCanvasNode("k", 0, 0, id="n")
    cases = {
        # an edge's own fault comes before the graph's (a repeated node id)
        "bad end before repeated node": ([n, n], [NewCanvasEdge(1, "n", "k", id="e")]),
        "empty end, not 'not in the graph'": ([n], [NewCanvasEdge("", "n", "k", id="e")]),
        "too long end": ([n], [NewCanvasEdge("x" * 256, "n", "k", id="e")]),
        "NUL in an end": ([n], [NewCanvasEdge("n", "a\x00", "k", id="e")]),
        "end not in the graph": ([n], [NewCanvasEdge("n", "m", "k", id="e")]),
        "repeated node before repeated edge": (
            [n, n],
            [NewCanvasEdge("n", "n", "k", id="e"), NewCanvasEdge("n", "n", "k", id="e")],
        ),
        "repeated edge before a dangling end": (
            [n],
            [NewCanvasEdge("n", "m", "k", id="e"), NewCanvasEdge("n", "n", "k", id="e")],
        ),
        "first dangling end wins": (
            [n],
            [NewCanvasEdge("n", "a", "k", id="e1"), NewCanvasEdge("b", "n", "k", id="e2")],
        ),
        "not an edge": ([n], [n]),
        "bad edge kind after good ends": ([n], [NewCanvasEdge("n", "n", "k\x00", id="e")]),
        "bad node after a good one": ([n, NewCanvasNode("k", 0, 0, {1: 2}, id="m")], []),
        "not a node": ([NewBlock("d", "p", 1, "x")], []),
    }
    for name, (nodes, edges) in cases.items():
        got = built(nodes, edges)
        assert got[0] == "refused", name
        assert got == outcome(reference, "c", nodes, edges), name
    assert built([n, n], [NewCanvasEdge(1, "n", "k", id="e")])[1] == (
        "from_node_id must be a string, not int"
    )
    assert built([n], [NewCanvasEdge("n", "m", "k", id="e")])[1] == (
        "edge 'e' refers to node 'm', not in the graph"
    )


def test_an_end_of_a_str_subclass_is_stored_as_plain_text() -> None:
    nodes = [NewCanvasNode("k", 0, 0, id="n")]
    edges = [NewCanvasEdge(Named("n"), "n", "k", id="e")]
    got = built(nodes, edges)
    assert got == outcome(reference, "c", nodes, edges)
    assert type(got[1][1][0][CANVAS_EDGES.at["from_node_id"]]) is str


ids = st.sampled_from(["a", "b", "c", "d", "", "x" * 256, "n\x00", Named("a"), 7, None])


@st.composite
def graphs(draw: Any) -> tuple[list[Any], list[Any]]:
    node_ids = st.sampled_from(["a", "b", "c", "d"])
    kinds = st.sampled_from(["k", "k\x00", 3])
    nodes = draw(
        st.lists(
            st.builds(NewCanvasNode, kinds, st.just(0.0), st.just(1), st.just(None), node_ids),
            max_size=4,
        )
    )
    edges = draw(
        st.lists(
            st.one_of(
                st.builds(NewCanvasEdge, ids, ids, kinds, st.sampled_from(["e", "f", "g", ""])),
                st.just(NewBlock("d", "p", 1, "x")),
            ),
            max_size=4,
        )
    )
    return nodes, edges


@settings(max_examples=600, deadline=None, derandomize=True)
@given(graphs())
def test_graph_rows_equal_the_per_item_checks(graph: tuple[list[Any], list[Any]]) -> None:
    nodes, edges = graph
    assert built(nodes, edges) == outcome(reference, "c", nodes, edges)
