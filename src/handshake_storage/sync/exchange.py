"""Export and import of change sets: the per-(origin, scope) tracking.

A replica's *vector* maps scope -> origin -> the highest sequence number it
has applied (``sync_counters``). Export sends what a vector lacks, in the
order the sender applied it (local positions, causal by induction); import
applies a batch in one transaction that claims (locks) the receiver's marks
of what it brings before deciding anything, so two importers never both apply
a change set: the second waits for the first and skips it.
"""

from __future__ import annotations

import heapq
import random
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .. import validation as check
from ..backends.base import SNAPSHOT, WRITE, Adapter, Session
from ..errors import ConflictError, StorageError
from ..ledger import APPLIED, Ledger, change_from_row, stamp_parts
from ..queries import PORTABLE
from . import batch as batch_format
from .merge import Merger

Vector = dict[str, dict[str, int]]

#: Change sets applied together (read up front, written in one go: merge.py);
#: bounds the memory an import holds beyond its batch.
CHUNK_SIZE = 500

#: Most (origin, scope) marks claimed by one statement.
CLAIM_SLICE = 250

#: Attempts of one import batch that meets a concurrent importer or a
#: serialization failure before the ConflictError surfaces.
IMPORT_ATTEMPTS = 8


class PrunedError(StorageError):
    """The peer is behind what this replica has pruned from its ledger."""


@dataclass
class ImportReport:
    applied: int = 0
    rejected: int = 0
    skipped: int = 0
    conflicts: int = 0

    def add(self, other: ImportReport) -> None:
        self.applied += other.applied
        self.rejected += other.rejected
        self.skipped += other.skipped
        self.conflicts += other.conflicts


def _require(ledger: Ledger, s: Session, adapter: Adapter) -> str:
    replica = ledger.replica_id(s, create=False)
    if replica is None:
        raise StorageError(
            f"{adapter.url.redacted} has no change ledger: run its migrations first "
            "(handshake-storage migrate)"
        )
    return replica


def identify(adapter: Adapter, ledger: Ledger) -> None:
    """Make sure the replica id exists (and is cached) before a read-only
    transaction needs it: a database migrated by another tool gets it here."""
    if ledger.known:
        return
    with adapter.transaction(SNAPSHOT) as s:
        if ledger.replica_id(s, create=False) is not None or ledger.known:
            return
    if adapter.options.read_only:  # never write to a database opened read-only
        return
    with adapter.transaction(WRITE) as s:
        ledger.replica_id(s)


def read_vector(s: Session, q: Any, scopes: set[str] | None) -> Vector:
    vector: Vector = defaultdict(dict)
    for origin, scope, seq in s.execute(q.sync_counters).fetchall():
        if scopes is None or scope in scopes:
            vector[scope][origin] = seq
    return dict(vector)


def vector(adapter: Adapter, q: Any, ledger: Ledger, scopes: set[str] | None) -> Vector:
    identify(adapter, ledger)
    with adapter.transaction(SNAPSHOT) as s:
        _require(ledger, s, adapter)
        return read_vector(s, q, scopes)


def export(
    adapter: Adapter,
    q: Any,
    ledger: Ledger,
    since: Vector,
    scopes: set[str] | None,
    limit: int,
) -> dict[str, Any]:
    """The batch of at most ``limit`` change sets that ``since`` lacks."""
    out = []
    identify(adapter, ledger)
    with adapter.transaction(SNAPSHOT) as s:
        replica = _require(ledger, s, adapter)
        mine = read_vector(s, q, scopes)
        pruned = {(o, sc): n for o, sc, n in s.execute(q.sync_pruned).fetchall()}
        decode = adapter.decode_timestamp
        complete = True
        for scope in sorted(mine):
            theirs = since.get(scope, {})
            streams = []
            for origin, seq in sorted(mine[scope].items()):
                have = theirs.get(origin, 0)
                if seq <= have:
                    continue
                if pruned.get((origin, scope), 0) > have:
                    raise PrunedError(
                        f"the peer is behind the pruned ledger of {adapter.url.redacted} "
                        f"(workspace {scope or '(jobs)'}: it has {origin} up to {have}, "
                        f"pruned up to {pruned[(origin, scope)]}); re-copy the peer "
                        "from this database (handshake-storage copy)"
                    )
                rows = s.execute(q.sync_export, (origin, scope, have, limit - len(out) + 1))
                streams.append([change_from_row(r, decode) for r in rows.fetchall()])
            merged = list(heapq.merge(*streams, key=lambda c: c.position))
            room = limit - len(out)
            if len(merged) > room:
                complete = False
            out += merged[:room]
            if len(out) >= limit:
                complete = False  # conservatively: the next batch may be empty
                break
    return batch_format.encode(replica, out, complete)


def import_batch(
    adapter: Adapter,
    q: Any,
    ledger: Ledger,
    make_merger: Callable[[Session], Merger],
    batch: Any,
) -> ImportReport:
    """Apply a batch atomically; retried whole when a concurrent importer or
    a serialization failure gets in the way."""
    _source, _complete, changes = batch_format.decode(batch)
    for attempt in range(IMPORT_ATTEMPTS):
        try:
            return _import_once(adapter, q, ledger, make_merger, changes)
        except ConflictError:
            if attempt == IMPORT_ATTEMPTS - 1:
                raise
            time.sleep(random.uniform(0, 0.01 * 2**attempt))
    raise AssertionError("unreachable")  # pragma: no cover


def _import_once(
    adapter: Adapter,
    q: Any,
    ledger: Ledger,
    make_merger: Callable[[Session], Merger],
    changes: Sequence[Any],
) -> ImportReport:
    report = ImportReport()
    with adapter.transaction(WRITE) as s:
        replica = _require(ledger, s, adapter)
        marks = _claim(adapter, s, q, replica, changes)
        merger = make_merger(s)
        advanced: dict[tuple[str, str], int] = {}
        placed: dict[str, int] = defaultdict(int)
        newest: dict[str, str] = {}
        for start in range(0, len(changes), CHUNK_SIZE):
            todo = []
            for c in changes[start : start + CHUNK_SIZE]:
                key = (c.origin_id, c.scope)
                if c.seq <= advanced.get(key, marks.get(key, 0)):
                    report.skipped += 1
                    continue
                advanced[key] = c.seq
                placed[c.scope] += 1
                todo.append((c, -placed[c.scope]))  # placed for good by _place
                if c.hlc > newest.get(c.scope, ""):
                    newest[c.scope] = c.hlc
            for status in merger.apply_chunk(todo):
                if status == APPLIED:
                    report.applied += 1
                else:
                    report.rejected += 1
        report.conflicts = merger.conflicts
        # Counters last, in (origin, scope) order: the fixed lock order.
        touched = sorted(set(advanced) | {(replica, sc) for sc in placed})
        for origin, scope in touched:
            if origin == replica and scope in placed:
                _place(s, q, ledger, replica, scope, placed[scope], newest[scope])
            if (origin, scope) in advanced:
                _advance(s, q, origin, scope, marks.get((origin, scope)), advanced[(origin, scope)])
    return report


def _claim(
    adapter: Adapter, s: Session, q: Any, replica: str, changes: Sequence[Any]
) -> dict[tuple[str, str], int]:
    """The applied marks, those of the batch's (origin, scope)s claimed first.

    Each of them is locked (``FOR UPDATE``; opened at 0 if this replica has
    none yet, which waits for a concurrent opener) in (origin, scope) order
    before any content row: a second importer of the same change sets waits
    here for the first one's commit and then reads them as applied (skips
    them), instead of merging them again and failing at the end. The local
    origin's marks are not claimed (an import never moves them; the positions
    and clock of its rows are taken last, ``_place``), so API writes, which
    lock content rows and then the local origin's row, never wait in a cycle
    with an import."""
    marks = {(o, sc): n for o, sc, n in s.execute(q.sync_counters).fetchall()}
    wanted = sorted({(c.origin_id, c.scope) for c in changes if c.origin_id != replica})
    missing = [(o, sc, 0) for o, sc in wanted if (o, sc) not in marks]
    if missing:
        s.executemany(q.sync_first_mark, missing)
    for i in range(0, len(wanted), CLAIM_SLICE):
        part = wanted[i : i + CLAIM_SLICE]
        pairs = ", ".join(["(?, ?)"] * len(part))
        sql = adapter.compile(PORTABLE.sync_claim_marks.replace("{pairs}", pairs))
        for o, sc, n in s.execute(sql, [v for key in part for v in key]).fetchall():
            marks[o, sc] = n
    return marks


def _place(
    s: Session, q: Any, ledger: Ledger, replica: str, scope: str, count: int, newest: str
) -> None:
    """Give the batch's change sets of ``scope`` their local positions and
    raise the local clock of the scope to the newest received stamp."""
    wall, counter, _ = stamp_parts(newest)
    params = (count, wall, counter, wall, counter, counter, wall, wall, replica, scope)
    r = s.execute(q.sync_reserve_positions, params).fetchone()
    if r is None:
        s.execute(q.ledger_open_scope, (replica, scope, scope, scope))
        r = s.execute(q.sync_reserve_positions, params).fetchone()
    s.execute(q.sync_place_positions, (r[0] - count, scope))


def _advance(s: Session, q: Any, origin: str, scope: str, old: int | None, new: int) -> None:
    if old is None:
        moved = not s.execute(q.sync_first_mark, (origin, scope, new)).rowcount
    else:
        moved = not s.execute(q.sync_advance, (new, origin, scope, old)).rowcount
    if moved:
        raise ConflictError(
            "another import advanced the same origin meanwhile; the batch is retried"
        )


def record_peer(adapter: Adapter, q: Any, ledger: Ledger, peer: str, theirs: Vector) -> None:
    """Remember what ``peer`` had applied after a complete two-way sync.

    The rows are written in (origin, scope) order, so two syncs recording the
    same peer at once take the rows' locks in one order, and the transaction
    runs through the retry rule (``Adapter.run``) like every other."""
    now = adapter.encode_timestamp(datetime.now(UTC))
    rows = sorted(
        (peer, o, sc, n, now) for sc, origins in theirs.items() for o, n in origins.items()
    )

    def work(s: Session) -> None:
        _require(ledger, s, adapter)
        if rows:
            s.executemany(q.sync_record_peer, rows)

    adapter.run(WRITE, work)


#: The most change sets one batch (an export's ``limit``) may hold.
MAX_BATCH = 100_000


def check_limit(limit: Any) -> int:
    return check.integer_between(limit, "limit", 1, MAX_BATCH)
