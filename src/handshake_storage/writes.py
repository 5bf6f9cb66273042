"""The shape every write of the API has, written once: authorize, build the
rows (validating them), run one transaction, record what it wrote.

:meth:`Database._writing` opens a :class:`Write`; the write method runs its
statements through it (``insert``, ``insert_many``, ``wrote``, ``deleted``,
``cleared``), and when the statements are done, still inside the same
transaction, the database's :class:`ChangeRecorder` receives the
:class:`Write` — the explicit hook at the *record* point.

The change ledger (local-first sync) plugs in here: a recorder whose
``record(session, write)`` appends one change set to the ledger in the same
transaction as the write, from ``write.meta`` (edit_event_id and actor
fields; ``None`` for the writes that take no WriteContext: AI jobs and
workflows), ``write.operation`` (the API method's name) and the rows:
``written`` are stored rows in their table description's column order (turn
them into images with ``table.image(row, decode_timestamp)``), ``deleted``
keys, ``cleared`` (table, parent key) pairs whose children were all
replaced. A recorder that is ``active`` makes single-statement writes run in
an explicit transaction too, so the record always commits with the write.
The default :data:`NO_RECORDER` records nothing and keeps autocommit.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from itertools import chain, repeat
from typing import Any, Protocol, overload

from .backends.base import Adapter, Session
from .guard import MutationMetadata
from .tables import Table


class Written(Sequence[tuple[Table, Sequence[Any]]]):
    """The stored rows a write wrote, each as a ``(table, row)`` pair, in the
    order written. Kept as the ``(table, rows)`` groups they were inserted
    in, and paired only when read: a 1,000-row bulk insert adds one group,
    not 1,000 pair objects for the cyclic garbage collector (bench/)."""

    __slots__ = ("_groups",)

    def __init__(self) -> None:
        self._groups: list[tuple[Table, Sequence[Sequence[Any]]]] = []

    def add(self, table: Table, rows: Sequence[Sequence[Any]]) -> None:
        self._groups.append((table, rows))

    def __iter__(self) -> Iterator[tuple[Table, Sequence[Any]]]:
        return chain.from_iterable(zip(repeat(table), rows) for table, rows in self._groups)

    def __len__(self) -> int:
        return sum(len(rows) for _, rows in self._groups)

    def __bool__(self) -> bool:
        return any(rows for _, rows in self._groups)

    @overload
    def __getitem__(self, index: int) -> tuple[Table, Sequence[Any]]: ...
    @overload
    def __getitem__(self, index: slice) -> list[tuple[Table, Sequence[Any]]]: ...
    def __getitem__(self, index: int | slice) -> Any:
        return list(self)[index]


@dataclass(slots=True, eq=False)
class Write:
    """One API write in progress, inside its transaction."""

    operation: str
    #: the guard's metadata; ``None`` for the writes that take no WriteContext
    meta: MutationMetadata | None = None
    #: stored values of tables.STAMP (created_at, updated_at, trace columns);
    #: ``()`` without a WriteContext
    stamp: tuple[Any, ...] = ()
    session: Session = field(init=False, repr=False)
    adapter: Adapter = field(init=False, repr=False)
    written: Written = field(default_factory=Written)
    deleted: list[tuple[Table, Any]] = field(default_factory=list)
    cleared: list[tuple[Table, Any]] = field(default_factory=list)
    #: what the change ledger records: (scope, (subject table, subject id),
    #: payload), set by the write method inside the transaction (ledger.py)
    change: Any = None
    #: whether the change set replaces this origin's earlier ones of the same
    #: operation on the same subject (heartbeats)
    coalesce: bool = False

    def insert(self, table: Table, sql: str, row: tuple[Any, ...], returning: bool = False) -> Any:
        """Insert one stored row (``sql`` is the table's compiled INSERT); the
        row its RETURNING clause gives (``returning``)."""
        cursor = self.session.execute(sql, row)
        self.written.add(table, (row,))
        return cursor.fetchone() if returning else None

    def insert_many(self, table: Table, sql: str, rows: list[tuple[Any, ...]]) -> None:
        """Insert rows, with the backend's bulk load when there are many."""
        if rows:
            self.adapter.insert_rows(self.session, table.name, table.names, sql, rows)
            self.written.add(table, rows)

    def wrote(self, table: Table, row: Sequence[Any]) -> None:
        """Note a row an UPDATE ... RETURNING gave back, as now stored."""
        self.written.add(table, (row,))

    def delete(self, table: Table, sql: str, key: Any) -> bool:
        """Delete the row with ``key`` (and what cascades); whether it existed."""
        if not self.session.execute(sql, (key,)).rowcount:
            return False
        self.deleted.append((table, key))
        return True

    def clear(self, table: Table, sql: str, parent_key: Any) -> None:
        """Delete every row of ``table`` under ``parent_key`` (a replacement)."""
        self.session.execute(sql, (parent_key,))
        self.cleared.append((table, parent_key))


class ChangeRecorder(Protocol):
    """Receives every committed-to-be write, inside its transaction."""

    #: whether single-statement writes must run in an explicit transaction
    active: bool

    def record(self, session: Session, write: Write) -> None: ...


class _NoRecorder:
    active = False

    def record(self, session: Session, write: Write) -> None:
        return None


NO_RECORDER: ChangeRecorder = _NoRecorder()
