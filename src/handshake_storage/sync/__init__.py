"""Local-first sync between any two Handshake databases.

``sync_databases(a, b)`` gives each side the change sets it has not applied
(tracked per origin and scope, ``exchange.py``), in causal order, each batch
applied atomically through the conflict rules (``merge.py``). The batch
format is ``batch.py``; the conflict log and restore are ``conflicts.py``.
See docs/DESIGN.md, "Local-first sync".
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from .. import validation as check
from ..errors import ValidationError
from .exchange import MAX_BATCH, ImportReport, PrunedError, Vector

if TYPE_CHECKING:  # database.py imports this package's modules
    from ..database import Database

__all__ = [
    "ImportReport",
    "PrunedError",
    "SyncReport",
    "TableCheck",
    "sync_databases",
]

DIRECTIONS = ("both", "push", "pull")

#: progress(direction, change sets moved so far in it, batches so far)
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class TableCheck:
    """One canonical table's row count and digest on each side."""

    name: str
    rows_a: int
    digest_a: str
    rows_b: int
    digest_b: str

    @property
    def equal(self) -> bool:
        return (self.rows_a, self.digest_a) == (self.rows_b, self.digest_b)


@dataclass
class SyncReport:
    a: str
    b: str
    direction: str
    workspaces: list[str] | None
    dry_run: bool
    pushed: ImportReport = field(default_factory=ImportReport)  # a -> b
    pulled: ImportReport = field(default_factory=ImportReport)  # b -> a
    batches: int = 0
    seconds: float = 0.0
    tables: list[TableCheck] | None = None  # with verify=True

    @property
    def verified(self) -> bool | None:
        """All tables equal (None when not verified)."""
        return None if self.tables is None else all(t.equal for t in self.tables)

    @property
    def moved(self) -> int:
        return sum(r.applied + r.rejected for r in (self.pushed, self.pulled))

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["verified"] = self.verified
        out["moved"] = self.moved
        if self.tables is not None:
            for entry, table in zip(out["tables"], self.tables, strict=True):
                entry["equal"] = table.equal
        return out


def sync_databases(
    a: Database | str,
    b: Database | str,
    *,
    workspaces: Sequence[str] | None = None,
    direction: str = "both",
    dry_run: bool = False,
    verify: bool = False,
    batch_size: int = 500,
    progress: Progress | None = None,
) -> SyncReport:
    """Bring ``a`` and ``b`` (URLs or open databases) together.

    ``direction``: ``"both"``, ``"push"`` (a -> b only) or ``"pull"``
    (b -> a only). ``workspaces`` limits the sync to those workspaces (AI
    jobs and workflows always travel). ``dry_run`` counts what would move
    and changes nothing. ``verify`` compares every canonical table's row
    count and digest afterwards (the digests ``copy`` uses). Interrupted at
    any point, each side keeps the batches it committed; the next sync
    resumes from what each side has applied.
    """
    if direction not in DIRECTIONS:
        raise ValidationError(f"direction must be one of {', '.join(DIRECTIONS)}")
    dry_run, verify = check.boolean(dry_run, "dry_run"), check.boolean(verify, "verify")
    batch_size = check.integer_between(batch_size, "batch_size", 1, MAX_BATCH)
    if workspaces is not None:
        if isinstance(workspaces, str) or not isinstance(workspaces, list | tuple):
            raise ValidationError("workspaces must be a list of workspace ids")
        workspaces = list(workspaces)
    started = time.perf_counter()
    with ExitStack() as stack:
        db_a, db_b = (_opened(x, stack) for x in (a, b))
        if db_a.replica_id == db_b.replica_id:
            raise ValidationError(
                "both databases are the same replica (the same database, or a file cloned "
                "outside the library: give the clone its own id with "
                "`handshake-storage ledger reidentify` or Database.reidentify)"
            )
        report = SyncReport(db_a.url, db_b.url, direction, workspaces, dry_run)
        if direction in ("both", "push"):
            _one_way(db_a, db_b, workspaces, dry_run, batch_size, progress, "push", report)
        if direction in ("both", "pull"):
            _one_way(db_b, db_a, workspaces, dry_run, batch_size, progress, "pull", report)
        if direction == "both" and not dry_run:
            # Each side now holds what the other has: remembered for prune.
            db_a.record_peer(db_b.replica_id, db_b.sync_vector(workspaces))
            db_b.record_peer(db_a.replica_id, db_a.sync_vector(workspaces))
        if verify:
            report.tables = _compare(db_a, db_b, workspaces)
    report.seconds = time.perf_counter() - started
    return report


def _opened(db: Database | str, stack: ExitStack) -> Database:
    from ..database import Database, open_database

    if isinstance(db, Database):
        return db
    if isinstance(db, str):  # a side must exist: a mistyped path is not a new replica
        return stack.enter_context(open_database(db, create=False))
    raise ValidationError(f"a sync side must be a URL or a Database, not {type(db).__name__}")


def _one_way(
    sender: Database,
    receiver: Database,
    workspaces: list[str] | None,
    dry_run: bool,
    batch_size: int,
    progress: Progress | None,
    name: str,
    report: SyncReport,
) -> None:
    since: Vector = receiver.sync_vector(workspaces)
    result = report.pushed if name == "push" else report.pulled
    moved = 0
    while True:
        try:
            batch = sender.export_changes(since, workspaces=workspaces, limit=batch_size)
        except PrunedError:
            # ``since`` is this sync's own cursor. Another sync may have brought
            # the receiver further meanwhile and recorded it as a peer, which is
            # what let a prune of the sender pass the cursor: decide on what the
            # receiver has applied now; only a receiver really behind is refused.
            if not _catch_up(since, receiver.sync_vector(workspaces)):
                raise
            continue
        changes = batch["changes"]
        if not changes:
            break
        if dry_run:
            result.applied += len(changes)
        else:
            result.add(receiver.import_changes(batch))
        for c in changes:
            scope = c["workspace"] or ""
            origins = since.setdefault(scope, {})
            origins[c["origin"]] = max(origins.get(c["origin"], 0), c["seq"])
        moved += len(changes)
        report.batches += 1
        if progress is not None:
            progress(name, moved, report.batches)
        if batch["complete"]:
            break


def _catch_up(since: Vector, current: Vector) -> bool:
    """Raise ``since`` to ``current`` wherever it is behind; whether it moved."""
    moved = False
    for scope, origins in current.items():
        mine = since.setdefault(scope, {})
        for origin, seq in origins.items():
            if seq > mine.get(origin, 0):
                mine[origin] = seq
                moved = True
    return moved


def _compare(a: Database, b: Database, workspaces: list[str] | None) -> list[TableCheck]:
    left, right = a.content_digests(workspaces), b.content_digests(workspaces)
    return [TableCheck(name, *left[name], *right[name]) for name in sorted(set(left) | set(right))]
