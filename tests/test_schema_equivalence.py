"""The schema the migrations produce is the same on SQLite and on PostgreSQL.

Compared by introspection (``Database.schema()``): tables, columns,
nullability, type families, primary keys, foreign keys with their ON DELETE
action, and indexes. Then concrete facts the requirements name, checked on
each backend: the traceability columns of every content table, the keys and
cascades, and the CHECK constraint that an AI edit must name its job.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from handshake_storage import (
    Database,
    MutationMetadata,
    NewBlock,
    NewCanvas,
    NewCanvasEdge,
    NewCanvasNode,
    NewDocument,
    NewWorkspace,
    ValidationError,
    WriteContext,
    open_database,
)
from handshake_storage.ledger import SYNC_TABLES
from handshake_storage.migrator import BOOKKEEPING_TABLES, load_migrations
from handshake_storage.models import WriteActorKind
from handshake_storage.schema import BOOLEAN, FLOAT, INTEGER, TEXT, TIMESTAMP, SchemaSnapshot

SHIPPED = load_migrations()
CONTENT_TABLES = ("workspaces", "documents", "blocks", "canvases", "canvas_nodes", "canvas_edges")
#: name -> (type family, nullable)
TRACEABILITY = {
    "last_actor_kind": (TEXT, False),
    "last_actor_id": (TEXT, True),
    "last_job_id": (TEXT, True),
    "last_workflow_id": (TEXT, True),
    "edit_event_id": (TEXT, False),
}


def describe_difference(a: SchemaSnapshot, b: SchemaSnapshot) -> str:
    lines = []
    for name in sorted(set(a.tables) | set(b.tables)):
        ta, tb = a.tables.get(name), b.tables.get(name)
        if ta == tb:
            continue
        if ta is None or tb is None:
            lines.append(f"table {name}: only on {'postgresql' if ta is None else 'sqlite'}")
            continue
        for col in sorted(set(ta.columns) ^ set(tb.columns)):
            side = "sqlite" if col in ta.columns else "postgresql"
            lines.append(f"{name}: column {col} only on {side}")
        if ta.primary_key != tb.primary_key:
            lines.append(f"{name}: primary key {ta.primary_key} vs {tb.primary_key}")
        for fk in sorted(set(ta.foreign_keys) ^ set(tb.foreign_keys)):
            side = "sqlite" if fk in ta.foreign_keys else "postgresql"
            lines.append(f"{name}: foreign key {fk} only on {side}")
    for name in sorted(set(a.indexes) | set(b.indexes)):
        if a.indexes.get(name) != b.indexes.get(name):
            lines.append(f"index {name}: {a.indexes.get(name)} vs {b.indexes.get(name)}")
    return "\n".join(lines)


@pytest.fixture
def both(postgres_server, tmp_path) -> Iterator:
    """Open a fresh SQLite and a fresh PostgreSQL database, migrated to a version."""
    opened: list[Database] = []
    created: list[str] = []

    def make(version: int | None) -> tuple[Database, Database]:
        name = postgres_server.create()
        created.append(name)
        sqlite = open_database(f"sqlite:///{tmp_path / f'{name}.db'}")
        postgresql = open_database(postgres_server.url_for(name))
        opened.extend((sqlite, postgresql))
        for db in (sqlite, postgresql):
            db.run_migrations(version)
        return sqlite, postgresql

    yield make
    for db in opened:
        db.close()
    for name in created:
        postgres_server.drop(name)


def test_sqlite_and_postgresql_schemas_are_equivalent(both):
    sqlite, postgresql = both(None)
    a, b = sqlite.schema(), postgresql.schema()

    assert a == b, "schemas differ:\n" + describe_difference(a, b)
    # Not vacuous: every canonical table, the projection and the bookkeeping are there.
    assert set(a.tables) == {
        *CONTENT_TABLES,
        "ai_jobs",
        "workflow_runs",
        "workflow_node_executions",
        "block_search",
        *BOOKKEEPING_TABLES,
        *SYNC_TABLES,
    }
    assert len(a.indexes) >= len(CONTENT_TABLES)
    families = {c.family for t in a.tables.values() for c in t.columns}
    assert families == {TEXT, INTEGER, FLOAT, BOOLEAN, TIMESTAMP}


@pytest.mark.parametrize("version", range(len(SHIPPED)), ids=lambda v: f"at-{v:04d}")
def test_schemas_are_equivalent_at_every_intermediate_version(both, version):
    sqlite, postgresql = both(version)
    a, b = sqlite.schema(), postgresql.schema()
    assert a == b, "schemas differ:\n" + describe_difference(a, b)
    assert set(a.tables) >= set(BOOKKEEPING_TABLES)


def test_the_comparison_sees_a_difference(both):
    """Not vacuous: one migration more on one side breaks the equality."""
    sqlite, postgresql = both(1)
    assert sqlite.schema() == postgresql.schema()
    postgresql.run_migrations(2)
    a, b = sqlite.schema(), postgresql.schema()
    assert a != b
    assert "table ai_jobs: only on postgresql" in describe_difference(a, b)


# -- concrete facts, on each backend ------------------------------------------------


@pytest.fixture
def schema(db) -> SchemaSnapshot:
    return db.schema()


def columns(snapshot: SchemaSnapshot, table: str) -> dict[str, tuple[str, bool]]:
    return {c.name: (c.family, c.nullable) for c in snapshot.tables[table].columns}


@pytest.mark.parametrize("table", CONTENT_TABLES)
def test_every_content_table_carries_the_traceability_columns(schema, table):
    cols = columns(schema, table)
    for name, expected in TRACEABILITY.items():
        assert cols.get(name) == expected, f"{table}.{name}"
    assert cols["id"] == (TEXT, False)
    assert cols["created_at"] == (TIMESTAMP, False)
    assert cols["updated_at"] == (TIMESTAMP, False)


def test_no_other_table_has_traceability_columns(schema):
    for name, table in schema.tables.items():
        if name not in CONTENT_TABLES and name != "sync_changes":  # the ledger records provenance
            assert not {c.name for c in table.columns} & set(TRACEABILITY), name


def test_canonical_columns_and_type_families(schema):
    assert columns(schema, "ai_jobs") == {
        "id": (TEXT, False),
        "trace_id": (TEXT, False),
        "workflow_run_id": (TEXT, True),
        "job_kind": (TEXT, False),
        "status": (TEXT, False),
        "status_reason": (TEXT, False),
        "error_message": (TEXT, True),
        "protocol_id": (TEXT, False),
        "profile_id": (TEXT, False),
        "capability_profile_id": (TEXT, False),
        "access_mode": (TEXT, False),
        "safety_mode": (TEXT, False),
        "entity_refs": (TEXT, False),
        "planned_operations": (TEXT, False),
        "metrics": (TEXT, False),
        "job_inputs": (TEXT, True),
        "job_outputs": (TEXT, True),
        "is_pinned": (BOOLEAN, False),
        "created_at": (TIMESTAMP, False),
        "updated_at": (TIMESTAMP, False),
    }
    runs = columns(schema, "workflow_runs")
    assert {k: runs[k] for k in ("job_id", "status", "last_heartbeat")} == {
        "job_id": (TEXT, False),
        "status": (TEXT, False),
        "last_heartbeat": (TIMESTAMP, False),
    }
    executions = columns(schema, "workflow_node_executions")
    for name in ("workflow_run_id", "node_id", "node_type", "status", "started_at"):
        assert executions[name][1] is False, name
    assert executions["sequence"] == (INTEGER, False)
    assert executions["finished_at"] == (TIMESTAMP, True)
    for name in ("input_payload", "output_payload", "error_message"):
        assert executions[name] == (TEXT, True), name
    blocks = columns(schema, "blocks")
    assert blocks["sequence"] == (INTEGER, False)
    for name in ("kind", "raw_content", "display_content", "derived_content"):
        assert blocks[name] == (TEXT, False), name
    nodes = columns(schema, "canvas_nodes")
    assert nodes["position_x"] == nodes["position_y"] == (FLOAT, False)
    assert nodes["data"] == (TEXT, False)


def test_primary_keys(schema):
    for name, table in schema.tables.items():
        expected = {
            "block_search": ("block_id", "chunk"),
            "schema_migrations": ("version",),
            "sync_replica": ("slot",),
            "sync_counters": ("origin_id", "scope"),
            "sync_changes": ("origin_id", "scope", "seq"),
            "sync_peers": ("peer_id", "origin_id", "scope"),
            "sync_pruned": ("origin_id", "scope"),
        }.get(name, ("id",))
        assert table.primary_key == expected, name


def test_foreign_keys_cascade_as_required(schema):
    found = {
        (name, fk.columns, fk.ref_table, fk.ref_columns, fk.on_delete)
        for name, table in schema.tables.items()
        for fk in table.foreign_keys
    }
    assert found == {
        ("documents", ("workspace_id",), "workspaces", ("id",), "CASCADE"),
        ("blocks", ("document_id",), "documents", ("id",), "CASCADE"),
        ("canvases", ("workspace_id",), "workspaces", ("id",), "CASCADE"),
        ("canvas_nodes", ("canvas_id",), "canvases", ("id",), "CASCADE"),
        ("canvas_edges", ("canvas_id",), "canvases", ("id",), "CASCADE"),
        ("canvas_edges", ("from_node_id",), "canvas_nodes", ("id",), "CASCADE"),
        ("canvas_edges", ("to_node_id",), "canvas_nodes", ("id",), "CASCADE"),
        ("workflow_runs", ("job_id",), "ai_jobs", ("id",), "CASCADE"),
        ("workflow_node_executions", ("workflow_run_id",), "workflow_runs", ("id",), "CASCADE"),
        ("block_search", ("block_id",), "blocks", ("id",), "CASCADE"),
    }


def test_every_foreign_key_is_backed_by_an_index(schema):
    """A cascading delete must find the child rows without scanning the table."""
    for name, table in schema.tables.items():
        candidates = [table.primary_key] + [
            index.columns for index in schema.indexes.values() if index.table == name
        ]
        for fk in table.foreign_keys:
            assert any(cols[: len(fk.columns)] == fk.columns for cols in candidates), (
                f"{name}{fk.columns} has no index"
            )


def test_indexes_are_on_existing_columns(schema):
    assert schema.indexes
    for index in schema.indexes.values():
        names = {c.name for c in schema.tables[index.table].columns}
        assert index.columns and set(index.columns) <= names, index.name


# -- the AI CHECK constraint ------------------------------------------------------------


class SwitchableGuard:
    """Stamps writes as asked: honestly, or as an AI edit without a job id.

    A guard that forgets the job id is exactly what the CHECK constraint on
    every content table exists for: the database refuses the row.
    """

    def __init__(self) -> None:
        self.mode = "honest"
        self.job_id = uuid.uuid4()

    def validate_write(self, ctx: WriteContext, resource_id: str) -> MutationMetadata:
        kind, job_id = ctx.actor_kind, ctx.job_id
        if self.mode != "honest":
            kind = WriteActorKind.AI
            job_id = None if self.mode == "ai-without-job" else self.job_id
        return MutationMetadata(
            actor_kind=kind,
            actor_id=ctx.actor_id,
            job_id=job_id,
            workflow_id=uuid.uuid4(),
            edit_event_id=uuid.uuid4(),
            resource_id=resource_id,
            timestamp=datetime.now(UTC),
        )


def test_the_database_refuses_an_ai_row_without_a_job_id(databases):
    guard = SwitchableGuard()
    db = databases.open(guard=guard)
    human = WriteContext.human("ada")
    workspace = db.create_workspace(human, NewWorkspace(name="w"))
    document = db.create_document(human, NewDocument(workspace_id=workspace.id, title="d"))
    canvas = db.create_canvas(human, NewCanvas(workspace_id=workspace.id, title="c"))
    nodes = [
        NewCanvasNode(kind="n", position_x=1.0, position_y=2.0, id="n1"),
        NewCanvasNode(kind="n", position_x=3.0, position_y=4.0, id="n2"),
    ]
    edges = [NewCanvasEdge(from_node_id="n1", to_node_id="n2", kind="e", id="e1")]
    block = NewBlock(document_id=document.id, kind="p", sequence=0, raw_content="text")

    guard.mode = "ai-without-job"
    attempts = {
        # (what is attempted, the table whose CHECK constraint refuses it)
        ("create_workspace", "workspaces"): lambda: db.create_workspace(
            human, NewWorkspace(name="w2")
        ),
        ("create_document", "documents"): lambda: db.create_document(
            human, NewDocument(workspace_id=workspace.id, title="d2")
        ),
        ("create_block", "blocks"): lambda: db.create_block(human, block),
        # replace_blocks stamps the document first, in the same transaction
        ("replace_blocks", "documents"): lambda: db.replace_blocks(human, document.id, [block]),
        ("create_canvas", "canvases"): lambda: db.create_canvas(
            human, NewCanvas(workspace_id=workspace.id, title="c2")
        ),
        ("update_canvas_graph", "canvases"): lambda: db.update_canvas_graph(
            human, canvas.id, nodes, edges
        ),
    }
    for (what, table), attempt in attempts.items():
        with pytest.raises(ValidationError) as caught:
            attempt()
        assert f"ck_{table}_ai_job" in str(caught.value), what

    assert [w.id for w in db.list_workspaces()] == [workspace.id]
    assert [d.id for d in db.list_documents(workspace.id)] == [document.id]
    assert db.get_blocks(document.id) == []
    assert [c.id for c in db.list_canvases(workspace.id)] == [canvas.id]
    graph = db.get_canvas_with_graph(canvas.id)
    assert (graph.nodes, graph.edges) == ([], [])
    assert graph.canvas.last_actor_kind is WriteActorKind.HUMAN
    assert db.get_document(document.id).last_actor_kind is WriteActorKind.HUMAN

    guard.mode = "ai-with-job"  # the same AI row with its job id is accepted
    stored = db.create_workspace(human, NewWorkspace(name="w3"))
    again = db.get_workspace(stored.id)
    assert again is not None
    assert again.last_actor_kind is WriteActorKind.AI
    assert again.last_job_id == guard.job_id
    db.update_canvas_graph(human, canvas.id, nodes, edges)
    assert [n.last_job_id for n in db.get_canvas_with_graph(canvas.id).nodes] == [guard.job_id] * 2
