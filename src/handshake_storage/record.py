"""Immutable result records that decode their fields on first access.

A query that returns a thousand blocks should cost little more than the
driver's ``fetchall``: building a record only keeps a reference to the row;
a field is decoded (timestamp parsed, JSON loaded, UUID built) the first
time it is read, then cached. Records compare, hash and print by their
decoded field values, like frozen dataclasses, and are read-only.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from typing import Any, ClassVar

#: decode(raw_value, timestamp_decoder) -> value
Decoder = Callable[[Any, Callable[[Any], Any]], Any]

_UNSET: Any = object()
_new = object.__new__


class _Field:
    __slots__ = ("decode", "index", "name", "table")

    def __init__(self, name: str, index: int, decode: Decoder | None, table: Any) -> None:
        self.name = name
        self.index = index
        self.decode = decode
        self.table = table

    def __get__(self, obj: Record | None, owner: type | None = None) -> Any:
        if obj is None:
            return self
        values = obj._vals
        if values is None:
            values = obj._vals = [_UNSET] * len(obj._row)
        value = values[self.index]
        if value is _UNSET:
            raw = obj._row[self.index]
            decode = self.decode
            if decode is None:
                value = raw
            else:
                try:
                    value = decode(raw, obj._dec)
                except Exception:
                    # Data another tool wrote: a StorageError naming the
                    # table, column and row, never a raw ValueError/KeyError.
                    raise self.table.undecodable(self.name, obj._row, raw) from None
            values[self.index] = value
        return value

    def __set__(self, obj: Record, value: Any) -> None:
        raise AttributeError(f"{type(obj).__name__}.{self.name} is read-only")


class Record:
    """Base of result types. A subclass passes the ``table`` description
    (``tables.py``) its rows come from and declares its fields as
    annotations (on itself or on a field-only base class); each field is
    located in the row and decoded by name, through the column's codec, or
    through ``decoders[name]`` for a field the API shapes further (a JSON
    column read as value objects). Rows may hold columns that are not fields
    (a canvas node's ordinal)."""

    __slots__ = ("_dec", "_row", "_vals")
    _fields: ClassVar[tuple[str, ...]] = ()
    _table: ClassVar[Any] = None

    def __init_subclass__(
        cls, table: Any = None, decoders: dict[str, Decoder] | None = None, **kw: Any
    ) -> None:
        super().__init_subclass__(**kw)
        if table is None:  # a base that only declares shared fields
            return
        declared: list[str] = []
        for klass in reversed(cls.__mro__):
            if issubclass(klass, Record) and klass is not Record:
                declared += [n for n in inspect.get_annotations(klass) if not n.startswith("_")]
        unknown = [n for n in declared if n not in table.at]
        if unknown:
            raise TypeError(f"{cls.__name__}: {table.name} has no column(s) {unknown}")
        decoders = decoders or {}
        if set(decoders) - set(declared):
            raise TypeError(f"decoders for unknown fields: {sorted(set(decoders) - set(declared))}")
        names = tuple(sorted(declared, key=table.at.__getitem__))
        for name in names:
            column = table.by_name[name]
            decode = decoders.get(name, column.decoder)
            setattr(cls, name, _Field(name, table.at[name], decode, table))
        cls._fields = names
        cls._table = table

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Build a record from already-decoded field values."""
        names = self._fields
        if len(args) > len(names):
            raise TypeError(f"{type(self).__name__} takes {len(names)} fields")
        given = dict(zip(names, args, strict=False))
        for name in names[len(args) :]:
            try:
                given[name] = kwargs.pop(name)
            except KeyError:
                raise TypeError(f"{type(self).__name__} is missing field {name!r}") from None
        if kwargs:
            raise TypeError(f"{type(self).__name__} has no field(s) {sorted(kwargs)}")
        at = self._table.at
        values: list[Any] = [None] * len(at)
        for name, value in given.items():
            values[at[name]] = value
        self._row = tuple(values)
        self._dec = None
        self._vals = values

    @classmethod
    def _from_row(cls, row: Any, decode_timestamp: Callable[[Any], Any]) -> Any:
        """A record over a database row; fields are decoded when first read.
        The row holds the table's columns in description order."""
        self = _new(cls)
        self._row = row
        self._dec = decode_timestamp
        self._vals = None
        return self

    @classmethod
    def _from_rows(cls, rows: Iterable[Any], decode_timestamp: Callable[[Any], Any]) -> list[Any]:
        """``[cls._from_row(r, decode_timestamp) for r in rows]`` in one loop
        without a call per row: a list read's whole overhead over the
        driver's ``fetchall`` is building these records (bench/)."""
        new, out = _new, []
        append = out.append
        for row in rows:
            self = new(cls)
            self._row = row
            self._dec = decode_timestamp
            self._vals = None
            append(self)
        return out

    def _astuple(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self._fields)

    def _asdict(self) -> dict[str, Any]:
        """Field names to decoded values, in declaration order."""
        return {name: getattr(self, name) for name in self._fields}

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._astuple() == other._astuple()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self), self._astuple()))

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._fields)
        return f"{type(self).__name__}({fields})"

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (type(self), self._astuple())
