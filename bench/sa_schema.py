"""SQLAlchemy 2 table definitions of the migrated handshake schema (the tables
the workload touches), shared by the Core and ORM implementations.

The schema itself is created by handshake_storage's migrations; these
definitions only describe it. Stored forms must be identical to what
handshake_storage writes, so two column types are custom (the idiomatic
SQLAlchemy way): ``UTCDateTime`` stores fixed-width UTC ISO text on SQLite
and ``timestamptz`` on PostgreSQL; ``JSONText`` stores compact JSON text
(``separators=(",", ":")``, ``ensure_ascii=False``) in a TEXT column.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

from .common import dumps


class UTCDateTime(TypeDecorator[datetime]):
    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String())
        return dialect.type_descriptor(DateTime(timezone=True))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None or dialect.name != "sqlite":
            return value
        return value.isoformat(" ", "microseconds")

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        if value is None or dialect.name != "sqlite":
            return value
        return datetime.fromisoformat(value)


class JSONText(TypeDecorator[Any]):
    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        return None if value is None else dumps(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        return None if value is None else json.loads(value)


metadata = MetaData()


def _trace() -> list[Column[Any]]:
    return [
        Column("last_actor_kind", String, nullable=False),
        Column("last_actor_id", String),
        Column("last_job_id", String),
        Column("last_workflow_id", String),
        Column("edit_event_id", String, nullable=False),
    ]


workspaces = Table(
    "workspaces",
    metadata,
    Column("id", String, primary_key=True),
    Column("name", String, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    *_trace(),
)

documents = Table(
    "documents",
    metadata,
    Column("id", String, primary_key=True),
    Column("workspace_id", String, ForeignKey("workspaces.id"), nullable=False),
    Column("title", String, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    *_trace(),
)

blocks = Table(
    "blocks",
    metadata,
    Column("id", String, primary_key=True),
    Column("document_id", String, ForeignKey("documents.id"), nullable=False),
    Column("kind", String, nullable=False),
    Column("sequence", BigInteger, nullable=False),
    Column("raw_content", String, nullable=False),
    Column("display_content", String, nullable=False),
    Column("derived_content", JSONText, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    *_trace(),
)

block_search = Table(
    "block_search",
    metadata,
    Column("block_id", String, ForeignKey("blocks.id"), primary_key=True),
    Column("chunk", Integer, primary_key=True),
    Column("workspace_id", String, nullable=False),
    Column("word_count", Integer, nullable=False),
    Column("tokens", String, nullable=False),
)

canvases = Table(
    "canvases",
    metadata,
    Column("id", String, primary_key=True),
    Column("workspace_id", String, ForeignKey("workspaces.id"), nullable=False),
    Column("title", String, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    *_trace(),
)

canvas_nodes = Table(
    "canvas_nodes",
    metadata,
    Column("id", String, primary_key=True),
    Column("canvas_id", String, ForeignKey("canvases.id"), nullable=False),
    Column("ordinal", BigInteger, nullable=False),
    Column("kind", String, nullable=False),
    Column("position_x", Float, nullable=False),
    Column("position_y", Float, nullable=False),
    Column("data", JSONText, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    *_trace(),
)

canvas_edges = Table(
    "canvas_edges",
    metadata,
    Column("id", String, primary_key=True),
    Column("canvas_id", String, ForeignKey("canvases.id"), nullable=False),
    Column("ordinal", BigInteger, nullable=False),
    Column("from_node_id", String, ForeignKey("canvas_nodes.id"), nullable=False),
    Column("to_node_id", String, ForeignKey("canvas_nodes.id"), nullable=False),
    Column("kind", String, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    *_trace(),
)

ai_jobs = Table(
    "ai_jobs",
    metadata,
    Column("id", String, primary_key=True),
    Column("trace_id", String, nullable=False),
    Column("workflow_run_id", String),
    Column("job_kind", String, nullable=False),
    Column("status", String, nullable=False),
    Column("status_reason", String, nullable=False),
    Column("error_message", String),
    Column("protocol_id", String, nullable=False),
    Column("profile_id", String, nullable=False),
    Column("capability_profile_id", String, nullable=False),
    Column("access_mode", String, nullable=False),
    Column("safety_mode", String, nullable=False),
    Column("entity_refs", JSONText, nullable=False),
    Column("planned_operations", JSONText, nullable=False),
    Column("metrics", JSONText, nullable=False),
    Column("job_inputs", JSONText),
    Column("job_outputs", JSONText),
    Column("is_pinned", Boolean, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)


def sa_url(url: str) -> str:
    """A handshake URL as an SQLAlchemy URL (psycopg 3 driver on PostgreSQL)."""
    if url.startswith("sqlite:"):
        return url
    rest = url.split("://", 1)[1]
    return f"postgresql+psycopg://{rest}"


def sqlite_pragmas(engine: Any) -> None:
    """The durability every implementation runs with: WAL + synchronous=FULL
    (+ foreign keys, as handshake_storage)."""
    from sqlalchemy import event

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, record: Any) -> None:
        cur = dbapi_connection.cursor()
        cur.execute("PRAGMA foreign_keys = ON")
        cur.execute("PRAGMA synchronous = FULL")
        cur.execute("PRAGMA journal_mode = WAL").fetchone()
        cur.close()
