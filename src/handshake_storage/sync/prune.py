"""``ledger prune``: compact change sets every known peer has applied.

A change set is *stable* when every peer this replica completed a two-way
sync with (``sync_peers``) had applied it. Stable change sets are deleted,
except, for each row that still exists, the newest one about it (it carries
the row's provenance and, for a document or canvas, its generation's stamp),
the highest-stamped one that wrote each of its fields, and, for a row deleted
and created again with its id, every delete of it and the change sets that
link the lineage of its deleted incarnations: the merge rules compare against
those. So after a prune with every peer current, the ledger holds at most one
change set per live row and field it is about (one per row when every write
of the row writes the same fields), plus, per row created again, its deletes
and its deleted incarnations' history.
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
from .merge import (
    BASED_ON_PARENT,
    INSERT,
    PARENTS,
    RULES,
    SYNCED_TABLES,
    lineage_link,
    written_to,
)

_BATCH = 500

#: A change set's key: (origin, scope, seq).
Change = tuple[str, str, int]


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
        writers: dict[tuple[str, str, str], tuple[str, Change]] = {}
        lineages: dict[tuple[str, str], list[tuple[str, str | None, Change]]] = defaultdict(list)
        removed: dict[tuple[str, str], set[str]] = defaultdict(set)
        removers: dict[tuple[str, str], set[Change]] = defaultdict(set)
        # creations of documents and canvases: (event, parent row, its version seen)
        born: dict[tuple[str, str], list[tuple[str, tuple[str, str], str]]] = defaultdict(list)
        for origin, scope, seq, table, key, hlc, status, payload, event, operation in rows:
            if hlc > newest.get((table, key), ""):
                newest[table, key] = hlc
            if status == APPLIED:
                change = (origin, scope, seq)
                body = payload if isinstance(payload, dict) else json.loads(payload)
                written = written_to(table, key, body)
                for column in written:
                    if hlc > writers.get((table, key, column), ("", None))[0]:
                        writers[table, key, column] = (hlc, change)
                lineages[table, key].append((str(event), lineage_link(operation, body), change))
                for group in body.get("delete", ()):
                    for row_key, version in group["rows"]:
                        if version is not None:
                            removed[group["table"], row_key].add(str(version))
                            removers[group["table"], row_key].add(change)
                parent = PARENTS.get(table)
                if table in BASED_ON_PARENT and parent and RULES.get(operation) == INSERT:
                    parent_key = written.get(parent[1])
                    if parent_key is not None and body.get("base") is not None:
                        born[table, key].append(
                            (str(event), (parent[0], parent_key), str(body["base"]))
                        )
        # The field rule compares a received write with the highest stamp that
        # wrote the field here: that change set stays, or an older concurrent
        # write from a replica this one never met (relayed by a peer) would
        # win the field here and lose it everywhere else.
        last_writers = {change for _hlc, change in writers.values()}
        subjects = {k for k in newest if k[0] in SYNCED_TABLES}
        live = _live(adapter, s, subjects | {k for k in removed if k[0] in SYNCED_TABLES})
        # A row deleted and created again keeps what tells a change set made
        # against a deleted incarnation (before the delete was seen, relayed
        # late) from one made against the row here: every delete that removed
        # a version of it, the change sets along those incarnations' lineage
        # (merge.Merger._targets_removed walks them), and a creation made in
        # a deleted incarnation of its parent (with what was made against
        # it). Otherwise such a change set would apply to the new row here
        # and lose everywhere else.
        recreated: set[Change] = set()
        for row in (removed.keys() | born.keys()) & live:
            seeds = {
                event
                for event, parent_row, version in born.get(row, ())
                if parent_row in live
                and version
                in _closure(lineages.get(parent_row, []), removed.get(parent_row, set()), set())
            }
            if row in removed or seeds:
                recreated |= removers.get(row, set())
                recreated |= _incarnations(lineages.get(row, []), removed.get(row, set()), seeds)
        doomed, marks = [], {}
        for origin, scope, seq, table, key, hlc, _status, _payload, _event, _op in rows:
            stable = all(seen.get((origin, scope), 0) >= seq for seen in applied.values())
            needed = newest[table, key] == hlc or (origin, scope, seq) in last_writers
            keep = not stable or (needed and (table, key) in live)
            keep = keep or (origin, scope, seq) in recreated
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


def _closure(
    lineage: list[tuple[str, str | None, Change]], removed: set[str], seeds: set[str]
) -> set[str]:
    """The versions of one row (its change sets as ``(event, link, change)``)
    in the lineage of the versions deletes removed: their ancestors along the
    links, and every version made against one of those or their descendants
    (edits of a deleted incarnation received after its delete); ``seeds``
    (and what was made against them) are in it too."""
    by_event = {event: link for event, link, _change in lineage}
    made_against: dict[str, list[str]] = defaultdict(list)
    for event, link, _change in lineage:
        if link is not None:
            made_against[link].append(event)
    dead: set[str] = set()
    for version in removed:
        at: str | None = version
        while at is not None and at not in dead:
            dead.add(at)
            at = by_event.get(at)
    todo = [*dead, *seeds]
    dead.update(seeds)
    while todo:
        for event in made_against.get(todo.pop(), ()):
            if event not in dead:
                dead.add(event)
                todo.append(event)
    return dead


def _incarnations(
    lineage: list[tuple[str, str | None, Change]], removed: set[str], seeds: set[str]
) -> set[Change]:
    """The change sets about one row that a merge needs to tell its deleted
    incarnations: each one in their lineage (``_closure``, with the versions
    made against ``seeds``, creations in a deleted incarnation of the
    parent) that links to the one before (``merge.lineage_link``), and the
    seeds themselves (their ``base`` names the parent's deleted version)."""
    dead = _closure(lineage, removed, seeds)
    return {
        change
        for event, link, change in lineage
        if event in dead and (link is not None or event in seeds)
    }


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
