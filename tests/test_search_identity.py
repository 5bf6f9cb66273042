# ruff: noqa: RUF001 - the corpus is made of look-alike characters on purpose
"""Search gives the same hits, scores and snippets on SQLite and PostgreSQL,
and both agree with the pure-Python model of tests/search_model.py.

The corpus is built to break that: ß and STRASSE, Turkish dotted and dotless
i, Greek final sigma, NFC and NFD forms, fullwidth letters, CJK, emoji,
combining marks, right-to-left scripts, hyphens, apostrophes, numbers and
dates, underscores, very long words, ``%`` and ``_``, SQL-looking text, and
blocks beyond the engines' limits (more words, more repeats and more bytes
than one tsvector holds). Every query runs on both backends: the full hit
list (id, score, snippet) must be equal, the (id, score) list must equal the
model's, and a malformed query must be a ValidationError with the same
message on both (and malformed for the model).
"""

from __future__ import annotations

import random
import unicodedata
from collections.abc import Iterator

import pytest

import search_model
from handshake_storage import (
    BlockUpdate,
    Database,
    NewBlock,
    NewDocument,
    NewWorkspace,
    ValidationError,
    rebuildable,
    search,
)
from portability_support import HUMAN

NFD = unicodedata.normalize("NFD", "Café crème brûlée naïve Ångström")
TEXTS = [
    "Die Straße ist groß. DIE STRASSE IST GROSS. strasse ẞ",
    "İstanbul ISTANBUL istanbul ıstanbul Iğdır DİYARBAKIR",
    "ΣΊΣΥΦΟΣ Σίσυφος σίσυφος λόγος ΛΌΓΟΣ ὀδυσσεύς",
    "Café crème brûlée naïve Ångström",
    NFD,
    "ＦＵＬＬＷＩＤＴＨ ｆｕｌｌｗｉｄｔｈ fullwidth ＡＢＣ１２３",
    "東京都庁 日本語の文章 中文字符 ひらがな カタカナ 한국어 단어",
    "emoji 😀 👍🏽 🇫🇷 ❤️ family 👩‍👩‍👧 end",
    "combining q\u0301 x\u0323\u0307 e\u0301\u0302 ḉ",
    "مرحبا بالعالم שלום עולם hello عربي",
    "e-mail well-known state-of-the-art — dash–en",
    "don't can't O'Reilly l'homme rock'n'roll",
    "2024-01-02 12:30:45 3.14159 1e5 12e5x 007 ½ ² ٣٤٥",
    "snake_case __init__ _private a_b_c CONSTANT_VALUE",
    "a" * 100 + " " + "a" * 99 + "b " + "x" * 64 + " " + "x" * 65,
    "100% of _all_ % _ %% __ 50% off",
    "'; DROP TABLE blocks; -- SELECT * FROM block_search WHERE 1=1 OR 'a'='a'",
    'quote " inside and "balanced quotes" and * stars* and - minus -',
    "the quick brown fox jumps over the lazy dog the fox",
    "fox fox fox fox fox fox fox fox",
    "Fox",
    "ǅemal Ǆemal ǆemal ﬁle FILE file Kelvin \u212aelvin",
    "",
    "   \n\t  ",
    "!!! ??? ... ---",
]

QUERIES = [
    "strasse",
    "STRASSE",
    "Straße",
    "groß",
    "ẞ",
    "istanbul",
    "İstanbul",
    "ıstanbul",
    "ISTANBUL",
    "diyarbakir",
    "σίσυφος",
    "ΣΊΣΥΦΟΣ",
    "σίσυφοσ",
    "λογος",
    "café",
    unicodedata.normalize("NFD", "café"),
    "CAFÉ crème",
    "ångström",
    "fullwidth",
    "ＦＵＬＬＷＩＤＴＨ",
    "ａｂｃ１２３",
    "東京",
    "京都",
    '"日本語"',
    "日*",
    "한국어",
    "😀",
    "emoji end",
    "q\u0301",
    "مرحبا",
    "שלום",
    "e-mail",
    '"well known"',
    "state-of-the-art",
    "don't",
    "o'reilly",
    "l'homme",
    "2024-01-02",
    "12e5x",
    "1e5",
    "007",
    "3.14159",
    "snake_case",
    "__init__",
    "_private",
    "a_b_c",
    "a" * 100,
    "a" * 99 + "b",
    "a" * 60 + "*",
    "x" * 64,
    "x" * 65,
    "x" * 64 + "*",
    "100%",
    "%",
    "_",
    "%%",
    "'; DROP TABLE blocks; --",
    "SELECT * FROM block_search",
    "1=1 OR 'a'='a'",
    '"quick brown"',
    '"brown quick"',
    '"the fox"',
    '"fox fox"',
    "fox",
    "fox -lazy",
    "fox -dog -quick",
    "fox OR kelvin",
    "qu* OR ist*",
    "f*",
    "fo* -fox",
    '"lazy d"*',
    "kelvin",
    "ﬁle",
    "ǆemal",
    "missing",
    "fox missing",
    "missing OR fox",
    "fox the the the",
    # malformed
    "",
    "   ",
    '"unbalanced',
    'fox "unbalanced',
    "-fox",
    "-fox -dog",
    "OR",
    "fox OR",
    "OR fox",
    "fox OR OR dog",
    "fox OR -dog",
    "!!! ---",
    "*",
    '""',
]


def long_texts() -> list[str]:
    many = " ".join(f"w{i}" for i in range(search.MAX_ROW_WORDS + 500))
    repeats = " ".join(["echo"] * 400) + " needle in the haystack"
    big = ("lorem ipsum dolor sit amet " * 40_000) + " omega point"  # ~1 MB
    distinct = " ".join(f"zeta{i:05d}" for i in range(3 * search.LONG_CHUNK_WORDS))
    return [many, repeats, big, distinct + " final words here"]


LONG_QUERIES = [
    "w0",
    f"w{search.MAX_ROW_WORDS + 499}",
    f'"w{search.MAX_ROW_WORDS - 1} w{search.MAX_ROW_WORDS}"',
    "w1 w4000",
    "w12*",
    "echo",
    '"echo needle"',
    '"needle in the haystack"',
    "haystack -lorem",
    "omega",
    '"omega point"',
    '"amet omega"',
    "lorem OR zeta00001",
    "zeta02999 final",
    '"final words here"',
    "zeta0* -lorem",
]


def hits(db: Database, workspace: str, query: str, limit: int = 50, offset: int = 0):
    try:
        return [
            (h.block.id, h.score, h.snippet)
            for h in db.search_hits(workspace, query, limit, offset)
        ]
    except ValidationError as exc:
        return f"ValidationError: {exc}"


def expected(texts: dict[str, str], query: str):
    try:
        return search_model.ranked(texts, query)
    except search_model.Malformed:
        return "malformed"


def load(db: Database, workspace: str, texts: dict[str, str]) -> None:
    db.create_workspace(HUMAN, NewWorkspace(workspace, id=workspace))
    doc = f"{workspace}/doc"
    db.create_document(HUMAN, NewDocument(workspace, "doc", id=doc))
    db.replace_blocks(
        HUMAN, doc, [NewBlock(doc, "p", i, t, id=bid) for i, (bid, t) in enumerate(texts.items())]
    )


def check(
    pair: tuple[Database, Database], workspace: str, texts: dict[str, str], query: str, limit=50
):
    lite, pg = (hits(db, workspace, query, limit) for db in pair)
    assert lite == pg, query
    model = expected(texts, query)
    if model == "malformed":
        assert isinstance(lite, str) and lite.startswith("ValidationError"), (query, lite)
    else:
        assert not isinstance(lite, str), (query, lite)
        assert [(i, s) for i, s, _ in lite] == model[:limit], query
    return lite


@pytest.fixture
def pair(migrated_pair) -> Iterator[tuple[Database, Database]]:
    with migrated_pair("search") as dbs:
        yield dbs


def corpus() -> dict[str, str]:
    texts = {f"t{i:02d}": t for i, t in enumerate(TEXTS)}
    # ids that sort differently by case, accent and script, with equal scores
    for bid in ("B-fox", "a-fox", "ä-fox", "Z-fox", "_-fox", "🙂-fox"):
        texts[bid] = "a fox"
    return texts


def test_corpus_queries_are_identical_on_both_backends_and_match_the_model(pair) -> None:
    texts = corpus()
    for db in pair:
        load(db, "w", texts)
        load(db, "other", {"o1": "fox strasse istanbul"})  # never found from "w"
    outcomes = {q: check(pair, "w", texts, q) for q in QUERIES}
    # not vacuous: real matches, real refusals, and the normalization promises
    assert sum(isinstance(v, list) and len(v) > 0 for v in outcomes.values()) >= 50
    assert sum(isinstance(v, str) for v in outcomes.values()) >= 14
    ids = {q: [h[0] for h in v] for q, v in outcomes.items() if isinstance(v, list)}
    assert ids["strasse"] == ids["Straße"] == ids["STRASSE"] == ["t00"]
    assert ids["İstanbul"] == ids["istanbul"] == ids["ISTANBUL"] == ["t01"]
    assert ids["ıstanbul"] == ["t01"] and ids["diyarbakir"] == ["t01"]
    assert ids["σίσυφος"] == ids["ΣΊΣΥΦΟΣ"] == ["t02"]
    assert set(ids["café"]) == set(ids[unicodedata.normalize("NFD", "café")]) == {"t03", "t04"}
    assert ids["東京"] == ids["京都"] == ["t06"] and ids["日*"] == ["t06"]
    assert ids['"brown quick"'] == [] and ids['"quick brown"'] == ["t18"]
    assert ids["kelvin"] == ["t21"] and ids["ﬁle"] == ["t21"]
    assert "t19" in ids["fox"][:2]  # eight foxes in eight words score (nearly) best
    assert "o1" not in {i for v in ids.values() for i in v}
    assert ids["x" * 65] == ["t14"] and ids["x" * 64] == ["t14"]
    assert ids["fox -lazy"] == [i for i in ids["fox"] if i != "t18"]
    # equal scores: ordered by block id in code point order on both backends
    tied = [h for h in outcomes["fox"] if h[0].endswith("-fox")]
    assert [h[0] for h in tied] == sorted(h[0] for h in tied)
    assert len({h[1] for h in tied}) == 1
    # snippets highlight the matched words
    assert outcomes['"quick brown"'][0][2].startswith("the **quick** **brown** fox")
    assert outcomes["strasse"][0][2].count("**") == 6  # Straße, STRASSE, strasse (ẞ is "ss")


def test_malformed_queries_are_the_same_validation_error_on_both(pair) -> None:
    for db in pair:
        load(db, "w", {"b": "fox"})
    messages = {}
    for query in ['"fox', "-fox", "", "fox OR", "fox OR -dog", "%%", "a " * 65]:
        found = [hits(db, "w", query) for db in pair]
        assert found[0] == found[1] and isinstance(found[0], str), query
        messages[query] = found[0]
    assert "unbalanced quote" in messages['"fox']
    assert "not excluded" in messages["-fox"]
    assert "no words" in messages[""] and "no words" in messages["%%"]
    assert "OR" in messages["fox OR"]
    assert "at most 64" in messages["a " * 65]
    for db in pair:
        for bad in (0, 10_001, -1, "5", True):
            with pytest.raises(ValidationError, match="limit"):
                db.search_hits("w", "fox", bad)
        for bad in (-1, 1_000_001, "0", None):
            with pytest.raises(ValidationError, match="offset"):
                db.search_hits("w", "fox", 5, bad)
        with pytest.raises(ValidationError, match="query"):
            db.search_hits("w", None)  # type: ignore[arg-type]


def test_paging_walks_the_same_order_on_both(pair) -> None:
    rng = random.Random(7)
    texts = {
        f"p{i:03d}": " ".join(
            rng.choice(["fox", "dog", "cat", "the"]) for _ in range(rng.randint(1, 9))
        )
        for i in range(120)
    }
    for db in pair:
        load(db, "w", texts)
    for query in ("fox", "fox OR dog", "the -cat"):
        full = check(pair, "w", texts, query, limit=10_000)
        assert len(full) > 20, query
        for db in pair:
            paged = []
            for offset in range(0, len(full) + 7, 7):
                paged += hits(db, "w", query, 7, offset)
            assert paged == full, query
            assert hits(db, "w", query, 5, len(full)) == []


def test_blocks_beyond_the_engine_limits_are_fully_searchable(pair) -> None:
    texts = {f"long{i}": t for i, t in enumerate(long_texts())}
    texts["short"] = "w0 echo omega point final words here lorem"
    for db in pair:
        load(db, "w", texts)
    rows = search.index_rows("x", texts["long2"])
    assert len(rows) > 1 or rows[0][1] == 1  # stored as a long block (several rows)
    for query in LONG_QUERIES:
        found = check(pair, "w", texts, query)
        assert found, query  # every query finds something, long blocks included
    # writes of long blocks keep working both ways
    for db in pair:
        db.update_block(HUMAN, "long0", BlockUpdate(raw_content="short now"))
        db.update_block(HUMAN, "short", BlockUpdate(raw_content=texts["long1"]))
    texts["long0"], texts["short"] = "short now", texts["long1"]
    for query in ("w0", '"echo needle"', "now", "echo"):
        check(pair, "w", texts, query)
    for db in pair:
        assert all(r.equal for r in rebuildable.verify(db, ["block_search"]))


def test_search_follows_every_block_write_on_both(pair) -> None:
    texts = {"a": "alpha beta", "b": "beta gamma", "c": "gamma alpha alpha"}
    for db in pair:
        load(db, "w", texts)
        db.create_document(HUMAN, NewDocument("w", "second", id="w/second"))
        db.create_block(HUMAN, NewBlock("w/second", "p", 0, "alpha delta", id="d"))
        db.update_block(HUMAN, "a", BlockUpdate(raw_content="epsilon"))
        db.update_block(HUMAN, "b", BlockUpdate(kind="h1"))  # content unchanged
        db.delete_block(HUMAN, "c")
    texts = {"a": "epsilon", "b": "beta gamma", "d": "alpha delta"}
    for query in ("alpha", "beta", "gamma", "epsilon", "alpha OR epsilon"):
        check(pair, "w", texts, query)
    for db in pair:
        db.delete_document(HUMAN, "w/second")
    del texts["d"]
    for query in ("alpha", "delta", "beta OR delta"):
        check(pair, "w", texts, query)
    for db in pair:
        assert all(r.equal for r in rebuildable.verify(db))
        db.delete_workspace(HUMAN, "w")
        with pytest.raises(ValidationError):
            db.search_hits("w", "")
        assert db.search_hits("w", "beta") == []


def test_sqlite_without_fts5_fails_clearly(pair) -> None:
    lite = pair[0]._adapter

    class NoFts5:
        def execute(self, sql, params=()):
            class Rows:
                def fetchall(self):
                    return [("ENABLE_JSON1",), ("THREADSAFE=1",)]

            return Rows()

    from handshake_storage.errors import MigrationError

    with pytest.raises(MigrationError, match="without FTS5"):
        lite.create_fulltext(NoFts5(), "block_search", "tokens")
