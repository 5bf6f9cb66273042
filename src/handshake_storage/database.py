"""The storage interface: one API over SQLite and PostgreSQL.

:class:`Database` holds the business logic, written once. It validates input
at the boundary (``validation.py``), asks the guard to authorize every
content write, runs the portable queries of ``queries.py`` through the
backend adapter, and wraps rows in lazy records (``models.py``). It never sees a
driver: connections stay inside the adapter's transactions.

Rebuildable data policy: every index and every derived table (the
``block_terms`` search projection) is declared ``-- @rebuildable`` in the
migration that creates it. Such objects are never migrated row by row or
copied between databases; they are dropped and recomputed from the canonical
tables (``handshake-storage indexes rebuild``), and ``indexes verify`` proves
a rebuild reproduces the current state. The projection is kept current in
the same transaction as every block write.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any, TypeVar
from uuid import UUID

from . import encoding, search
from . import validation as check
from .backends import Options, create_adapter
from .backends.base import AUTOCOMMIT, SNAPSHOT, WRITE, Adapter, Mode, Session
from .digest import TableDigest
from .enums import WriteActorKind
from .errors import (
    BackendUnavailableError,
    ConflictError,
    NotFoundError,
    StorageError,
    ValidationError,
)
from .guard import DefaultStorageGuard, MutationMetadata, StorageGuard, WriteContext, authorize
from .inputs import (
    BLOCK_DOCUMENT,
    ai_job_row,
    block_row,
    block_row_order,
    block_values,
    canvas_row,
    chunks,
    document_row,
    expect,
    graph_rows,
    inserting,
    job_metrics,
    new_id,
    node_execution_row,
    replacement_blocks,
    sequence_of,
    workspace_row,
)
from .ledger import (
    GLOBAL_SCOPE,
    ChangeSet,
    Ledger,
    LedgerRecorder,
    change_from_row,
    put,
    reidentify,
    removed,
)
from .migrator import MigrationState, Migrator, Plan, Progress
from .models import (
    TERMINAL_JOB_STATES,
    AiJob,
    Block,
    BlockUpdate,
    Canvas,
    CanvasEdge,
    CanvasGraph,
    CanvasNode,
    Document,
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
    PruneReport,
    SearchHit,
    WorkflowNodeExecution,
    WorkflowRun,
    Workspace,
)
from .queries import PORTABLE, placeholders
from .rebuildable import Indexes
from .record import Record
from .schema import SchemaSnapshot
from .sync import exchange
from .sync.conflicts import KINDS as CONFLICT_KINDS
from .sync.conflicts import Conflict, conflict_from_row
from .sync.conflicts import restore as restore_conflict
from .sync.exchange import ImportReport, Vector
from .sync.merge import SYNCED_TABLES, WORKSPACE_FILTERS, Merger
from .sync.prune import LedgerPruneReport
from .sync.prune import prune as prune_ledger
from .tables import (
    AI_JOBS,
    BLOCKS,
    CANONICAL,
    CANVAS_EDGES,
    CANVAS_NODES,
    CANVASES,
    DOCUMENTS,
    STAMP,
    WORKFLOW_NODE_EXECUTIONS,
    WORKFLOW_RUNS,
    WORKSPACES,
    Table,
)
from .url import default_url, parse_url
from .writes import NO_RECORDER, ChangeRecorder, Write, Written

R = TypeVar("R", bound=Record)
T = TypeVar("T")

#: Ids per statement when deleting or measuring many rows at once.
_ID_BATCH = 500

_GLOBAL = GLOBAL_SCOPE
#: What touching a parent (replace_blocks, update_canvas_graph) writes on it.
_TOUCH_COLUMNS = ("id", *STAMP[1:])
_BLOCK_UPDATABLE = ("kind", "sequence", "raw_content", "display_content", "derived_content")

#: What a delete saw before deleting: (scope, deleted key groups, generation).
_Found = tuple[str, list[dict[str, Any]], str | None] | None


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

    def __init__(
        self,
        adapter: Adapter,
        guard: StorageGuard | None = None,
        recorder: ChangeRecorder = NO_RECORDER,
    ) -> None:
        self._adapter = adapter
        self._guard: StorageGuard = guard if guard is not None else DefaultStorageGuard()
        #: receives every write inside its transaction (writes.py: the ledger's hook)
        self._q = PORTABLE.compiled_for(adapter)
        #: the change ledger; its recorder appends each write's change set
        self._ledger = Ledger(adapter, self._q)
        self._recorder = LedgerRecorder(self._ledger) if recorder is NO_RECORDER else recorder
        self._column_families: (
            tuple[dict[str, dict[str, str]], dict[str, list[tuple[str, str]]]] | None
        ) = None
        #: table name -> its compiled INSERT
        self._inserts = {t.name: adapter.compile(t.insert_sql) for t in CANONICAL}
        self._fetch = adapter.fetch
        self._tx = adapter.transaction
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
        self._fetch(self._q.ping, (), True)

    def exists(self) -> bool:
        """Whether the database exists; checking never creates a SQLite file."""
        self._check_open()
        return self._adapter.exists()

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
        return self._adapter.run(SNAPSHOT, self._adapter.introspect)

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

    def run_migrations(self, target: int | None = None, progress: Progress | None = None) -> Plan:
        """Apply pending migrations up to ``target`` (default: all). Safe to call
        from several processes at once; returns what was applied. A database
        migrated as far as the ledger gets its replica id here."""
        plan = self.migrations.migrate(target, progress=progress)
        self._column_families = None
        with self._tx(WRITE) as s:
            self._ledger.ensure_replica(s)
        return plan

    def rollback_migrations(self, target: int) -> Plan:
        """Revert applied migrations above ``target``; returns what was reverted."""
        try:
            return self.migrations.rollback(check.non_negative_integer(target, "target"))
        finally:
            self._ledger.reset()
            self._column_families = None

    def migration_status(self) -> list[MigrationState]:
        """Every known or applied migration with its state and checksum."""
        return self.migrations.status()

    # -- the write pattern: authorize, build, one transaction, record ----------

    def validate_write_with_guard(self, ctx: WriteContext, resource_id: str) -> MutationMetadata:
        """Ask the guard whether ``ctx`` may write ``resource_id``; writes nothing."""
        return authorize(self._guard, ctx, check.identifier(resource_id, "resource_id"))

    def _write(self, operation: str, ctx: Any, resource_id: str) -> Write:
        """Start the content write ``operation``: the guard authorizes ``ctx``
        for ``resource_id``, and the write's stamp is fixed."""
        meta = authorize(self._guard, ctx, resource_id)
        return Write(operation, meta, self._stamp(meta))

    def _transaction(self, write: Write, work: Callable[[Write], T], mode: Mode = WRITE) -> T:
        """``work(write)`` in the write's one transaction, through the retry
        rule (``Adapter.run``: a conflict or a dropped connection runs it again
        from the start, so the write's lists start empty each time); at its
        end, still inside it, the recorder (``writes.ChangeRecorder``, the
        change ledger's hook) gets what the write did. ``AUTOCOMMIT`` is for
        single-statement writes, unless the recorder needs a transaction to
        commit with. A write that changed no row (a dry run) is not recorded."""
        recorder, adapter = self._recorder, self._adapter

        def attempt(s: Session) -> T:
            write.session, write.adapter = s, adapter
            write.written, write.deleted, write.cleared = Written(), [], []
            write.change, write.coalesce = None, False
            result = work(write)
            if write.written or write.deleted or write.cleared:
                recorder.record(s, write)
            return result

        return adapter.run(WRITE if mode is AUTOCOMMIT and recorder.active else mode, attempt)

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

    def _now(self) -> Any:
        return self._enc(datetime.now(UTC))

    def _insert(self, write: Write, table: Table, row: tuple[Any, ...], record: type[R]) -> R:
        """Insert one row in its own transaction; the record over it, as stored."""
        w = write

        based = {
            DOCUMENTS.name: self._q.insert_document_returning_base,
            CANVASES.name: self._q.insert_canvas_returning_base,
        }.get(table.name)

        def work(w: Write) -> Any:
            payload: dict[str, Any] = {"put": [put(table.name, table.names, [row])]}
            if based is not None and self._logged(w.session):
                # the workspace it goes into, as its writer saw it: an
                # incarnation of it deleted elsewhere and created again is
                # another workspace (sync rule 3)
                r = w.insert(table, based, row, returning=True)
                if r is not None and r[0] is not None:
                    payload["base"] = str(r[0])
            else:
                w.insert(table, self._inserts[table.name], row)
            key = row[table.at["id"]]
            if table is WORKSPACES:
                scope = key
            elif "workspace_id" in table.at:
                scope = row[table.at["workspace_id"]]
            else:
                scope = _GLOBAL
            w.change = (scope, (table.name, key), payload)

        with inserting(table, row):
            self._transaction(w, work, AUTOCOMMIT)
        return record._from_row(row, self._ts)

    def _update(
        self,
        write: Write,
        table: Table,
        sql: str,
        params: tuple[Any, ...],
        key: Any,
        columns: Sequence[str],
    ) -> Any:
        """Run one UPDATE ... RETURNING of a job or workflow row; the row as now
        stored, or NotFoundError. Its change set carries the ``columns`` it
        wrote and the version it overwrote (``prev``); heartbeats coalesce."""
        w = write

        def work(w: Write) -> Any:
            prev = self._ledger.latest_event(w.session, table.name, key)
            row = w.session.execute(sql, params).fetchone()
            if row is None:
                raise NotFoundError(f"{table.what} {key} does not exist")
            w.wrote(table, row)
            written = ["id", *columns, "updated_at"]
            image = put(table.name, written, [[row[table.at[c]] for c in written]])
            w.change = (_GLOBAL, (table.name, key), {"put": [image], "prev": prev})
            w.coalesce = w.operation == "heartbeat_workflow"
            return row

        row = self._transaction(w, work, AUTOCOMMIT)
        return row

    def _delete(
        self,
        ctx: WriteContext,
        operation: str,
        table: Table,
        sql: str,
        key: str,
        relock: str | None = None,
    ) -> None:
        """Delete one row by key. ``relock`` locks the row's parent: a miss is
        then checked again under that lock, for rows a concurrent replacement
        of the parent deletes and re-inserts (blocks)."""
        w = self._write(operation, ctx, key)
        seen = {
            "workspaces": self._seen_workspace,
            "documents": self._seen_document,
            "blocks": self._seen_block,
            "canvases": self._seen_canvas,
        }[table.name]

        def logged_delete(w: Write) -> bool:
            # the change set records every key it removes, as the deleter saw it
            found = seen(w.session, key) if self._logged(w.session) else None
            if not w.delete(table, sql, key):
                return False
            if found is not None:
                scope, groups, base = found
                payload: dict[str, Any] = {"delete": [g for g in groups if g["rows"]]}
                if base is not None:
                    payload["base"] = base
                w.change = (scope, (table.name, key), payload)
            return True

        def work(w: Write) -> bool:
            return logged_delete(w)

        def again(w: Write) -> bool:
            return w.session.execute(relock, (key,)).fetchone() is not None and logged_delete(w)

        if not self._transaction(w, work, AUTOCOMMIT) and (
            relock is None or not self._transaction(w, again)
        ):
            raise NotFoundError(f"{table.what} {key!r} does not exist")

    def _seen_workspace(self, s: Any, key: str) -> _Found:
        q = self._q
        r = s.execute(q.get_workspace, (key,)).fetchone()
        if r is None:
            return None
        groups = [removed("workspaces", [(key, r[-1])])]
        groups += self._seen_children(s, key)
        return key, groups, None

    def _seen_children(self, s: Any, workspace_id: str) -> list[dict[str, Any]]:
        q = self._q
        return [
            removed("documents", s.execute(q.ledger_workspace_documents, (workspace_id,))),
            removed("blocks", s.execute(q.ledger_workspace_blocks, (workspace_id,))),
            removed("canvases", s.execute(q.ledger_workspace_canvases, (workspace_id,))),
            removed("canvas_nodes", s.execute(q.ledger_workspace_nodes, (workspace_id,))),
            removed("canvas_edges", s.execute(q.ledger_workspace_edges, (workspace_id,))),
        ]

    def _seen_document(self, s: Any, key: str) -> _Found:
        q = self._q
        r = s.execute(q.ledger_document, (key,)).fetchone()
        if r is None:
            return None
        blocks = s.execute(q.ledger_document_blocks, (key,)).fetchall()
        return r[0], [removed("documents", [(key, r[1])]), removed("blocks", blocks)], None

    def _seen_block(self, s: Any, key: str) -> _Found:
        r = s.execute(self._q.ledger_block, (key,)).fetchone()
        if r is None:
            return None
        return r[2], [removed("blocks", [(r[0], r[1])])], r[3]

    def _seen_canvas(self, s: Any, key: str) -> _Found:
        q = self._q
        r = s.execute(q.ledger_canvas, (key,)).fetchone()
        if r is None:
            return None
        nodes = s.execute(q.ledger_canvas_nodes, (key,)).fetchall()
        edges = s.execute(q.ledger_canvas_edges, (key,)).fetchall()
        groups = [removed("canvases", [(key, r[1])])]
        return r[0], [*groups, removed("canvas_nodes", nodes), removed("canvas_edges", edges)], None

    # -- the change ledger -------------------------------------------------------

    @property
    def replica_id(self) -> str:
        """This database's sync replica id (made when it was first migrated)."""
        exchange.identify(self._adapter, self._ledger)
        with self._tx(SNAPSHOT) as s:
            if not self._adapter.has_table(s, "sync_replica"):
                raise StorageError(
                    f"{self.url} has no change ledger: run its migrations first "
                    "(handshake-storage migrate)"
                )
            replica = self._ledger.replica_id(s, create=False)
        if replica is None:  # opened read-only before anything gave it one
            raise StorageError(
                f"{self.url} has no replica id yet: it gets one when it is opened for writing "
                "(handshake-storage migrate, or any write)"
            )
        return replica

    def reidentify(self) -> str:
        """Give this database a new replica id, as ``copy`` does for its target:
        for a file that was cloned outside the library (``cp``), which would
        otherwise sync as the same replica as its original. Returns the id."""
        with self._tx(WRITE) as s:
            replica = reidentify(self._adapter, s)
        self._ledger.reset()
        if replica is None:
            raise StorageError(f"{self.url} has no change ledger: run its migrations first")
        return replica

    def changes(
        self,
        *,
        workspace_id: str | None = None,
        job_id: UUID | None = None,
        actor_id: str | None = None,
        actor_kind: WriteActorKind | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 1000,
    ) -> list[ChangeSet]:
        """Change sets of the ledger, oldest write time first (the writer's
        clock, ``written_at``; ties by stamp), filtered by workspace, AI job,
        actor and write time (``since`` inclusive, ``until`` exclusive).
        ``changes(job_id=J)`` answers "what did AI job J change?". Not by
        stamp alone: each workspace has its own clock counter, so stamps of one
        replica's writes to two workspaces within a millisecond do not follow
        the order they were written in."""
        where: list[str] = []
        params: list[Any] = []
        if workspace_id is not None:
            where.append("scope = ?")
            params.append(check.identifier(workspace_id, "workspace_id"))
        if job_id is not None:
            where.append("job_id = ?")
            params.append(str(check.uuid(job_id, "job_id")))
        if actor_id is not None:
            where.append("actor_id = ?")
            params.append(check.text(actor_id, "actor_id"))
        if actor_kind is not None:
            where.append("actor_kind = ?")
            params.append(check.enum(WriteActorKind, actor_kind, "actor_kind").value)
        if since is not None:
            where.append("written_at >= ?")
            params.append(self._enc(check.timestamp(since, "since")))
        if until is not None:
            where.append("written_at < ?")
            params.append(self._enc(check.timestamp(until, "until")))
        limit = check.integer_between(limit, "limit", 1, 1_000_000)
        sql = PORTABLE.changes + (" WHERE " + " AND ".join(where) if where else "")
        sql += " ORDER BY written_at, hlc{C}, scope{C} LIMIT ?"
        with self._tx(SNAPSHOT) as s:
            if self._ledger.replica_id(s, create=False) is None:
                return []
            rows = s.execute(self._adapter.compile(sql), (*params, limit)).fetchall()
        return [change_from_row(r, self._ts) for r in rows]

    # -- sync: export, import, conflicts ------------------------------------------

    def sync_vector(self, workspaces: Sequence[str] | None = None) -> Vector:
        """What this replica has applied: scope (workspace id, ``""`` for AI
        jobs and workflows) -> origin replica id -> highest sequence number."""
        return exchange.vector(self._adapter, self._q, self._ledger, _scopes(workspaces))

    def export_changes(
        self,
        since: Vector | None = None,
        *,
        workspaces: Sequence[str] | None = None,
        limit: int = 500,
    ) -> dict[str, Any]:
        """A batch (JSON-serializable, format in ``handshake_storage.sync.batch``)
        of at most ``limit`` change sets that a replica at vector ``since``
        has not applied, in causal order. ``workspaces`` limits it to those
        workspaces (AI jobs and workflows always travel)."""
        since = _vector(since)
        limit = exchange.check_limit(limit)
        return exchange.export(
            self._adapter, self._q, self._ledger, since, _scopes(workspaces), limit
        )

    def import_changes(self, batch: Any) -> ImportReport:
        """Apply a batch from ``export_changes`` atomically: each change set not
        yet applied goes through the conflict rules and the guard, keeps its
        provenance and is appended to this ledger. Applying twice is a no-op."""
        return exchange.import_batch(self._adapter, self._q, self._ledger, self._merger, batch)

    def _merger(self, s: Any) -> Merger:
        families, cascades = self._live_shape(s)
        return Merger(
            self._adapter,
            s,
            functools.partial(authorize, self._guard),
            families,
            cascades,
            self._reindex_blocks,
        )

    def _reindex_blocks(self, s: Any, blocks: list[tuple[str, str, str]]) -> None:
        """The search rows of blocks a merge wrote ``(id, workspace_id,
        raw_content)``, made anew: one delete and one insert for them all."""
        compile = self._adapter.compile
        for i in range(0, len(blocks), 500):
            ids = [b[0] for b in blocks[i : i + 500]]
            sql = PORTABLE.merge_delete_search_rows.replace("{ids}", placeholders(len(ids)))
            s.execute(compile(sql), ids)
        found = [(*x, ws) for key, ws, raw in blocks for x in search.index_rows(key, raw)]
        if found:
            self._adapter.insert_rows(
                s, "block_search", search.COLUMNS, self._q.insert_search_row, found
            )

    def _logged(self, s: Any, create: bool = True) -> bool:
        """Whether this database keeps a change ledger (migrated far enough);
        ``create=False`` in read-only transactions."""
        return self._ledger.replica_id(s, create=create) is not None

    def _live_shape(
        self, s: Any
    ) -> tuple[dict[str, dict[str, str]], dict[str, list[tuple[str, str]]]]:
        """From the live schema (cached): column type families per table, and
        per table the ``(child table, column)`` foreign keys that cascade
        its deletes."""
        shape = self._column_families
        if shape is None:
            schema = self._adapter.introspect(s)
            families = {
                name: {c.name: c.family for c in table.columns}
                for name, table in schema.tables.items()
            }
            cascades: dict[str, list[tuple[str, str]]] = {}
            for name, table in schema.tables.items():
                for fk in table.foreign_keys:
                    if fk.on_delete.upper() == "CASCADE" and len(fk.columns) == 1:
                        cascades.setdefault(fk.ref_table, []).append((name, fk.columns[0]))
            shape = self._column_families = (families, cascades)
        return shape

    def conflicts(
        self,
        *,
        workspace_id: str | None = None,
        kind: str | None = None,
        include_restored: bool = True,
        limit: int = 1000,
    ) -> list[Conflict]:
        """The conflict log: every change that lost a merge here, oldest first."""
        where, params = [], []
        if workspace_id is not None:
            where.append("scope = ?")
            params.append(check.identifier(workspace_id, "workspace_id"))
        if kind is not None:
            if kind not in CONFLICT_KINDS:
                raise ValidationError(f"kind must be one of {', '.join(CONFLICT_KINDS)}")
            where.append("kind = ?")
            params.append(kind)
        if not check.boolean(include_restored, "include_restored"):
            where.append("restored_at IS NULL")
        limit = exchange.check_limit(limit)
        sql = PORTABLE.conflicts + (" WHERE " + " AND ".join(where) if where else "")
        sql += " ORDER BY detected_at, id{C} LIMIT ?"
        with self._tx(SNAPSHOT) as s:
            if not self._logged(s, create=False):
                return []
            rows = s.execute(self._adapter.compile(sql), (*params, limit)).fetchall()
        return [conflict_from_row(r, self._ts) for r in rows]

    def get_conflict(self, conflict_id: str) -> Conflict:
        """One entry of the conflict log; NotFoundError if there is none."""
        key = check.identifier(conflict_id, "conflict id")
        with self._tx(SNAPSHOT) as s:
            logged = self._logged(s, create=False)
            r = s.execute(self._q.get_conflict, (key,)).fetchone() if logged else None
        if r is None:
            raise NotFoundError(f"conflict {key!r} does not exist")
        return conflict_from_row(r, self._ts)

    def restore_conflict(self, ctx: WriteContext, conflict_id: str) -> Conflict:
        """Write what lost in this conflict again, as a new edit by ``ctx``,
        and mark the entry restored. ConflictError if it already was.

        The entry is claimed (marked restored) before the edit, in its own
        transaction, so of concurrent restores of one entry exactly one writes
        the edit; the others raise ConflictError having written nothing. An
        edit that fails releases the claim."""
        conflict = self.get_conflict(conflict_id)
        if conflict.restored_at is not None:
            raise ConflictError(f"conflict {conflict.id!r} was already restored")
        claimed = self._enc(datetime.now(UTC))
        with self._tx(WRITE) as s:
            if not s.execute(self._q.claim_conflict_restore, (claimed, conflict.id)).rowcount:
                raise ConflictError(f"conflict {conflict.id!r} was already restored")
        try:
            event = restore_conflict(self, ctx, conflict)
        except BaseException:
            with self._tx(WRITE) as s:
                s.execute(self._q.release_conflict_restore, (conflict.id, claimed))
            raise
        with self._tx(WRITE) as s:
            s.execute(self._q.mark_conflict_restored, (event, conflict.id))
        return self.get_conflict(conflict.id)

    def prune_ledger(self, dry_run: bool = False) -> LedgerPruneReport:
        """Delete change sets every known peer has applied, keeping the newest
        one about each live row (see ``handshake_storage.sync.prune``)."""
        dry_run = check.boolean(dry_run, "dry_run")
        return prune_ledger(self._adapter, self._q, self._ledger, dry_run)

    def content_digests(
        self, workspaces: Sequence[str] | None = None
    ) -> dict[str, tuple[int, str]]:
        """Row count and digest (the ``copy`` digests) of every table sync
        replicates, read in one snapshot; limited to some workspaces' content
        (and all AI jobs and workflows) when ``workspaces`` is given."""
        scopes = _scopes(workspaces)
        ids = None if scopes is None else sorted(scopes - {GLOBAL_SCOPE})
        out: dict[str, tuple[int, str]] = {}
        with self._tx(SNAPSHOT) as s:
            schema = self._adapter.introspect(s)
            for name in sorted(SYNCED_TABLES):
                table = schema.tables.get(name)
                if table is None:
                    continue
                ordered = sorted(table.columns, key=lambda c: c.name)  # as copy digests
                columns = ", ".join(c.name for c in ordered)
                sql, params = f"SELECT {columns} FROM {name}", ()
                if ids is not None and name in WORKSPACE_FILTERS:
                    marks = placeholders(len(ids)) if ids else "NULL"
                    sql += " WHERE " + WORKSPACE_FILTERS[name].replace("{ids}", marks)
                    params = tuple(ids)
                digest = TableDigest([c.family for c in ordered], self._ts)
                digest.add_all(self._adapter.stream(s, sql, params))
                out[name] = (digest.count, digest.hexdigest)
        return out

    def record_peer(self, peer_id: str, vector: Vector) -> None:
        """Remember what peer ``peer_id`` has applied (after a complete sync)."""
        exchange.record_peer(
            self._adapter,
            self._q,
            self._ledger,
            check.identifier(peer_id, "peer_id"),
            _vector(vector),
        )

    # -- the shapes of a read -------------------------------------------------------

    def _all(self, sql: str, params: tuple[Any, ...], record: type[R]) -> list[R]:
        return record._from_rows(self._fetch(sql, params), self._ts)

    def _one(self, sql: str, key: Any, record: type[R], what: str) -> R:
        r = self._fetch(sql, (key,), True)
        if r is None:
            raise NotFoundError(f"{what} {key!r} does not exist")
        return record._from_row(r, self._ts)

    # -- workspaces ---------------------------------------------------------------

    def list_workspaces(self) -> list[Workspace]:
        """All workspaces, oldest first (ties by id)."""
        return self._all(self._q.list_workspaces, (), Workspace)

    def get_workspace(self, id: str) -> Workspace | None:
        """The workspace, or ``None`` if there is none with this id."""
        id = check.identifier(id, "workspace id")
        r = self._fetch(self._q.get_workspace, (id,), True)
        return None if r is None else Workspace._from_row(r, self._ts)

    def create_workspace(self, ctx: WriteContext, workspace: NewWorkspace) -> Workspace:
        """Insert a workspace; ConflictError if the id is taken."""
        new = expect(workspace, NewWorkspace, "workspace")
        name, id = check.text(new.name, "name"), new_id(new.id)
        w = self._write("create_workspace", ctx, id)
        return self._insert(w, WORKSPACES, workspace_row(id, name, *w.stamp), Workspace)

    def delete_workspace(self, ctx: WriteContext, id: str) -> None:
        """Delete a workspace with its documents, blocks and canvases."""
        key = check.identifier(id, "workspace id")
        self._delete(ctx, "delete_workspace", WORKSPACES, self._q.delete_workspace, key)

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
        new = expect(document, NewDocument, "document")
        workspace_id = check.identifier(new.workspace_id, "workspace_id")
        title, id = check.text(new.title, "title"), new_id(new.id)
        w = self._write("create_document", ctx, id)
        return self._insert(w, DOCUMENTS, document_row(id, workspace_id, title, *w.stamp), Document)

    def delete_document(self, ctx: WriteContext, id: str) -> None:
        """Delete a document and its blocks."""
        key = check.identifier(id, "document id")
        self._delete(ctx, "delete_document", DOCUMENTS, self._q.delete_document, key)

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
        """Insert a block and index its terms for search, atomically."""
        values = block_values(block)
        w = self._write("create_block", ctx, values.id)
        row = block_row(*values, *w.stamp)
        indexed = search.index_rows(values.id, values.raw_content)

        def work(w: Write) -> Any:
            if self._logged(w.session):
                r = w.insert(BLOCKS, self._q.insert_block_returning_scope, row, returning=True)
                payload = {"put": [put(BLOCKS.name, BLOCKS.names, [row])], "base": r[1]}
                w.change = (r[0], ("blocks", values.id), payload)
            else:
                w.insert(BLOCKS, self._q.insert_block, row)
            self._index_block(w, values.document_id, indexed)

        with inserting(BLOCKS, row):
            self._transaction(w, work)
        return Block._from_row(row, self._ts)

    def _index_block(self, w: Write, document_id: str, indexed: list[Any]) -> None:
        """Keep the search rows of one block current, in the write's transaction."""
        if indexed:
            w.session.executemany(
                self._q.insert_search_rows_for_document, [(*x, document_id) for x in indexed]
            )

    def update_block(self, ctx: WriteContext, id: str, update: BlockUpdate) -> Block:
        """Change the given fields of a block; returns the block as stored.

        The display follows the raw content, as on create: a new
        ``raw_content`` without a ``display_content`` sets both to it; give
        ``display_content`` to keep a rendering of its own."""
        id = check.identifier(id, "block id")
        upd = expect(update, BlockUpdate, "update")
        raw = check.optional_text(upd.raw_content, "raw_content")
        display = check.optional_text(upd.display_content, "display_content")
        changes = (
            check.optional_text(upd.kind, "kind"),
            None if upd.sequence is None else check.integer(upd.sequence, "sequence"),
            raw,
            raw if display is None else display,
            check.optional_json_text(upd.derived_content, "derived_content"),
        )
        indexed = search.index_rows(id, raw) if raw is not None else []
        w = self._write("update_block", ctx, id)

        def work(w: Write) -> Any:
            params = (*changes, *w.stamp[1:], id)
            # What the ledger needs, read before the write: the version this
            # edit overwrites (prev), the scope and the generation (base).
            logged = self._logged(w.session)
            if logged and self._adapter.features.combines_statements:
                r = w.session.execute(self._q.update_block_seen, (*params, id)).fetchone()
                seen, r = (None, None) if r is None else (r[-4:], r[:-4])
            else:
                seen = w.session.execute(self._q.ledger_block, (id,)).fetchone() if logged else None
                r = w.session.execute(self._q.update_block, params).fetchone()
            if r is None:
                # Missed, or deleted and re-inserted by a replace_blocks that
                # committed after this statement's snapshot: lock the block's
                # document (replace_blocks locks it first) and look again.
                if w.session.execute(self._q.lock_block_document, (id,)).fetchone() is not None:
                    if logged:
                        seen = w.session.execute(self._q.ledger_block, (id,)).fetchone()
                    r = w.session.execute(self._q.update_block, params).fetchone()
                if r is None:
                    raise NotFoundError(f"block {id!r} does not exist")
            w.wrote(BLOCKS, r)
            if raw is not None:
                w.session.execute(self._q.delete_search_rows, (id,))
                self._index_block(w, r[BLOCK_DOCUMENT], indexed)
            if seen is not None:
                given = zip(_BLOCK_UPDATABLE, changes, strict=True)
                written = ["id", *(c for c, v in given if v is not None), *_TOUCH_COLUMNS[1:]]
                image = put(BLOCKS.name, written, [[r[BLOCKS.at[c]] for c in written]])
                payload = {"put": [image], "base": seen[3], "prev": seen[1]}
                w.change = (seen[2], ("blocks", id), payload)
            return r

        r = self._transaction(w, work)
        return Block._from_row(r, self._ts)

    def delete_block(self, ctx: WriteContext, id: str) -> None:
        """Delete a block (its search terms go with it)."""
        key = check.identifier(id, "block id")
        self._delete(
            ctx, "delete_block", BLOCKS, self._q.delete_block, key, self._q.lock_block_document
        )

    def replace_blocks(
        self, ctx: WriteContext, document_id: str, blocks: Sequence[NewBlock]
    ) -> list[Block]:
        """Replace all blocks of a document at once: all of the new content or,
        on any failure, none of it. Concurrent replacements of one document
        serialize. The document is stamped as changed by ``ctx``."""
        document_id = check.identifier(document_id, "document id")
        values = replacement_blocks(document_id, blocks)
        w = self._write("replace_blocks", ctx, document_id)
        stamp, q = w.stamp, self._q
        rows = [block_row(*v, *stamp) for v in values]
        indexed = [x for v in values for x in search.index_rows(v.id, v.raw_content)]

        def work(w: Write) -> Any:
            logged = self._logged(w.session)
            if logged:  # the generation it replaces, as its writer saw it
                base = w.session.execute(q.generation_of_document, (document_id,)).fetchone()
            r = w.session.execute(q.touch_document, (*stamp[1:], document_id)).fetchone()
            if r is None:
                raise NotFoundError(f"document {document_id!r} does not exist")
            if logged:  # what it supersedes, as its writer saw it
                gone = w.session.execute(q.delete_document_blocks_returning, (document_id,))
                gone = gone.fetchall()
                w.cleared.append((BLOCKS, document_id))
            else:
                w.clear(BLOCKS, q.delete_document_blocks, document_id)
            w.insert_many(BLOCKS, q.insert_block, rows)
            if indexed:
                found = [(*x, r[0]) for x in indexed]
                self._adapter.insert_rows(
                    w.session, "block_search", search.COLUMNS, q.insert_search_row, found
                )
            if logged:
                payload = {
                    "put": [
                        put(DOCUMENTS.name, _TOUCH_COLUMNS, [(document_id, *stamp[1:])]),
                        put(BLOCKS.name, BLOCKS.names, rows),
                    ],
                    "replaced": [removed("blocks", sorted(gone))],
                    "base": str(base[0]),
                }
                w.change = (r[0], ("documents", document_id), payload)

        self._transaction(w, work)
        # The results are records over the rows as stored (decoded when read),
        # like those get_blocks returns: no eager JSON parse per block.
        return Block._from_rows(sorted(rows, key=block_row_order), self._ts)

    def search_blocks(
        self, workspace_id: str, query: str, limit: int = 50, offset: int = 0
    ) -> list[Block]:
        """The workspace's blocks that match ``query``, best first: see
        :meth:`search_hits` (same blocks, same order)."""
        hits = self._search(workspace_id, query, limit, offset, snippets=False)
        return [hit.block for hit in hits]

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
        return self._search(workspace_id, query, limit, offset, snippets=True)

    def _search(
        self, workspace_id: str, query: str, limit: int, offset: int, *, snippets: bool
    ) -> list[SearchHit]:
        workspace_id = check.identifier(workspace_id, "workspace id")
        parsed = search.parse(check.text(query, "query"))
        limit = check.integer_between(limit, "limit", 1, 10_000)
        offset = check.integer(offset, "offset")
        if not 0 <= offset <= 1_000_000:
            raise ValidationError("offset must be between 0 and 1000000")
        found = self._fetch(*search_statement(self._adapter, workspace_id, parsed, offset + limit))
        ts = self._ts
        hits = []
        for row in found:
            block = Block._from_row(row[:-1], ts)
            score = row[-1]
            if score is None:  # a long block: matched and scored from its text
                score = search.evaluate(parsed, block.raw_content)
                if score is None:
                    continue
            hits.append((score, block))
        hits.sort(key=lambda h: (-h[0], h[1].id))
        page = hits[offset : offset + limit]
        if not snippets:
            return [SearchHit(b, score, "") for score, b in page]
        return [SearchHit(b, score, search.snippet(parsed, b.raw_content)) for score, b in page]

    # -- canvases -----------------------------------------------------------------

    def create_canvas(self, ctx: WriteContext, canvas: NewCanvas) -> Canvas:
        """Insert an empty canvas into an existing workspace."""
        new = expect(canvas, NewCanvas, "canvas")
        workspace_id = check.identifier(new.workspace_id, "workspace_id")
        title, id = check.text(new.title, "title"), new_id(new.id)
        w = self._write("create_canvas", ctx, id)
        return self._insert(w, CANVASES, canvas_row(id, workspace_id, title, *w.stamp), Canvas)

    def list_canvases(self, workspace_id: str) -> list[Canvas]:
        """The workspace's canvases, oldest first (ties by id)."""
        key = check.identifier(workspace_id, "workspace id")
        return self._all(self._q.list_canvases, (key,), Canvas)

    def get_canvas_with_graph(self, canvas_id: str) -> CanvasGraph:
        """The canvas with its nodes and edges in stored order, read as one snapshot."""
        canvas_id = check.identifier(canvas_id, "canvas id")
        q = self._q

        def read(s: Session) -> CanvasGraph:
            r = s.execute(q.get_canvas, (canvas_id,)).fetchone()
            if r is None:
                raise NotFoundError(f"canvas {canvas_id!r} does not exist")
            node_rows = s.execute(q.get_nodes, (canvas_id,)).fetchall()
            return self._graph(r, node_rows, s.execute(q.get_edges, (canvas_id,)).fetchall())

        return self._adapter.run(SNAPSHOT, read)

    def _graph(self, canvas: Any, nodes: list[Any], edges: list[Any]) -> CanvasGraph:
        ts = self._ts
        return CanvasGraph(
            Canvas._from_row(canvas, ts),
            CanvasNode._from_rows(nodes, ts),
            CanvasEdge._from_rows(edges, ts),
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
        nodes, edges = sequence_of(nodes, "nodes"), sequence_of(edges, "edges")
        w = self._write("update_canvas_graph", ctx, canvas_id)
        stamp, q = w.stamp, self._q
        node_rows, edge_rows = graph_rows(canvas_id, nodes, edges, stamp)

        def work(w: Write) -> Any:
            logged = self._logged(w.session)
            if logged:  # the generation it replaces, as its writer saw it
                base = w.session.execute(q.generation_of_canvas, (canvas_id,)).fetchone()
            r = w.session.execute(q.touch_canvas, (*stamp[1:], canvas_id)).fetchone()
            if r is None:
                raise NotFoundError(f"canvas {canvas_id!r} does not exist")
            w.wrote(CANVASES, r)
            if logged:  # what it supersedes, as its writer saw it
                gone_edges = w.session.execute(q.delete_edges_returning, (canvas_id,)).fetchall()
                gone_nodes = w.session.execute(q.delete_nodes_returning, (canvas_id,)).fetchall()
                w.cleared += [(CANVAS_EDGES, canvas_id), (CANVAS_NODES, canvas_id)]
            else:
                w.clear(CANVAS_EDGES, q.delete_edges, canvas_id)
                w.clear(CANVAS_NODES, q.delete_nodes, canvas_id)
            w.insert_many(CANVAS_NODES, q.insert_node, node_rows)
            w.insert_many(CANVAS_EDGES, q.insert_edge, edge_rows)
            if logged:
                payload = {
                    "put": [
                        put(CANVASES.name, _TOUCH_COLUMNS, [(canvas_id, *stamp[1:])]),
                        put(CANVAS_NODES.name, CANVAS_NODES.names, node_rows),
                        put(CANVAS_EDGES.name, CANVAS_EDGES.names, edge_rows),
                    ],
                    "replaced": [
                        removed("canvas_nodes", sorted(gone_nodes)),
                        removed("canvas_edges", sorted(gone_edges)),
                    ],
                    "base": str(base[0]),
                }
                workspace_id = r[CANVASES.at["workspace_id"]]
                w.change = (workspace_id, ("canvases", canvas_id), payload)
            return r

        r = self._transaction(w, work)
        # Records over the rows as stored, decoded when read, like those
        # get_canvas_with_graph returns (the ordinal is a column, not a field).
        return self._graph(r, node_rows, edge_rows)

    def delete_canvas(self, ctx: WriteContext, canvas_id: str) -> None:
        """Delete a canvas with its nodes and edges."""
        key = check.identifier(canvas_id, "canvas id")
        self._delete(ctx, "delete_canvas", CANVASES, self._q.delete_canvas, key)

    # -- AI jobs ------------------------------------------------------------------

    def create_ai_job(self, job: NewAiJob) -> AiJob:
        """Insert a job in state ``queued``."""
        row = ai_job_row(job, self._now())
        return self._insert(Write("create_ai_job"), AI_JOBS, row, AiJob)

    def get_ai_job(self, job_id: UUID) -> AiJob:
        """The job; NotFoundError if missing."""
        key = str(check.uuid(job_id, "job_id"))
        return self._one(self._q.get_ai_job, key, AiJob, "AI job")

    def update_ai_job_status(self, update: JobStatusUpdate) -> AiJob:
        """Record a status transition; optional fields left ``None`` keep their value."""
        upd = expect(update, JobStatusUpdate, "update")
        key = str(check.uuid(upd.job_id, "job_id"))
        metrics = None if upd.metrics is None else job_metrics(upd.metrics)
        params = (
            check.enum(JobState, upd.status, "status").value,
            check.text(upd.status_reason, "status_reason"),
            check.optional_text(upd.error_message, "error_message"),
            None
            if metrics is None
            else check.json_text(encoding.metrics_to_json(metrics), "metrics"),
            encoding.opt_str(check.optional_uuid(upd.workflow_run_id, "workflow_run_id")),
            encoding.opt_str(check.optional_uuid(upd.trace_id, "trace_id")),
            check.optional_json_text(upd.job_outputs, "job_outputs"),
            self._now(),
            key,
        )
        optional = ("metrics", "workflow_run_id", "trace_id", "job_outputs")
        columns = [
            "status",
            "status_reason",
            "error_message",
            *(c for c, v in zip(optional, params[3:7], strict=True) if v is not None),
        ]
        w = Write("update_ai_job_status")
        row = self._update(w, AI_JOBS, self._q.update_ai_job_status, params, key, columns)
        return AiJob._from_row(row, self._ts)

    def set_job_outputs(self, job_id: UUID, outputs: Any) -> None:
        """Store the job's outputs (``None`` clears them)."""
        key = str(check.uuid(job_id, "job_id"))
        params = (check.optional_json_text(outputs, "outputs"), self._now(), key)
        w = Write("set_job_outputs")
        self._update(w, AI_JOBS, self._q.set_job_outputs, params, key, ["job_outputs"])

    def set_job_pinned(self, job_id: UUID, pinned: bool = True) -> None:
        """Pin a job so retention never removes it (or unpin it)."""
        key = str(check.uuid(job_id, "job_id"))
        params = (check.boolean(pinned, "pinned"), self._now(), key)
        w = Write("set_job_pinned")
        self._update(w, AI_JOBS, self._q.set_job_pinned, params, key, ["is_pinned"])

    # -- workflows ------------------------------------------------------------------

    def create_workflow_run(
        self, job_id: UUID, status: JobState, last_heartbeat: datetime | None = None
    ) -> WorkflowRun:
        """Start a run of the job; the heartbeat defaults to now."""
        job = check.uuid(job_id, "job_id")
        state = check.enum(JobState, status, "status")
        now = datetime.now(UTC)
        beat = now if last_heartbeat is None else check.timestamp(last_heartbeat, "last_heartbeat")
        row = WORKFLOW_RUNS.row(
            id=str(uuid.uuid4()),
            job_id=str(job),
            status=state.value,
            last_heartbeat=self._enc(beat),
            created_at=self._enc(now),
            updated_at=self._enc(now),
        )
        return self._insert(Write("create_workflow_run"), WORKFLOW_RUNS, row, WorkflowRun)

    def update_workflow_run_status(
        self, run_id: UUID, status: JobState, error_message: str | None = None
    ) -> WorkflowRun:
        """Record the run's new status (and error message, or clear it)."""
        key = str(check.uuid(run_id, "run_id"))
        state = check.enum(JobState, status, "status")
        error = check.optional_text(error_message, "error_message")
        params = (state.value, error, self._now(), key)
        w = Write("update_workflow_run_status")
        columns = ["status", "error_message"]
        row = self._update(w, WORKFLOW_RUNS, self._q.update_run_status, params, key, columns)
        return WorkflowRun._from_row(row, self._ts)

    def heartbeat_workflow(self, run_id: UUID, at: datetime) -> None:
        """Record that the run was alive at ``at``."""
        key = str(check.uuid(run_id, "run_id"))
        params = (self._enc(check.timestamp(at, "at")), self._now(), key)
        w = Write("heartbeat_workflow")
        self._update(w, WORKFLOW_RUNS, self._q.heartbeat_run, params, key, ["last_heartbeat"])

    def find_stalled_workflows(self, threshold_secs: float) -> list[WorkflowRun]:
        """Running runs whose last heartbeat is more than ``threshold_secs`` old."""
        seconds = check.number(threshold_secs, "threshold_secs")
        if not 0 <= seconds <= 10**10:
            raise ValidationError("threshold_secs must be a non-negative number of seconds")
        cutoff = self._enc(datetime.now(UTC) - timedelta(seconds=seconds))
        return self._all(self._q.stalled_runs, (cutoff,), WorkflowRun)

    def create_workflow_node_execution(self, execution: NewNodeExecution) -> WorkflowNodeExecution:
        """Record that a workflow node started executing."""
        row = node_execution_row(execution, self._now(), self._enc)
        w = Write("create_workflow_node_execution")
        return self._insert(w, WORKFLOW_NODE_EXECUTIONS, row, WorkflowNodeExecution)

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
        now = self._now()
        finished = now if state in TERMINAL_JOB_STATES else None
        params = (state.value, payload, error, finished, now, key)
        w = Write("update_workflow_node_execution_status")
        columns = [
            "status",
            *(("output_payload",) if payload is not None else ()),
            "error_message",
            *(("finished_at",) if finished is not None else ()),
        ]
        sql = self._q.update_node_exec
        row = self._update(w, WORKFLOW_NODE_EXECUTIONS, sql, params, key, columns)
        return WorkflowNodeExecution._from_row(row, self._ts)

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
        adapter = self._adapter
        w = Write("prune_ai_jobs")
        scan = PORTABLE.terminal_jobs if dry_run else PORTABLE.terminal_jobs_for_update

        def work(w: Write) -> Any:
            s = w.session
            # A real run locks every terminal job it reads before it decides:
            # a job pinned or set running meanwhile is seen so once its writer
            # commits, or its writer waits and then finds it gone. The DELETE
            # re-checks both conditions.
            terminal = adapter.stream(s, scan)
            doomed, scanned, spared_pinned, spared_window = _prunable(
                terminal, cutoff, keep, self._ts
            )
            freed = 0
            for chunk in chunks(doomed, _ID_BATCH):
                ids = placeholders(len(chunk))
                sizes = s.execute(
                    adapter.compile(PORTABLE.job_sizes.replace("{ids}", ids)), chunk
                ).fetchall()
                freed += sum(len(v.encode("utf-8")) for r in sizes for v in r[1:] if v)
                if not dry_run:
                    if self._logged(s):
                        self._record_prune(w, chunk)
                    s.execute(adapter.compile(PORTABLE.delete_ai_jobs.replace("{ids}", ids)), chunk)
                    w.deleted.extend((AI_JOBS, key) for key in chunk)
            return doomed, scanned, spared_pinned, spared_window, freed

        doomed, scanned, spared_pinned, spared_window, freed = self._transaction(
            w, work, SNAPSHOT if dry_run else WRITE
        )
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

    def _versions(self, s: Session, table: str, keys: list[str]) -> list[tuple[str, str | None]]:
        """``[key, version]`` of rows that have no version column (jobs and
        workflows): the event of the newest change set about each, as a
        delete's change set records what its writer saw (None: none)."""
        newest: dict[str, str] = {}
        for chunk in chunks(keys, _ID_BATCH):
            sql = PORTABLE.ledger_subject_events.replace("{ids}", placeholders(len(chunk)))
            for key, event in s.execute(self._adapter.compile(sql), (table, *chunk)):
                newest[key] = str(event)
        return [(key, newest.get(key)) for key in keys]

    def _record_prune(self, w: Write, job_ids: list[str]) -> None:
        """One change set per pruned chunk: the jobs and what cascades from them."""
        s, compile = w.session, self._adapter.compile
        ids = placeholders(len(job_ids))
        runs = [
            r[0]
            for r in s.execute(compile(PORTABLE.ledger_job_runs.replace("{ids}", ids)), job_ids)
        ]
        execs: list[str] = []
        for chunk in chunks(runs, _ID_BATCH):
            sql = compile(PORTABLE.ledger_run_execs.replace("{ids}", placeholders(len(chunk))))
            execs += [r[0] for r in s.execute(sql, chunk)]
        groups = [
            removed(table, self._versions(s, table, keys))
            for table, keys in (
                ("ai_jobs", job_ids),
                ("workflow_runs", runs),
                ("workflow_node_executions", execs),
            )
        ]
        if w.change is None:
            w.change = (_GLOBAL, ("ai_jobs", job_ids[0]), {"delete": []})
        w.change[2]["delete"] += [g for g in groups if g["rows"]]


def _prunable(
    terminal: Iterable[Sequence[Any]], cutoff: datetime, keep: int, ts: Any
) -> tuple[list[str], int, int, int]:
    """From the terminal jobs (id, is_pinned, created_at; newest first): the
    ids to prune, and how many expired jobs were scanned, spared as pinned
    and spared by the ``keep`` newest unpinned window."""
    scanned = spared_pinned = spared_window = newer_unpinned = 0
    doomed: list[str] = []
    for job_id, pinned, created in terminal:
        expired = ts(created) < cutoff
        if pinned:
            spared_pinned += expired
        elif newer_unpinned < keep:
            newer_unpinned += 1
            spared_window += expired
        elif expired:
            doomed.append(job_id)
        scanned += expired
    return doomed, scanned, spared_pinned, spared_window


def search_statement(
    adapter: Adapter, workspace_id: str, parsed: search.Query, top: int
) -> tuple[str, tuple[Any, ...]]:
    """The one statement of a search, in ``adapter``'s dialect, with its
    parameters: the ``top`` best single-row blocks, ranked by the engine,
    and every long block that is a candidate. (The benchmark's floor runs
    exactly this too.)"""
    match = adapter.fulltext_match("s", "block_search", "tokens")
    atoms = parsed.scored
    sql = adapter.compile(_search_sql(len(atoms)).replace("{match}", match))
    return sql, (
        *(x for a in atoms for x in (a.pattern, len(a.pattern))),
        workspace_id,
        adapter.fulltext_query(parsed.clauses, parsed.excluded),
        top,
        workspace_id,
        adapter.fulltext_query(parsed.long_candidates(), []),
    )


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


def _scopes(workspaces: Any) -> set[str] | None:
    """The scopes a workspace-limited sync covers: those workspaces, and the
    global scope of AI jobs and workflows."""
    if workspaces is None:
        return None
    ids = {check.identifier(w, "workspace id") for w in sequence_of(workspaces, "workspaces")}
    return ids | {GLOBAL_SCOPE}


def _vector(value: Any) -> Vector:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValidationError("a sync vector must be a dict of scope -> origin -> seq")
    out: Vector = {}
    for scope, origins in value.items():
        if not isinstance(scope, str) or not isinstance(origins, dict):
            raise ValidationError("a sync vector must be a dict of scope -> origin -> seq")
        for origin, seq in origins.items():
            if (
                not isinstance(origin, str)
                or isinstance(seq, bool)
                or not isinstance(seq, int)
                or not 0 <= seq <= check.INT64_MAX
            ):
                raise ValidationError(
                    "a sync vector maps origin ids to sequence numbers "
                    f"(integers from 0 to {check.INT64_MAX})"
                )
        out[scope] = dict(origins)
    return out
