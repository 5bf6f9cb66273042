"""Block search: words, queries, scores and snippets, computed once in Python.

Both engines index and match; neither decides what a word is. The text is
cut into words here (:func:`words`), each normalized here (NFC, casefold,
NFC: ``Straße`` = ``STRASSE``, ``İ`` = ``i``), and handed to the engines as
a stream of *encoded* words made of ``[a-z]`` only (:func:`encode`), so
SQLite's FTS5 ``ascii`` tokenizer and PostgreSQL's ``simple`` parser both
see exactly these words, one per word, unchanged. The encoding keeps
prefixes (a character prefix is an encoded prefix), so ``prefix*`` means
the same on both engines.

A block is indexed as rows of the derived table ``block_search``
(:func:`index_rows`): a block within the engines' limits is one row whose
``tokens`` are its word stream in order (phrases and positions work on it);
a larger block is several rows of its distinct words, marked
:data:`LONG_MARKER`, which the engines only use to find candidates; such a
block is then matched and scored here from its text.

The score is integer arithmetic over counts that both engines compute the
same way (``length`` and ``replace`` on the ASCII word stream) and that
Python computes with ``str.count`` for long blocks: see :func:`score`.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Any

import regex

from .backends.base import Adapter, Session
from .errors import ValidationError

# A word: one CJK ideograph or kana (with its combining marks), or a run of
# letters, digits, combining marks and connector punctuation (``_``).
_CJK = r"\p{Han}\p{Hiragana}\p{Katakana}"
_WORD = regex.compile(rf"[{_CJK}]\p{{M}}*|[[\p{{L}}\p{{N}}\p{{M}}\p{{Pc}}]--[{_CJK}]]+", regex.V1)

_ASCII_WORD = re.compile(r"[a-z0-9_]+")
_SPACE = re.compile(r"\s+")

#: Words longer than this (in normalized characters) are indexed as their
#: first KEEP_CHARS characters, a NUL and a digest: exact matching stays
#: exact, prefix matching works for prefixes up to KEEP_CHARS characters.
MAX_WORD_CHARS = 64
KEEP_CHARS = 48

#: Limits of one single-row block: PostgreSQL keeps 256 positions per word
#: and positions up to 16,383 in a tsvector of at most 1 MB.
MAX_ROW_WORDS = 4000
MAX_ROW_REPEATS = 255
MAX_ROW_CHARS = 400_000
#: Distinct words per row of a long block.
LONG_CHUNK_WORDS = 1000

#: The word every row of a long block starts with: "q" and five letters
#: beyond the last code point, so no text encodes to it.
LONG_MARKER = "qzlong"

MAX_QUERY_ATOMS = 64
MAX_PHRASE_WORDS = 64

#: Score of one query term: SCALE * tf / (tf + block_words / AVERAGE).
SCALE = 1000
AVERAGE = 64

SNIPPET_BEFORE = 6
SNIPPET_WORDS = 20
HIGHLIGHT = ("**", "**")
ELLIPSIS = "…"


def normalize(word: str) -> str:
    """NFC, casefold, NFC; a Turkish dotted capital I folds to plain ``i``."""
    folded = unicodedata.normalize("NFC", word).casefold().replace("i\u0307", "i")
    return unicodedata.normalize("NFC", folded)


def key(term: str) -> str:
    """The indexed form of a normalized word (long words shortened)."""
    if len(term) <= MAX_WORD_CHARS:
        return term
    digest = hashlib.sha256(term.encode("utf-8")).hexdigest()[:16]
    return f"{term[:KEEP_CHARS]}\x00{digest}"


def words(text: str) -> Iterator[tuple[int, int, str]]:
    """(start, end, key) of every word of ``text``, in order."""
    for match in _WORD.finditer(text):
        yield match.start(), match.end(), key(normalize(match.group()))


def terms(text: str) -> list[str]:
    """The keys of the words of ``text``."""
    if text.isascii():  # the common case, without a Unicode round trip per word
        return [w if len(w) <= MAX_WORD_CHARS else key(w) for w in _ascii_words(text)]
    return [key(normalize(m)) for m in _WORD.findall(text)]


def _ascii_words(text: str) -> list[str]:
    return _ASCII_WORD.findall(text.lower())


class _Codes(dict):
    """code point -> its encoding, computed on first use (for str.translate)."""

    def __missing__(self, n: int) -> str:
        ch = chr(n)
        if ch in _LETTERS:
            code = ch
        elif ch.isascii() and ch.isdigit():
            code = "z" + "abcdefghij"[n - 48]
        else:
            code = "q"
            for power in (26**4, 26**3, 26**2, 26, 1):
                code += _ALPHABET[n // power % 26]
        self[n] = code
        return code


_ALPHABET = "abcdefghijklmnopqrstuvwxyz"
_LETTERS = frozenset("abcdefghijklmnoprstuvwxy")  # "q" escapes, "z" marks a digit
_CODES = _Codes()


def encode(term: str) -> str:
    """``term`` as ``[a-z]`` only: the letters other than q and z as they
    are, a digit as ``z`` and a letter, any other character as ``q`` and five
    letters (base 26 of its code point). A prefix code, so character
    prefixes stay prefixes; letters only, so no engine's parser splits a word
    (PostgreSQL's reads ``12e5x`` as a number and a word)."""
    if term.isalpha() and term.isascii() and "q" not in term and "z" not in term:
        return term  # lower-case already: keys are casefolded
    return term.translate(_CODES)


def stream(encoded: Sequence[str]) -> str:
    """The indexed text: each word between spaces, two spaces between words,
    so that counting `` w `` counts the occurrences of ``w`` exactly."""
    return " " + "  ".join(encoded) + " " if encoded else ""


# -- the derived rows ---------------------------------------------------------------


def index_rows(block_id: str, text: str) -> list[tuple[str, int, int, str]]:
    """(block_id, chunk, word_count, tokens) rows that index ``text``."""
    encoded = [encode(t) for t in terms(text)]
    if not encoded:
        return []
    n = len(encoded)
    body = stream(encoded)
    if (
        n <= MAX_ROW_WORDS
        and len(body) <= MAX_ROW_CHARS
        and _max_repeats(encoded) <= MAX_ROW_REPEATS
    ):
        return [(block_id, 0, n, body)]
    distinct = list(dict.fromkeys(encoded))
    return [
        (
            block_id,
            1 + i // LONG_CHUNK_WORDS,
            n,
            stream([LONG_MARKER, *distinct[i : i + LONG_CHUNK_WORDS]]),
        )
        for i in range(0, len(distinct), LONG_CHUNK_WORDS)
    ]


def _max_repeats(encoded: list[str]) -> int:
    counts: dict[str, int] = {}
    for w in encoded:
        counts[w] = counts.get(w, 0) + 1
    return max(counts.values())


# -- queries ------------------------------------------------------------------------


@dataclass(frozen=True)
class Atom:
    """A word, a phrase (consecutive words) or either with a prefix last word;
    ``terms`` are encoded."""

    terms: tuple[str, ...]
    prefix: bool = False

    @property
    def pattern(self) -> str:
        """What the atom looks like inside :func:`stream` text."""
        return " " + "  ".join(self.terms) + ("" if self.prefix else " ")


@dataclass(frozen=True)
class Query:
    """Every clause must match (a clause: any of its atoms); no excluded atom may."""

    clauses: tuple[tuple[Atom, ...], ...]
    excluded: tuple[Atom, ...]

    @property
    def scored(self) -> tuple[Atom, ...]:
        """The distinct positive atoms, in query order: the terms of the score."""
        return tuple(dict.fromkeys(a for clause in self.clauses for a in clause))

    def long_candidates(self) -> tuple[tuple[Atom, ...], ...]:
        """Clauses that find the rows of long blocks containing a query word:
        the long-block marker, and any single word of the positive atoms."""
        found: dict[Atom, None] = {}
        for atom in self.scored:
            for i, t in enumerate(atom.terms):
                found[Atom((t,), atom.prefix and i == len(atom.terms) - 1)] = None
        return ((Atom((LONG_MARKER,)),), tuple(found))


def parse(query: str) -> Query:
    """Parse the query syntax: words (AND), ``"a phrase"``, ``prefix*``,
    ``-excluded``, ``a OR b``. A ValidationError says what is wrong.

    ``OR`` (upper case, on its own) joins the terms on either side into one
    clause; a term without words (``—``, ``%``) is left out."""
    groups: list[tuple[bool, list[tuple[str, bool]]]] = []  # (negated, [(text, prefix)])
    joining = False
    for negated, phrase, text, prefix in _lex(query):
        if text == "OR" and not (phrase or negated or prefix):
            if not groups or joining:
                raise ValidationError("OR needs a search term on each side")
            if groups[-1][0]:
                raise ValidationError("an excluded term cannot be part of an OR")
            joining = True
        elif joining:
            if negated:
                raise ValidationError("an excluded term cannot be part of an OR")
            groups[-1][1].append((text, prefix))
            joining = False
        else:
            groups.append((negated, [(text, prefix)]))
    if joining:
        raise ValidationError("OR needs a search term on each side")
    clauses: list[tuple[Atom, ...]] = []
    excluded: list[Atom] = []
    for negated, items in groups:
        atoms = tuple(dict.fromkeys(a for a in (_atom(t, p) for t, p in items) if a))
        if negated:
            excluded += atoms
        elif atoms:
            clauses.append(atoms)
    if not clauses:
        if excluded:
            raise ValidationError("a query needs at least one term that is not excluded")
        raise ValidationError("the query has no words to search for")
    if sum(map(len, clauses)) + len(excluded) > MAX_QUERY_ATOMS:
        raise ValidationError(f"a query may have at most {MAX_QUERY_ATOMS} terms")
    return Query(tuple(clauses), tuple(dict.fromkeys(excluded)))


def _lex(query: str) -> list[tuple[bool, bool, str, bool]]:
    """(negated, phrase, text, prefix) per item of the query."""
    items = []
    i, n = 0, len(query)
    while i < n:
        if query[i].isspace():
            i += 1
            continue
        negated = query[i] == "-" and i + 1 < n and not query[i + 1].isspace()
        if negated:
            i += 1
        if query[i] == '"':
            end = query.find('"', i + 1)
            if end < 0:
                raise ValidationError(f"unbalanced quote at position {i + 1} of the query")
            text, i = query[i + 1 : end], end + 1
            prefix = i < n and query[i] == "*"
            if prefix:
                i += 1
            items.append((negated, True, text, prefix))
            continue
        start = i
        while i < n and not query[i].isspace() and query[i] != '"':
            i += 1
        text = query[start:i]
        prefix = text.endswith("*")
        items.append((negated, False, text.rstrip("*") if prefix else text, prefix))
    return items


def _atom(text: str, prefix: bool) -> Atom | None:
    found = [normalize(m) for m in _WORD.findall(text)]
    if not found:
        return None
    if len(found) > MAX_PHRASE_WORDS:
        raise ValidationError(f"a phrase may have at most {MAX_PHRASE_WORDS} words")
    keys = [key(t) for t in found]
    if prefix and len(found[-1]) <= MAX_WORD_CHARS:
        keys[-1] = found[-1]  # a prefix is matched as typed...
    # ... unless longer than any indexed key: then it finds only that word.
    prefix = prefix and len(found[-1]) <= MAX_WORD_CHARS
    return Atom(tuple(encode(k) for k in keys), prefix)


# -- scores and snippets ------------------------------------------------------------


def term_score(tf: int, n: int) -> int:
    """One atom's share: saturating in its count ``tf``, lower in longer blocks
    (``n`` words). Integer arithmetic, so every engine computes the same."""
    return SCALE * AVERAGE * tf // (AVERAGE * tf + n)


def evaluate(query: Query, text: str) -> int | None:
    """The score of a block whose text is ``text``, or None if it does not
    match: what the engines compute for single-row blocks, done here."""
    encoded = [encode(t) for t in terms(text)]
    body = stream(encoded)
    if any(a.pattern in body for a in query.excluded):
        return None
    if not all(any(a.pattern in body for a in clause) for clause in query.clauses):
        return None
    return sum(term_score(body.count(a.pattern), len(encoded)) for a in query.scored)


def snippet(query: Query, text: str) -> str:
    """Words around the first match, matched words highlighted, whitespace
    collapsed, an ellipsis where text was cut."""
    spans = list(words(text))
    encoded = [encode(k) for _, _, k in spans]
    marked: set[int] = set()
    first: int | None = None
    for atom in query.scored:
        size = len(atom.terms)
        for i in range(len(encoded) - size + 1):
            if _atom_at(atom, encoded, i):
                marked.update(range(i, i + size))
                first = i if first is None else min(first, i)
    if first is None:
        first = 0
    start = max(0, first - SNIPPET_BEFORE)
    end = min(len(spans), start + SNIPPET_WORDS)
    if start >= end:
        return ""
    parts = [ELLIPSIS] if start > 0 else []
    for i in range(start, end):
        s, e, _ = spans[i]
        if i > start:
            parts.append(_SPACE.sub(" ", text[spans[i - 1][1] : s]))
        word = text[s:e]
        parts.append(f"{HIGHLIGHT[0]}{word}{HIGHLIGHT[1]}" if i in marked else word)
    if end < len(spans):
        parts.append(ELLIPSIS)
    return "".join(parts)


def _atom_at(atom: Atom, encoded: list[str], i: int) -> bool:
    last = len(atom.terms) - 1
    for j, t in enumerate(atom.terms):
        w = encoded[i + j]
        if j == last and atom.prefix:
            if not w.startswith(t):
                return False
        elif w != t:
            return False
    return True


# -- the builder of the derived table -------------------------------------------------

#: Column order of index_rows() plus the workspace, for bulk loads.
COLUMNS = ("block_id", "chunk", "word_count", "tokens", "workspace_id")


def rebuild_block_search(adapter: Adapter, session: Session, batch: int = 2000) -> int:
    """Fill the (empty) ``block_search`` table from the blocks; returns rows written."""

    def rows(chunk: list[tuple[str, str, str]]) -> list[tuple[Any, ...]]:
        return [(*r, ws) for block_id, ws, text in chunk for r in index_rows(block_id, text)]

    return fill_from_blocks(adapter, session, "block_search", COLUMNS, rows, batch)


def fill_from_blocks(
    adapter: Adapter,
    session: Session,
    table: str,
    columns: Sequence[str],
    rows: Callable[[list[tuple[str, str, str]]], Iterable[Sequence[Any]]],
    batch: int,
) -> int:
    """Bulk-load ``table`` with ``rows(chunk)`` for each batch of (block id,
    workspace id, raw_content) of all blocks; returns rows written. Streamed,
    so memory stays flat however many blocks there are."""
    source = adapter.stream(
        session,
        "SELECT b.id, d.workspace_id, b.raw_content FROM blocks b "
        "JOIN documents d ON d.id = b.document_id",
        batch=batch,
    )
    written = 0
    # In batches: the source cursor and the bulk load share one connection.
    while chunk := list(islice(source, batch)):
        written += adapter.bulk_insert(session, table, columns, rows(chunk))
    return written
