"""``validation.json_text``: its fast path (no walk for shallow plain
documents, a prebuilt C encoder) gives exactly what the full walk gives —
the same text for a stored document, the same ValidationError message for
a refused one.

The reference below is the walk followed by ``json.dumps`` with the strict
settings, as ``json_text`` was before the fast path.
"""

from __future__ import annotations

import enum
import json
import math
from collections import OrderedDict
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from handshake_storage import validation
from handshake_storage.errors import ValidationError


def reference(value: Any, name: str) -> str:
    """``json_text`` as it was: walk, then encode with a new strict encoder."""
    if type(value) is dict and not value:
        return "{}"
    validation._check_json(value, name)
    try:
        encoded = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError, RecursionError) as exc:
        raise ValidationError(f"{name} is not a JSON document: {exc}") from None
    return validation.text(encoded, name)


def outcome(fn: Any, value: Any) -> tuple[str, str]:
    try:
        return "stored", fn(value, "data")
    except ValidationError as exc:
        return "refused", str(exc)


class Level(enum.IntEnum):
    ONE = 1


class Label(str):
    pass


class Ratio(float):
    pass


class Items(list):  # type: ignore[type-arg]
    pass


def nested(depth: int, leaf: Any = 0) -> Any:
    value = leaf
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    return value


#: (value, the message it is refused with; None: stored)
CASES: list[tuple[str, Any, str | None]] = [
    ("flat dict", {"label": "node 1", "r": 3, "x": -0.0, "ok": True, "n": None}, None),
    ("flat list", [1, 2.5, "x", None, False], None),
    ("three levels", {"a": [{"b": 1}, [2]], "c": {"d": [3]}}, None),
    ("deeper than the fast path", nested(40), None),
    ("NUL in a string", {"t": "a\x00b"}, None),
    ("int beyond 64 bits", {"n": 2**70, "m": -(2**90)}, None),
    ("top-level list of one dict", [{"a": "b"}], None),
    ("tuple at the top", (1, 2), "data contains a tuple, which is not a JSON value"),
    ("tuple in a dict", {"a": (1,)}, "data contains a tuple, which is not a JSON value"),
    ("nested tuple", {"a": [{"b": [(1, 2)]}]}, "data contains a tuple, which is not a JSON value"),
    ("int key", {1: "a"}, "data has a non-string object key 1; JSON keys are strings"),
    ("bool key", {True: "a"}, "data has a non-string object key True; JSON keys are strings"),
    ("None key", {None: "a"}, "data has a non-string object key None; JSON keys are strings"),
    ("float key", {1.5: "a"}, "data has a non-string object key 1.5; JSON keys are strings"),
    ("nested int key", {"a": [{"b": {2: 0}}]}, "data has a non-string object key 2"),
    ("NaN", {"x": math.nan}, "data contains nan, which JSON cannot represent"),
    ("Infinity in a list", [1, math.inf], "data contains inf, which JSON cannot represent"),
    ("NaN deep inside", nested(30, -math.inf), "data contains -inf, which JSON cannot represent"),
    ("NaN as a key", {math.nan: 1}, "data has a non-string object key nan"),
    ("int enum", {"level": Level.ONE}, "data contains a Level, which is not a JSON value"),
    ("str subclass", ["a", Label("b")], "data contains a Label, which is not a JSON value"),
    ("float subclass", {"r": Ratio(0.5)}, "data contains a Ratio, which is not a JSON value"),
    ("list subclass", {"i": Items([1])}, "data contains a Items, which is not a JSON value"),
    ("OrderedDict", OrderedDict(a=1), "data contains a OrderedDict, which is not a JSON value"),
    ("set", {"s": {1}}, "data contains a set, which is not a JSON value"),
    ("bytes", [b"x"], "data contains a bytes, which is not a JSON value"),
    ("datetime", {"t": datetime(2024, 1, 1, tzinfo=UTC)}, "data contains a datetime"),
    ("Decimal", {"d": Decimal("1.5")}, "data contains a Decimal, which is not a JSON value"),
    ("lone surrogate", {"t": "\ud800"}, "data is not valid Unicode text"),
    ("lone surrogate key", {"\udfff": 1}, "data is not valid Unicode text"),
    ("500 levels", nested(500), None),
    ("501 levels", nested(501), "data is nested more than 500 levels deep"),
    ("int too long for text", [10**5000], "data is not a JSON document: Exceeds the limit"),
]


@pytest.mark.parametrize(("value", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_json_text_gives_the_walks_verdict_and_message(value: Any, message: str | None) -> None:
    got = outcome(validation.json_text, value)
    assert got == outcome(reference, value)
    if message is None:
        assert got[0] == "stored"
        assert json.loads(got[1]) == value
    else:
        assert got[0] == "refused"
        assert got[1].startswith(message)


def test_a_circular_document_is_refused_as_too_deep() -> None:
    loop: list[Any] = []
    loop.append({"again": loop})
    assert outcome(validation.json_text, loop) == outcome(reference, loop)
    assert "nested more than 500 levels deep" in outcome(validation.json_text, loop)[1]


def test_a_document_of_too_many_values_is_refused_on_both_paths(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(validation, "_MAX_JSON_ITEMS", 20)
    for value in ([0] * 21, {"a": [1] * 30}, [[0] * 5] * 5):
        assert outcome(validation.json_text, value) == ("refused", "data is too large")
    assert outcome(validation.json_text, [0] * 19)[0] == "stored"


def test_without_the_c_encoder_the_stdlib_encoder_is_used(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(json.encoder, "c_make_encoder", None)
    assert validation._c_encoder() is None
    monkeypatch.setattr(validation, "_ENCODE_TREE", validation._ENCODE)
    for _, value, _ in CASES:
        assert outcome(validation.json_text, value) == outcome(reference, value)


keys = st.one_of(
    st.text(max_size=4),
    st.sampled_from(["\ud800", "\x00", 1, True, None, 1.5, math.nan]),
)
leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=6),
    st.sampled_from([2**64, (1, 2), {1}, b"x", Level.ONE, Label("l"), Ratio(1.0), Decimal(1)]),
)
documents = st.recursive(
    leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(keys, children, max_size=4),
        st.tuples(children),
        st.builds(Items, st.lists(children, max_size=2)),
    ),
    max_leaves=16,
)


@settings(max_examples=1500, deadline=None, derandomize=True)
@given(documents)
def test_json_text_equals_the_walk_on_random_documents(value: Any) -> None:
    assert outcome(validation.json_text, value) == outcome(reference, value)
