"""What a migration may compute: no database clock (HS101), no parameters
(HS102), only the functions both backends define alike (HS107)."""

from __future__ import annotations

from collections.abc import Iterator

from sqlglot import exp
from sqlglot.tokens import TokenType

from ..context import Stmt, Tok
from ..rule import Hit, Rule

HS101 = Rule(
    "HS101",
    "database-side date/time function (strftime, datetime(), now(), ...)",
    "write timestamps from the application as parameters "
    "(DEFAULT CURRENT_TIMESTAMP is the only allowed fallback)",
    "database-side date/time function: SQLite ``strftime``, ``datetime()``, ``date()``, "
    "``time()``, ``julianday``, ``unixepoch``; PostgreSQL ``now()``, "
    "``clock_timestamp()``, ``extract``, ``date_trunc`` ...; "
    "``CURRENT_DATE``/``CURRENT_TIME``/``LOCALTIMESTAMP``. Bare ``CURRENT_TIMESTAMP`` "
    "is allowed only as a column ``DEFAULT`` (the fallback; the application writes "
    "timestamps as parameters).",
)
HS102 = Rule(
    "HS102",
    "parameter placeholder (?, ?1, $1, :name, @name): migrations take no parameters",
    "write literal values; migrations run without parameters",
    "parameter placeholder (``?``, ``?1``, ``$1``, ``:name``, ``@name``, ``%s``): a "
    "migration has no parameters",
)
HS107 = Rule(
    "HS107",
    "function outside the portable function list",
    "compute it in the application, or use a portable function "
    "(lower, upper, length, coalesce, nullif, abs, count, sum, avg, min, max, ...)",
    "function outside the portable list: ``lower``, ``upper``, ``length``, ``coalesce``, "
    "``nullif``, ``abs``, ``count``, ``sum``, ``avg``, ``min``/``max`` (one argument), "
    "``replace``, ``substr``, ``substring``, ``trim``/``ltrim``/``rtrim`` (one argument), "
    "``CAST``, ``CASE``",
)

_TIME_FUNCTIONS = frozenset(
    [
        "strftime",
        "datetime",
        "date",
        "time",
        "julianday",
        "unixepoch",
        "timediff",
        "now",
        "current_timestamp",
        "current_date",
        "current_time",
        "localtime",
        "localtimestamp",
        "clock_timestamp",
        "statement_timestamp",
        "transaction_timestamp",
        "timeofday",
        "date_trunc",
        "date_part",
        "date_bin",
        "extract",
        "age",
        "to_timestamp",
        "to_date",
        "to_char",
        "make_date",
        "make_time",
        "make_timestamp",
        "make_timestamptz",
        "make_interval",
        "justify_days",
        "justify_hours",
        "justify_interval",
        "isfinite",
    ]
)
_PORTABLE_FUNCTIONS = frozenset(
    [
        "lower",
        "upper",
        "length",
        "coalesce",
        "nullif",
        "abs",
        "count",
        "sum",
        "avg",
        "min",
        "max",
        "replace",
        "substr",
        "substring",
        "trim",
        "ltrim",
        "rtrim",
        "cast",
        "case",
    ]
)
_SINGLE_ARGUMENT = frozenset({"min", "max", "trim", "ltrim", "rtrim"})

# -- HS102


@HS102.check("detail")
def _placeholders(stmt: Stmt) -> Iterator[Hit]:
    return stmt.token_hits(_placeholder)


def _placeholder(t: Tok) -> tuple[str, None] | None:
    """The message for the placeholder starting at this token, if it starts one."""
    nxt = t.next if t.adjacent else None
    if t.kind == TokenType.PLACEHOLDER:
        spelled = "?" + (nxt.text if nxt and nxt.token_type == TokenType.NUMBER else "")
    elif t.kind == TokenType.PARAMETER or (t.kind == TokenType.COLON and t.adjacent):
        spelled = t.token.text + (nxt.text if nxt else "")
    elif (
        t.kind == TokenType.MOD and nxt and (nxt.text == "s" or nxt.token_type == TokenType.L_PAREN)
    ):
        spelled = f"%{nxt.text}"
    else:
        return None
    return f"parameter placeholder {spelled}", None


@HS101.check("detail")
def _time_functions(stmt: Stmt) -> Iterator[Hit]:
    for call in stmt.calls:
        if call.name == "current_timestamp" and call.keyword:
            if not _is_default(call.node):
                yield stmt.hit(
                    "CURRENT_TIMESTAMP outside a column DEFAULT (the database's clock and "
                    "format differ per backend)",
                    line=call.line,
                )
        elif call.name in _TIME_FUNCTIONS:
            keyword = call.keyword and call.name.startswith(("current", "local"))
            label = call.name.upper() if keyword else f"{call.name}()"
            yield stmt.hit(f"database-side date/time function {label}", line=call.line)


def _is_default(node: exp.Expr) -> bool:
    parent = node.parent
    while isinstance(parent, exp.Paren):
        parent = parent.parent
    return isinstance(parent, exp.DefaultColumnConstraint)


@HS107.check("detail")
def _non_portable_functions(stmt: Stmt) -> Iterator[Hit]:
    for call in stmt.calls:
        if call.name in _TIME_FUNCTIONS:
            continue  # HS101's
        if call.name not in _PORTABLE_FUNCTIONS:
            yield stmt.hit(f"function {call.name}() is not in the portable set", line=call.line)
        elif call.name in _SINGLE_ARGUMENT and len(list(call.node.iter_expressions())) > 1:
            fix = (
                "use least()/greatest() ... or better, compute it in the application"
                if call.name in ("min", "max")
                else "compute it in the application"
            )
            message = f"{call.name}() with several arguments behaves differently per backend"
            yield stmt.hit(message, fix, line=call.line)
