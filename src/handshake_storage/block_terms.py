"""The block_terms projection of migration 0003, kept for databases below 0004.

Migration 0004 replaced it with the engines' full-text indexes (search.py).
A database rolled back to 0003 (or copied at that version) still declares
block_terms rebuildable with the builder ``block_terms``, so its recompute
function stays: one row per (block, casefolded ``\\w+`` term) with the
number of occurrences, long terms shortened to a prefix and a digest.
"""

from __future__ import annotations

import hashlib
import re
from collections import _count_elements  # type: ignore[attr-defined]
from collections.abc import Iterable, Iterator

from .backends.base import Adapter, Session
from .search import fill_from_blocks

_WORD = re.compile(r"\w+")

#: Longer terms are stored as a prefix plus a digest (fits a btree key).
MAX_TERM_LENGTH = 100


def term_key(token: str) -> str:
    term = token.casefold()
    if len(term) <= MAX_TERM_LENGTH:
        return term
    digest = hashlib.sha256(term.encode("utf-8")).hexdigest()[:32]
    return f"{term[:64]}#{digest}"


def term_counts(text: str) -> dict[str, int]:
    """term -> occurrences in ``text``."""
    counts: dict[str, int] = {}
    _count_elements(counts, [term_key(t) for t in _WORD.findall(text)])
    return counts


def _projection(rows: Iterable[tuple[str, str, str]]) -> Iterator[tuple[str, str, str, int]]:
    for block_id, workspace_id, content in rows:
        for term, n in term_counts(content).items():
            yield (workspace_id, term, block_id, n)


def rebuild_block_terms(adapter: Adapter, session: Session, batch: int = 2000) -> int:
    """Fill the (empty) projection from the blocks; returns rows written."""
    columns = ("workspace_id", "term", "block_id", "occurrences")
    return fill_from_blocks(adapter, session, "block_terms", columns, _projection, batch)
