"""Migration files as text: normalization, checksums and statement splitting.

The migrator, the linter and the rebuildable registry all read migration
files through here, so they agree on where a statement starts, which
comments belong to it and what the file's checksum is.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import lru_cache

from .errors import MigrationError

#: A ``-- @name args`` annotation line in a statement's leading comment.
MARKER = re.compile(r"^\s*@(\w[\w-]*)\b(.*)$")
_FIRST_WORD = re.compile(r"[A-Za-z_]+")

#: Statements that open, end or split a transaction. The runner wraps each
#: migration in one transaction of its own; one of these inside would commit
#: half a migration (lint rule HS111, refused by the runner too).
TRANSACTION_WORDS = frozenset(
    {"BEGIN", "COMMIT", "END", "ROLLBACK", "SAVEPOINT", "RELEASE", "START", "ABORT", "VACUUM"}
)


def normalize(text: str) -> str:
    """The text a checksum is taken over: no byte-order mark, LF line endings.

    A checkout on Windows (CRLF, maybe a BOM) yields the same checksum as one
    on Linux; any other edit changes it.
    """
    if text.startswith("\ufeff"):
        text = text[1:]
    return text.replace("\r\n", "\n").replace("\r", "\n")


def checksum(text: str) -> str:
    return hashlib.sha256(normalize(text).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Statement:
    text: str
    line: int  # 1-based line of the statement's first token
    comments: tuple[str, ...]  # the comment lines directly attached before it

    @property
    def head(self) -> str:
        """The statement's first keyword, upper case ("" if it has none)."""
        match = _FIRST_WORD.match(self.text)
        return match.group(0).upper() if match else ""

    def markers(self) -> list[tuple[str, str, int]]:
        """``-- @name args`` annotations: (name, args, line offset from first comment)."""
        found = []
        for i, comment in enumerate(self.comments):
            for line in comment.splitlines():
                match = MARKER.match(line)
                if match:
                    found.append((match.group(1), match.group(2).strip(), i))
        return found


def split(sql: str) -> list[Statement]:
    """Split a script into statements, keeping each one's leading comments."""
    return list(_split_cached(normalize(sql)))


@lru_cache(maxsize=64)
def _split_cached(sql: str) -> tuple[Statement, ...]:
    from sqlglot.errors import TokenError
    from sqlglot.tokens import TokenType

    try:
        tokens = _dialect().tokenize(sql)
    except TokenError as exc:
        raise MigrationError(f"cannot tokenize SQL: {exc}") from None
    statements: list[Statement] = []
    current: list = []
    for token in tokens:
        if token.token_type == TokenType.SEMICOLON:
            if current:
                statements.append(_statement(sql, current))
            current = []
            continue
        current.append(token)
    if current:
        statements.append(_statement(sql, current))
    return tuple(statements)


def _statement(sql: str, tokens: list) -> Statement:
    first, last = tokens[0], tokens[-1]
    line = sql.count("\n", 0, first.start) + 1
    return Statement(sql[first.start : last.end + 1], line, tuple(first.comments))


@lru_cache(maxsize=1)
def _dialect():
    from sqlglot.dialects.postgres import Postgres

    return Postgres()
