"""``ledger prune``: compact change sets every known peer has applied.

A change set is *stable* when every peer this replica completed a two-way
sync with (``sync_peers``) had applied it. Stable change sets are deleted,
except, for each row that still exists, the newest one about it (it carries
the row's provenance and, for a document or canvas, its generation's stamp),
the highest-stamped one that wrote each of its fields, and, for a row deleted
and created again with its id, the newest delete of it: the merge rules
compare against those. So after a prune with every peer current, the ledger
holds at most one change set per live row and field it is about (one per row
when every write of the row writes the same fields), plus one delete per row
created again.
The highest pruned sequence number per (origin, scope) goes to
``sync_pruned``: a peer behind it is told to re-copy (``PrunedError``).
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from ..backends.base import WRITE, Adapter, Session
from ..ledger import APPLIED, Ledger
from ..queries import placeholders
from .merge import SYNCED_TABLES

_BATCH = 500


@dataclass
class LedgerPruneReport:
    scanned: int = 0
    pruned: int = 0
    kept: int = 0
    peers: int = 0
    dry_run: bool = False


def prune(adapter: Adapter, q: Any, ledger: Ledger, dry_run: bool) -> LedgerPruneReport:
    """One transaction through the retry rule (``Adapter.run``): a deadlock
    with another deleter of the same change sets (a second prune, a heartbeat
    coalescing) runs it again from the start, with what is stable then. The
    change sets are deleted in key order, so two prunes delete in one order."""

    def work(s: Session) -> LedgerPruneReport:
        report = LedgerPruneReport(dry_run=dry_run)
        if ledger.replica_id(s) is None:
            return report
        applied: dict[str, dict[tuple[str, str], int]] = defaultdict(dict)
        for peer, origin, scope, seq in s.execute(q.prune_peers).fetchall():
            applied[peer][(origin, scope)] = seq
        report.peers = len(applied)
        rows = s.execute(q.prune_candidates).fetchall()
        report.scanned = len(rows)
        if not applied:
            report.kept = len(rows)
            return report
        newest: dict[tuple[str, str], str] = {}
        writers: dict[tuple[str, str, str], tuple[str, tuple[str, str, int]]] = {}
        removers: dict[tuple[str, str], tuple[str, tuple[str, str, int]]] = {}
        for origin, scope, seq, table, key, hlc, status, payload in rows:
            if hlc > newest.get((table, key), ""):
                newest[table, key] = hlc
            if status == APPLIED:
                body = payload if isinstance(payload, dict) else json.loads(payload)
                for column in _written(table, key, body):
                    if hlc > writers.get((table, key, column), ("", None))[0]:
                        writers[table, key, column] = (hlc, (origin, scope, seq))
                if body.get("delete") and hlc > removers.get((table, key), ("", None))[0]:
                    removers[table, key] = (hlc, (origin, scope, seq))
        # The field rule compares a received write with the highest stamp that
        # wrote the field here: that change set stays, or an older concurrent
        # write from a replica this one never met (relayed by a peer) would
        # win the field here and lose it everywhere else.
        last_writers = {change for _hlc, change in writers.values()}
        # A row deleted and created again keeps the delete: it tells an edit
        # of the deleted row (made before the delete was seen) from an edit
        # of the new one, which would otherwise apply to the new row here.
        last_writers |= {change for _hlc, change in removers.values()}
        live = _live(adapter, s, {k for k in newest if k[0] in SYNCED_TABLES})
        doomed, marks = [], {}
        for origin, scope, seq, table, key, hlc, _status, _payload in rows:
            stable = all(seen.get((origin, scope), 0) >= seq for seen in applied.values())
            needed = newest[table, key] == hlc or (origin, scope, seq) in last_writers
            keep = not stable or (needed and (table, key) in live)
            if keep:
                report.kept += 1
                continue
            doomed.append((origin, scope, seq))
            marks[origin, scope] = max(marks.get((origin, scope), 0), seq)
        report.pruned = len(doomed)
        if not dry_run and doomed:
            s.executemany(q.prune_delete, sorted(doomed))
            s.executemany(
                q.prune_mark,
                [(o, sc, n) for (o, sc), n in sorted(marks.items())],
            )
        return report

    return adapter.run(WRITE, work)


def _written(table: str, key: str, payload: dict[str, Any]) -> list[str]:
    """The fields a change set wrote to its subject row (as ``merge._entry``
    reads them)."""
    put = payload.get("put", ())
    return [
        column
        for group in put
        if group["table"] == table
        for values in group["rows"]
        if values[0] == key
        for column in group["columns"][1:]
    ]


def _live(adapter: Adapter, s: Session, subjects: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """The (table, id) subjects whose row still exists."""
    by_table: dict[str, list[str]] = defaultdict(list)
    for table, key in subjects:
        by_table[table].append(key)
    live = set()
    for table, keys in by_table.items():
        keys.sort()
        for i in range(0, len(keys), _BATCH):
            chunk = keys[i : i + _BATCH]
            sql = adapter.compile(
                f"SELECT id FROM {table} WHERE id IN ({placeholders(len(chunk))})"
            )
            live.update((table, r[0]) for r in s.execute(sql, chunk).fetchall())
    return live
