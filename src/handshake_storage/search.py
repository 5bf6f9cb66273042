"""Block search: tokenization and the ``block_terms`` projection.

Terms are computed in Python, not by a database's full-text engine, so a
query gives the same blocks in the same order on every backend. A term is a
Unicode word token (``\\w+``) of ``raw_content``, casefolded; the projection
stores each block's distinct terms with their counts. It is a derived table:
rebuilt from the blocks by :func:`rebuild_block_terms`, never copied.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter, _count_elements  # type: ignore[attr-defined]
from collections.abc import Iterable, Iterator

from .backends.base import Adapter, Session

_WORD = re.compile(r"\w+")

#: Longer terms are stored as a prefix plus a digest, so every term fits in
#: a btree key on PostgreSQL; matching stays exact (up to SHA-256 collisions).
MAX_TERM_LENGTH = 100

#: A query may name at most this many distinct terms.
MAX_QUERY_TERMS = 64


def term_key(token: str) -> str:
    term = token.casefold()
    if len(term) <= MAX_TERM_LENGTH:
        return term
    digest = hashlib.sha256(term.encode("utf-8")).hexdigest()[:32]
    return f"{term[:64]}#{digest}"


#: A word too long to be stored as it is (see term_key).
_LONG_WORD = re.compile(r"\w{" + str(MAX_TERM_LENGTH + 1) + ",}")


def _counts(text: str) -> dict[str, int]:
    """term -> occurrences, as a plain dict (the hot path of the projection)."""
    counts: dict[str, int] = {}
    if text.isascii():
        tokens = _WORD.findall(text.lower())
        if _LONG_WORD.search(text) is not None:
            tokens = [t if len(t) <= MAX_TERM_LENGTH else term_key(t) for t in tokens]
    else:
        tokens = [term_key(t) for t in _WORD.findall(text)]
    _count_elements(counts, tokens)  # collections' C counting loop
    return counts


def term_counts(text: str) -> Counter[str]:
    """Each distinct term of ``text`` with its number of occurrences."""
    return Counter(_counts(text))


def query_terms(query: str) -> list[str]:
    """The distinct terms of a search query, in a stable order."""
    return sorted({term_key(t) for t in _WORD.findall(query)})


def rows_for_document(
    block_id: str, document_id: str, content: str
) -> list[tuple[str, str, int, str]]:
    """Parameters for ``insert_terms_for_document``: (term, block, count, document)."""
    return [(t, block_id, n, document_id) for t, n in _counts(content).items()]


def rows_for_workspace(
    workspace_id: str, block_id: str, content: str
) -> list[tuple[str, str, str, int]]:
    """Parameters for ``insert_terms``: (workspace, term, block, count)."""
    return [(workspace_id, t, block_id, n) for t, n in _counts(content).items()]


def _projection(rows: Iterable[tuple[str, str, str]]) -> Iterator[tuple[str, str, str, int]]:
    for block_id, workspace_id, content in rows:
        for term, n in _counts(content).items():
            yield (workspace_id, term, block_id, n)


def rebuild_block_terms(adapter: Adapter, session: Session, batch: int = 2000) -> int:
    """Recompute the projection from the canonical blocks; returns rows written.

    Runs inside the caller's transaction, which has already emptied (or
    re-created) ``block_terms``. Streams the blocks in batches, so memory
    stays flat however many blocks there are.
    """
    source = adapter.stream(
        session,
        "SELECT b.id, d.workspace_id, b.raw_content FROM blocks b "
        "JOIN documents d ON d.id = b.document_id",
        batch=batch,
    )
    written = 0
    chunk: list = []
    for row in source:
        chunk.append(row)
        if len(chunk) >= batch:
            written += _insert(adapter, session, chunk)
            chunk = []
    if chunk:
        written += _insert(adapter, session, chunk)
    return written


def _insert(adapter: Adapter, session: Session, chunk: list) -> int:
    return adapter.bulk_insert(
        session,
        "block_terms",
        ("workspace_id", "term", "block_id", "occurrences"),
        _projection(chunk),
    )
