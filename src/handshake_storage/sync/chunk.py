"""The rows one chunk of received change sets reads and writes, held in memory.

Applying change sets one statement at a time is bound by round trips (the
server answers each statement before the next one goes out). A chunk instead
reads the rows its merge rules will decide on up front, one query per table
and lock kind (``load``), keeps them here while the rules run in Python, and
queues its writes. The queue goes out in one piece (PostgreSQL: one pipeline,
``Adapter.execute_groups``) at the end of the chunk, or earlier when a rule
must read what this cache cannot answer (``barrier``). So every read of the
chunk sees exactly what applying the change sets one by one would have seen.

Rows are cached whole (every column of the live table), as ``{column:
stored value}``, or as ``None`` when known to be missing. A delete marks the
cached rows it cascades to as missing (the schema's cascading foreign keys);
rows not in the cache are read from the database, after a barrier, when a
rule asks for them. Writes to tables the rules never read back wait for the
end of the chunk (the conflict log: ``defer``; the ledger: ``append``, bulk
loaded); so does the search upkeep, once per written block (``due``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..backends.base import Adapter, Session
from ..errors import ConflictError
from ..queries import (
    merge_children_rows,
    merge_delete,
    merge_delete_children,
    merge_insert,
    merge_rows,
    merge_update,
)

#: Most ids bound in one ``IN (...)`` list.
LOAD_SLICE = 500

#: reindex(session, [(block_id, workspace_id, raw_content)]): the business
#: logic's search upkeep for blocks a merge wrote.
Reindex = Callable[[Session, list[tuple[str, str, str]]], None]


@dataclass
class _Group:
    sql: str
    rows: list[list[Any] | None] = field(default_factory=list)
    #: an insert that must write every row (``ON CONFLICT DO NOTHING``): a row
    #: that appeared meanwhile means a concurrent writer got in between
    checked: bool = False
    #: an insert's columns (its rows may still be changed or cancelled)
    columns: Sequence[str] = ()


class ChunkState:
    """See the module docstring. ``cascades`` maps a table to the
    ``(child table, column)`` foreign keys that delete with it."""

    def __init__(
        self,
        adapter: Adapter,
        session: Session,
        families: dict[str, dict[str, str]],
        cascades: dict[str, list[tuple[str, str]]],
    ) -> None:
        self._a = adapter
        self._s = session
        self._families = families
        self._cascades = cascades
        self._rows: dict[str, dict[str, dict[str, Any] | None]] = defaultdict(dict)
        self._queue: list[_Group] = []
        self._deferred: list[_Group] = []
        self._bulk: dict[tuple[str, tuple[str, ...], str], list[Sequence[Any]]] = {}
        self._compiled: dict[str, str] = {}
        #: rows inserted by the queue and not sent yet: (table, id) -> its group
        #: and place, so a later update changes it and a delete cancels it
        self._pending: dict[tuple[str, str], tuple[_Group, int]] = {}
        #: (child table, column) -> parents whose children are all cached
        self._complete: dict[tuple[str, str], set[str]] = defaultdict(set)
        #: per table, the columns that reference a parent row
        self._references = {
            child: {c for t in cascades.values() for ch, c in t if ch == child}
            for child in families
        }
        #: blocks whose search rows are made anew at the end (insertion order)
        self.due: dict[str, None] = {}

    def sql(self, text: str) -> str:
        compiled = self._compiled.get(text)
        if compiled is None:
            compiled = self._compiled[text] = self._a.compile(text)
        return compiled

    # -- reads ------------------------------------------------------------------------

    def known(self, table: str, key: str) -> bool:
        return key in self._rows[table]

    def load(self, table: str, keys: Iterable[Any], lock: str = "") -> None:
        """Read the rows of ``keys`` not cached yet (``lock``: one of
        ``queries.MERGE_LOCKS``), after sending the queued writes."""
        cached = self._rows[table]
        wanted = sorted({k for k in keys if isinstance(k, str) and k not in cached})
        if not wanted:
            return
        self.barrier()
        columns = list(self._families[table])
        for i in range(0, len(wanted), LOAD_SLICE):
            part = wanted[i : i + LOAD_SLICE]
            found = self._s.execute(self.sql(merge_rows(table, columns, len(part), lock)), part)
            for r in found.fetchall():
                row = dict(zip(columns, r, strict=True))
                cached[row["id"]] = row
            for key in part:
                cached.setdefault(key, None)

    def load_children(self, table: str, column: str, parents: Iterable[str]) -> None:
        """Read every row of ``table`` under these parents (unlocked); their
        children lists are then answered here (``children``)."""
        complete = self._complete[(table, column)]
        wanted = sorted({p for p in parents if isinstance(p, str) and p not in complete})
        if not wanted:
            return
        self.barrier()
        cached = self._rows[table]
        columns = list(self._families[table])
        for i in range(0, len(wanted), LOAD_SLICE):
            part = wanted[i : i + LOAD_SLICE]
            found = self._s.execute(
                self.sql(merge_children_rows(table, columns, column, len(part))), part
            )
            for r in found.fetchall():
                row = dict(zip(columns, r, strict=True))
                cached.setdefault(row["id"], row)
            complete.update(part)

    def children(self, table: str, column: str, parent: str) -> list[dict[str, Any]] | None:
        """The live rows of ``table`` under ``parent`` in id order, or None when
        not all of them are cached (then read them after a barrier)."""
        if parent not in self._complete[(table, column)]:
            return None
        rows = self._rows[table]
        return [rows[k] for k in sorted(k for k, r in rows.items() if r and r[column] == parent)]

    def row(self, table: str, key: Any, lock: str = "") -> dict[str, Any] | None:
        """The row as the chunk has left it so far (None: missing)."""
        cached = self._rows[table]
        if key not in cached:
            if not isinstance(key, str):  # let the database refuse it, as before
                return self._odd_key(table, key)
            self.load(table, [key], lock)
        return cached[key]

    def _odd_key(self, table: str, key: Any) -> dict[str, Any] | None:
        self.barrier()
        columns = list(self._families[table])
        r = self._s.execute(self.sql(merge_rows(table, columns, 1, "")), (key,)).fetchone()
        return None if r is None else dict(zip(columns, r, strict=True))

    def barrier(self) -> Session:
        """Send the queued writes; the session then reads the chunk's state."""
        if self._queue:
            queue, self._queue = self._queue, []
            self._pending.clear()
            self._send(queue)
        return self._s

    # -- writes -----------------------------------------------------------------------

    def insert(
        self, table: str, columns: Sequence[str], rows: list[Sequence[Any]], *, checked: bool
    ) -> None:
        """Insert rows (stored values in ``columns`` order). ``checked``: the
        cache said they are missing, so each must be written (else the chunk
        is retried: a concurrent writer inserted the same id meanwhile)."""
        sql = merge_insert(table, columns, if_absent=checked)
        group = self._push(self._queue, sql, [list(r) for r in rows], checked, columns)
        cached = self._rows[table]
        whole = set(columns) == set(self._families[table])
        at = columns.index("id")
        first = len(group.rows) - len(rows)
        for i, values in enumerate(rows):
            key = values[at]
            if whole:
                cached[key] = dict(zip(columns, values, strict=True))
                self._pending[(table, key)] = (group, first + i)
            else:  # defaults filled in by the database: read it back when asked
                cached.pop(key, None)
                for (child, column), parents in self._complete.items():
                    if child == table:
                        parents.discard(dict(zip(columns, values, strict=True)).get(column))
            if table == "blocks":
                self.due[key] = None
        if not whole:
            self.barrier()  # what the cache cannot follow goes out at once

    def update(self, table: str, key: str, names: Sequence[str], values: Sequence[Any]) -> None:
        """Change columns of a row; a row the queue has yet to insert is
        inserted with them instead (unless a reference to a parent moves)."""
        row = self._rows[table].get(key)
        pending = self._pending.get((table, key))
        moves = not self._references[table].isdisjoint(names)
        if pending is not None and not moves:
            group, i = pending
            inserted = group.rows[i]
            assert inserted is not None
            for name, value in zip(names, values, strict=True):
                inserted[group.columns.index(name)] = value
        else:
            self._push(self._queue, merge_update(table, names), [[*values, key]])
        if row is not None:
            row.update(zip(names, values, strict=True))
        else:
            self._rows[table].pop(key, None)
            if moves:
                for (child, _), parents in self._complete.items():
                    if child == table:
                        parents.clear()
        if table == "blocks" and "raw_content" in names:
            self.due[key] = None
        if moves:
            self.barrier()  # a row changing parents goes out at once (nothing pending under it)

    def delete(self, table: str, key: str) -> None:
        if (table, key) not in self._pending:  # else it never reaches the database
            self._push(self._queue, merge_delete(table), [[key]])
        self._gone(table, {key})

    def delete_children(self, table: str, column: str, parent: str) -> None:
        if not self._in_queue(column, table, parent):
            self._push(self._queue, merge_delete_children(table, column), [[parent]])
        cached = self._rows[table]
        self._gone(table, {k for k, r in cached.items() if r is not None and r[column] == parent})

    def _in_queue(self, column: str, table: str, parent: str) -> bool:
        """Whether ``parent`` (of ``table``'s ``column``) is a row the queue has
        yet to insert: then no child of it is in the database either."""
        for parent_table, links in self._cascades.items():
            if (table, column) in links and (parent_table, parent) in self._pending:
                return True
        return False

    def _gone(self, table: str, keys: set[str]) -> None:
        if not keys:
            return
        cached = self._rows[table]
        for key in keys:
            cached[key] = None
            if table == "blocks":
                self.due.pop(key, None)
            pending = self._pending.pop((table, key), None)
            if pending is not None:  # inserted and deleted in the queue: neither is sent
                group, i = pending
                group.rows[i] = None
        for child, column in self._cascades.get(table, ()):
            rows = self._rows[child]
            self._gone(child, {k for k, r in rows.items() if r is not None and r[column] in keys})

    def defer(self, sql: str, params: Sequence[Any]) -> None:
        """A write to a table the merge rules never read back (the conflict log)."""
        self._push(self._deferred, sql, [list(params)])

    def append(self, table: str, columns: Sequence[str], sql: str, row: Sequence[Any]) -> None:
        """A row for a table the merge rules never read back, inserted with the
        other rows of the chunk at its end (the backend's bulk load for many)."""
        self._bulk.setdefault((table, tuple(columns), sql), []).append(row)

    def finish(self, reindex: Reindex) -> None:
        """Send everything the chunk wrote, then make the search rows of the
        blocks it wrote anew; the cache is empty afterwards."""
        blocks = []
        for key in self.due:
            block = self.row("blocks", key)
            if block is not None:
                document = self.row("documents", block["document_id"])
                assert document is not None  # a live block's document is live (foreign key)
                blocks.append((key, document["workspace_id"], block["raw_content"]))
        queue, self._queue, deferred, self._deferred = self._queue, [], self._deferred, []
        self._pending.clear()
        self._send(queue + deferred)
        bulk, self._bulk = self._bulk, {}
        for (table, columns, sql), rows in bulk.items():
            self._a.insert_rows(self._s, table, columns, self.sql(sql), rows)
        if blocks:
            reindex(self._s, blocks)
        self._rows.clear()
        self._complete.clear()
        self.due.clear()

    def _push(
        self,
        queue: list[_Group],
        sql: str,
        rows: list[list[Any]],
        checked: bool = False,
        columns: Sequence[str] = (),
    ) -> _Group:
        if queue and queue[-1].sql == sql:
            queue[-1].rows.extend(rows)
        else:
            queue.append(_Group(sql, list(rows), checked, columns))
        return queue[-1]

    def _send(self, queue: list[_Group]) -> None:
        groups = []
        for group in queue:
            group.rows = [r for r in group.rows if r is not None]
            if group.rows:
                groups.append(group)
        if not groups:
            return
        counts = self._a.execute_groups(self._s, [(self.sql(g.sql), g.rows) for g in groups])
        for group, count in zip(groups, counts, strict=True):
            if group.checked and count != len(group.rows):
                raise ConflictError(
                    "a row this import inserts was written by another transaction meanwhile; "
                    "the batch is retried"
                )
