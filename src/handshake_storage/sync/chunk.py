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
rule asks for them. Writes to tables the rules never read back (the ledger,
the conflict log) wait for the end of the chunk (``defer``); so does the
search upkeep, once per written block (``due``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..backends.base import Adapter, Session
from ..errors import ConflictError
from ..queries import (
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
    rows: list[Sequence[Any]] = field(default_factory=list)
    #: an insert that must write every row (``ON CONFLICT DO NOTHING``): a row
    #: that appeared meanwhile means a concurrent writer got in between
    checked: bool = False


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
        self._compiled: dict[str, str] = {}
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
            self._send(queue)
        return self._s

    # -- writes -----------------------------------------------------------------------

    def insert(
        self, table: str, columns: Sequence[str], rows: list[Sequence[Any]], *, checked: bool
    ) -> None:
        """Insert rows (stored values in ``columns`` order). ``checked``: the
        cache said they are missing, so each must be written (else the chunk
        is retried: a concurrent writer inserted the same id meanwhile)."""
        self._push(self._queue, merge_insert(table, columns, if_absent=checked), rows, checked)
        cached = self._rows[table]
        whole = set(columns) == set(self._families[table])
        at = columns.index("id")
        for values in rows:
            if whole:
                cached[values[at]] = dict(zip(columns, values, strict=True))
            else:  # defaults filled in by the database: read it back when asked
                cached.pop(values[at], None)
            if table == "blocks":
                self.due[values[at]] = None

    def update(self, table: str, key: str, names: Sequence[str], values: Sequence[Any]) -> None:
        self._push(self._queue, merge_update(table, names), [(*values, key)])
        row = self._rows[table].get(key)
        if row is not None:
            row.update(zip(names, values, strict=True))
        else:
            self._rows[table].pop(key, None)
        if table == "blocks" and "raw_content" in names:
            self.due[key] = None

    def delete(self, table: str, key: str) -> None:
        self._push(self._queue, merge_delete(table), [(key,)])
        self._gone(table, {key})

    def delete_children(self, table: str, column: str, parent: str) -> None:
        self._push(self._queue, merge_delete_children(table, column), [(parent,)])
        cached = self._rows[table]
        self._gone(table, {k for k, r in cached.items() if r is not None and r[column] == parent})

    def _gone(self, table: str, keys: set[str]) -> None:
        if not keys:
            return
        cached = self._rows[table]
        for key in keys:
            cached[key] = None
            if table == "blocks":
                self.due.pop(key, None)
        for child, column in self._cascades.get(table, ()):
            rows = self._rows[child]
            self._gone(child, {k for k, r in rows.items() if r is not None and r[column] in keys})

    def defer(self, sql: str, params: Sequence[Any]) -> None:
        """A write to a table the merge rules never read back (ledger, conflict log)."""
        self._push(self._deferred, sql, [params])

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
        self._send(queue + deferred)
        if blocks:
            reindex(self._s, blocks)
        self._rows.clear()
        self.due.clear()

    def _push(
        self, queue: list[_Group], sql: str, rows: list[Sequence[Any]], checked: bool = False
    ) -> None:
        if queue and queue[-1].sql == sql:
            queue[-1].rows.extend(rows)
        else:
            queue.append(_Group(sql, list(rows), checked))

    def _send(self, queue: list[_Group]) -> None:
        if not queue:
            return
        counts = self._a.execute_groups(self._s, [(self.sql(g.sql), g.rows) for g in queue])
        for group, count in zip(queue, counts, strict=True):
            if group.checked and count != len(group.rows):
                raise ConflictError(
                    "a row this import inserts was written by another transaction meanwhile; "
                    "the batch is retried"
                )
