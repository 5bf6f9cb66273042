"""HS010: a statement one of the dialects cannot read structurally."""

from __future__ import annotations

from collections.abc import Iterator

from ..context import DIALECTS, Stmt
from ..rule import Hit, Rule

HS010 = Rule(
    "HS010",
    "statement does not parse (structurally) as SQLite or as PostgreSQL",
    "rewrite it in the SQL both SQLite and PostgreSQL accept",
    "statement does not parse, or parses only as an opaque command, as SQLite or "
    "PostgreSQL (reported only when no other finding on the statement already explains "
    "it). ``WITHOUT ROWID`` tables and ``SAVEPOINT``/``RELEASE`` are read as opaque "
    "commands in both dialects whatever sqlglot release is installed (the linter "
    "decides it from its own tokens).",
    fallback=True,
)


@HS010.check("parse")
def _does_not_parse(stmt: Stmt) -> Iterator[Hit]:
    for dialect, (line, message) in stmt.errors.items():
        yield stmt.hit(
            f"does not parse as {DIALECTS[dialect]}: {message}", line=stmt.line + line - 1
        )
