"""Checks at the API boundary, identical for every backend.

A value is accepted only if every backend stores it and gives it back
exactly; otherwise it is refused here with :class:`ValidationError`, before
any statement runs. That is how "both backends behave identically" holds
for values one of them could not store (a NUL in PostgreSQL text, a NaN that
SQLite turns into NULL, an integer beyond 64 bits).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import UTC, datetime
from enum import Enum
from typing import Any, TypeVar
from uuid import UUID

from .errors import ValidationError

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
MAX_ID_LENGTH = 255
#: Deepest nesting of lists and dicts in a stored JSON document. Reading a
#: document back recurses once per level, so a deeper one could be written
#: by a caller with a shallow stack and then be unreadable (RecursionError)
#: by one with a deeper stack; this leaves about half of Python's default
#: recursion limit to the reader.
MAX_JSON_DEPTH = 500

E = TypeVar("E", bound=Enum)


def text(value: Any, name: str) -> str:
    if type(value) is not str:
        if not isinstance(value, str):
            raise ValidationError(f"{name} must be a string, not {type(value).__name__}")
        value = str.__str__(value)
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValidationError(
                f"{name} is not valid Unicode text (it contains a lone surrogate)"
            ) from None
    if "\x00" in value:
        raise ValidationError(f"{name} contains a NUL character, which PostgreSQL cannot store")
    return value


def optional_text(value: Any, name: str) -> str | None:
    return None if value is None else text(value, name)


def identifier(value: Any, name: str) -> str:
    """A content id: non-empty text of at most 255 characters."""
    value = text(value, name)
    if not value or len(value) > MAX_ID_LENGTH:
        raise ValidationError(f"{name} must be 1 to {MAX_ID_LENGTH} characters long")
    return value


def integer(value: Any, name: str) -> int:
    if type(value) is not int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValidationError(f"{name} must be an integer, not {type(value).__name__}")
        value = int(value)
    if not INT64_MIN <= value <= INT64_MAX:
        raise ValidationError(f"{name} does not fit in a signed 64-bit integer")
    return value


def integer_between(value: Any, name: str, low: int, high: int) -> int:
    """An integer in ``[low, high]`` (limits, counts): one message everywhere."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValidationError(f"{name} must be an integer between {low} and {high}")
    return int(value)


def non_negative_integer(value: Any, name: str) -> int:
    value = integer(value, name)
    if value < 0:
        raise ValidationError(f"{name} must not be negative")
    return value


def number(value: Any, name: str) -> float:
    """A double. NaN is refused (SQLite stores it as NULL); -0.0 becomes 0.0
    because SQLite does not keep the sign of zero."""
    if type(value) is float:  # the common case, same checks as below
        if value != value:
            raise ValidationError(f"{name} is NaN, which cannot be stored as a number")
        return value + 0.0
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationError(f"{name} must be a number, not {type(value).__name__}")
    try:
        result = float(value)
    except OverflowError:
        raise ValidationError(f"{name} is too large for a double") from None
    if result != result:
        raise ValidationError(f"{name} is NaN, which cannot be stored as a number")
    if isinstance(value, int) and result != value:
        raise ValidationError(f"{name} cannot be represented exactly as a double")
    return result + 0.0


def boolean(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise ValidationError(f"{name} must be a bool, not {type(value).__name__}")
    return value


def timestamp(value: Any, name: str) -> datetime:
    """A timezone-aware datetime, returned in UTC. Naive datetimes are refused:
    guessing their zone would store the wrong instant."""
    if not isinstance(value, datetime):
        raise ValidationError(f"{name} must be a datetime, not {type(value).__name__}")
    if value.tzinfo is UTC:
        return value
    if value.utcoffset() is None:
        raise ValidationError(f"{name} is a naive datetime: give it a timezone (UTC)")
    try:
        return value.astimezone(UTC)
    except (OverflowError, ValueError):
        raise ValidationError(f"{name} is outside the representable range in UTC") from None


def uuid(value: Any, name: str) -> UUID:
    if type(value) is UUID:
        return value
    if isinstance(value, str):
        try:
            return UUID(value)
        except ValueError:
            pass
    raise ValidationError(f"{name} must be a UUID, not {_describe(value)}")


def optional_uuid(value: Any, name: str) -> UUID | None:
    return None if value is None else uuid(value, name)


def enum(cls: type[E], value: Any, name: str) -> E:
    try:
        return cls(value)
    except (ValueError, TypeError):
        allowed = ", ".join(m.value for m in cls)  # type: ignore[attr-defined]
        raise ValidationError(f"{name} must be one of {allowed}; got {_describe(value)}") from None


#: What json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
#: does, without building a new encoder for every call (the encoder keeps no
#: state between calls).
_ENCODE = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode


def _refuse(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _c_encoder() -> Callable[[Any], str] | None:
    """The C encoder under ``_ENCODE``, built once. ``JSONEncoder.encode``
    builds it anew on every call, which costs more than encoding a node's
    small ``data`` (bench/: a canvas graph is 500 of them). Without the
    circular-reference markers: only values :func:`_check_json` or
    :func:`_plain` passed reach it, and those are trees of bounded depth.
    None where the interpreter has no C encoder of this signature."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return None
    try:
        encode = make(
            None, _refuse, json.encoder.encode_basestring, None, ":", ",", False, False, False
        )
    except TypeError:
        return None
    join = "".join
    return lambda value: join(encode(value, 0))


_ENCODE_TREE = _c_encoder() or _ENCODE


def json_text(value: Any, name: str) -> str:
    """Serialize a JSON document, refusing anything that would not come back equal:
    NaN/Infinity, non-string keys, tuples and sets, non-JSON objects.

    A shallow document of plain values (:func:`_plain`: what almost every
    caller writes) skips the walk of :func:`_check_json`, which then could
    only object to a non-finite float or to its size; the strict encoder
    refuses the one, the encoded length bounds the other, and anything in
    doubt goes the full way, so every message is the walk's."""
    if type(value) is dict and not value:
        return "{}"
    if _plain(value, _PLAIN_LEVELS):
        try:
            encoded = _ENCODE_TREE(value)
        except (TypeError, ValueError, RecursionError):
            pass  # NaN, Infinity, an int too long for text: named below
        else:
            # Every value takes at least one character, so a short text
            # cannot hold more values than the walk allows.
            if len(encoded) <= _MAX_JSON_ITEMS:
                return text(encoded, name)
    _check_json(value, name)
    try:
        encoded = _ENCODE_TREE(value)
    except (TypeError, ValueError, RecursionError) as exc:
        raise ValidationError(f"{name} is not a JSON document: {exc}") from None
    return text(encoded, name)


def optional_json_text(value: Any, name: str) -> str | None:
    return None if value is None else json_text(value, name)


_JSON_SCALARS = (str, int, float, bool, type(None))
#: Children of these types are valid whatever their value: counted, not stacked.
_PLAIN_SCALARS = frozenset({str, int, bool, type(None)})
_MAX_JSON_ITEMS = 10_000_000


#: Values whose type is one of these need no check beyond the encoder's
#: (which refuses a non-finite float).
_LEAF_TYPES = frozenset({str, int, float, bool, type(None)})
#: How deep :func:`_plain` looks before leaving a document to the full walk.
_PLAIN_LEVELS = 3


def _plain(value: Any, levels: int) -> bool:
    """Whether ``value`` is a dict (string keys) or list, nested at most
    ``levels`` deep, of exactly these types and of leaves of
    :data:`_LEAF_TYPES`: then :func:`_check_json` could refuse it only for a
    non-finite float. No subclass, tuple or non-string key passes (the
    encoder would take them silently, and they would not come back equal)."""
    leaves = _LEAF_TYPES
    if type(value) is dict:
        for key, child in value.items():
            if type(key) is not str:
                return False
            if type(child) not in leaves and (levels == 1 or not _plain(child, levels - 1)):
                return False
        return True
    if type(value) is list:
        for child in value:
            if type(child) not in leaves and (levels == 1 or not _plain(child, levels - 1)):
                return False
        return True
    return False


def _check_json(value: Any, name: str) -> None:
    stack = [(value, 1)]
    seen = 0
    plain = _PLAIN_SCALARS
    isfinite = math.isfinite
    while stack:
        item, depth = stack.pop()
        seen += 1
        if seen > _MAX_JSON_ITEMS:
            raise ValidationError(f"{name} is too large")
        kind = type(item)
        if kind is dict or kind is list:
            if depth > MAX_JSON_DEPTH:
                raise ValidationError(f"{name} is nested more than {MAX_JSON_DEPTH} levels deep")
            depth += 1
            if kind is dict:
                for key in item:
                    if type(key) is not str:
                        raise ValidationError(
                            f"{name} has a non-string object key {key!r}; JSON keys are strings"
                        )
                children: Any = item.values()
            else:
                children = item
            # A valid scalar child needs no visit of its own; anything else is
            # stacked (in the same order as before, so the same error wins).
            for child in children:
                ctype = type(child)
                if ctype in plain or (ctype is float and isfinite(child)):
                    seen += 1
                else:
                    stack.append((child, depth))
            if seen > _MAX_JSON_ITEMS:
                raise ValidationError(f"{name} is too large")
        elif kind is float:
            if not math.isfinite(item):
                raise ValidationError(f"{name} contains {item!r}, which JSON cannot represent")
        elif kind not in _JSON_SCALARS:
            raise ValidationError(
                f"{name} contains a {kind.__name__}, which is not a JSON value "
                "(use dict, list, str, int, float, bool or None)"
            )


def _describe(value: Any) -> str:
    text_value = repr(value)
    if len(text_value) > 60:
        text_value = text_value[:57] + "..."
    return f"{type(value).__name__} {text_value}"
