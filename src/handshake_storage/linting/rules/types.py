"""HS106: every column and cast type is one of the portable spellings."""

from __future__ import annotations

import re
from collections.abc import Iterator

from sqlglot import exp
from sqlglot.tokens import TokenType

from ...declarations import PORTABLE_TYPES
from ..context import Stmt
from ..rule import Hit, Rule

HS106 = Rule(
    "HS106",
    "column or cast type outside the portable type list",
    f"use one of {', '.join(PORTABLE_TYPES)}",
    "column or cast type outside the portable list, which is exactly "
    + ", ".join(f"``{name}``" for name in PORTABLE_TYPES)
    + " (case-insensitive, single spaces: SQLite keeps the declared type verbatim and the "
    "adapters map these spellings to type families). So ``INT``, ``TIMESTAMPTZ``, "
    "``VARCHAR(n)`` (PostgreSQL enforces the length, SQLite does not), ``REAL`` (4 bytes "
    "on PostgreSQL), ``NUMERIC``, ``JSON``/``JSONB``, ``UUID``, ``SERIAL``, "
    "``BYTEA``/``BLOB``, ``DATETIME``, arrays and columns without a type are findings.",
)

_PORTABLE_TYPE = re.compile(
    "(?:" + "|".join(sorted(map(re.escape, PORTABLE_TYPES), key=len, reverse=True)) + ")"
    r"(?![\w$])(?!\s*[(\[])",
    re.I,
)
_TYPE_FIXES: tuple[tuple[frozenset[str], str], ...] = tuple(
    (frozenset(names.split()), fix)
    for names, fix in (
        ("JSON JSONB", "use TEXT and store JSON as text"),
        ("UUID", "use TEXT holding the UUID string"),
        (
            "SERIAL BIGSERIAL SMALLSERIAL SERIAL4 SERIAL8",
            "use BIGINT (or a TEXT UUID) with ids assigned by the application",
        ),
        ("BYTEA BLOB BINARY VARBINARY", "store bytes as base64 in TEXT"),
        (
            "TIMESTAMP TIMESTAMPTZ DATETIME DATE TIME TIMETZ INTERVAL",
            "use TIMESTAMP WITH TIME ZONE, spelled exactly so",
        ),
        (
            "VARCHAR CHAR CHARACTER NVARCHAR NCHAR CLOB STRING CITEXT NAME",
            "use TEXT (add CHECK (length(col) <= n) if a limit matters)",
        ),
        (
            "REAL FLOAT FLOAT4 FLOAT8 DOUBLE NUMERIC DECIMAL MONEY",
            "use DOUBLE PRECISION (or BIGINT for exact amounts)",
        ),
        ("INT INT2 INT4 INT8 TINYINT MEDIUMINT", "use INTEGER, SMALLINT or BIGINT"),
        ("BOOL", "use BOOLEAN"),
    )
)
# Words that end a type spelled in a column definition.
_CONSTRAINT_WORDS = frozenset(
    [
        "NOT",
        "NULL",
        "DEFAULT",
        "PRIMARY",
        "REFERENCES",
        "UNIQUE",
        "CHECK",
        "CONSTRAINT",
        "COLLATE",
        "GENERATED",
        "AS",
        "ON",
    ]
)
_OPEN = (TokenType.L_PAREN, TokenType.L_BRACKET)
_CLOSE = (TokenType.R_PAREN, TokenType.R_BRACKET)


@HS106.check("detail")
def _cast_targets(stmt: Stmt) -> Iterator[Hit]:
    """CAST(value AS <type>)."""
    tokens, words = stmt.tokens, stmt.words
    for i in range(len(tokens) - 1):
        if words[i] != "CAST" or tokens[i + 1].token_type != TokenType.L_PAREN:
            continue
        depth = 0
        for j in range(i + 1, len(tokens)):
            kind = tokens[j].token_type
            depth += kind == TokenType.L_PAREN
            depth -= kind == TokenType.R_PAREN
            if depth == 0:
                break
            if depth == 1 and words[j] == "AS" and j + 1 < len(tokens):
                yield from _type_at(stmt, j + 1, "CAST target")
                break


@HS106.check("detail")
def _column_types(stmt: Stmt) -> Iterator[Hit]:
    tree = stmt.tree()
    if tree is None:
        return
    if isinstance(tree, exp.Create) and isinstance(tree.this, exp.Schema):
        for item in tree.this.expressions:  # SQLite's `CREATE TABLE t (c)`
            if isinstance(item, exp.Identifier):
                yield stmt.hit(f"column {item.name} has no type", line=stmt.line_of_node(item))
    for column in tree.find_all(exp.ColumnDef):
        ident = column.this
        end = ident.meta.get("end") if isinstance(ident, exp.Identifier) else None
        if column.args.get("kind") is None:
            yield stmt.hit(f"column {column.name} has no type", line=stmt.line_of_node(column))
            continue
        if end is None:
            continue
        for i, token in enumerate(stmt.tokens):
            if token.start > end:
                yield from _type_at(stmt, i, f"column {column.name}")
                break


def _type_at(stmt: Stmt, index: int, what: str) -> Iterator[Hit]:
    """The type spelled from token ``index`` must be one of the portable spellings."""
    tokens = stmt.tokens
    start = tokens[index].start
    if _PORTABLE_TYPE.match(stmt.text, start):
        return
    spelled = stmt.text[start : tokens[_type_end(stmt, index)].end + 1]
    normal = " ".join(spelled.upper().split())
    first = re.split(r"[\s(\[]", normal, maxsplit=1)[0]
    if normal in PORTABLE_TYPES:
        fix = f"spell it {normal!r} with single spaces (SQLite keeps declared types verbatim)"
    elif "[" in normal:
        fix = "use TEXT holding a JSON array"
    else:
        fix = next((f for names, f in _TYPE_FIXES if first in names), HS106.fix)
    yield stmt.hit_at(tokens[index], f"{what} has non-portable type {spelled!r}", fix)


def _type_end(stmt: Stmt, index: int) -> int:
    """The last token of the type spelled from token ``index``."""
    tokens, words = stmt.tokens, stmt.words
    depth, last = 0, index
    for j in range(index, len(tokens)):
        kind = tokens[j].token_type
        if (
            depth == 0
            and j > index
            and (words[j] in _CONSTRAINT_WORDS or kind in (TokenType.COMMA, *_CLOSE))
        ):
            break
        if kind in _OPEN:
            depth += 1
        elif kind in _CLOSE:
            if depth == 0:
                break
            depth -= 1
        last = j
    return last
