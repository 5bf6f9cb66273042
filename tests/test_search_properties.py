# ruff: noqa: RUF001 - the fragments are look-alike characters on purpose
"""Hypothesis: for random texts and random queries, SQLite and PostgreSQL
return the same hits (ids, scores, snippets), and the (id, score) list is
the one the pure-Python model of tests/search_model.py computes; a query the
model calls malformed is the same ValidationError on both.

Texts are drawn from fragments chosen to collide under normalization and
tokenization (case, ß/ss, dotted and dotless i, sigma forms, NFC/NFD,
fullwidth, CJK, marks, digits glued to letters, underscores, apostrophes,
hyphens, quotes, stars, minus signs, OR) and from arbitrary characters.
Seeded (derandomized) and bounded, so a run is repeatable and quick.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import search_model
from handshake_storage import Database, NewBlock, NewDocument, NewWorkspace, ValidationError
from portability_support import HUMAN

FRAGMENTS = [
    "fox",
    "Fox",
    "FOX",
    "fo",
    "straße",
    "STRASSE",
    "ss",
    "ẞ",
    "İ",
    "ı",
    "I",
    "i\u0307",
    "σ",
    "ς",
    "Σ",
    "é",
    "e\u0301",
    "ﬁ",
    "ｆｏｘ",
    "東",
    "京",
    "か\u3099",
    "が",
    "😀",
    "a_b",
    "_",
    "12e5x",
    "2024-01-02",
    "don't",
    "e-mail",
    "%",
    "x" * 70,
    "x" * 48 + "y" * 20,
    " ",
    " ",
    "  ",
    "\n",
]
QUERY_FRAGMENTS = [*FRAGMENTS, '"', "*", "-", " OR ", " -", '" ', ' "', "or"]

texts = st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=3)), max_size=12).map(
    "".join
)
queries = st.lists(
    st.one_of(st.sampled_from(QUERY_FRAGMENTS), st.sampled_from(FRAGMENTS), st.text(max_size=2)),
    min_size=1,
    max_size=8,
).map("".join)


def storable(text: str) -> bool:
    return "\x00" not in text and not any(0xD800 <= ord(c) <= 0xDFFF for c in text)


@pytest.fixture(scope="module")
def pair(migrated_pair) -> Iterator[tuple[Database, Database]]:
    with migrated_pair("search-properties") as dbs:
        for db in dbs:
            db.create_workspace(HUMAN, NewWorkspace("w", id="w"))
            db.create_document(HUMAN, NewDocument("w", "d", id="d"))
        yield dbs


def outcome(db: Database, query: str):
    try:
        return [(h.block.id, h.score, h.snippet) for h in db.search_hits("w", query, 100)]
    except ValidationError as exc:
        return f"ValidationError: {exc}"


@settings(
    max_examples=60,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(blocks=st.lists(texts, min_size=1, max_size=6), query_list=st.lists(queries, max_size=4))
def test_random_texts_and_queries_agree_on_both_backends_and_with_the_model(
    pair, blocks: list[str], query_list: list[str]
) -> None:
    stored = {f"b{i}": t for i, t in enumerate(blocks) if storable(t)}
    for db in pair:
        db.replace_blocks(
            HUMAN, "d", [NewBlock("d", "p", 0, t, id=bid) for bid, t in stored.items()]
        )
    # each query, its NFD form, and a phrase of the first block's words
    words = search_model.WORD.findall(next(iter(stored.values()), ""))
    extra = [f'"{" ".join(words[:3])}"'] if words else []
    for query in [*query_list, *extra]:
        for q in (query, unicodedata.normalize("NFD", query)):
            if not storable(q):
                continue
            lite, pg = outcome(pair[0], q), outcome(pair[1], q)
            assert lite == pg, q
            try:
                expected = search_model.ranked(stored, q)
            except search_model.Malformed:
                assert isinstance(lite, str), (q, lite)
                continue
            assert not isinstance(lite, str), (q, lite)
            assert [(i, s) for i, s, _ in lite] == expected, q
