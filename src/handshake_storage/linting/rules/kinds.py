"""Statements forbidden as a whole for what they are: triggers (HS103), PRAGMA
(HS105), transaction control (HS111), and every kind outside the portable set
(HS113, the catch-all: it comes last in code order, so a more specific rule that
forbids the statement speaks first)."""

from __future__ import annotations

from collections.abc import Iterator

from ... import sqlscript
from ..context import Stmt
from ..rule import Hit, Rule

HS103 = Rule(
    "HS103",
    "trigger: mutation tracking is done by the application",
    "track mutations in the application (the storage guard), not in triggers",
    "trigger (``CREATE``/``DROP TRIGGER``, ``ENABLE``/``DISABLE TRIGGER``): mutation "
    "tracking is done by the application",
)
HS105 = Rule(
    "HS105",
    "PRAGMA",
    "remove the PRAGMA; connection settings belong to the backend adapter",
    "``PRAGMA``",
)
HS111 = Rule(
    "HS111",
    "transaction control inside a migration (each runs in one transaction)",
    "remove it; the runner already wraps each migration in one transaction",
    "transaction control (``BEGIN``, ``COMMIT``, ``ROLLBACK``, ``SAVEPOINT``, ``VACUUM``): "
    "the runner wraps each migration in one transaction, and a ``COMMIT`` inside it "
    "would break atomicity",
)
HS113 = Rule(
    "HS113",
    "statement kind outside the portable set",
    "use CREATE/DROP TABLE, INDEX or VIEW, ALTER TABLE, INSERT, UPDATE, DELETE",
    "other statement kinds outside the portable set (CREATE/DROP TABLE, INDEX, VIEW; "
    "ALTER TABLE; INSERT, UPDATE, DELETE, SELECT)",
)

_PORTABLE_OBJECTS = frozenset({"TABLE", "INDEX", "VIEW"})
_PORTABLE_STATEMENTS = frozenset({"INSERT", "UPDATE", "DELETE", "SELECT", "WITH", "VALUES"})


@HS103.check("forbids")
def _trigger(stmt: Stmt) -> Hit | None:
    return stmt.hit(f"{stmt.head} TRIGGER in a migration") if stmt.is_trigger else None


@HS103.check("detail")
def _trigger_switch(stmt: Stmt) -> Iterator[Hit]:
    if stmt.head != "ALTER":
        return iter(())
    message = "enabling/disabling triggers in a migration"
    return stmt.token_hits(lambda t: (message, None) if t.word == "TRIGGER" else None)


@HS105.check("forbids")
def _pragma(stmt: Stmt) -> Hit | None:
    return stmt.hit("PRAGMA statement in a migration") if stmt.head == "PRAGMA" else None


@HS111.check("forbids")
def _transaction_control(stmt: Stmt) -> Hit | None:
    if stmt.head in sqlscript.TRANSACTION_WORDS:
        return stmt.hit(f"{stmt.head} inside a migration")
    return None


@HS113.check("forbids")
def _outside_the_portable_set(stmt: Stmt) -> Hit | None:
    head, obj = stmt.head, stmt.ddl_object
    if head == "CREATE" and obj in ("TEMP", "TEMPORARY"):
        return stmt.hit("temporary objects do not outlive the migration")
    if head in ("CREATE", "DROP") and obj not in _PORTABLE_OBJECTS:
        return stmt.hit(f"{head} {obj or '?'} is outside the portable set")
    if head == "ALTER" and obj != "TABLE":
        return stmt.hit(f"ALTER {obj or '?'} is outside the portable set")
    if head not in ("CREATE", "DROP", "ALTER") and head not in _PORTABLE_STATEMENTS:
        return stmt.hit(f"{head or 'this'} statement is outside the portable set")
    return None
