"""search_blocks against an oracle, identically on SQLite and PostgreSQL.

The oracle is plain Python over the blocks read back through the API:
Unicode word tokens (``\\w+``), casefolded; a block matches when it contains
every distinct query term; its score is the total number of occurrences of
those terms; results are ordered by (-score, document_id, sequence, id) in
Python string order. The corpus is generated from a fixed seed and mixes
scripts, accents, emoji, punctuation, case, repeated terms, ß/ss folding and
tokens longer than the projection stores verbatim. After every kind of block
write (update, delete, replace, document and workspace cascades) both
backends still agree with the oracle, and the maintained projection equals
a rebuild of it.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from handshake_storage import (
    BlockUpdate,
    ConflictError,
    Database,
    NewBlock,
    NewDocument,
    NewWorkspace,
    ValidationError,
    rebuildable,
)
from handshake_storage.search import MAX_TERM_LENGTH
from portability_support import HUMAN, both_backends, execute, scalar

# -- the oracle ---------------------------------------------------------------------------


@pytest.fixture
def factories(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict]:
    yield from both_backends(request, tmp_path)


def terms_of(text: str) -> list[str]:
    return [t.casefold() for t in re.findall(r"\w+", text)]


def all_blocks(db: Database, workspace_id: str) -> list:
    return [b for d in db.list_documents(workspace_id) for b in db.get_blocks(d.id)]


def ranked(blocks: list, query: str, limit: int = 50) -> list[str]:
    """The oracle: ids of the matching ``blocks`` in the required order."""
    wanted = set(terms_of(query))
    if not wanted:
        return []
    scored = []
    for block in blocks:
        counts = Counter(terms_of(block.raw_content))
        if all(counts[t] for t in wanted):
            score = sum(counts[t] for t in wanted)
            scored.append((-score, block.document_id, block.sequence, block.id))
    return [s[3] for s in sorted(scored)][:limit]


def oracle(db: Database, workspace_id: str, query: str, limit: int = 50) -> list[str]:
    return ranked(all_blocks(db, workspace_id), query, limit)


def found(db: Database, workspace_id: str, query: str, limit: int = 50) -> list[str]:
    return [b.id for b in db.search_blocks(workspace_id, query, limit)]


# -- the corpus ---------------------------------------------------------------------------

LONG = [
    "a" * 150,
    "a" * 150 + "b",  # differs from the previous one only after 150 characters
    "A" * 150,  # the same term as "a" * 150
    "é" * 120,
    "É" * 120,
    "ß" * 60,  # casefolds to 120 characters
    "SS" * 60,  # ... the same 120 characters
    "x" * 64 + "y" * 50,  # two terms that share a 64-character prefix
    "x" * 64 + "z" * 50,
    "q" * MAX_TERM_LENGTH,  # at the limit, stored verbatim
    "q" * (MAX_TERM_LENGTH + 1),
    "長" * 101,
]

VOCABULARY = [
    *("alpha", "Alpha", "ALPHA", "beta", "gamma", "delta", "the", "The", "THE", "a", "I"),
    *("café", "CAFÉ", "Café", "cafe", "cafe\u0301", "naïve", "NAÏVE", "résumé", "Ñandú"),
    *("Straße", "STRASSE", "strasse", "Strasse", "ẞ", "groß", "GROSS", "gross", "ß"),
    *("Σίσυφος", "ΣΊΣΥΦΟΣ", "σίσυφος", "λόγος", "ΛΌΓΟΣ", "Москва", "МОСКВА", "привет"),  # noqa: RUF001
    *("東京", "日本語", "中文", "한국어", "ひらがな", "カタカナ", "مرحبا", "שלום", "हिन्दी"),
    *("İstanbul", "istanbul", "ISTANBUL", "ı", "ﬁle", "FILE", "file", "\u212aelvin", "kelvin"),  # noqa: RUF001
    *("x²", "½", "٣٤٥", "123", "007", "snake_case", "__init__", "Ǆemal", "ǅemal"),
    *("😀", "👍🏽", "🇫🇷", "❤️", "don't", "e-mail", "foo.bar", "a/b", "(paren)", "#tag"),
    *("@user", "$100", "50%", "—", "…", "C++", "fox", "FOX", "Fox", "quick", "QUICK"),
    *LONG,
]
SEPARATORS = [" ", " ", " ", "  ", "\n", "\t", ", ", ". ", "!", "?!", ";", " — ", "\u00a0", "-"]


def random_text(rng: random.Random) -> str:
    words = [rng.choice(VOCABULARY) for _ in range(rng.randint(0, 14))]
    if words and rng.random() < 0.4:  # repeated terms
        words += [rng.choice(words)] * rng.randint(1, 4)
        rng.shuffle(words)
    text = ""
    for word in words:
        text += word + rng.choice(SEPARATORS)
    return text if rng.random() < 0.9 else text.upper()


def random_query(rng: random.Random, corpus_texts: list[str]) -> str:
    kind = rng.random()
    if kind < 0.5:
        words = [rng.choice(VOCABULARY) for _ in range(rng.randint(1, 3))]
    else:  # words taken from a block, so that multi-term queries match
        tokens = re.findall(r"\w+", rng.choice(corpus_texts)) or ["nothing"]
        words = [rng.choice(tokens) for _ in range(rng.randint(1, 3))]
    if rng.random() < 0.2:
        words.append(words[0])  # a repeated query term counts once
    case = rng.choice([str, str.upper, str.lower, str.title, str.swapcase])
    return case(rng.choice([" ", ", ", "; ", "\t"]).join(words))


FIXED_QUERIES = [
    "alpha",
    "ALPHA alpha Alpha",
    "strasse",
    "STRASSE",
    "Straße",
    "ss" * 60,
    "ß" * 60,
    "a" * 150,
    "A" * 150 + "b",
    "a" * 149,
    "a" * 151,
    "x" * 64 + "y" * 50,
    "x" * 64 + "z" * 50,
    "x" * 64,
    "q" * MAX_TERM_LENGTH,
    "Q" * (MAX_TERM_LENGTH + 1),
    "長" * 101,
    "σίσυφος",
    "ΣΊΣΥΦΟΣ",
    "东京",
    "東京 日本語",
    "file FILE",
    "ﬁle",
    "kelvin",
    "İstanbul",
    "istanbul",
    "cafe",
    "café",
    "ǄEMAL",
    "don't",
    "t",
    "e mail",
    "C",
    "fox, quick!",
    "the the the",
    "missing",
    "alpha missing",
    "",
    "   ",
    "!!! — …",
    "😀",
    "٣٤٥",
    "½",
]


def build_corpus(db: Database, seed: int = 20240607) -> list[str]:
    """Three workspaces with documents whose ids sort differently by case
    and script; returns the workspace ids. Same content for the same seed."""
    rng = random.Random(seed)
    workspaces = ["ws-α", "WS-b", "ws-c"]  # noqa: RUF001
    for w, ws in enumerate(workspaces):
        db.create_workspace(HUMAN, NewWorkspace(f"space {w}", id=ws))
        for name in ("Doc-B", "doc-a", "doc-ä", "doc-Z", "doc-🙂"):
            doc = f"{ws}/{name}"
            db.create_document(HUMAN, NewDocument(ws, name, id=doc))
            blocks = []
            for i in range(rng.randint(15, 35)):
                block_id = f"{doc}/{rng.choice(['b', 'B', 'é', '_'])}{i:02d}"
                sequence = rng.choice([0, 1, 1, 2, 3, -1, 2**40])
                blocks.append(NewBlock(doc, "p", sequence, random_text(rng), id=block_id))
            db.replace_blocks(HUMAN, doc, blocks)
    return workspaces


def queries_for(
    db: Database, workspaces: list[str], count: int, seed: int, fixed: list[str] = FIXED_QUERIES
) -> list[str]:
    rng = random.Random(seed)
    texts = [b.raw_content for ws in workspaces for b in all_blocks(db, ws)]
    return fixed + [random_query(rng, texts) for _ in range(count)]


def assert_matches_oracle(dbs: list[Database], workspaces: list[str], queries: list[str]) -> int:
    """Every query on every workspace: each database equals the oracle (and so
    each other); returns how many (query, workspace) pairs found something."""
    hits = 0
    for ws in workspaces:
        contents = [all_blocks(db, ws) for db in dbs]
        same = [[(b.id, b.document_id, b.sequence, b.raw_content) for b in c] for c in contents]
        assert all(c == same[0] for c in same), "the databases hold different blocks"
        for query in queries:
            expected = ranked(contents[0], query)
            for db, blocks in zip(dbs, contents, strict=True):
                assert ranked(blocks, query) == expected, (db.backend, ws, query)
                assert found(db, ws, query) == expected, (db.backend, ws, query)
            hits += bool(expected)
    return hits


def assert_projection_is_exact(db: Database) -> None:
    (result,) = [r for r in rebuildable.verify(db, ["block_terms"]) if r.name == "block_terms"]
    assert result.equal, result.detail


# -- tests ----------------------------------------------------------------------------------


def test_corpus_exercises_what_it_claims() -> None:
    texts = [random_text(random.Random(s)) for s in range(400)]
    tokens = {t for text in texts for t in terms_of(text)}
    assert any(len(t) > MAX_TERM_LENGTH for t in tokens)
    assert any(not t.isascii() for t in tokens)
    assert "ss" * 60 in tokens and "σίσυφοσ" in tokens
    assert any(max(Counter(terms_of(t)).values(), default=0) > 2 for t in texts)


def test_search_matches_the_oracle_identically_on_both_backends(factories) -> None:
    dbs = [factories[b].open() for b in ("sqlite", "postgresql")]
    workspaces = build_corpus(dbs[0])
    assert build_corpus(dbs[1]) == workspaces
    queries = queries_for(dbs[0], workspaces, count=60, seed=1)
    hits = assert_matches_oracle(dbs, workspaces, queries)
    assert hits > len(queries)  # most queries find blocks, so the ordering is exercised
    # results are full blocks, equal to what get_block returns
    for db in dbs:
        for block in db.search_blocks(workspaces[0], "alpha", 10):
            assert block == db.get_block(block.id)
    # the limit cuts the oracle's order
    for db in dbs:
        for limit in (1, 2, 7, 10_000):
            assert found(db, workspaces[0], "alpha", limit) == oracle(
                db, workspaces[0], "alpha", limit
            )


def _mutations(rng: random.Random, workspaces: list[str]) -> list[tuple[str, Callable]]:
    """Block writes of every kind, as (label, fn(db)) applied to each backend."""
    ws = workspaces[0]
    doc = f"{ws}/doc-a"

    def update_content(db: Database) -> None:
        for block in all_blocks(db, ws)[::3]:
            db.update_block(HUMAN, block.id, BlockUpdate(raw_content=random_text(rng)))

    def update_other_fields(db: Database) -> None:
        for block in all_blocks(db, ws)[1::4]:
            db.update_block(
                HUMAN, block.id, BlockUpdate(sequence=-block.sequence, display_content="shown")
            )

    def delete_some(db: Database) -> None:
        for block in all_blocks(db, ws)[::5]:
            db.delete_block(HUMAN, block.id)

    def replace_document(db: Database) -> None:
        old = db.get_blocks(doc)
        new = (
            [
                NewBlock(doc, "p", i, random_text(rng) + " alpha", id=b.id)  # same ids, new text
                for i, b in enumerate(old[:5])
            ]
            + [NewBlock(doc, "p", 9, "ALPHA alpha straße", id=f"{doc}/new")]
        )
        db.replace_blocks(HUMAN, doc, new)

    def replace_with_nothing(db: Database) -> None:
        db.replace_blocks(HUMAN, f"{ws}/Doc-B", [])

    def create_blocks(db: Database) -> None:
        for i in range(5):
            doc_z = f"{ws}/doc-Z"
            db.create_block(HUMAN, NewBlock(doc_z, "p", i, random_text(rng), id=f"{doc_z}/n{i}"))

    def delete_document(db: Database) -> None:
        db.delete_document(HUMAN, f"{ws}/doc-ä")

    def delete_workspace(db: Database) -> None:
        db.delete_workspace(HUMAN, workspaces[1])

    return [
        ("update raw_content", update_content),
        ("update sequence and display only", update_other_fields),
        ("delete_block", delete_some),
        ("replace_blocks", replace_document),
        ("replace_blocks with none", replace_with_nothing),
        ("create_block", create_blocks),
        ("delete_document", delete_document),
        ("delete_workspace", delete_workspace),
    ]


def test_search_stays_correct_after_every_kind_of_block_write(factories) -> None:
    dbs = [factories[b].open() for b in ("sqlite", "postgresql")]
    workspaces = build_corpus(dbs[0], seed=7)
    assert build_corpus(dbs[1], seed=7) == workspaces
    queries = queries_for(dbs[0], workspaces, count=12, seed=2, fixed=FIXED_QUERIES[::3])
    # the same random edits on both databases: one generator per database
    plans = [_mutations(random.Random(99), workspaces) for _ in dbs]
    for step, (label, _) in enumerate(plans[0]):
        for db, plan in zip(dbs, plans, strict=True):
            plan[step][1](db)
        assert assert_matches_oracle(dbs, workspaces, queries) > len(queries), label
        for db in dbs:
            assert_projection_is_exact(db)
        if label == "delete_workspace":
            for db in dbs:
                assert db.search_blocks(workspaces[1], "alpha") == []
                assert (
                    scalar(
                        db,
                        "SELECT COUNT(*) FROM block_terms WHERE workspace_id = ?",
                        (workspaces[1],),
                    )
                    == 0
                )


def test_projection_follows_writes_on_one_backend(db: Database) -> None:
    workspaces = build_corpus(db, seed=11)
    ws = workspaces[2]
    queries = ["alpha", "fox quick", "strasse", "a" * 150, "東京"]
    for label, mutate in _mutations(random.Random(5), workspaces):
        mutate(db)
        assert assert_matches_oracle([db], workspaces, queries) >= 0, label
    assert_projection_is_exact(db)
    # a rebuild recomputes the same projection, so search answers the same
    before = {q: found(db, ws, q) for q in queries}
    rebuildable.rebuild(db, ["block_terms"])
    assert {q: found(db, ws, q) for q in queries} == before


def test_failed_block_writes_leave_the_projection_alone(db: Database) -> None:
    db.create_workspace(HUMAN, NewWorkspace("w", id="w"))
    for doc in ("d1", "d2"):
        db.create_document(HUMAN, NewDocument("w", doc, id=doc))
    db.replace_blocks(HUMAN, "d1", [NewBlock("d1", "p", 1, "alpha beta", id="b1")])
    db.create_block(HUMAN, NewBlock("d2", "p", 1, "gamma alpha alpha", id="b2"))
    before = {q: found(db, "w", q) for q in ("alpha", "beta", "gamma", "delta")}
    assert before["alpha"] == ["b2", "b1"]
    # the second block collides with b2 after d1's blocks were deleted: all rolled back
    with pytest.raises(ConflictError):
        db.replace_blocks(
            HUMAN,
            "d1",
            [NewBlock("d1", "p", 1, "delta", id="b3"), NewBlock("d1", "p", 2, "delta", id="b2")],
        )
    with pytest.raises(ConflictError):
        db.create_block(HUMAN, NewBlock("d1", "p", 1, "delta", id="b1"))
    with pytest.raises(ValidationError):
        db.create_block(HUMAN, NewBlock("nope", "p", 1, "delta", id="b9"))
    assert {q: found(db, "w", q) for q in before} == before
    assert_projection_is_exact(db)


def test_search_ordering_ties(db: Database) -> None:
    db.create_workspace(HUMAN, NewWorkspace("w", id="w"))
    for doc in ("d-b", "D-a", "d-a"):
        db.create_document(HUMAN, NewDocument("w", doc, id=doc))
        db.replace_blocks(
            HUMAN,
            doc,
            [
                NewBlock(doc, "p", 2, "fox", id=f"{doc}:z"),
                NewBlock(doc, "p", 2, "fox", id=f"{doc}:A"),
                NewBlock(doc, "p", 1, "fox", id=f"{doc}:é"),
                NewBlock(doc, "p", -5, "Fox fox FOX", id=f"{doc}:top"),
            ],
        )
    result = found(db, "w", "fox")
    assert result == oracle(db, "w", "fox")
    assert result[:3] == ["D-a:top", "d-a:top", "d-b:top"]  # binary order: "D" < "d"
    assert result[3:7] == ["D-a:é", "D-a:A", "D-a:z", "d-a:é"]


def test_search_limit_and_validation(db: Database) -> None:
    db.create_workspace(HUMAN, NewWorkspace("w", id="w"))
    db.create_document(HUMAN, NewDocument("w", "d", id="d"))
    db.replace_blocks(
        HUMAN,
        "d",
        [NewBlock("d", "p", i, "alpha " * (i % 7 + 1), id=f"b{i:03d}") for i in range(120)],
    )
    everything = oracle(db, "w", "alpha", 10_000)
    assert len(everything) == 120
    assert found(db, "w", "alpha") == everything[:50]  # the default limit
    for limit in (1, 3, 119, 120, 121, 10_000):
        assert found(db, "w", "alpha", limit) == everything[:limit]
    assert found(db, "unknown workspace", "alpha") == []
    for limit in (0, -1, 10_001, 2**63, True, 1.5, "5", None):
        with pytest.raises(ValidationError):
            db.search_blocks("w", "alpha", limit)
    for query in (None, 7, b"alpha", "nul\x00", "\ud800"):
        with pytest.raises(ValidationError):
            db.search_blocks("w", query)
    for workspace in ("", None, 5, "x" * 256):
        with pytest.raises(ValidationError):
            db.search_blocks(workspace, "alpha")
    with pytest.raises(ValidationError, match="64"):
        db.search_blocks("w", " ".join(f"t{i}" for i in range(65)))
    # 65 words but 64 distinct terms is fine
    assert db.search_blocks("w", "alpha " + " ".join(f"t{i}" for i in range(63)) + " ALPHA") == []


def test_tampered_projection_is_visible_to_search_until_rebuilt(db: Database) -> None:
    workspaces = build_corpus(db, seed=3)
    ws = workspaces[0]
    expected = oracle(db, ws, "alpha")
    assert expected and found(db, ws, "alpha") == expected
    execute(db, "DELETE FROM block_terms WHERE term = ?", ("alpha",))
    assert found(db, ws, "alpha") == []
    rebuildable.rebuild(db, ["block_terms"])
    assert found(db, ws, "alpha") == expected
