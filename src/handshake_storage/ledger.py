"""The change ledger: one immutable change set per committed API write.

Every write through :class:`~handshake_storage.Database` calls
:meth:`Ledger.append` inside its own transaction, after its content
statements. The append ticks the scope's row of ``sync_counters`` (sequence
number, local position, hybrid logical clock) — which also serializes the
scope's appends until commit, so sequence numbers commit in order — and
inserts the change set. Sync (``handshake_storage.sync``) reads and extends
the same ledger. See docs/DESIGN.md, "Local-first sync".
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from .backends.base import Adapter, Session
from .errors import StorageError
from .guard import MutationMetadata
from .models import WriteActorKind
from .queries import HLC_MAX_COUNTER, PORTABLE

#: The sync bookkeeping tables: canonical (copied), but replica-local, so
#: sync verification does not compare them.
SYNC_TABLES = (
    "sync_replica",
    "sync_counters",
    "sync_changes",
    "sync_peers",
    "sync_pruned",
    "sync_conflicts",
)

#: The replica's identity: one row made when the database is migrated. Not
#: data: a copy into a migrated target replaces it, a rollback drops it
#: without asking.
IDENTITY_TABLES = ("sync_replica",)

#: Rows a copy streams at once from tables whose rows can be large (a change
#: set holds a whole write's row images), so memory stays flat.
LARGE_ROW_BATCH = {"sync_changes": 4}

#: The scope of change sets that belong to no workspace (AI jobs, workflows).
GLOBAL_SCOPE = ""

APPLIED, REJECTED = "applied", "rejected"


def wall_clock_ms() -> int:
    """Milliseconds since the epoch; module-level so a test can move the clock."""
    return time.time_ns() // 1_000_000


#: The largest wall clock reading (ms) and counter a stamp's fixed-width
#: fields hold (13 and 6 digits): stamps are compared as text.
MAX_WALL = 10**13 - 1
MAX_COUNTER = HLC_MAX_COUNTER


def stamp(wall: int, counter: int, origin: str) -> str:
    """The HLC stamp as text that sorts by (wall, counter, origin)."""
    return f"{wall:013d}.{counter:06d}.{origin}"


def stamp_parts(text: str) -> tuple[int, int, str]:
    wall, counter, origin = text.split(".", 2)
    return int(wall), int(counter), origin


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(" ", "microseconds")
    if isinstance(value, UUID):
        return str(value)
    raise TypeError(f"cannot serialize {type(value).__name__}")


_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=_json_default)
encode_payload = _encoder.encode


def put(table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> dict[str, Any]:
    """A row image group: rows (values in ``columns`` order) written to ``table``."""
    return {"table": table, "columns": list(columns), "rows": [list(r) for r in rows]}


def removed(table: str, rows: Iterable[Sequence[Any]]) -> dict[str, Any]:
    """Keys deleted from ``table``: ``[id, edit_event_id as the deleter saw it]``."""
    return {"table": table, "rows": [list(r) for r in rows]}


@dataclass(frozen=True, slots=True)
class ChangeSet:
    """One committed write, as the ledger keeps it (never edited)."""

    origin_id: str
    seq: int
    workspace_id: str | None
    position: int
    hlc: str
    edit_event_id: UUID
    actor_kind: WriteActorKind
    actor_id: str | None
    job_id: UUID | None
    workflow_id: UUID | None
    operation: str
    subject_table: str
    subject_id: str
    status: str
    written_at: datetime
    payload: dict[str, Any]

    @property
    def scope(self) -> str:
        return self.workspace_id or GLOBAL_SCOPE


def change_from_row(row: Sequence[Any], decode_ts: Any) -> ChangeSet:
    try:
        return ChangeSet(
            origin_id=row[0],
            seq=row[2],
            workspace_id=row[1] or None,
            position=row[3],
            hlc=row[4],
            edit_event_id=UUID(row[5]),
            actor_kind=WriteActorKind(row[6]),
            actor_id=row[7],
            job_id=None if row[8] is None else UUID(row[8]),
            workflow_id=None if row[9] is None else UUID(row[9]),
            operation=row[10],
            subject_table=row[11],
            subject_id=row[12],
            status=row[13],
            written_at=decode_ts(row[14]),
            payload=json.loads(row[15]),
        )
    except (ValueError, TypeError) as exc:
        raise StorageError(
            f"sync_changes row ({row[0]!r}, {row[1]!r}, {row[2]!r}) cannot be read: {exc}"
        ) from None


class Ledger:
    """The append side of the ledger, bound to one database.

    The replica id is read once and cached; a database not migrated as far
    as the ledger has none, and its writes append nothing.
    """

    def __init__(self, adapter: Adapter, q: Any) -> None:
        self._adapter = adapter
        self._q = q
        self._enc = adapter.encode_timestamp
        self._replica: str | bool | None = False  # False: not looked up yet

    @property
    def known(self) -> bool:
        """Whether the replica id (or its absence) has been looked up."""
        return self._replica is not False

    def reset(self) -> None:
        """Forget the cached replica id (after migrating or re-identifying)."""
        self._replica = False

    def replica_id(self, s: Session, *, create: bool = True) -> str | None:
        """The replica id, made on first use in a writing transaction if the
        database has the ledger but no id yet (migrated by a tool that did
        not make one). ``create=False`` in read-only transactions."""
        replica = self._replica
        if replica is False:
            if not self._adapter.has_table(s, "sync_replica"):
                self._replica = None
                return None
            row = s.execute(self._q.ledger_replica).fetchone()
            if row is None:
                if not create:
                    return None
                return self.ensure_replica(s)
            replica = self._replica = str(row[0])
        return replica  # type: ignore[return-value]

    def ensure_replica(self, s: Session) -> str | None:
        """Give the database its replica id if it has the ledger but no id yet."""
        self.reset()
        if not self._adapter.has_table(s, "sync_replica"):
            return None
        s.execute(
            self._q.ledger_create_replica,
            (str(uuid.uuid4()), self._enc(datetime.now(UTC)), None),
        )
        row = s.execute(self._q.ledger_replica).fetchone()
        return str(row[0])

    def latest_event(self, s: Session, table: str, key: str) -> str | None:
        """The edit_event_id of the newest change set about one row (an
        update's ``prev``: the version it overwrites), if the ledger has one."""
        if self.replica_id(s) is None:
            return None
        r = s.execute(self._q.ledger_latest, (table, key)).fetchone()
        return None if r is None else str(r[0])

    def append(
        self,
        s: Session,
        meta: MutationMetadata | None,
        operation: str,
        scope: str,
        subject: tuple[str, str],
        payload: dict[str, Any],
        *,
        coalesce: bool = False,
    ) -> None:
        """Record the write that ``s`` is about to commit. ``meta`` is the
        guard's metadata (None for job and workflow writes: SYSTEM, fresh
        event id). ``coalesce`` first drops this origin's earlier change sets
        of the same operation on the same subject (heartbeats)."""
        replica = self.replica_id(s)
        if replica is None:
            return
        q = self._q
        if coalesce:
            s.execute(q.ledger_coalesce, (subject[0], subject[1], replica, operation))
        if meta is None:
            kind, actor, job, workflow = WriteActorKind.SYSTEM.value, None, None, None
            event, written = str(uuid.uuid4()), datetime.now(UTC)
        else:
            kind, actor = meta.actor_kind.value, meta.actor_id
            job = None if meta.job_id is None else str(meta.job_id)
            workflow = None if meta.workflow_id is None else str(meta.workflow_id)
            event, written = str(meta.edit_event_id), meta.timestamp
        change = (
            event,
            kind,
            actor,
            job,
            workflow,
            operation,
            subject[0],
            subject[1],
            APPLIED,
            self._enc(written),
            encode_payload(payload),
        )
        now = wall_clock_ms()
        tick = (now, now, now, replica, scope)
        # Tick (replica, scope)'s counter row (its lock serializes the scope's
        # appends to commit) and insert the change set numbered and stamped
        # from it: one statement where the backend can (a statement is a round
        # trip there), else two. A scope this replica never wrote to gets its
        # row first (a concurrent opener's waits for the other's commit).
        combined = self._adapter.features.combines_statements
        first = q.ledger_append if combined else q.ledger_tick
        params = (*tick, *change) if combined else tick
        r = s.execute(first, params).fetchone()
        if r is None:
            s.execute(q.ledger_open_scope, (replica, scope, scope, scope))
            r = s.execute(first, params).fetchone()
        if r is None:  # never: the row is there once opened; a lost change set is worse
            raise StorageError(f"the ledger's counter of scope {scope!r} could not be opened")
        if combined:
            return
        seq, pos, wall, counter = r
        hlc = stamp(wall, counter, replica)
        s.execute(q.ledger_insert, (replica, scope, seq, pos, hlc, *change))


def reidentify(adapter: Adapter, s: Session) -> str | None:
    """Give a cloned database (the target of ``copy``) a replica id of its own.

    The ledger it carries keeps its origins: the source's counters become an
    ordinary peer's applied marks, so the clone and its source can sync
    incrementally. Its own counters start when it first writes, continuing
    the scope's positions and clock. Returns the new id (None: no ledger)."""
    if not adapter.has_table(s, "sync_replica"):
        return None
    old = s.execute(adapter.compile(PORTABLE.ledger_replica)).fetchone()
    replica = str(uuid.uuid4())
    s.execute(adapter.compile(PORTABLE.ledger_forget_replica))
    s.execute(
        adapter.compile(PORTABLE.ledger_create_replica),
        (replica, adapter.encode_timestamp(datetime.now(UTC)), None if old is None else old[0]),
    )
    return replica


class LedgerRecorder:
    """The change ledger as the writes' :class:`~handshake_storage.writes.ChangeRecorder`:
    appends the change set the write method described (``write.change``) in
    the write's own transaction. Active, so single-statement writes get a
    transaction to commit the change set with."""

    active = True

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    def record(self, session: Session, write: Any) -> None:
        if write.change is None:
            return
        scope, subject, payload = write.change
        self._ledger.append(
            session, write.meta, write.operation, scope, subject, payload, coalesce=write.coalesce
        )
