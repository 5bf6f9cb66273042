"""A pure-Python model of block search, written from the specification.

It shares nothing with the product's search code but the specification:
words are one CJK ideograph or kana (with its marks), or a run of letters,
digits, marks and connector punctuation; each is NFC-normalized, casefolded
(a dotted capital I folds to i) and NFC-normalized again, and a word longer
than 64 characters is compared as its first 48, a NUL and 16 hex digits of
its SHA-256. Matching runs on these word lists (no encoding, no SQL): a
phrase is consecutive words, a prefix compares the start of a word, a
count is the number of non-overlapping occurrences. The score of a block is
the sum over the distinct positive terms of 64000 * count // (64 * count +
words), and results are ordered by (-score, block id).
"""

from __future__ import annotations

import hashlib
import unicodedata
from dataclasses import dataclass

import regex

WORD = regex.compile(
    r"[\p{Han}\p{Hiragana}\p{Katakana}]\p{M}*"
    r"|[[\p{L}\p{N}\p{M}\p{Pc}]--[\p{Han}\p{Hiragana}\p{Katakana}]]+",
    regex.V1,
)


class Malformed(Exception):
    """The model's verdict that a query is a ValidationError."""


def fold(word: str) -> str:
    text = unicodedata.normalize("NFC", word).casefold().replace("i\u0307", "i")
    return unicodedata.normalize("NFC", text)


def shorten(word: str) -> str:
    if len(word) <= 64:
        return word
    return word[:48] + "\x00" + hashlib.sha256(word.encode()).hexdigest()[:16]


def words(text: str) -> list[str]:
    return [shorten(fold(w)) for w in WORD.findall(text)]


@dataclass(frozen=True)
class Term:
    words: tuple[str, ...]
    prefix: bool

    def at(self, block: list[str], i: int) -> bool:
        if i + len(self.words) > len(block):
            return False
        for j, w in enumerate(self.words):
            last = j == len(self.words) - 1
            if last and self.prefix:
                if not block[i + j].startswith(w):
                    return False
            elif block[i + j] != w:
                return False
        return True

    def count(self, block: list[str]) -> int:
        n, i = 0, 0
        while i < len(block):
            if self.at(block, i):
                n += 1
                i += len(self.words)
            else:
                i += 1
        return n


def _term(text: str, prefix: bool) -> Term | None:
    found = [fold(w) for w in WORD.findall(text)]
    if not found:
        return None
    if len(found) > 64:
        raise Malformed("phrase too long")
    keys = [shorten(w) for w in found]
    long_prefix = len(found[-1]) > 64
    if prefix and not long_prefix:
        keys[-1] = found[-1]
    return Term(tuple(keys), prefix and not long_prefix)


def _items(query: str) -> list[tuple[bool, bool, str, bool]]:
    out, i = [], 0
    while i < len(query):
        if query[i].isspace():
            i += 1
            continue
        neg = query[i] == "-" and i + 1 < len(query) and not query[i + 1].isspace()
        i += neg
        if query[i] == '"':
            end = query.find('"', i + 1)
            if end < 0:
                raise Malformed("unbalanced quote")
            text, i = query[i + 1 : end], end + 1
            star = i < len(query) and query[i] == "*"
            i += star
            out.append((neg, True, text, star))
            continue
        j = i
        while j < len(query) and not query[j].isspace() and query[j] != '"':
            j += 1
        text, i = query[i:j], j
        out.append((neg, False, text.rstrip("*"), text.endswith("*")))
    return out


@dataclass(frozen=True)
class Parsed:
    clauses: tuple[tuple[Term, ...], ...]
    excluded: tuple[Term, ...]


def parse(query: str) -> Parsed:
    groups: list[tuple[bool, list[tuple[str, bool]]]] = []
    pending = False
    for neg, phrase, text, star in _items(query):
        if text == "OR" and not (phrase or neg or star):
            if not groups or pending or groups[-1][0]:
                raise Malformed("OR")
            pending = True
        elif pending:
            if neg:
                raise Malformed("excluded in OR")
            groups[-1][1].append((text, star))
            pending = False
        else:
            groups.append((neg, [(text, star)]))
    if pending:
        raise Malformed("OR at the end")
    clauses, excluded = [], []
    for neg, items in groups:
        terms = [t for t in (_term(x, p) for x, p in items) if t is not None]
        if neg:
            excluded += terms
        elif terms:
            clauses.append(tuple(dict.fromkeys(terms)))
    if not clauses:
        raise Malformed("nothing to find")
    if sum(map(len, clauses)) + len(dict.fromkeys(excluded)) > 64:
        raise Malformed("too many terms")
    return Parsed(tuple(clauses), tuple(dict.fromkeys(excluded)))


def score(query: Parsed, text: str) -> int | None:
    block = words(text)
    if any(t.count(block) for t in query.excluded):
        return None
    if not all(any(t.count(block) for t in clause) for clause in query.clauses):
        return None
    positive = dict.fromkeys(t for clause in query.clauses for t in clause)
    total = 0
    for term in positive:
        c = term.count(block)
        total += 64000 * c // (64 * c + len(block))
    return total


def ranked(blocks: dict[str, str], query: str) -> list[tuple[str, int]]:
    """(block id, score) of the matching blocks, best first; Malformed if invalid."""
    parsed = parse(query)
    found = [(bid, s) for bid, text in blocks.items() if (s := score(parsed, text)) is not None]
    return sorted(found, key=lambda h: (-h[1], h[0]))
