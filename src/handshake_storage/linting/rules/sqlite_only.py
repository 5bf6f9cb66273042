"""SQLite-only syntax: AUTOINCREMENT (HS104) and the rest (HS108)."""

from __future__ import annotations

from collections.abc import Iterator

from sqlglot.tokens import TokenType

from ..context import Stmt, Tok
from ..rule import Hit, Rule

HS104 = Rule(
    "HS104",
    "AUTOINCREMENT",
    "drop AUTOINCREMENT; ids are assigned by the application (text UUIDs)",
    "``AUTOINCREMENT``",
)
HS108 = Rule(
    "HS108",
    "SQLite-only syntax (WITHOUT ROWID, STRICT, INSERT OR ..., GLOB, ...)",
    "use the portable form both backends accept",
    "SQLite-only syntax: ``WITHOUT ROWID``, ``STRICT``, ``INSERT OR ...``, "
    "``REPLACE INTO``, ``GLOB``, ``REGEXP``, ``COLLATE NOCASE``, "
    "``CREATE VIRTUAL TABLE``, ``ATTACH``, ``INDEXED BY``",
)

_STATEMENTS = frozenset({"ATTACH", "DETACH", "REPLACE"})
SQLITE_COLLATIONS = frozenset({"NOCASE", "BINARY", "RTRIM"})
_ON_CONFLICT = "use INSERT ... ON CONFLICT, supported by both"


@HS104.check("detail")
def _autoincrement(stmt: Stmt) -> Iterator[Hit]:
    return stmt.token_hits(
        lambda t: (
            (f"{t.token.text} is SQLite/MySQL-only", None)
            if t.kind == TokenType.AUTO_INCREMENT
            else None
        )
    )


@HS108.check("forbids")
def _sqlite_statement(stmt: Stmt) -> Hit | None:
    if stmt.head in _STATEMENTS:
        fix = _ON_CONFLICT if stmt.head == "REPLACE" else None
        return stmt.hit(f"{stmt.head} is SQLite-only", fix)
    if stmt.head == "CREATE" and stmt.ddl_object == "VIRTUAL":
        fix = "use a derived table declared with `@rebuildable derived`"
        return stmt.hit("CREATE VIRTUAL TABLE is SQLite-only", fix)
    return None


@HS108.check("detail")
def _insert_or(stmt: Stmt) -> Iterator[Hit]:
    if stmt.head in ("INSERT", "UPDATE") and stmt.second == "OR":
        action = stmt.words[2] if len(stmt.words) > 2 else ""
        yield stmt.hit(f"{stmt.head} OR {action} is SQLite-only", _ON_CONFLICT)


@HS108.check("detail")
def _sqlite_tokens(stmt: Stmt) -> Iterator[Hit]:
    return stmt.token_hits(_sqlite_token)


def _sqlite_token(t: Tok) -> tuple[str, str] | None:
    """(message, fix) when this token is SQLite-only syntax."""
    if t.kind == TokenType.GLOB or t.word == "REGEXP":
        return f"{t.token.text.upper()} is SQLite-only", (
            "use LIKE, or check the value in the application"
        )
    if t.word == "INDEXED" and (
        t.previous_word == "NOT" or (t.next is not None and t.next.text.upper() == "BY")
    ):
        return "INDEXED BY / NOT INDEXED is SQLite-only", "remove the index hint"
    if t.kind == TokenType.COLLATE and t.next is not None:
        collation = t.next.text.upper()
        if collation in SQLITE_COLLATIONS:
            return f"COLLATE {collation} is SQLite-only", (
                "compare lower(x) in queries, or normalise in the application"
            )
    return None


@HS108.check("detail")
def _sqlite_table_options(stmt: Stmt) -> Iterator[Hit]:
    options = stmt.table_options
    for token, option in options.sqlite if options else ():
        fix = f"remove {option}"
        what = "STRICT tables are" if option == "STRICT" else f"{option} is"
        yield stmt.hit_at(token, f"{what} SQLite-only", fix)
