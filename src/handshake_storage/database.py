"""The storage interface: one API over SQLite and PostgreSQL.

:class:`Database` holds the business logic, written once. It validates input
at the boundary (``validation.py``), asks the guard to authorize every
content write, runs the portable queries of ``queries.py`` through the
backend adapter, and wraps rows in lazy records (``models.py``). It never sees a
driver: connections stay inside the adapter's transactions.

Rebuildable data policy: every index and every derived table (the
``block_search`` rows and their engine full-text index) is declared ``-- @rebuildable`` in the
migration that creates it. Such objects are never migrated row by row or
copied between databases; they are dropped and recomputed from the canonical
tables (``handshake-storage indexes rebuild``), and ``indexes verify`` proves
a rebuild reproduces the current state. The search rows are kept current
in the same transaction as every block write (the engines keep their
full-text index current with them).
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from functools import cached_property
from operator import itemgetter
from typing import Any, NamedTuple, TypeVar
from uuid import UUID

from . import encoding, search, tables
from . import validation as check
from .backends import Options, create_adapter
from .backends.base import AUTOCOMMIT, SNAPSHOT, WRITE, Adapter
from .errors import (
    BackendUnavailableError,
    ConflictError,
    GuardError,
    NotFoundError,
    StorageError,
    ValidationError,
)
from .guard import DefaultStorageGuard, MutationMetadata, StorageGuard, WriteContext
from .migrator import MigrationState, Migrator, Plan
from .models import (
    METRIC_FIELDS,
    TERMINAL_JOB_STATES,
    AccessMode,
    AiJob,
    Block,
    BlockUpdate,
    Canvas,
    CanvasEdge,
    CanvasGraph,
    CanvasNode,
    Document,
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
    PruneReport,
    SafetyMode,
    SearchHit,
    WorkflowNodeExecution,
    WorkflowRun,
    Workspace,
    WriteActorKind,
)
from .queries import PORTABLE, placeholders
from .rebuildable import Indexes
from .record import Record
from .schema import SchemaSnapshot
from .tables import (
    AI_JOBS,
    BLOCKS,
    CANVAS_EDGES,
    CANVAS_NODES,
    CANVASES,
    DOCUMENTS,
    STAMP,
    WORKFLOW_NODE_EXECUTIONS,
    WORKFLOW_RUNS,
    WORKSPACES,
)
from .url import default_url, parse_url

T = TypeVar("T")
R = TypeVar("R", bound=Record)

#: Ids per statement when deleting or measuring many rows at once.
_ID_BATCH = 500


def open_database(
    url: str | None = None, *, guard: StorageGuard | None = None, **options: Any
) -> Database:
    """Open the database at ``url`` (default: ``HANDSHAKE_DATABASE_URL`` or the
    embedded SQLite file). Options: see :class:`handshake_storage.backends.Options`.

    Nothing is connected until the first call; use :meth:`Database.ping` to
    check reachability up front.
    """
    parsed = parse_url(url if url is not None else default_url())
    try:
        opts = Options(**options)
    except TypeError as exc:
        raise ValidationError(f"unknown option: {exc}") from None
    if guard is not None and not isinstance(guard, StorageGuard):
        raise ValidationError("guard must have a validate_write(ctx, resource_id) method")
    return Database(create_adapter(parsed, opts), guard)


class Database:
    """A Handshake database. Thread-safe; use as a context manager or call
    :meth:`close`. Content ids are ``str``; job, trace, run and execution ids
    are ``uuid.UUID``; datetimes are timezone-aware UTC."""

    def __init__(self, adapter: Adapter, guard: StorageGuard | None = None) -> None:
        self._adapter = adapter
        self._guard: StorageGuard = guard if guard is not None else DefaultStorageGuard()
        self._q = PORTABLE.compiled_for(adapter)
        self._tx = adapter.transaction
        self._fetch = adapter.fetch
        self._ts = adapter.decode_timestamp
        self._enc = adapter.encode_timestamp

    # -- lifecycle ------------------------------------------------------------

    @property
    def backend(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self._adapter.features.name

    @property
    def url(self) -> str:
        """The database URL with any password masked."""
        return self._adapter.url.redacted

    def __repr__(self) -> str:
        return f"Database({self.url!r})"

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close every pooled connection; later calls raise BackendUnavailableError."""
        self._adapter.close()

    def ping(self) -> None:
        """Round-trip to the database; raises BackendUnavailableError if unreachable."""
        with self._tx(AUTOCOMMIT) as s:
            s.execute(self._q.ping).fetchone()

    def describe(self) -> dict[str, str]:
        """Backend facts (version, file or server) for diagnostics; no secrets."""
        self._check_open()
        return self._adapter.describe()

    def _check_open(self) -> None:
        # describe() connects outside the pool, so it must check for itself
        # that the database was not closed.
        if self._adapter.pool.closed:
            raise BackendUnavailableError("the database is closed")

    def schema(self) -> SchemaSnapshot:
        """The live schema as a backend-neutral snapshot (tables, keys, indexes)."""
        with self._tx(SNAPSHOT) as s:
            return self._adapter.introspect(s)

    # -- migrations -------------------------------------------------------------

    @cached_property
    def migrations(self) -> Migrator:
        """The migration runner of this database: ``migrate``, ``rollback``,
        ``plan``, ``status``, ``applied``, ``accept_checksum``."""
        return Migrator(self._adapter)

    @cached_property
    def indexes(self) -> Indexes:
        """This database's rebuildable objects: ``declared``, ``rebuild``,
        ``verify``, ``problems``."""
        return Indexes(self._adapter, lambda: self.migrations.current_version())

    def run_migrations(self, target: int | None = None) -> Plan:
        """Apply pending migrations up to ``target`` (default: all). Safe to call
        from several processes at once; returns what was applied."""
        return self.migrations.migrate(target)

    def rollback_migrations(self, target: int) -> Plan:
        """Revert applied migrations above ``target``; returns what was reverted."""
        return self.migrations.rollback(check.non_negative_integer(target, "target"))

    def migration_status(self) -> list[MigrationState]:
        """Every known or applied migration with its state and checksum."""
        return self.migrations.status()

    # -- the guard ----------------------------------------------------------------

    def validate_write_with_guard(self, ctx: WriteContext, resource_id: str) -> MutationMetadata:
        """Ask the guard whether ``ctx`` may write ``resource_id``; writes nothing."""
        return self._authorize(ctx, check.identifier(resource_id, "resource_id"))

    def _authorize(self, ctx: Any, resource_id: str) -> MutationMetadata:
        ctx = _normalized_context(ctx)
        try:
            meta = self._guard.validate_write(ctx, resource_id)
        except StorageError:
            raise
        except Exception as exc:
            raise GuardError(f"the storage guard failed: {exc}") from None
        if not isinstance(meta, MutationMetadata):
            raise GuardError("the storage guard did not return MutationMetadata")
        # A custom guard's metadata gets the declared types (an enum, UUIDs,
        # text every backend stores, a UTC timestamp): it is both stored and
        # returned on the model.
        try:
            actor_id = check.optional_text(meta.actor_id, "guard actor_id")
            if (
                type(meta.actor_kind) is WriteActorKind
                and type(meta.timestamp) is datetime
                and meta.timestamp.tzinfo is UTC
                and type(meta.edit_event_id) is UUID
                and (meta.job_id is None or type(meta.job_id) is UUID)
                and (meta.workflow_id is None or type(meta.workflow_id) is UUID)
                and actor_id is meta.actor_id
            ):
                return meta
            return MutationMetadata(
                check.enum(WriteActorKind, meta.actor_kind, "guard actor_kind"),
                actor_id,
                check.optional_uuid(meta.job_id, "guard job_id"),
                check.optional_uuid(meta.workflow_id, "guard workflow_id"),
                check.uuid(meta.edit_event_id, "guard edit_event_id"),
                meta.resource_id,
                check.timestamp(meta.timestamp, "guard timestamp"),
            )
        except ValidationError as exc:
            raise GuardError(f"the storage guard returned invalid metadata: {exc}") from None

    def _stamp(self, meta: MutationMetadata) -> tuple[Any, ...]:
        """The stored values of the columns ``tables.STAMP`` names, in that
        order: created_at, updated_at and the traceability columns. Their
        tail (``[1:]``) is what ``TRACE_SET`` statements set after updated_at."""
        now = self._enc(meta.timestamp)
        return (
            now,
            now,
            meta.actor_kind.value,
            meta.actor_id,
            encoding.opt_str(meta.job_id),
            encoding.opt_str(meta.workflow_id),
            str(meta.edit_event_id),
        )

    def _insert(self, table: tables.Table, sql: str, row: tuple[Any, ...], record: type[R]) -> R:
        """Insert one row and return the record over it, as stored."""
        with _inserting(table, row), self._tx(AUTOCOMMIT) as s:
            s.execute(sql, row)
        return record._from_row(row, self._ts)

    # -- the three shapes of a read or a delete -----------------------------

    def _all(self, sql: str, params: tuple[Any, ...], record: type[R]) -> list[R]:
        return record._from_rows(self._fetch(sql, params), self._ts)

    def _one(self, sql: str, key: Any, record: type[R], what: str) -> R:
        r = self._fetch(sql, (key,), True)
        if r is None:
            raise NotFoundError(f"{what} {key!r} does not exist")
        return record._from_row(r, self._ts)

    def _delete(self, ctx: WriteContext, sql: str, key: str, what: str) -> None:
        self._authorize(ctx, key)
        with self._tx(AUTOCOMMIT) as s:
            deleted = s.execute(sql, (key,)).rowcount
        if not deleted:
            raise NotFoundError(f"{what} {key!r} does not exist")

    # -- workspaces ---------------------------------------------------------------

    def list_workspaces(self) -> list[Workspace]:
        """All workspaces, oldest first (ties by id)."""
        return self._all(self._q.list_workspaces, (), Workspace)

    def get_workspace(self, id: str) -> Workspace | None:
        """The workspace, or ``None`` if there is none with this id."""
        id = check.identifier(id, "workspace id")
        with self._tx(AUTOCOMMIT) as s:
            r = s.execute(self._q.get_workspace, (id,)).fetchone()
        return None if r is None else Workspace._from_row(r, self._ts)

    def create_workspace(self, ctx: WriteContext, workspace: NewWorkspace) -> Workspace:
        """Insert a workspace; ConflictError if the id is taken."""
        new = _expect(workspace, NewWorkspace, "workspace")
        name = check.text(new.name, "name")
        id = _new_id(new.id)
        stamp = self._stamp(self._authorize(ctx, id))
        row = _WORKSPACE_ROW(id, name, *stamp)
        return self._insert(WORKSPACES, self._q.insert_workspace, row, Workspace)

    def delete_workspace(self, ctx: WriteContext, id: str) -> None:
        """Delete a workspace with its documents, blocks and canvases."""
        key = check.identifier(id, "workspace id")
        self._delete(ctx, self._q.delete_workspace, key, "workspace")

    # -- documents ----------------------------------------------------------------

    def list_documents(self, workspace_id: str) -> list[Document]:
        """The workspace's documents, oldest first (ties by id)."""
        key = check.identifier(workspace_id, "workspace id")
        return self._all(self._q.list_documents, (key,), Document)

    def get_document(self, id: str) -> Document:
        """The document; NotFoundError if missing."""
        key = check.identifier(id, "document id")
        return self._one(self._q.get_document, key, Document, "document")

    def create_document(self, ctx: WriteContext, document: NewDocument) -> Document:
        """Insert a document into an existing workspace."""
        new = _expect(document, NewDocument, "document")
        workspace_id = check.identifier(new.workspace_id, "workspace_id")
        title = check.text(new.title, "title")
        id = _new_id(new.id)
        stamp = self._stamp(self._authorize(ctx, id))
        row = _DOCUMENT_ROW(id, workspace_id, title, *stamp)
        return self._insert(DOCUMENTS, self._q.insert_document, row, Document)

    def delete_document(self, ctx: WriteContext, id: str) -> None:
        """Delete a document and its blocks."""
        key = check.identifier(id, "document id")
        self._delete(ctx, self._q.delete_document, key, "document")

    # -- blocks -------------------------------------------------------------------

    def get_blocks(self, document_id: str) -> list[Block]:
        """The document's blocks by sequence, then id."""
        key = check.identifier(document_id, "document id")
        return self._all(self._q.get_blocks, (key,), Block)

    def get_block(self, id: str) -> Block:
        """The block; NotFoundError if missing."""
        key = check.identifier(id, "block id")
        return self._one(self._q.get_block, key, Block, "block")

    def create_block(self, ctx: WriteContext, block: NewBlock) -> Block:
        """Insert a block and index it for search, atomically."""
        values = _block_values(block)
        stamp = self._stamp(self._authorize(ctx, values.id))
        row = _BLOCK_ROW(*values, *stamp)
        rows = search.index_rows(values.id, values.raw_content)
        with _inserting(BLOCKS, row), self._tx(WRITE) as s:
            s.execute(self._q.insert_block, row)
            if rows:
                s.executemany(
                    self._q.insert_search_rows_for_document,
                    [(*r, values.document_id) for r in rows],
                )
        return Block._from_row(row, self._ts)

    def update_block(self, ctx: WriteContext, id: str, update: BlockUpdate) -> Block:
        """Change the given fields of a block; returns the block as stored."""
        id = check.identifier(id, "block id")
        upd = _expect(update, BlockUpdate, "update")
        kind = check.optional_text(upd.kind, "kind")
        sequence = None if upd.sequence is None else check.integer(upd.sequence, "sequence")
        raw = check.optional_text(upd.raw_content, "raw_content")
        display = check.optional_text(upd.display_content, "display_content")
        derived = check.optional_json_text(upd.derived_content, "derived_content")
        updated_and_trace = self._stamp(self._authorize(ctx, id))[1:]
        rows = search.index_rows(id, raw) if raw is not None else []
        with self._tx(WRITE) as s:
            r = s.execute(
                self._q.update_block,
                (kind, sequence, raw, display, derived, *updated_and_trace, id),
            ).fetchone()
            if r is None:
                raise NotFoundError(f"block {id!r} does not exist")
            if raw is not None:
                s.execute(self._q.delete_search_rows, (id,))
                if rows:
                    document = r[_B_DOCUMENT]
                    s.executemany(
                        self._q.insert_search_rows_for_document, [(*x, document) for x in rows]
                    )
        return Block._from_row(r, self._ts)

    def delete_block(self, ctx: WriteContext, id: str) -> None:
        """Delete a block (its search rows go with it)."""
        key = check.identifier(id, "block id")
        self._delete(ctx, self._q.delete_block, key, "block")

    def replace_blocks(
        self, ctx: WriteContext, document_id: str, blocks: Sequence[NewBlock]
    ) -> list[Block]:
        """Replace all blocks of a document at once: all of the new content or,
        on any failure, none of it. Concurrent replacements of one document
        serialize. The document is stamped as changed by ``ctx``."""
        document_id = check.identifier(document_id, "document id")
        values = [_block_values(b) for b in _sequence(blocks, "blocks")]
        seen: set[str] = set()
        for v in values:
            if v.document_id != document_id:
                raise ValidationError(
                    f"block {v.id!r} belongs to document {v.document_id!r}, not {document_id!r}"
                )
            if v.id in seen:
                raise ValidationError(f"block id {v.id!r} appears twice")
            seen.add(v.id)
        stamp = self._stamp(self._authorize(ctx, document_id))
        q = self._q
        make = _BLOCK_ROW
        rows = [make(*v, *stamp) for v in values]
        indexed = [r for v in values for r in search.index_rows(v.id, v.raw_content)]
        with self._tx(WRITE) as s:
            r = s.execute(q.touch_document, (*stamp[1:], document_id)).fetchone()
            if r is None:
                raise NotFoundError(f"document {document_id!r} does not exist")
            workspace_id = r[0]
            s.execute(q.delete_document_blocks, (document_id,))
            if rows:
                insert = self._adapter.insert_rows
                insert(s, BLOCKS.name, BLOCKS.names, q.insert_block, rows)
                if indexed:
                    found = [(*r, workspace_id) for r in indexed]
                    insert(s, "block_search", search.COLUMNS, q.insert_search_row, found)
        # The results are records over the rows as stored (decoded when read),
        # like those get_blocks returns: no eager JSON parse per block.
        ts = self._ts
        return Block._from_rows(sorted(rows, key=_block_row_order), ts)

    def search_blocks(
        self, workspace_id: str, query: str, limit: int = 50, offset: int = 0
    ) -> list[Block]:
        """The workspace's blocks that match ``query``, best first: see
        :meth:`search_hits` (same blocks, same order)."""
        return [hit.block for hit in self.search_hits(workspace_id, query, limit, offset)]

    def search_hits(
        self, workspace_id: str, query: str, limit: int = 50, offset: int = 0
    ) -> list[SearchHit]:
        """Search the raw_content of the workspace's blocks.

        Words are AND-ed; ``"a phrase"`` matches consecutive words, ``word*``
        a prefix, ``-word`` excludes, ``a OR b`` either. Words are compared
        NFC-normalized and casefolded. Results are ordered by score (higher
        first), then block id, and paged by ``limit`` and ``offset``; each
        carries its score and a snippet. A malformed query is a
        ValidationError. See search.py for the words and the score."""
        workspace_id = check.identifier(workspace_id, "workspace id")
        parsed = search.parse(check.text(query, "query"))
        limit = check.integer(limit, "limit")
        if not 1 <= limit <= 10_000:
            raise ValidationError("limit must be between 1 and 10000")
        offset = check.integer(offset, "offset")
        if not 0 <= offset <= 1_000_000:
            raise ValidationError("offset must be between 0 and 1000000")
        adapter = self._adapter
        match = adapter.fulltext_match("s", "block_search", "tokens")
        atoms = parsed.scored
        with self._tx(SNAPSHOT) as s:
            long_ids = [
                r[0]
                for r in s.execute(
                    adapter.compile(PORTABLE.search_long_candidates.replace("{match}", match)),
                    (workspace_id, adapter.fulltext_query([parsed.candidate_terms()], [])),
                ).fetchall()
            ]
            scored = self._score_long_blocks(s, parsed, long_ids)
            # With long blocks among the results, the page is cut after merging.
            page = (offset + limit, 0) if scored else (limit, offset)
            found = s.execute(
                adapter.compile(_search_sql(len(atoms)).replace("{match}", match)),
                (
                    *(x for a in atoms for x in (a.pattern, len(a.pattern))),
                    workspace_id,
                    adapter.fulltext_query(parsed.clauses, parsed.excluded),
                    *page,
                ),
            ).fetchall()
        ts = self._ts
        hits = [(row[-1], Block._from_row(row[:-1], ts)) for row in found]
        if scored:
            hits = sorted(hits + scored, key=lambda h: (-h[0], h[1].id))[offset : offset + limit]
        return [SearchHit(b, score, search.snippet(parsed, b.raw_content)) for score, b in hits]

    def _score_long_blocks(
        self, s: Any, parsed: search.Query, ids: list[str]
    ) -> list[tuple[int, Block]]:
        """Blocks too large for one index row, matched and scored from their
        text (the engines only found them as candidates)."""
        scored = []
        for start in range(0, len(ids), _ID_BATCH):
            batch = ids[start : start + _ID_BATCH]
            sql = self._adapter.compile(
                PORTABLE.get_blocks_by_id.replace("{ids}", placeholders(len(batch)))
            )
            for row in s.execute(sql, batch).fetchall():
                block = Block._from_row(row, self._ts)
                score = search.evaluate(parsed, block.raw_content)
                if score is not None:
                    scored.append((score, block))
        return scored

    # -- canvases -----------------------------------------------------------------

    def create_canvas(self, ctx: WriteContext, canvas: NewCanvas) -> Canvas:
        """Insert an empty canvas into an existing workspace."""
        new = _expect(canvas, NewCanvas, "canvas")
        workspace_id = check.identifier(new.workspace_id, "workspace_id")
        title = check.text(new.title, "title")
        id = _new_id(new.id)
        stamp = self._stamp(self._authorize(ctx, id))
        row = _CANVAS_ROW(id, workspace_id, title, *stamp)
        return self._insert(CANVASES, self._q.insert_canvas, row, Canvas)

    def list_canvases(self, workspace_id: str) -> list[Canvas]:
        """The workspace's canvases, oldest first (ties by id)."""
        key = check.identifier(workspace_id, "workspace id")
        return self._all(self._q.list_canvases, (key,), Canvas)

    def get_canvas_with_graph(self, canvas_id: str) -> CanvasGraph:
        """The canvas with its nodes and edges in stored order, read as one snapshot."""
        canvas_id = check.identifier(canvas_id, "canvas id")
        q, ts = self._q, self._ts
        with self._tx(SNAPSHOT) as s:
            r = s.execute(q.get_canvas, (canvas_id,)).fetchone()
            if r is None:
                raise NotFoundError(f"canvas {canvas_id!r} does not exist")
            node_rows = s.execute(q.get_nodes, (canvas_id,)).fetchall()
            edge_rows = s.execute(q.get_edges, (canvas_id,)).fetchall()
        return CanvasGraph(
            Canvas._from_row(r, ts),
            CanvasNode._from_rows(node_rows, ts),
            CanvasEdge._from_rows(edge_rows, ts),
        )

    def update_canvas_graph(
        self,
        ctx: WriteContext,
        canvas_id: str,
        nodes: Sequence[NewCanvasNode],
        edges: Sequence[NewCanvasEdge],
    ) -> CanvasGraph:
        """Replace the canvas's whole graph atomically. Every edge must connect
        nodes of the new graph. Concurrent updates of one canvas serialize."""
        canvas_id = check.identifier(canvas_id, "canvas id")
        nodes = _sequence(nodes, "nodes")
        edges = _sequence(edges, "edges")
        stamp = self._stamp(self._authorize(ctx, canvas_id))
        node_rows = [_node_row(n, canvas_id, i, stamp) for i, n in enumerate(nodes)]
        edge_rows = [_edge_row(e, canvas_id, i, stamp) for i, e in enumerate(edges)]
        _check_graph(node_rows, edge_rows)
        q = self._q
        with self._tx(WRITE) as s:
            r = s.execute(q.touch_canvas, (*stamp[1:], canvas_id)).fetchone()
            if r is None:
                raise NotFoundError(f"canvas {canvas_id!r} does not exist")
            s.execute(q.delete_edges, (canvas_id,))
            s.execute(q.delete_nodes, (canvas_id,))
            insert = self._adapter.insert_rows
            if node_rows:
                insert(s, CANVAS_NODES.name, CANVAS_NODES.names, q.insert_node, node_rows)
            if edge_rows:
                insert(s, CANVAS_EDGES.name, CANVAS_EDGES.names, q.insert_edge, edge_rows)
        # Records over the rows as stored, decoded when read, like those
        # get_canvas_with_graph returns (the ordinal is a column, not a field).
        ts = self._ts
        return CanvasGraph(
            Canvas._from_row(r, ts),
            CanvasNode._from_rows(node_rows, ts),
            CanvasEdge._from_rows(edge_rows, ts),
        )

    def delete_canvas(self, ctx: WriteContext, canvas_id: str) -> None:
        """Delete a canvas with its nodes and edges."""
        key = check.identifier(canvas_id, "canvas id")
        self._delete(ctx, self._q.delete_canvas, key, "canvas")

    # -- AI jobs ------------------------------------------------------------------

    def create_ai_job(self, job: NewAiJob) -> AiJob:
        """Insert a job in state ``queued``."""
        new = _expect(job, NewAiJob, "job")
        id = uuid.uuid4() if new.id is None else check.uuid(new.id, "id")
        trace_id = check.uuid(new.trace_id, "trace_id")
        job_kind = _non_empty(new.job_kind, "job_kind")
        protocol_id = check.text(new.protocol_id, "protocol_id")
        profile_id = check.text(new.profile_id, "profile_id")
        capability_profile_id = check.text(new.capability_profile_id, "capability_profile_id")
        access_mode = check.enum(AccessMode, new.access_mode, "access_mode")
        safety_mode = check.enum(SafetyMode, new.safety_mode, "safety_mode")
        refs = _entity_refs(new.entity_refs)
        ops = _planned_operations(new.planned_operations)
        metrics = _metrics(new.metrics)
        status_reason = check.text(new.status_reason, "status_reason")
        inputs = check.optional_json_text(new.job_inputs, "job_inputs")
        pinned = check.boolean(new.is_pinned, "is_pinned")
        refs_json = check.json_text(encoding.entity_refs_to_json(refs), "entity_refs")
        ops_json = check.json_text(encoding.planned_operations_to_json(ops), "planned_operations")
        metrics_json = check.json_text(encoding.metrics_to_json(metrics), "metrics")
        now = self._enc(datetime.now(UTC))
        row = AI_JOBS.row(
            id=str(id),
            trace_id=str(trace_id),
            job_kind=job_kind,
            status=JobState.QUEUED.value,
            status_reason=status_reason,
            protocol_id=protocol_id,
            profile_id=profile_id,
            capability_profile_id=capability_profile_id,
            access_mode=access_mode.value,
            safety_mode=safety_mode.value,
            entity_refs=refs_json,
            planned_operations=ops_json,
            metrics=metrics_json,
            job_inputs=inputs,
            is_pinned=pinned,
            created_at=now,
            updated_at=now,
        )
        return self._insert(AI_JOBS, self._q.insert_ai_job, row, AiJob)

    def get_ai_job(self, job_id: UUID) -> AiJob:
        """The job; NotFoundError if missing."""
        key = str(check.uuid(job_id, "job_id"))
        return self._one(self._q.get_ai_job, key, AiJob, "AI job")

    def update_ai_job_status(self, update: JobStatusUpdate) -> AiJob:
        """Record a status transition; optional fields left ``None`` keep their value."""
        upd = _expect(update, JobStatusUpdate, "update")
        key = str(check.uuid(upd.job_id, "job_id"))
        status = check.enum(JobState, upd.status, "status")
        reason = check.text(upd.status_reason, "status_reason")
        error = check.optional_text(upd.error_message, "error_message")
        metrics = (
            None
            if upd.metrics is None
            else check.json_text(encoding.metrics_to_json(_metrics(upd.metrics)), "metrics")
        )
        run_id = encoding.opt_str(check.optional_uuid(upd.workflow_run_id, "workflow_run_id"))
        trace_id = encoding.opt_str(check.optional_uuid(upd.trace_id, "trace_id"))
        outputs = check.optional_json_text(upd.job_outputs, "job_outputs")
        now = self._enc(datetime.now(UTC))
        with self._tx(AUTOCOMMIT) as s:
            r = s.execute(
                self._q.update_ai_job_status,
                (status.value, reason, error, metrics, run_id, trace_id, outputs, now, key),
            ).fetchone()
        if r is None:
            raise NotFoundError(f"AI job {key} does not exist")
        return AiJob._from_row(r, self._ts)

    def set_job_outputs(self, job_id: UUID, outputs: Any) -> None:
        """Store the job's outputs (``None`` clears them)."""
        key = str(check.uuid(job_id, "job_id"))
        value = check.optional_json_text(outputs, "outputs")
        now = self._enc(datetime.now(UTC))
        with self._tx(AUTOCOMMIT) as s:
            updated = s.execute(self._q.set_job_outputs, (value, now, key)).rowcount
        if not updated:
            raise NotFoundError(f"AI job {key} does not exist")

    def set_job_pinned(self, job_id: UUID, pinned: bool = True) -> None:
        """Pin a job so retention never removes it (or unpin it)."""
        key = str(check.uuid(job_id, "job_id"))
        pinned = check.boolean(pinned, "pinned")
        now = self._enc(datetime.now(UTC))
        with self._tx(AUTOCOMMIT) as s:
            updated = s.execute(self._q.set_job_pinned, (pinned, now, key)).rowcount
        if not updated:
            raise NotFoundError(f"AI job {key} does not exist")

    # -- workflows ------------------------------------------------------------------

    def create_workflow_run(
        self, job_id: UUID, status: JobState, last_heartbeat: datetime | None = None
    ) -> WorkflowRun:
        """Start a run of the job; the heartbeat defaults to now."""
        job = check.uuid(job_id, "job_id")
        state = check.enum(JobState, status, "status")
        now = datetime.now(UTC)
        beat = now if last_heartbeat is None else check.timestamp(last_heartbeat, "last_heartbeat")
        stored_now = self._enc(now)
        row = WORKFLOW_RUNS.row(
            id=str(uuid.uuid4()),
            job_id=str(job),
            status=state.value,
            last_heartbeat=self._enc(beat),
            created_at=stored_now,
            updated_at=stored_now,
        )
        return self._insert(WORKFLOW_RUNS, self._q.insert_run, row, WorkflowRun)

    def update_workflow_run_status(
        self, run_id: UUID, status: JobState, error_message: str | None = None
    ) -> WorkflowRun:
        """Record the run's new status (and error message, or clear it)."""
        key = str(check.uuid(run_id, "run_id"))
        state = check.enum(JobState, status, "status")
        error = check.optional_text(error_message, "error_message")
        now = self._enc(datetime.now(UTC))
        with self._tx(AUTOCOMMIT) as s:
            r = s.execute(self._q.update_run_status, (state.value, error, now, key)).fetchone()
        if r is None:
            raise NotFoundError(f"workflow run {key} does not exist")
        return WorkflowRun._from_row(r, self._ts)

    def heartbeat_workflow(self, run_id: UUID, at: datetime) -> None:
        """Record that the run was alive at ``at``."""
        key = str(check.uuid(run_id, "run_id"))
        beat = self._enc(check.timestamp(at, "at"))
        now = self._enc(datetime.now(UTC))
        with self._tx(AUTOCOMMIT) as s:
            updated = s.execute(self._q.heartbeat_run, (beat, now, key)).rowcount
        if not updated:
            raise NotFoundError(f"workflow run {key} does not exist")

    def find_stalled_workflows(self, threshold_secs: float) -> list[WorkflowRun]:
        """Running runs whose last heartbeat is more than ``threshold_secs`` old."""
        seconds = check.number(threshold_secs, "threshold_secs")
        if not 0 <= seconds <= 10**10:
            raise ValidationError("threshold_secs must be a non-negative number of seconds")
        cutoff = self._enc(datetime.now(UTC) - timedelta(seconds=seconds))
        return self._all(self._q.stalled_runs, (cutoff,), WorkflowRun)

    def create_workflow_node_execution(self, execution: NewNodeExecution) -> WorkflowNodeExecution:
        """Record that a workflow node started executing."""
        new = _expect(execution, NewNodeExecution, "execution")
        exec_id = uuid.uuid4() if new.id is None else check.uuid(new.id, "id")
        run_id = check.uuid(new.workflow_run_id, "workflow_run_id")
        node_id = check.text(new.node_id, "node_id")
        node_type = check.text(new.node_type, "node_type")
        state = check.enum(JobState, new.status, "status")
        sequence = check.integer(new.sequence, "sequence")
        started = check.timestamp(new.started_at, "started_at")
        payload = check.optional_json_text(new.input_payload, "input_payload")
        now = self._enc(datetime.now(UTC))
        row = WORKFLOW_NODE_EXECUTIONS.row(
            id=str(exec_id),
            workflow_run_id=str(run_id),
            node_id=node_id,
            node_type=node_type,
            status=state.value,
            sequence=sequence,
            input_payload=payload,
            started_at=self._enc(started),
            created_at=now,
            updated_at=now,
        )
        insert = self._q.insert_node_exec
        return self._insert(WORKFLOW_NODE_EXECUTIONS, insert, row, WorkflowNodeExecution)

    def update_workflow_node_execution_status(
        self,
        exec_id: UUID,
        status: JobState,
        output: Any = None,
        error_message: str | None = None,
    ) -> WorkflowNodeExecution:
        """Record a node's new status; a terminal status sets ``finished_at``.
        ``output`` left ``None`` keeps the stored output."""
        key = str(check.uuid(exec_id, "exec_id"))
        state = check.enum(JobState, status, "status")
        payload = check.optional_json_text(output, "output")
        error = check.optional_text(error_message, "error_message")
        now = self._enc(datetime.now(UTC))
        finished = now if state in TERMINAL_JOB_STATES else None
        with self._tx(AUTOCOMMIT) as s:
            r = s.execute(
                self._q.update_node_exec, (state.value, payload, error, finished, now, key)
            ).fetchone()
        if r is None:
            raise NotFoundError(f"node execution {key} does not exist")
        return WorkflowNodeExecution._from_row(r, self._ts)

    def list_workflow_node_executions(self, run_id: UUID) -> list[WorkflowNodeExecution]:
        """The run's node executions, oldest first (ties by id)."""
        key = str(check.uuid(run_id, "run_id"))
        return self._all(self._q.list_node_execs, (key,), WorkflowNodeExecution)

    # -- retention ------------------------------------------------------------------

    def prune_ai_jobs(
        self, cutoff: datetime, min_versions: int, dry_run: bool = False
    ) -> PruneReport:
        """Remove terminal jobs created before ``cutoff`` (with their runs).

        Pinned jobs are never removed; the newest ``min_versions`` unpinned
        terminal jobs are kept even if expired. ``items_scanned`` counts the
        expired terminal jobs, each of which is pruned or spared. A dry run
        changes nothing and reports what would go.
        """
        cutoff = check.timestamp(cutoff, "cutoff")
        keep = check.non_negative_integer(min_versions, "min_versions")
        dry_run = check.boolean(dry_run, "dry_run")
        adapter, ts = self._adapter, self._ts
        scanned = spared_pinned = spared_window = 0
        doomed: list[str] = []
        newer_unpinned = 0
        with self._tx(SNAPSHOT if dry_run else WRITE) as s:
            for job_id, pinned, created in adapter.stream(s, PORTABLE.terminal_jobs):
                expired = ts(created) < cutoff
                if pinned:
                    spared_pinned += expired
                elif newer_unpinned < keep:
                    newer_unpinned += 1
                    spared_window += expired
                elif expired:
                    doomed.append(job_id)
                scanned += expired
            freed = 0
            for chunk in _chunks(doomed, _ID_BATCH):
                ids = placeholders(len(chunk))
                sizes = s.execute(
                    adapter.compile(PORTABLE.job_sizes.replace("{ids}", ids)), chunk
                ).fetchall()
                freed += sum(len(v.encode("utf-8")) for r in sizes for v in r[1:] if v)
                if not dry_run:
                    s.execute(adapter.compile(PORTABLE.delete_ai_jobs.replace("{ids}", ids)), chunk)
        return PruneReport(
            timestamp=datetime.now(UTC),
            items_scanned=scanned,
            items_pruned=len(doomed),
            items_spared_pinned=spared_pinned,
            items_spared_window=spared_window,
            total_bytes_freed=freed,
            dry_run=dry_run,
            pruned_job_ids=tuple(UUID(i) for i in doomed),
        )


# -- input checking helpers ------------------------------------------------------


@contextmanager
def _inserting(table: tables.Table, row: tuple[Any, ...]) -> Iterator[None]:
    """Around inserting ``row``: the backend's foreign-key and duplicate-key
    errors, which differ in wording per backend, become the same message on
    both, naming the missing parent or the taken key."""
    try:
        yield
    except NotFoundError as exc:  # the only NotFoundError an INSERT raises: a foreign key
        if table.parent is None:
            raise
        parent = table.parent
        message = f"{parent.what} {_shown(table, parent.column, row)} does not exist"
        error: StorageError = NotFoundError(message, **_facts(exc, table))
    except ConflictError as exc:
        message = f"{table.what} {_shown(table, table.key, row)} already exists"
        error = ConflictError(message, **_facts(exc, table))
    else:
        return
    raise error from None


def _shown(table: tables.Table, column: str, row: tuple[Any, ...]) -> str:
    """A key as messages show it: a UUID plain, a content id quoted."""
    value = row[table.at[column]]
    return str(value) if table.by_name[column].codec is tables.UUID_TEXT else repr(value)


def _facts(exc: StorageError, table: tables.Table) -> dict[str, Any]:
    """The backend's structured facts, with the table written (SQLite's
    foreign-key error names none)."""
    return {
        "backend": exc.backend,
        "backend_code": exc.backend_code,
        "table": table.name,
        "constraint": exc.constraint,
    }


def _expect(value: Any, cls: type[T], name: str) -> T:
    if not isinstance(value, cls):
        raise ValidationError(f"{name} must be a {cls.__name__}, not {type(value).__name__}")
    return value


def _sequence(value: Any, name: str) -> Sequence[Any]:
    if isinstance(value, str | bytes) or not isinstance(value, list | tuple):
        raise ValidationError(f"{name} must be a list, not {type(value).__name__}")
    return value


def _new_id(value: Any) -> str:
    return str(uuid.uuid4()) if value is None else check.identifier(value, "id")


def _non_empty(value: Any, name: str) -> str:
    value = check.text(value, name)
    if not value:
        raise ValidationError(f"{name} must not be empty")
    return value


def _normalized_context(ctx: Any) -> WriteContext:
    """A WriteContext whose fields have their declared types, so a guard
    comparing ``actor_kind is WriteActorKind.AI`` cannot be fooled by a str."""
    if not isinstance(ctx, WriteContext):
        raise ValidationError(f"ctx must be a WriteContext, not {type(ctx).__name__}")
    kind = check.enum(WriteActorKind, ctx.actor_kind, "ctx.actor_kind")
    actor_id = check.optional_text(ctx.actor_id, "ctx.actor_id")
    job_id = check.optional_uuid(ctx.job_id, "ctx.job_id")
    workflow_id = check.optional_uuid(ctx.workflow_id, "ctx.workflow_id")
    if (
        kind is ctx.actor_kind
        and actor_id is ctx.actor_id
        and job_id is ctx.job_id
        and workflow_id is ctx.workflow_id
    ):
        return ctx
    return WriteContext(kind, actor_id, job_id, workflow_id)


class _BlockValues(NamedTuple):
    """A NewBlock's checked values; the field names are column names."""

    id: str
    document_id: str
    kind: str
    sequence: int
    raw_content: str
    display_content: str
    derived_content: str


_WORKSPACE_ROW = WORKSPACES.maker("id", "name", *STAMP)
_DOCUMENT_ROW = DOCUMENTS.maker("id", "workspace_id", "title", *STAMP)
_CANVAS_ROW = CANVASES.maker("id", "workspace_id", "title", *STAMP)
_BLOCK_ROW = BLOCKS.maker(*_BlockValues._fields, *STAMP)
_NODE_ROW = CANVAS_NODES.maker(
    "id", "canvas_id", "ordinal", "kind", "position_x", "position_y", "data", *STAMP
)
_EDGE_ROW = CANVAS_EDGES.maker(
    "id", "canvas_id", "ordinal", "from_node_id", "to_node_id", "kind", *STAMP
)
_B_DOCUMENT = BLOCKS.at["document_id"]
#: Blocks by sequence, then id (the order get_blocks returns), on stored rows.
_block_row_order = itemgetter(BLOCKS.at["sequence"], BLOCKS.at["id"])
_NODE_ID, _EDGE_ID = CANVAS_NODES.at["id"], CANVAS_EDGES.at["id"]
_EDGE_ENDS = itemgetter(CANVAS_EDGES.at["from_node_id"], CANVAS_EDGES.at["to_node_id"])


def _block_values(block: Any) -> _BlockValues:
    new = _expect(block, NewBlock, "block")
    raw = check.text(new.raw_content, "raw_content")
    display = (
        raw if new.display_content is None else check.text(new.display_content, "display_content")
    )
    derived = (
        "{}"
        if new.derived_content is None
        else check.json_text(new.derived_content, "derived_content")
    )
    return _BlockValues(
        _new_id(new.id),
        check.identifier(new.document_id, "document_id"),
        check.text(new.kind, "kind"),
        check.integer(new.sequence, "sequence"),
        raw,
        display,
        derived,
    )


def _node_row(node: Any, canvas_id: str, ordinal: int, stamp: tuple[Any, ...]) -> tuple[Any, ...]:
    new = _expect(node, NewCanvasNode, "node")
    return _NODE_ROW(
        _new_id(new.id),
        canvas_id,
        ordinal,
        check.text(new.kind, "kind"),
        check.number(new.position_x, "position_x"),
        check.number(new.position_y, "position_y"),
        "{}" if new.data is None else check.json_text(new.data, "data"),
        *stamp,
    )


def _edge_row(edge: Any, canvas_id: str, ordinal: int, stamp: tuple[Any, ...]) -> tuple[Any, ...]:
    new = _expect(edge, NewCanvasEdge, "edge")
    return _EDGE_ROW(
        _new_id(new.id),
        canvas_id,
        ordinal,
        check.identifier(new.from_node_id, "from_node_id"),
        check.identifier(new.to_node_id, "to_node_id"),
        check.text(new.kind, "kind"),
        *stamp,
    )


def _check_graph(node_rows: list[tuple[Any, ...]], edge_rows: list[tuple[Any, ...]]) -> None:
    """Ids are unique, and every edge connects nodes of the graph."""
    node_ids = _unique_ids(node_rows, _NODE_ID, "node")
    _unique_ids(edge_rows, _EDGE_ID, "edge")
    for e in edge_rows:
        for end in _EDGE_ENDS(e):
            if end not in node_ids:
                raise ValidationError(
                    f"edge {e[_EDGE_ID]!r} refers to node {end!r}, not in the graph"
                )


def _unique_ids(rows: list[tuple[Any, ...]], at: int, what: str) -> set[str]:
    ids: set[str] = set()
    for row in rows:
        if row[at] in ids:
            raise ValidationError(f"{what} id {row[at]!r} appears twice")
        ids.add(row[at])
    return ids


def _entity_ref(value: Any, name: str) -> EntityRef:
    ref = _expect(value, EntityRef, name)
    return EntityRef(
        check.text(ref.entity_id, f"{name}.entity_id"),
        check.text(ref.entity_kind, f"{name}.entity_kind"),
    )


def _entity_refs(value: Any) -> list[EntityRef]:
    return [_entity_ref(r, "entity_refs[]") for r in _sequence(value, "entity_refs")]


def _planned_operations(value: Any) -> list[PlannedOperation]:
    ops = []
    for op in _sequence(value, "planned_operations"):
        op = _expect(op, PlannedOperation, "planned_operations[]")
        ops.append(
            PlannedOperation(
                check.enum(OperationType, op.op_type, "op_type"),
                _entity_ref(op.target, "target"),
                check.optional_text(op.description, "description"),
            )
        )
    return ops


def _metrics(value: Any) -> JobMetrics:
    metrics = _expect(value, JobMetrics, "metrics")
    return JobMetrics(
        **{
            name: check.non_negative_integer(getattr(metrics, name), f"metrics.{name}")
            for name in METRIC_FIELDS
        }
    )


def _chunks(items: list[str], size: int) -> list[list[str]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


@functools.cache
def _search_sql(atoms: int) -> str:
    """PORTABLE.search_page with an occurrence count and a score term per
    scored atom (search.term_score, in the same integer arithmetic)."""
    counts = "".join(
        f", (length(s.tokens) - length(replace(s.tokens, ?, ''))) / CAST(? AS INTEGER) AS c{i}"
        for i in range(atoms)
    )
    k, scale = search.AVERAGE, search.SCALE * search.AVERAGE
    score = " + ".join(f"{scale} * m.c{i} / ({k} * m.c{i} + m.n)" for i in range(atoms))
    return PORTABLE.search_page.replace("{counts}", counts).replace("{score}", score)
