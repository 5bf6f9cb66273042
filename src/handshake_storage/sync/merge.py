"""Applying a received change set: the conflict rules, written once.

The outcome is a function of the set of change sets a replica has applied,
whatever their arrival order (docs/DESIGN.md, "Conflict rules"):

* fields: each field goes to the highest stamp that wrote it; a change
  set's ``prev`` (the version it overwrote) tells an ordinary overwrite from
  a concurrent one, so only real conflicts are logged;
* generations: a document's block list (a canvas's graph) is the children of
  the highest-stamped replacement; block edits made against another
  generation lose;
* deletes win: edits of missing rows or under missing parents lose; rows a
  delete removes that its writer had not seen are logged;
* the guard authorizes every received content change set with its original
  context; refused ones are recorded as rejected.

Every change that lost goes to ``sync_conflicts`` with both sides'
provenance and what is needed to restore it.
"""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..backends.base import Adapter, Session
from ..errors import GuardError, ValidationError
from ..guard import WriteContext
from ..ledger import APPLIED, REJECTED, ChangeSet, encode_payload
from ..queries import CHANGE_COLUMNS, MERGE_LOCKS, PORTABLE, merge_children, merge_row, placeholders
from ..schema import BOOLEAN, TIMESTAMP
from ..tables import BY_NAME, CANONICAL, WORKSPACES
from .chunk import LOAD_SLICE, ChunkState, Reindex

INSERT, UPDATE, DELETE, GENERATION = "insert", "update", "delete", "generation"

#: Each operation's rule and the table of its subject, which is all its
#: change set may write (inserts and updates: that row only; generations:
#: that parent row and its children; deletes: that row and what cascades).
OPERATIONS = {
    "create_workspace": (INSERT, "workspaces"),
    "create_document": (INSERT, "documents"),
    "create_block": (INSERT, "blocks"),
    "create_canvas": (INSERT, "canvases"),
    "create_ai_job": (INSERT, "ai_jobs"),
    "create_workflow_run": (INSERT, "workflow_runs"),
    "create_workflow_node_execution": (INSERT, "workflow_node_executions"),
    "update_block": (UPDATE, "blocks"),
    "update_ai_job_status": (UPDATE, "ai_jobs"),
    "set_job_outputs": (UPDATE, "ai_jobs"),
    "set_job_pinned": (UPDATE, "ai_jobs"),
    "update_workflow_run_status": (UPDATE, "workflow_runs"),
    "heartbeat_workflow": (UPDATE, "workflow_runs"),
    "update_workflow_node_execution_status": (UPDATE, "workflow_node_executions"),
    "delete_workspace": (DELETE, "workspaces"),
    "delete_document": (DELETE, "documents"),
    "delete_block": (DELETE, "blocks"),
    "delete_canvas": (DELETE, "canvases"),
    "prune_ai_jobs": (DELETE, "ai_jobs"),
    "replace_blocks": (GENERATION, "documents"),
    "update_canvas_graph": (GENERATION, "canvases"),
}
#: Which rule applies to each operation.
RULES = {op: rule for op, (rule, _table) in OPERATIONS.items()}
SUBJECT_TABLES = {op: table for op, (_rule, table) in OPERATIONS.items()}

#: The operations whose change sets remove rows; their payload lists every
#: key removed ("delete", cascades included; a generation's "replaced").
REMOVING = tuple(sorted(op for op, rule in RULES.items() if rule in (DELETE, GENERATION)))

#: Operations that carry a WriteContext, checked by the guard on receipt.
GUARDED = frozenset(
    {
        "create_workspace",
        "delete_workspace",
        "create_document",
        "delete_document",
        "create_block",
        "update_block",
        "delete_block",
        "replace_blocks",
        "create_canvas",
        "update_canvas_graph",
        "delete_canvas",
    }
)

#: A row's parent (table, column), from the table descriptions: a write
#: under a missing parent loses.
PARENTS = {t.name: (t.parent.table, t.parent.column) for t in CANONICAL if t.parent}

#: A generation's parent table and child tables (deleted children first).
GENERATIONS = {
    "replace_blocks": ("documents", ("blocks",)),
    "update_canvas_graph": ("canvases", ("canvas_edges", "canvas_nodes")),
}

#: A generation parent's column in its children.
_CHILD_COLUMN = {"documents": "document_id", "canvases": "canvas_id"}

#: A generation parent's child tables (deleted first to last).
_CHILDREN = {parent: children for parent, children in GENERATIONS.values()}

#: The tables whose creations record their parent's version as ``base`` (a
#: document or canvas: its workspace's edit_event_id), to tell a creation in
#: a parent deleted and created again. (Blocks record their document's
#: generation instead, canvas nodes and edges are written with their graph.)
BASED_ON_PARENT = frozenset(t for t, (parent, _) in PARENTS.items() if parent == "workspaces")

#: The canonical tables change sets may write (never the sync bookkeeping).
SYNCED_TABLES = frozenset(t.name for t in CANONICAL)

#: How a content table's rows are limited to some workspaces ({ids}).
WORKSPACE_FILTERS = {
    "workspaces": "id IN ({ids})",
    "documents": "workspace_id IN ({ids})",
    "canvases": "workspace_id IN ({ids})",
    "blocks": "document_id IN (SELECT id FROM documents WHERE workspace_id IN ({ids}))",
    "canvas_nodes": "canvas_id IN (SELECT id FROM canvases WHERE workspace_id IN ({ids}))",
    "canvas_edges": "canvas_id IN (SELECT id FROM canvases WHERE workspace_id IN ({ids}))",
}

#: Columns written by every content write: not worth a conflict entry alone.
BOOKKEEPING = frozenset({"updated_at", *WORKSPACES.trace_names})

FIELD, STALE, DELETED, REJECTED_KIND = "field", "stale_generation", "deleted", "rejected"


@dataclass
class _Entry:
    """A local change set about one row, as far as the field rule needs it."""

    hlc: str
    event: str
    prev: str | None
    columns: dict[str, Any]
    provenance: dict[str, Any]
    base: str | None = None


def _entry(table: str, key: str, r: Sequence[Any]) -> _Entry:
    """A ``merge_subject_changes`` row (payload as text, or parsed) as the
    field rule needs it: what it wrote to ``table``/``key``."""
    payload = r[7] if isinstance(r[7], dict) else json.loads(r[7])
    columns = written_to(table, key, payload)
    keys = ("hlc", "edit_event_id", "operation", "actor_kind", "actor_id", "job_id")
    prov = {**dict(zip(keys, r[:6], strict=True)), "workflow_id": r[6]}
    prov.update(origin_id=r[8], seq=r[9], written_at=r[10])
    return _Entry(r[0], str(r[1]), lineage_link(r[2], payload), columns, prov, payload.get("base"))


def written_to(table: str, key: str, payload: dict[str, Any]) -> dict[str, Any]:
    """What a change set wrote to one row, by column (its key column aside)."""
    columns: dict[str, Any] = {}
    for group in payload.get("put", ()):
        if group["table"] == table:
            for values in group["rows"]:
                if values[0] == key:
                    columns.update(zip(group["columns"][1:], values[1:], strict=True))
    return columns


def lineage_link(operation: str, payload: dict[str, Any]) -> str | None:
    """The version of its subject row a change set was made against, the
    link ``Merger._ancestors`` follows: an update's ``prev``, a
    replacement's ``base`` (the generation it replaced); None for a creation
    or a delete."""
    link = payload.get("base") if RULES.get(operation) == GENERATION else payload.get("prev")
    return None if link is None else str(link)


@dataclass
class _Removed:
    """What a scope's local change sets removed, by (table, key)."""

    #: the newest remover (a delete, its cascade, a generation's replacement)
    newest: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict)
    #: the versions a delete removed (as its writer saw them) -> the delete's event
    versions: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)

    def note(self, stamp: str, event: str, payload: dict[str, Any]) -> None:
        """Record the keys one change set removed."""
        for kind in ("delete", "replaced"):
            for group in payload.get(kind, ()):
                for key, version in group["rows"]:
                    row = (group["table"], key)
                    if row not in self.newest or stamp > self.newest[row][0]:
                        self.newest[row] = (stamp, event)
                    if kind == "delete" and version is not None:
                        self.versions.setdefault(row, {})[str(version)] = event


def provenance(c: ChangeSet) -> dict[str, Any]:
    return {
        "origin_id": c.origin_id,
        "seq": c.seq,
        "hlc": c.hlc,
        "edit_event_id": str(c.edit_event_id),
        "operation": c.operation,
        "actor_kind": c.actor_kind.value,
        "actor_id": c.actor_id,
        "job_id": None if c.job_id is None else str(c.job_id),
        "workflow_id": None if c.workflow_id is None else str(c.workflow_id),
        "written_at": c.written_at,  # text in the log, as every timestamp there
    }


class Merger:
    """Applies change sets inside one import transaction, a chunk at a time.

    ``authorize(ctx, resource_id)`` is the database's guard check;
    ``families`` maps table -> column -> type family and ``cascades`` table
    -> the ``(child, column)`` foreign keys deleted with it (both from the
    live schema); ``reindex(s, [(block_id, workspace_id, raw)])`` is the
    business logic's own search-projection upkeep.

    ``apply_chunk`` reads what the chunk's rules decide on up front (one
    query per table and lock kind, ``_prefetch``), runs the rules against
    that state in memory (``chunk.ChunkState``), and sends the writes
    together: the same outcome as applying the change sets one by one.
    """

    def __init__(
        self,
        adapter: Adapter,
        session: Session,
        authorize: Callable[[WriteContext, str], Any],
        families: dict[str, dict[str, str]],
        cascades: dict[str, list[tuple[str, str]]],
        reindex: Reindex,
    ) -> None:
        self._a = adapter
        self._s = session
        self._authorize = authorize
        self._families = families
        self._cascades = cascades
        self._reindex = reindex
        self._enc = adapter.encode_timestamp
        self._state = ChunkState(adapter, session, families, cascades)
        # What the chunk's ledger holds beyond the database: appended change
        # sets by edit_event_id, and the subjects' applied ones (prefetched
        # from the database, then appended to).
        self._events: dict[str, tuple[Any, ...]] = {}
        self._stamps: dict[str, str] = {}
        self._subjects: dict[tuple[str, str], list[_Entry]] = {}
        self._mine: dict[tuple[str, str], list[tuple[Any, ...]]] = defaultdict(list)
        # per scope, read when first needed: what its change sets removed
        self._removed_in: dict[str, _Removed] = {}
        self._removals: list[ChangeSet] = []  # the chunk's applied removing change sets
        self.conflicts = 0

    # -- plumbing -----------------------------------------------------------------------

    def _run(self, text: str, params: Sequence[Any] = ()) -> Any:
        return self._s.execute(self._state.sql(text), params)

    def _read(self, text: str, params: Sequence[Any] = ()) -> Any:
        """A read of content tables: sees the chunk's writes so far."""
        return self._state.barrier().execute(self._state.sql(text), params)

    def _to_db(self, table: str, columns: Sequence[str], values: Sequence[Any]) -> list[Any]:
        """Row-image values (JSON) as this backend takes them."""
        families = self._families.get(table)
        if families is None:
            raise ValidationError(f"a change set writes unknown table {table!r}")
        out = []
        for column, value in zip(columns, values, strict=True):
            family = families.get(column)
            if family is None:
                raise ValidationError(f"a change set writes unknown column {table}.{column}")
            if value is not None:
                if family == TIMESTAMP:
                    try:
                        value = self._enc(datetime.fromisoformat(value))
                    except (TypeError, ValueError):
                        raise ValidationError(
                            f"a change set holds {value!r} for timestamp {table}.{column}"
                        ) from None
                elif family == BOOLEAN:
                    value = bool(value)
            out.append(value)
        return out

    def _from_db(self, table: str, columns: Sequence[str], values: Sequence[Any]) -> list[Any]:
        """Stored values in row-image (JSON) form, for the conflict log."""
        families = self._families[table]
        out = []
        for column, value in zip(columns, values, strict=True):
            if value is not None and families.get(column) == TIMESTAMP:
                value = (
                    self._a.decode_timestamp(value).astimezone(UTC).isoformat(" ", "microseconds")
                )
            elif value is not None and families.get(column) == BOOLEAN:
                value = bool(value)
            out.append(value)
        return out

    def _row(self, table: str, key: Any, lock: str = "") -> dict[str, Any] | None:
        return self._state.row(table, key, lock)

    def _exists(self, table: str, key: Any) -> bool:
        return self._state.row(table, key) is not None

    def _event_of(self, table: str, key: str) -> str | None:
        r = self._state.row(table, key)
        return None if r is None else str(r["edit_event_id"])

    def _stored(self, table: str, key: str, columns: Sequence[str]) -> Any:
        """The row's stored values as the database returns them (conflict log)."""
        return self._read(merge_row(table, columns), (key,)).fetchone()

    def _stamp_of(self, event: str | None) -> str:
        """The HLC stamp of the change set with this edit_event_id ('' if unknown)."""
        if event is None:
            return ""
        mine = self._events.get(event)
        if mine is not None:
            return str(mine[2])
        stamp = self._stamps.get(event)
        if stamp is None:
            r = self._run(PORTABLE.merge_stamp_of_event, (event,)).fetchone()
            stamp = "" if r is None else str(r[0])
        return stamp

    def log(
        self,
        c: ChangeSet,
        kind: str,
        table: str,
        key: str,
        loser: dict[str, Any],
        winner: dict[str, Any] | None,
    ) -> None:
        """One entry of the conflict log: what lost, and to what."""
        self.conflicts += 1
        detail = {"loser": loser, "winner": winner}
        self._state.defer(
            PORTABLE.merge_log_conflict,
            (
                str(uuid.uuid4()),
                self._enc(datetime.now(UTC)),
                c.scope,
                kind,
                table,
                key,
                (loser.get("provenance") or {}).get("edit_event_id"),
                None if winner is None else (winner.get("provenance") or {}).get("edit_event_id"),
                encode_payload(detail),
            ),
        )

    def _local_provenance(self, event: str | None) -> dict[str, Any] | None:
        if event is None:
            return None
        r = self._events.get(event)
        if r is None:
            r = self._run(PORTABLE.merge_change_by_event, (event,)).fetchone()
        if r is None:
            return {"edit_event_id": event}
        keys = ("origin_id", "seq", "hlc", "operation", "actor_kind", "actor_id", "job_id")
        return {
            **dict(zip(keys, r[:7], strict=True)),
            "workflow_id": r[7],
            "written_at": r[8],
            "edit_event_id": event,
        }

    def _image(self, table: str, key: str) -> dict[str, Any] | None:
        columns = list(self._families[table])
        r = self._stored(table, key, columns)
        if r is None:
            return None
        return {"table": table, "columns": columns, "rows": [self._from_db(table, columns, r)]}

    # -- a chunk ------------------------------------------------------------------------

    def apply_chunk(self, changes: Sequence[tuple[ChangeSet, int]]) -> list[str]:
        """Apply change sets (with their temporary local positions) in order
        and append them to the ledger; their statuses (applied / rejected)."""
        for c, _ in changes:
            self._check(c)
        self._prefetch([c for c, _ in changes])
        statuses = []
        for c, position in changes:
            status = self._apply(c)
            self._append(c, status, position)
            statuses.append(status)
        self._state.finish(self._reindex)
        self._events.clear()
        self._stamps.clear()
        self._subjects.clear()
        self._mine.clear()
        self._removed_in.clear()
        self._removals.clear()
        return statuses

    def _check(self, c: ChangeSet) -> None:
        if c.operation not in RULES:
            raise ValidationError(f"a change set has unknown operation {c.operation!r}")
        self._check_names(c)
        self._check_shape(c)
        self._check_values(c)

    def _check_shape(self, c: ChangeSet) -> None:
        """A change set writes only what its operation writes: its subject row
        (an insert or update), or its generation parent's row and children of
        that parent (a replacement). The rules rely on it, and a batch that
        wrote other rows under another operation's name would escape the
        guard's and a workspace filter's view of it."""
        where = f"change set {c.origin_id}/{c.seq} ({c.operation})"
        if c.subject_table != SUBJECT_TABLES[c.operation]:
            raise ValidationError(f"{where} is about table {c.subject_table!r}")
        rule = RULES[c.operation]
        if rule == DELETE:
            return
        children: tuple[str, ...] = ()
        if rule == GENERATION:
            children = GENERATIONS[c.operation][1]
        parent_rows = 0
        for group in c.payload.get("put", ()):
            table, columns = group["table"], group["columns"]
            if table == c.subject_table:
                if any(values[0] != c.subject_id for values in group["rows"]):
                    raise ValidationError(f"{where} writes a {table} row other than its subject")
                parent_rows += len(group["rows"])
            elif table in children:
                column = _CHILD_COLUMN[c.subject_table]
                at = columns.index(column) if column in columns else None
                if any(at is None or values[at] != c.subject_id for values in group["rows"]):
                    raise ValidationError(f"{where} writes {table} rows of another {column}")
            else:
                raise ValidationError(f"{where} writes table {table!r}")
        if rule == GENERATION and parent_rows != 1:
            raise ValidationError(f"{where} must write its {c.subject_table} row once")

    def _prefetch(self, changes: Sequence[ChangeSet]) -> None:
        """Read (and lock) the rows the chunk's rules decide on: per table,
        parents first (the lock order), the rows merged or replaced under
        ``{for_update}``, the parents inserts go under with ``{for_key_share}``,
        the rest unlocked; then the documents of the blocks, the stamps of
        the generations, and the ledger entries of job and workflow rows."""
        keys: dict[str, dict[str, set[Any]]] = defaultdict(lambda: defaultdict(set))
        entries: dict[str, set[str]] = defaultdict(set)
        update, share = MERGE_LOCKS[0], MERGE_LOCKS[1]
        for c in changes:
            rule = RULES[c.operation]
            if c.status == REJECTED:
                continue  # writes nothing
            if rule == GENERATION:
                keys[GENERATIONS[c.operation][0]][update].add(c.subject_id)
                continue
            if rule == DELETE:
                keys[c.subject_table][""].add(c.subject_id)
                continue
            for group in c.payload.get("put", ()):
                table, columns = group["table"], group["columns"]
                parent = PARENTS.get(table) if rule == INSERT else None
                at = columns.index(parent[1]) if parent and parent[1] in columns else None
                for values in group["rows"]:
                    keys[table][update].add(values[0])
                    if parent is not None and at is not None:
                        keys[parent[0]][share].add(values[at])
                    if rule == UPDATE and "edit_event_id" not in self._families[table]:
                        entries[table].add(values[0])
        state = self._state
        for table in (t.name for t in CANONICAL):
            for lock in MERGE_LOCKS:
                state.load(table, keys[table][lock], lock)
        blocks = {*keys["blocks"][update], *keys["blocks"][""]}
        rows = (state.row("blocks", k) for k in blocks if state.known("blocks", k))
        state.load("documents", (r["document_id"] for r in rows if r is not None))
        generations = [
            state.row(GENERATIONS[c.operation][0], c.subject_id)
            for c in changes
            if RULES[c.operation] == GENERATION and c.status != REJECTED
        ]
        replaced: dict[tuple[str, str], set[str]] = defaultdict(set)
        for c in changes:
            if RULES[c.operation] == GENERATION and c.status != REJECTED:
                parent, children = GENERATIONS[c.operation]
                for child in children:
                    replaced[(child, _CHILD_COLUMN[parent])].add(c.subject_id)
        for (child, column), parents in replaced.items():
            state.load_children(child, column, parents)
        events = sorted({str(r["edit_event_id"]) for r in generations if r is not None})
        for i in range(0, len(events), LOAD_SLICE):
            part = events[i : i + LOAD_SLICE]
            sql = PORTABLE.merge_stamps_of_events.replace("{ids}", placeholders(len(part)))
            self._stamps.update(dict.fromkeys(part, ""))
            self._stamps.update((str(e), str(h)) for e, h in self._run(sql, part).fetchall())
        for table, subjects in entries.items():
            ids = sorted(k for k in subjects if isinstance(k, str))
            for i in range(0, len(ids), LOAD_SLICE):
                part = ids[i : i + LOAD_SLICE]
                sql = PORTABLE.merge_subjects_changes.replace("{ids}", placeholders(len(part)))
                for key in part:
                    self._subjects[(table, key)] = []
                for r in self._run(sql, (table, *part)).fetchall():
                    self._subjects[(table, r[11])].append(_entry(table, r[11], r[:11]))

    def _append(self, c: ChangeSet, status: str, position: int) -> None:
        """The change set's ledger row, with its provenance untouched."""
        payload = encode_payload(c.payload)
        event = str(c.edit_event_id)
        job = None if c.job_id is None else str(c.job_id)
        workflow = None if c.workflow_id is None else str(c.workflow_id)
        kind = c.actor_kind.value
        self._state.append(
            "sync_changes",
            CHANGE_COLUMNS,
            PORTABLE.ledger_insert,
            (
                c.origin_id,
                c.scope,
                c.seq,
                position,
                c.hlc,
                event,
                kind,
                c.actor_id,
                job,
                workflow,
                c.operation,
                c.subject_table,
                c.subject_id,
                status,
                self._enc(c.written_at),
                payload,
            ),
        )
        self._events[event] = (
            c.origin_id,
            c.seq,
            c.hlc,
            c.operation,
            kind,
            c.actor_id,
            job,
            workflow,
            c.written_at,
        )
        if status == APPLIED:
            # as merge_subject_changes reads it, with the payload parsed
            entry = (c.hlc, event, c.operation, kind, c.actor_id, job, workflow, c.payload)
            subject = (c.subject_table, c.subject_id)
            self._mine[subject].append((*entry, c.origin_id, c.seq, c.written_at))
            if subject in self._subjects:
                self._subjects[subject].append(_entry(*subject, self._mine[subject][-1]))
            if c.operation in REMOVING:
                self._removals.append(c)
                if c.scope in self._removed_in:
                    self._removed_in[c.scope].note(c.hlc, event, c.payload)

    # -- the rules ----------------------------------------------------------------------

    def _apply(self, c: ChangeSet) -> str:
        """Apply one change set; returns its status (applied / rejected)."""
        if c.status == REJECTED:
            self._reject(c, "rejected where it was written")
            return REJECTED
        if c.operation in GUARDED:
            ctx = WriteContext(c.actor_kind, c.actor_id, c.job_id, c.workflow_id)
            try:
                self._authorize(ctx, c.subject_id)
            except GuardError as exc:
                self._reject(c, str(exc))
                return REJECTED
        getattr(self, f"_{RULES[c.operation]}")(c)
        return APPLIED

    def _check_names(self, c: ChangeSet) -> None:
        """Table and column names of a change set are spliced into SQL: only
        the synced tables' own columns are accepted."""
        groups = [g for key in ("put", "delete", "replaced") for g in c.payload.get(key, ())]
        for table in (c.subject_table, *(g["table"] for g in groups)):
            if table not in SYNCED_TABLES or table not in self._families:
                raise ValidationError(
                    f"change set {c.origin_id}/{c.seq} touches table {table!r}, which sync "
                    "does not write"
                )
        for group in c.payload.get("put", ()):
            known = self._families[group["table"]]
            unknown = [n for n in group["columns"] if n not in known]
            if unknown:
                raise ValidationError(
                    f"change set {c.origin_id}/{c.seq} writes unknown column(s) "
                    f"{', '.join(map(repr, unknown))} of {group['table']!r}"
                )

    def _check_values(self, c: ChangeSet) -> None:
        """Every value a change set writes is one its column can hold on every
        backend (the table description's codecs), checked before any statement
        runs: the batch comes from another machine, and a backend left to
        judge would refuse it in its own words, or store it where the other
        refuses (text in an integer column, a NUL in text) or store it
        differently (1.5 rounded into an integer)."""
        for group in c.payload.get("put", ()):
            table = BY_NAME.get(group["table"])
            if table is None:
                continue  # not a described table: _check_names refused it already
            columns = group["columns"]
            for values in group["rows"]:
                try:
                    table.check_stored(columns, values)
                except ValidationError as exc:
                    raise ValidationError(f"change set {c.origin_id}/{c.seq}: {exc}") from None

    def _reject(self, c: ChangeSet, reason: str) -> None:
        loser = {"provenance": provenance(c), "payload": c.payload, "reason": reason}
        self.log(c, REJECTED_KIND, c.subject_table, c.subject_id, loser, None)

    def _removed(self, c: ChangeSet) -> _Removed:
        """What the local change sets of ``c``'s scope removed (read once per chunk)."""
        known = self._removed_in.get(c.scope)
        if known is None:
            known = self._removed_in[c.scope] = _Removed()
            sql = PORTABLE.merge_scope_removals.replace("{ids}", placeholders(len(REMOVING)))
            for stamp, event, payload in self._run(sql, (c.scope, *REMOVING)).fetchall():
                known.note(str(stamp), str(event), json.loads(payload))
            for d in self._removals:  # the chunk's own, not in the database yet
                if d.scope == c.scope:
                    known.note(d.hlc, str(d.edit_event_id), d.payload)
        return known

    def _deleter(self, c: ChangeSet, table: str, key: str) -> str | None:
        """The edit_event_id of the local change set that removed ``table``/
        ``key`` (itself, or with a parent it cascaded from): the winner over
        an edit of a row that is gone. None if the ledger no longer has it."""
        found = self._removed(c).newest.get((table, key))
        return None if found is None else found[1]

    def _targets_removed(self, c: ChangeSet, table: str, key: str, version: Any) -> str | None:
        """For a row that exists here: the local delete that already removed
        the incarnation ``c`` was made against — ``version`` (what it
        overwrote or deleted) shares an ancestor on the row with a version a
        delete removed: it is that version, one of its ancestors or
        descendants, or a sibling (an edit made concurrently with the
        versions the deleter saw, from a common ancestor); or its lineage
        starts with a creation in a version of the parent that a local
        delete removed (a document made in a workspace deleted here and
        created again). The row here is then the id created again, a row
        ``c`` never saw (an incarnation starts with a creation, which has no
        ``prev``, so the lineages of two incarnations never meet). None if
        ``c`` was made against this row."""
        if version is None:
            return None
        versions = self._removed(c).versions
        removed = versions.get((table, key), {})
        if not removed and (
            table not in BASED_ON_PARENT or ("workspaces", c.scope) not in versions
        ):
            return None  # (a document's or canvas's scope is its workspace)
        entries = self._entries(table, key, exclude=c)
        lineage = self._ancestors(entries, str(version))
        for seen, remover in sorted(removed.items()):
            if not lineage.isdisjoint(self._ancestors(entries, seen)):
                return remover
        parent = PARENTS.get(table)
        if table not in BASED_ON_PARENT or parent is None:
            return None
        for e in entries:  # the lineage's creation, in a parent deleted here
            creation = RULES.get(e.provenance["operation"]) == INSERT
            if creation and e.event in lineage and e.base is not None:
                parent_key = e.columns.get(parent[1])
                here = None if parent_key is None else self._event_of(parent[0], parent_key)
                if here is not None and here != str(e.base):
                    remover = self._targets_removed(c, parent[0], parent_key, e.base)
                    if remover is not None:
                        return remover
        return None

    def _lose(self, c: ChangeSet, kind: str, table: str, key: str, winner: str | None) -> None:
        loser = {"provenance": provenance(c), "payload": c.payload}
        self.log(c, kind, table, key, loser, {"provenance": self._local_provenance(winner)})

    def _stale_base(self, c: ChangeSet, table: str, row: dict[str, Any] | None) -> str | None:
        """For a block edit: the document's generation if it is not the edit's
        base (the edit then loses), else None."""
        if table != "blocks" or "base" not in c.payload:
            return None
        document_id = row["document_id"] if row and "document_id" in row else None
        if document_id is None:
            r = self._row("blocks", c.subject_id)
            if r is None:
                return None
            document_id = r["document_id"]
        current = self._event_of("documents", document_id)
        if current is None or current == c.payload["base"]:
            return None
        return current

    def _parent_removed(self, c: ChangeSet, table: str, row: dict[str, Any]) -> str | None:
        """For a creation under a parent that is not a generation (a document
        or canvas in its workspace): the local delete that removed the
        parent's version its writer saw (``base``), if the parent here is
        that id created again; else None. Block creations answer to their
        document's generation instead (``_stale_base``)."""
        parent = PARENTS.get(table)
        if table not in BASED_ON_PARENT or parent is None or c.payload.get("base") is None:
            return None
        parent_table, column = parent
        here = self._event_of(parent_table, row[column])
        if here is None or here == str(c.payload["base"]):
            return None
        return self._targets_removed(c, parent_table, row[column], c.payload["base"])

    def _insert(self, c: ChangeSet) -> None:
        for group in c.payload.get("put", ()):
            table, columns = group["table"], group["columns"]
            for values in group["rows"]:
                row = dict(zip(columns, values, strict=True))
                key = row["id"]
                parent = PARENTS.get(table)
                if parent is not None and not self._exists(parent[0], row[parent[1]]):
                    winner = self._deleter(c, parent[0], row[parent[1]])
                    self._lose(c, DELETED, table, key, winner)
                    continue
                stale = self._stale_base(c, table, row)
                if stale is not None:
                    self._lose(c, STALE, table, key, stale)
                    continue
                remover = self._parent_removed(c, table, row)
                if remover is not None:  # made in a parent deleted here and created again
                    self._lose(c, DELETED, table, key, remover)
                    continue
                params = self._to_db(table, columns, values)
                if self._row(table, key, MERGE_LOCKS[0]) is None:
                    self._state.insert(table, columns, [params], checked=True)
                else:  # the same id created elsewhere too: merge field by field
                    self._merge_fields(c, table, key, columns, values)

    def _update(self, c: ChangeSet) -> None:
        for group in c.payload.get("put", ()):
            table, columns = group["table"], group["columns"]
            for values in group["rows"]:
                key = values[0]
                stale = self._stale_base(c, table, None)
                if stale is not None:
                    self._lose(c, STALE, table, key, stale)
                    continue
                self._merge_fields(c, table, key, columns, values)

    def _merge_fields(
        self, c: ChangeSet, table: str, key: str, columns: list[str], values: list[Any]
    ) -> None:
        has_event = "edit_event_id" in self._families[table]
        names = list(columns[1:])
        current = self._row(table, key, MERGE_LOCKS[0])
        if current is None:
            self._lose(c, DELETED, table, key, self._deleter(c, table, key))
            return
        prev = c.payload.get("prev")
        incoming = dict(zip(columns, values, strict=True))
        if has_event and prev is not None and str(current["edit_event_id"]) == prev:
            won = names  # it overwrote exactly what is here: no concurrency
        elif (remover := self._targets_removed(c, table, key, prev)) is not None:
            self._lose(c, DELETED, table, key, remover)  # an edit of the row deleted here
            return
        else:
            entries = self._entries(table, key, exclude=c)
            ancestors = self._ancestors(entries, prev)
            won, lost_to, beaten = [], {}, {}
            for name in names:
                best = max(
                    (e for e in entries if name in e.columns), key=lambda e: e.hlc, default=None
                )
                if best is None or c.hlc > best.hlc:
                    won.append(name)
                    if best is not None and best.event not in ancestors:
                        beaten.setdefault(best.event, (best, []))[1].append(name)
                else:
                    lost_to.setdefault(best.event, (best, []))[1].append(name)
            for best, lost in lost_to.values():
                fields = [n for n in lost if n not in BOOKKEEPING]
                if fields:
                    loser = {
                        "provenance": provenance(c),
                        "columns": ["id", *fields],
                        "values": [key, *(incoming[n] for n in fields)],
                    }
                    self.log(c, FIELD, table, key, loser, {"provenance": best.provenance})
            stored: dict[str, Any] | None = None
            for best, lost in beaten.values():
                fields = [n for n in lost if n not in BOOKKEEPING]
                if fields:
                    if stored is None:  # as the database holds them, for the log
                        stored = dict(zip(names, self._stored(table, key, names), strict=True))
                    old = self._from_db(table, fields, [stored[n] for n in fields])
                    loser = {
                        "provenance": best.provenance,
                        "columns": ["id", *fields],
                        "values": [key, *old],
                    }
                    self.log(c, FIELD, table, key, loser, {"provenance": provenance(c)})
        if not won:
            return
        if (
            table in _CHILDREN
            and "edit_event_id" in won
            and str(current["edit_event_id"]) != str(incoming["edit_event_id"])
        ):
            # The same document (canvas) id created elsewhere too, and that
            # creation is the later generation: it starts empty, as it did
            # where it was made, whose replica refuses this side's children
            # as made against another generation.
            self._supersede(c, table, key, {})
        params = self._to_db(table, won, [incoming[n] for n in won])
        self._state.update(table, key, won, params)

    def _entries(self, table: str, key: str, exclude: ChangeSet) -> list[_Entry]:
        """The applied local change sets about one row, with what each wrote to
        it: read (and parsed) once per chunk, then kept current by ``_append``."""
        entries = self._subjects.get((table, key))
        if entries is None:
            rows = self._run(PORTABLE.merge_subject_changes, (table, key)).fetchall()
            rows += self._mine.get((table, key), [])
            entries = self._subjects[(table, key)] = [_entry(table, key, r) for r in rows]
        return [
            e
            for e in entries
            if e.provenance["origin_id"] != exclude.origin_id or e.provenance["seq"] != exclude.seq
        ]

    @staticmethod
    def _ancestors(entries: list[_Entry], prev: str | None) -> set[str]:
        """Events the incoming change set's writer had seen on this row."""
        by_event = {e.event: e for e in entries}
        seen: set[str] = set()
        while prev is not None and prev not in seen:
            seen.add(prev)
            entry = by_event.get(prev)
            prev = None if entry is None else entry.prev
        return seen

    def _delete(self, c: ChangeSet) -> None:
        groups = c.payload.get("delete", ())
        if not groups:
            return
        if c.operation == "delete_block":
            stale = self._stale_base(c, "blocks", None)
            if stale is not None:
                self._lose(c, STALE, "blocks", c.subject_id, stale)
                return
        seen = {(g["table"], r[0]): r[1] for g in groups for r in g["rows"]}
        if c.operation != "prune_ai_jobs":
            subject = (c.subject_table, c.subject_id)
            here = self._event_of(*subject)
            version = seen.get(subject)
            if (
                here is not None
                and version is not None
                and str(version) != here
                and self._targets_removed(c, *subject, version) is not None
            ):
                return  # what it deletes was deleted here already; the row here is a new one
        if c.operation == "prune_ai_jobs":
            self._log_unseen_versions(c, seen)
        else:
            self._log_unseen(c, seen)
        for group in groups:
            table = group["table"]
            if c.operation == "prune_ai_jobs" and table != "ai_jobs":
                continue  # gone with their jobs
            if c.operation != "prune_ai_jobs" and table != c.subject_table:
                continue  # the cascade removes the rest
            for r in group["rows"]:
                self._state.delete(table, r[0])

    def _log_unseen(self, c: ChangeSet, seen: dict[tuple[str, str], Any]) -> None:
        """Rows the delete removes here that its writer had not seen as they
        are: concurrent edits, which lose to the delete."""
        for table, key, event in self._doomed(c.subject_table, c.subject_id):
            if seen.get((table, key), "\0missing") == event:
                continue
            image = self._image(table, key)
            loser = {"provenance": self._local_provenance(event), "rows": [image]}
            self.log(c, DELETED, table, key, loser, {"provenance": provenance(c)})

    def _log_unseen_versions(self, c: ChangeSet, seen: dict[tuple[str, str], Any]) -> None:
        """The same for rows without a version column (a prune's jobs and
        workflows): their version is the newest change set about them. Change
        sets arrive in causal order, so here the pruner's version has arrived;
        a newer one here is an edit it had not seen. (An unseen edit stamped
        before the pruner's version is not told apart; where the prune came
        from, it is logged when it arrives there, the row gone.)"""
        for (table, key), version in seen.items():
            if version is None or not self._exists(table, key):
                continue  # recorded without versions, or already gone here
            entries = self._entries(table, key, c)
            newest = max(entries, key=lambda e: e.hlc, default=None)
            if newest is None or newest.event == version:
                continue
            loser = {
                "provenance": self._local_provenance(newest.event),
                "rows": [self._image(table, key)],
            }
            self.log(c, DELETED, table, key, loser, {"provenance": provenance(c)})

    def _doomed(self, table: str, key: str) -> list[tuple[str, str, str]]:
        """The row and everything its delete cascades to, here and now, with
        their versions (edit_event_id)."""
        event = self._event_of(table, key)
        return [] if event is None else self._cascade(table, key, event)

    def _cascade(self, table: str, key: str, event: str) -> list[tuple[str, str, str]]:
        out = [(table, key, event)]
        for child, (parent, column) in PARENTS.items():
            if parent == table:
                for child_key, child_event in self._read(
                    merge_children(child, column), (key,)
                ).fetchall():
                    out += self._cascade(child, child_key, str(child_event))
        return out

    def _supersede(
        self, c: ChangeSet, parent: str, key: str, replaced: dict[tuple[str, str], Any]
    ) -> None:
        """Remove the children of ``parent`` ``key``'s current generation: ``c``
        made a new one. Children its writer had not seen as they are here
        (not in ``replaced``) are concurrent edits, which lose (logged)."""
        column = _CHILD_COLUMN[parent]
        for child in _CHILDREN[parent]:
            cached = self._state.children(child, column, key)
            if cached is None:
                rows = self._read(merge_children(child, column), (key,)).fetchall()
            else:
                rows = [(r["id"], r["edit_event_id"]) for r in cached]
            for child_key, event in rows:
                if replaced.get((child, child_key)) != str(event):
                    image = self._image(child, child_key)
                    loser = {"provenance": self._local_provenance(str(event)), "rows": [image]}
                    self.log(c, STALE, child, child_key, loser, {"provenance": provenance(c)})
            self._state.delete_children(child, column, key)

    def _generation(self, c: ChangeSet) -> None:
        parent, children = GENERATIONS[c.operation]
        key = c.subject_id
        current = self._row(parent, key, MERGE_LOCKS[0])
        if current is None:
            self._lose(c, DELETED, parent, key, self._deleter(c, parent, key))
            return
        generation = str(current["edit_event_id"])
        base = c.payload.get("base")
        if base is not None and str(base) != generation:
            remover = self._targets_removed(c, parent, key, base)
            if remover is not None:  # a replacement of the parent deleted here
                self._lose(c, DELETED, parent, key, remover)
                return
        if c.hlc < self._stamp_of(generation):
            self._lose(c, STALE, parent, key, generation)
            return
        replaced = {
            (g["table"], r[0]): r[1] for g in c.payload.get("replaced", ()) for r in g["rows"]
        }
        puts = {g["table"]: g for g in c.payload.get("put", ())}
        self._supersede(c, parent, key, replaced)
        touch = puts[parent]
        names = touch["columns"][1:]
        self._state.update(parent, key, names, self._to_db(parent, names, touch["rows"][0][1:]))
        for child in reversed(children):
            group = puts.get(child)
            if not group or not group["rows"]:
                continue
            columns = group["columns"]
            rows = [self._to_db(child, columns, r) for r in group["rows"]]
            self._state.insert(child, columns, rows, checked=False)
