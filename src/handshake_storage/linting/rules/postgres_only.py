"""PostgreSQL-only syntax (HS109): statements, objects, operators, clauses."""

from __future__ import annotations

from collections.abc import Iterator

from sqlglot.tokens import TokenType

from ..context import Stmt, Tok
from ..rule import Hit, Rule
from .sqlite_only import SQLITE_COLLATIONS

HS109 = Rule(
    "HS109",
    "PostgreSQL-only syntax (::, ILIKE, CONCURRENTLY, USING <method>, ...)",
    "use the portable form both backends accept",
    "PostgreSQL-only syntax: ``::`` casts, ``ILIKE``, ``SIMILAR TO``, ``~`` "
    "regular-expression and ``->``/``->>``/``@>`` JSON operators (JSON is stored as "
    "TEXT), ``DISTINCT ON``, ``CONCURRENTLY``, ``CREATE INDEX ... USING <method>``, "
    "``DELETE ... USING``, identity columns, table options (``INHERITS``, "
    "``PARTITION BY``, ``WITH (...)``...), ``CREATE OR REPLACE``, ``DROP ... CASCADE``, "
    "dropping several objects at once, PostgreSQL objects (``EXTENSION``, ``TYPE``, "
    "``SEQUENCE``, ``FUNCTION``...) and statements (``COMMENT ON``, ``GRANT``, "
    "``TRUNCATE``, ``SET``...)",
)

_OBJECTS = frozenset(
    [
        "EXTENSION",
        "TYPE",
        "DOMAIN",
        "SEQUENCE",
        "FUNCTION",
        "PROCEDURE",
        "SCHEMA",
        "MATERIALIZED",
        "RULE",
        "POLICY",
        "ROLE",
        "USER",
        "AGGREGATE",
        "OPERATOR",
        "CAST",
        "COLLATION",
        "PUBLICATION",
        "SUBSCRIPTION",
        "SERVER",
        "FOREIGN",
        "EVENT",
        "TABLESPACE",
        "DATABASE",
        "LANGUAGE",
        "STATISTICS",
        "CONVERSION",
        "TRANSFORM",
        "ACCESS",
        "GROUP",
        "UNLOGGED",
    ]
)
_STATEMENTS = frozenset(
    [
        "COMMENT",
        "GRANT",
        "REVOKE",
        "DO",
        "SET",
        "RESET",
        "LOCK",
        "TRUNCATE",
        "LISTEN",
        "NOTIFY",
        "UNLISTEN",
        "COPY",
        "CLUSTER",
        "REFRESH",
        "SECURITY",
        "DISCARD",
        "CALL",
        "PREPARE",
        "EXECUTE",
        "DEALLOCATE",
    ]
)
# Regular-expression, JSON and geometric operators (JSON is stored as TEXT here).
_OPERATORS = frozenset(
    getattr(TokenType, name)
    for name in [
        "IRLIKE",
        "ARROW",
        "DARROW",
        "HASH_ARROW",
        "DHASH_ARROW",
        "AT_GT",
        "LT_AT",
        "LR_ARROW",
    ]
    if hasattr(TokenType, name)
)


@HS109.check("forbids")
def _postgres_statement(stmt: Stmt) -> Hit | None:
    if stmt.head in _STATEMENTS:
        return stmt.hit(f"{stmt.head} is PostgreSQL-only")
    if stmt.head in ("CREATE", "DROP", "ALTER") and stmt.ddl_object in _OBJECTS:
        return stmt.hit(f"{stmt.head} {stmt.ddl_object} is PostgreSQL-only")
    return None


@HS109.check("always")
def _create_or_replace(stmt: Stmt) -> Iterator[Hit]:
    if stmt.or_replace and not stmt.is_trigger:
        yield stmt.hit(
            "CREATE OR REPLACE is not supported by SQLite", "DROP ... IF EXISTS, then CREATE"
        )


@HS109.check("detail")
def _drop_cascade_or_several(stmt: Stmt) -> Iterator[Hit]:
    if stmt.head != "DROP":
        return
    for token, word in stmt.top_level():
        if word in ("CASCADE", "RESTRICT"):
            yield stmt.hit_at(
                token,
                f"DROP ... {word} is PostgreSQL-only",
                "drop dependent objects explicitly, in order",
            )
        elif token.token_type == TokenType.COMMA:
            yield stmt.hit_at(
                token,
                "dropping several objects in one statement is PostgreSQL-only",
                "one DROP statement per object",
            )
            return


@HS109.check("detail")
def _postgres_tokens(stmt: Stmt) -> Iterator[Hit]:
    return stmt.token_hits(_postgres_token)


def _postgres_token(t: Tok) -> tuple[str, str] | None:
    """(message, fix) when this token is PostgreSQL-only syntax."""
    kind, word, text = t.kind, t.word, t.token.text
    after = t.next.text.upper() if t.next is not None else None
    if kind == TokenType.DCOLON:
        return "`::` cast is PostgreSQL-only", "use CAST(value AS type)"
    if kind == TokenType.ILIKE:
        return "ILIKE is PostgreSQL-only", "compare lower(x) LIKE lower(pattern)"
    if word == "SIMILAR" and after == "TO":
        return "SIMILAR TO is PostgreSQL-only", "use LIKE, or check the value in the application"
    if word == "CONCURRENTLY":
        return (
            "CONCURRENTLY is PostgreSQL-only (and cannot run inside the migration's transaction)",
            "drop CONCURRENTLY",
        )
    if word == "IDENTITY" and t.previous_word == "AS":
        return "identity columns are PostgreSQL-only", "assign ids in the application (text UUIDs)"
    if word == "DISTINCT" and after == "ON":
        return "DISTINCT ON is PostgreSQL-only", "use GROUP BY or a subquery"
    if (
        kind in _OPERATORS
        or (kind == TokenType.RLIKE and text.upper() != "REGEXP")
        or (kind == TokenType.LIKE and text == "~~")
    ):
        if text.startswith("~"):
            return (
                f"operator {text} is PostgreSQL-only",
                "use LIKE, or compute it in the application",
            )
        return f"operator {text} is PostgreSQL-only", (
            "compute it in the application (JSON is stored as TEXT)"
        )
    if kind == TokenType.COLLATE and after is not None and after not in SQLITE_COLLATIONS:
        return f"COLLATE {t.next.text} is not portable", (  # type: ignore[union-attr]
            "remove the collation; order in the application if needed"
        )
    return None


@HS109.check("detail")
def _using(stmt: Stmt) -> Iterator[Hit]:
    is_index = stmt.is_create("INDEX")
    if not is_index and stmt.head != "DELETE":
        return
    for token, word in stmt.top_level():
        if word != "USING":
            continue
        if is_index:
            yield stmt.hit_at(
                token,
                "CREATE INDEX ... USING <method> is PostgreSQL-only",
                "drop USING; both backends build their default b-tree",
            )
        else:
            yield stmt.hit_at(
                token, "DELETE ... USING is PostgreSQL-only", "use WHERE ... IN (SELECT ...)"
            )


@HS109.check("detail")
def _postgres_table_options(stmt: Stmt) -> Iterator[Hit]:
    options = stmt.table_options
    if options and options.other:
        first, last = options.other[0], options.other[-1]
        text = stmt.text[first.start : last.end + 1]
        yield stmt.hit_at(
            first, f"table option {text!r} is not portable", "remove the table option"
        )
