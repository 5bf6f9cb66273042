"""Content digests that come out the same on every backend.

A table's digest is the sum, modulo 2**256, of the SHA-256 of each row in a
canonical form. The sum does not depend on row order, so it is computed
while streaming in whatever order the database yields (no sort, no second
pass over the source), and it counts duplicates, unlike XOR. Columns come in
sorted name order (``transfer._column_order``). Canonical form:
timestamps as UTC ISO text with microseconds, booleans as bool, floats by
``repr``, everything else as the driver returns it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from .schema import BOOLEAN, FLOAT, TIMESTAMP

_MASK = (1 << 256) - 1
_sha256 = hashlib.sha256


#: The canonical text itself (how SQLite stores a timestamp): normalizing it
#: would parse and re-format it into the same string.
_CANONICAL_TIMESTAMP = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}\+00:00"
)


_ZERO = timedelta(0)


def _timestamp(decode: Callable[[Any], datetime]) -> Callable[[Any], Any]:
    canonical = _CANONICAL_TIMESTAMP.fullmatch

    def normalize(value: Any) -> Any:
        if value is None:
            return None
        kind = type(value)
        if kind is str and canonical(value):
            return value
        if kind is datetime and value.utcoffset() == _ZERO:  # already UTC (PostgreSQL)
            return value.isoformat(" ", "microseconds")
        return decode(value).astimezone(UTC).isoformat(" ", "microseconds")

    return normalize


def _boolean(value: Any) -> Any:
    return None if value is None else bool(value)


def _float(value: Any) -> Any:
    return None if value is None else repr(float(value))


class TableDigest:
    """Accumulates the row count and order-independent digest of one table."""

    __slots__ = ("_convert", "count", "total")

    def __init__(
        self, families: Sequence[str], decode_timestamp: Callable[[Any], datetime]
    ) -> None:
        self.count = 0
        self.total = 0
        converters: list[tuple[int, Callable[[Any], Any]]] = []
        for i, family in enumerate(families):
            if family == TIMESTAMP:
                converters.append((i, _timestamp(decode_timestamp)))
            elif family == BOOLEAN:
                converters.append((i, _boolean))
            elif family == FLOAT:
                converters.append((i, _float))
        self._convert = converters

    def add(self, row: Sequence[Any]) -> None:
        self.add_all((row,))

    def add_all(self, rows: Iterable[Sequence[Any]]) -> TableDigest:
        # One loop with everything in locals (this runs once per row of every
        # table a copy moves, twice); the sum is reduced mod 2**256 at the end.
        convert = self._convert
        sha256 = _sha256
        from_bytes = int.from_bytes
        total = self.total
        count = self.count
        for row in rows:
            if convert:
                values = list(row)
                for i, fn in convert:
                    values[i] = fn(values[i])
                canonical = repr(tuple(values))
            else:
                canonical = repr(tuple(row))
            total += from_bytes(sha256(canonical.encode("utf-8", "surrogatepass")).digest(), "big")
            count += 1
        self.total = total & _MASK
        self.count = count
        return self

    @property
    def hexdigest(self) -> str:
        return f"{self.total:064x}"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TableDigest):
            return NotImplemented
        return self.count == other.count and self.total == other.total

    def __hash__(self) -> int:
        return hash((self.count, self.total))

    def __repr__(self) -> str:
        return f"TableDigest(rows={self.count}, sha256sum={self.hexdigest[:16]}...)"
