"""The hot queries use an index, read from each backend's own query plan.

For every hot query of ``queries.py`` (as the adapter compiled it), the plan
must reach each table it reads through an index or the primary key — never a
full scan. SQLite: ``EXPLAIN QUERY PLAN`` must show ``SEARCH <table> USING
... INDEX`` for the table, and no ``SCAN <table>``. PostgreSQL: ``EXPLAIN
(FORMAT JSON)``, every plan node on the table must be an index scan (or a
bitmap heap scan fed by one) on the expected index. The test tables are tiny,
so the PostgreSQL planner would rightly prefer a sequential scan; the
transaction sets ``enable_seqscan = off``, which makes the plan show whether a
usable index exists (a query without one still gets a Seq Scan).

Search reaches ``block_search`` through the engine's full-text index
(:data:`FULLTEXT`): on SQLite the FTS5 table yields rowids and each row is
read by rowid; on PostgreSQL a bitmap scan of the GIN index feeds the heap.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from handshake_storage import Database, search
from handshake_storage.backends.base import Adapter
from handshake_storage.database import _search_sql
from handshake_storage.queries import PORTABLE

PK = "<primary key>"
FULLTEXT = "<full-text index>"


@dataclass(frozen=True)
class Case:
    name: str
    #: portable SQL of queries.py, given the adapter (compiled by it in the test)
    sql: Callable[[Adapter], str]
    #: parameters, given a timestamp in the backend's stored form
    params: Callable[[Any], tuple[Any, ...]]
    #: table -> the index (or PK) that must serve it
    expect: dict[str, str]
    #: table -> its alias in the query (SQLite's plan names tables by alias)
    aliases: dict[str, str] | None = None


TRACE = ("HUMAN", "ada", None, None, "00000000-0000-0000-0000-000000000001")
JOB = "00000000-0000-0000-0000-0000000000aa"


def _q(name: str) -> Callable[[Adapter], str]:
    return lambda adapter: getattr(PORTABLE, name)


def _match(adapter: Adapter, sql: str) -> str:
    return sql.replace("{match}", adapter.fulltext_match("s", "block_search", "tokens"))


ALPHA = search.parse("alpha")


CASES = [
    Case("get_block", _q("get_block"), lambda ts: ("b1",), {"blocks": PK}),
    Case(
        "get_blocks",
        _q("get_blocks"),
        lambda ts: ("d1",),
        {"blocks": "idx_blocks_document_sequence"},
    ),
    Case(
        "update_block",
        _q("update_block"),
        lambda ts: (None, None, "x", None, None, ts, *TRACE, "b1"),
        {"blocks": PK},
    ),
    Case(
        "delete_search_rows",
        _q("delete_search_rows"),
        lambda ts: ("b1",),
        {"block_search": PK},
    ),
    Case(
        "delete_document_blocks",
        _q("delete_document_blocks"),
        lambda ts: ("d1",),
        {"blocks": "idx_blocks_document_sequence"},
    ),
    Case(
        "insert_search_rows_for_document",
        _q("insert_search_rows_for_document"),
        lambda ts: ("b1", 0, 1, " x ", "d1"),
        {"documents": PK},
    ),
    Case(
        "search_page",
        lambda adapter: _match(adapter, _search_sql(1)),
        lambda ts: (" alpha ", 7, "w1", "QUERY", 50, "w1", "QUERY"),
        {"block_search": FULLTEXT, "blocks": PK},
        aliases={"blocks": "b", "block_search": "s"},
    ),
    Case("get_workspace", _q("get_workspace"), lambda ts: ("w1",), {"workspaces": PK}),
    Case(
        "list_documents",
        _q("list_documents"),
        lambda ts: ("w1",),
        {"documents": "idx_documents_workspace"},
    ),
    Case("get_document", _q("get_document"), lambda ts: ("d1",), {"documents": PK}),
    Case(
        "touch_document",
        _q("touch_document"),
        lambda ts: (ts, *TRACE, "d1"),
        {"documents": PK},
    ),
    Case(
        "list_canvases",
        _q("list_canvases"),
        lambda ts: ("w1",),
        {"canvases": "idx_canvases_workspace"},
    ),
    Case("get_canvas", _q("get_canvas"), lambda ts: ("c1",), {"canvases": PK}),
    Case(
        "get_nodes",
        _q("get_nodes"),
        lambda ts: ("c1",),
        {"canvas_nodes": "idx_canvas_nodes_canvas"},
    ),
    Case(
        "get_edges",
        _q("get_edges"),
        lambda ts: ("c1",),
        {"canvas_edges": "idx_canvas_edges_canvas"},
    ),
    Case(
        "delete_nodes",
        _q("delete_nodes"),
        lambda ts: ("c1",),
        {"canvas_nodes": "idx_canvas_nodes_canvas"},
    ),
    Case(
        "delete_edges",
        _q("delete_edges"),
        lambda ts: ("c1",),
        {"canvas_edges": "idx_canvas_edges_canvas"},
    ),
    Case("get_ai_job", _q("get_ai_job"), lambda ts: (JOB,), {"ai_jobs": PK}),
    Case(
        "update_ai_job_status",
        _q("update_ai_job_status"),
        lambda ts: ("running", "", None, None, None, None, None, ts, JOB),
        {"ai_jobs": PK},
    ),
    Case("set_job_outputs", _q("set_job_outputs"), lambda ts: ("{}", ts, JOB), {"ai_jobs": PK}),
    Case(
        "terminal_jobs",
        _q("terminal_jobs"),
        lambda ts: (),
        {"ai_jobs": "idx_ai_jobs_status_created"},
    ),
    Case(
        "stalled_runs",
        _q("stalled_runs"),
        lambda ts: (ts,),
        {"workflow_runs": "idx_workflow_runs_status_heartbeat"},
    ),
    Case("heartbeat_run", _q("heartbeat_run"), lambda ts: (ts, ts, JOB), {"workflow_runs": PK}),
    Case(
        "update_run_status",
        _q("update_run_status"),
        lambda ts: ("running", None, ts, JOB),
        {"workflow_runs": PK},
    ),
    Case(
        "list_node_execs",
        _q("list_node_execs"),
        lambda ts: (JOB,),
        {"workflow_node_executions": "idx_workflow_node_executions_run"},
    ),
    Case(
        "update_node_exec",
        _q("update_node_exec"),
        lambda ts: ("running", None, None, None, ts, JOB),
        {"workflow_node_executions": PK},
    ),
]


def test_every_case_names_a_real_query(db: Database) -> None:
    for case in CASES:
        assert case.sql(db._adapter).strip(), case.name


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hot_query_uses_an_index(db: Database, case: Case) -> None:
    adapter = db._adapter
    sql = adapter.compile(case.sql(adapter))
    query = adapter.fulltext_query(ALPHA.clauses, ALPHA.excluded)
    params = tuple(
        query if p == "QUERY" else p
        for p in case.params(adapter.encode_timestamp(datetime.now(UTC)))
    )
    with adapter.transaction() as s:
        if db.backend == "sqlite":
            rows = s.execute("EXPLAIN QUERY PLAN " + sql, params).fetchall()
            _check_sqlite([r[-1] for r in rows], case)
        else:
            s.execute("SET LOCAL enable_seqscan = off")
            plan = s.execute("EXPLAIN (FORMAT JSON) " + sql, params).fetchone()[0]
            _check_postgresql(plan[0]["Plan"], case)


def _check_sqlite(details: list[str], case: Case) -> None:
    plan = "\n".join(details)
    aliases = case.aliases or {}
    for table, index in case.expect.items():
        name = aliases.get(table, table)
        scans = [d for d in details if d == f"SCAN {name}" or d.startswith(f"SCAN {name} ")]
        assert not scans, f"{case.name}: full scan of {table}:\n{plan}"
        searches = [d for d in details if d.startswith(f"SEARCH {name} ")]
        assert searches, f"{case.name}: {table} is not searched through an index:\n{plan}"
        for line in searches:
            if index == FULLTEXT:
                assert "INTEGER PRIMARY KEY (rowid=?)" in line, (
                    f"{case.name}: {table} rows not read by the rowids of its FTS5 table:\n{plan}"
                )
                assert any("block_search_fulltext VIRTUAL TABLE" in d for d in details), plan
            elif index == PK:
                assert f"sqlite_autoindex_{table}_" in line or "PRIMARY KEY" in line, (
                    f"{case.name}: {table} not searched by its primary key:\n{plan}"
                )
            else:
                assert f"INDEX {index} " in line, (
                    f"{case.name}: {table} not searched through {index}:\n{plan}"
                )


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", ()):
        yield from _nodes(child)


def _check_postgresql(plan: dict[str, Any], case: Case) -> None:
    nodes = list(_nodes(plan))
    shown = "\n".join(
        f"{n['Node Type']} {n.get('Relation Name', '')} {n.get('Index Name', '')}" for n in nodes
    )
    for table, index in case.expect.items():
        expected = (
            f"{table}_pkey"
            if index == PK
            else "block_search_fulltext"
            if index == FULLTEXT
            else index
        )
        on_table = [n for n in nodes if n.get("Relation Name") == table]
        assert on_table, f"{case.name}: {table} does not appear in the plan:\n{shown}"
        for node in on_table:
            kind = node["Node Type"]
            assert kind != "Seq Scan", f"{case.name}: full scan of {table}:\n{shown}"
            if kind in ("Index Scan", "Index Only Scan"):
                used = {node.get("Index Name")}
            elif kind == "Bitmap Heap Scan":
                used = {c.get("Index Name") for c in _nodes(node) if "Index Name" in c}
            elif kind in ("ModifyTable",):
                continue  # the scan that finds the rows is its child
            else:
                raise AssertionError(f"{case.name}: {kind} on {table}:\n{shown}")
            assert expected in used, (
                f"{case.name}: {table} read through {used}, not {expected}:\n{shown}"
            )


def test_a_query_without_an_index_is_caught(db: Database) -> None:
    """The checks above can fail: a filter on an unindexed column is a full scan."""
    case = Case(
        "unindexed",
        lambda adapter: "SELECT id FROM blocks WHERE kind = ?",
        lambda ts: ("paragraph",),
        {"blocks": PK},
    )
    with pytest.raises(AssertionError, match="full scan of blocks"):
        test_hot_query_uses_an_index(db, case)
