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
    __slots__ = ("decode", "index", "name")

    def __init__(self, name: str, index: int, decode: Decoder | None) -> None:
        self.name = name
        self.index = index
        self.decode = decode

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
            value = values[self.index] = raw if decode is None else decode(raw, obj._dec)
        return value

    def __set__(self, obj: Record, value: Any) -> None:
        raise AttributeError(f"{type(obj).__name__}.{self.name} is read-only")


class Record:
    """Base of result types. Subclasses declare fields as annotations (in
    column order) and pass ``decoders`` for fields stored in another form."""

    __slots__ = ("_dec", "_row", "_vals")
    _fields: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, decoders: dict[str, Decoder] | None = None, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        names = tuple(n for n in inspect.get_annotations(cls) if not n.startswith("_"))
        decoders = decoders or {}
        unknown = set(decoders) - set(names)
        if unknown:
            raise TypeError(f"decoders for unknown fields: {sorted(unknown)}")
        for index, name in enumerate(names):
            setattr(cls, name, _Field(name, index, decoders.get(name)))
        cls._fields = names

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Build a record from already-decoded field values."""
        names = self._fields
        if len(args) > len(names):
            raise TypeError(f"{type(self).__name__} takes {len(names)} fields")
        values = list(args)
        for name in names[len(args) :]:
            try:
                values.append(kwargs.pop(name))
            except KeyError:
                raise TypeError(f"{type(self).__name__} is missing field {name!r}") from None
        if kwargs:
            raise TypeError(f"{type(self).__name__} has no field(s) {sorted(kwargs)}")
        self._row = tuple(values)
        self._dec = None
        self._vals = values

    @classmethod
    def _from_row(cls, row: Any, decode_timestamp: Callable[[Any], Any]) -> Any:
        """A record over a database row; fields are decoded when first read.
        The row may carry extra trailing columns (a sort key): fields are
        read by position, so they are ignored."""
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
