"""Rebuildable indexes and derived tables (pillar 3): every index is classified,
markers are well-formed and where they belong, derived tables are never altered
or written (HS201-HS205)."""

from __future__ import annotations

import re
from collections.abc import Iterator

from sqlglot import exp

from ... import sqlscript
from ..context import FileScope, Stmt
from ..rule import Hit, Rule

HS201 = Rule(
    "HS201",
    "CREATE INDEX without a `-- @rebuildable index` marker (unclassified index)",
    "add `-- @rebuildable index` on the comment line directly before it",
    "``CREATE INDEX`` without a ``@rebuildable`` marker (unclassified)",
)
HS202 = Rule(
    "HS202",
    "rebuildable marker on the wrong kind of statement, or on no statement",
    "use `@rebuildable index` before CREATE INDEX and `@rebuildable derived` "
    "before CREATE TABLE, directly before the statement",
    "marker on the wrong kind of statement (``index`` on a table, ``derived`` on an "
    "index...), or in a comment no statement owns",
)
HS203 = Rule(
    "HS203",
    "malformed rebuildable marker (derived needs from= and builder=)",
    "write `-- @rebuildable derived from=<table>[,<table>...] builder=<name>` "
    "(optionally `fulltext=<text column>`)",
    "malformed marker: ``derived`` without ``from=`` or ``builder=``, unknown or repeated "
    "keys, arguments after ``index``, two markers, ``fulltext=`` naming anything but one "
    "TEXT column of the table",
)
HS204 = Rule(
    "HS204",
    "unknown marker or unknown @rebuildable kind",
    "use `-- @rebuildable index` or `-- @rebuildable derived from=... builder=...`",
    "unknown marker (``@something``) or unknown ``@rebuildable`` kind",
)
HS205 = Rule(
    "HS205",
    "ALTER TABLE or data change on a derived table (they are dropped and recreated)",
    "drop the derived table and recreate it (with its marker); "
    "the rebuild command recomputes its rows",
    "``ALTER TABLE`` (or INSERT/UPDATE/DELETE) on a table declared derived earlier in the "
    "linted files: derived tables are dropped and recreated, never altered",
    context_dependent=True,
)

_KINDS = ("index", "derived")


def _target(stmt: Stmt) -> str:
    if stmt.is_create("INDEX"):
        return "CREATE INDEX"
    if stmt.is_create("TABLE"):
        return "CREATE TABLE"
    return " ".join(stmt.words[:2]) or "this statement"


@HS201.check("always")
def _unclassified_index(stmt: Stmt) -> Iterator[Hit]:
    if stmt.is_create("INDEX") and not any(m.name == "rebuildable" for m in stmt.markers):
        index = stmt.object_name()
        yield stmt.hit(f"index {index + ' ' if index else ''}is not classified rebuildable")


@HS202.check("comments")
def _marker_nothing_reads(scope: FileScope) -> Iterator[Hit]:
    for comment in scope.comments:
        if comment.statement is not None:
            continue
        for k, text in enumerate(comment.lines):
            if sqlscript.MARKER.match(text):
                yield Hit(
                    comment.line + k,
                    f"marker {text.strip()!r} is not on a comment line directly "
                    "before a statement; nothing reads it",
                )


@HS202.check("always")
def _marker_on_the_wrong_statement(stmt: Stmt) -> Iterator[Hit]:
    for marker in stmt.markers:
        if marker.name != "rebuildable":
            continue
        if marker.kind == "index" and not stmt.is_create("INDEX"):
            yield stmt.hit(f"@rebuildable index on {_target(stmt)}", line=marker.line)
        elif marker.kind == "derived" and not stmt.is_create("TABLE"):
            yield stmt.hit(f"@rebuildable derived on {_target(stmt)}", line=marker.line)


@HS203.check("always")
def _malformed_marker(stmt: Stmt) -> Iterator[Hit]:
    for marker in stmt.markers:
        if marker.name != "rebuildable":
            continue
        if marker.count == 2:
            yield stmt.hit("more than one @rebuildable marker on a statement", line=marker.line)
        if marker.kind == "index" and marker.args:
            yield stmt.hit(
                f"@rebuildable index takes no arguments (got {' '.join(marker.args)!r})",
                "write exactly `-- @rebuildable index`",
                marker.line,
            )
        elif marker.kind == "derived":
            for message, fix in _derived_problems(stmt, marker.args):
                yield stmt.hit(message, fix, marker.line)
        elif not marker.kind:
            yield stmt.hit("@rebuildable names no kind (index or derived)", HS204.fix, marker.line)


def _derived_problems(stmt: Stmt, args: list[str]) -> Iterator[tuple[str, str | None]]:
    values: dict[str, str] = {}
    for arg in args:
        key, sep, value = arg.partition("=")
        if not sep or key not in ("from", "builder", "fulltext"):
            yield f"unexpected {arg!r} in @rebuildable derived", None
        elif key in values:
            yield f"{key}= given twice in @rebuildable derived", None
        else:
            values[key] = value
    tables = values.get("from")
    if tables is None:
        yield "@rebuildable derived has no from=<table>[,<table>]", None
    elif not all(re.fullmatch(r"[A-Za-z_]\w*", t) for t in tables.split(",")):
        yield f"from={tables!r} is not a comma-separated table list", None
    builder = values.get("builder")
    if builder is None:
        yield "@rebuildable derived has no builder=<name>", None
    elif not re.fullmatch(r"[A-Za-z_][\w.]*", builder):
        yield f"builder={builder!r} is not a name", None
    column = values.get("fulltext")
    if column is not None and _column_types(stmt).get(column.lower()) != "TEXT":
        yield (
            f"fulltext={column!r} is not a TEXT column of this table",
            "name one TEXT column declared in the CREATE TABLE",
        )


def _column_types(stmt: Stmt) -> dict[str, str]:
    """Column name (lower case) -> declared type (upper case) of a CREATE TABLE."""
    tree = stmt.tree()
    schema = tree.this if isinstance(tree, exp.Create) else None
    if not isinstance(schema, exp.Schema):
        return {}
    return {
        c.name.lower(): (c.args["kind"].sql().upper() if c.args.get("kind") else "")
        for c in schema.expressions
        if isinstance(c, exp.ColumnDef)
    }


@HS204.check("always")
def _unknown_marker(stmt: Stmt) -> Iterator[Hit]:
    for marker in stmt.markers:
        if marker.name != "rebuildable":
            yield stmt.hit(f"unknown marker @{marker.name}", line=marker.line)
        elif marker.kind and marker.kind not in _KINDS:
            yield stmt.hit(f"unknown @rebuildable kind {marker.kind!r}", line=marker.line)


@HS205.check("always")
def _derived_table_changed(stmt: Stmt) -> Iterator[Hit]:
    """Also keeps the run's record of derived tables: a CREATE TABLE declares
    (or, without the marker, undeclares) one for the statements after it."""
    name = stmt.object_name()
    derived = stmt.scope.derived
    if name is None:
        return
    if stmt.is_create("TABLE"):
        if any(m.name == "rebuildable" and m.kind == "derived" for m in stmt.markers):
            derived[name] = f"{stmt.scope.name}:{stmt.line}"
        else:
            derived.pop(name, None)
    elif stmt.head in ("ALTER", "INSERT", "UPDATE", "DELETE") and name in derived:
        verb = "altered" if stmt.head == "ALTER" else "written row by row"
        yield stmt.hit(
            f"{name} is a derived table (declared at {derived[name]}); it must "
            f"not be {verb} by a migration"
        )
