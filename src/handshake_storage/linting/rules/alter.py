"""HS112: only the ALTER TABLE forms both backends run."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from sqlglot import exp

from ..context import Stmt
from ..rule import Hit, Rule

HS112 = Rule(
    "HS112",
    "ALTER TABLE form that SQLite or PostgreSQL rejects",
    "use one ADD COLUMN / RENAME / DROP COLUMN per statement, or rebuild the table",
    "``ALTER TABLE`` form that one backend rejects: anything but a single ADD COLUMN / "
    "RENAME TO / RENAME COLUMN / DROP COLUMN, ``IF EXISTS``, ``ONLY``; and columns SQLite "
    "cannot add (PRIMARY KEY, UNIQUE, NOT NULL without a default, non-constant default, "
    "REFERENCES with a non-NULL default)",
)

_ACTIONS = {"altercolumn": "ALTER COLUMN", "addconstraint": "ADD CONSTRAINT"}


@HS112.check("detail")
def _alter_table(stmt: Stmt) -> Iterator[Hit]:
    tree = stmt.tree()
    if not isinstance(tree, exp.Alter) or stmt.words[1:2] != ["TABLE"]:
        return
    if tree.args.get("exists"):
        yield stmt.hit("ALTER TABLE IF EXISTS is PostgreSQL-only")
    if tree.args.get("only"):
        yield stmt.hit("ALTER TABLE ONLY is PostgreSQL-only")
    actions = tree.args.get("actions") or []
    if len(actions) != 1:
        yield stmt.hit(f"ALTER TABLE with {len(actions)} actions; SQLite runs one per statement")
    for action in actions:
        line = stmt.line_of_node(action)
        for message, fix in _action_problems(action):
            yield stmt.hit(message, fix, line)


def _action_problems(action: exp.Expr) -> Iterator[tuple[str, str | None]]:
    if isinstance(action, exp.ColumnDef):
        yield from _added_column_problems(action)
    elif isinstance(action, exp.Drop) and str(action.args.get("kind")).upper() == "COLUMN":
        if action.args.get("exists"):
            yield "DROP COLUMN IF EXISTS is PostgreSQL-only", None
    elif not isinstance(action, exp.AlterRename | exp.RenameColumn):
        label = _ACTIONS.get(action.key, action.key.upper())
        if isinstance(action, exp.Drop):
            label = f"DROP {action.args.get('kind') or ''}".strip()
        yield f"ALTER TABLE ... {label} is not supported by SQLite", None


@dataclass
class _Added:
    """What an ADD COLUMN's constraints say, as far as SQLite cares."""

    keys: list[str]  # PRIMARY KEY, UNIQUE
    not_null: bool = False
    default: bool = False  # a non-NULL default
    constant_default: bool = True
    reference: bool = False


def _added_column_problems(column: exp.ColumnDef) -> Iterator[tuple[str, str | None]]:
    name = column.name
    if column.args.get("exists"):
        yield "ADD COLUMN IF NOT EXISTS is PostgreSQL-only", None
    added = _added(column)
    for what in added.keys:
        yield (
            f"SQLite cannot add column {name} with {what}",
            "create a new table and copy, or add a separate unique index",
        )
    if added.not_null and not added.default:
        yield (
            f"SQLite cannot add NOT NULL column {name} without a non-NULL default",
            "give it a constant DEFAULT, or add it nullable and backfill",
        )
    if not added.constant_default:
        yield (
            f"SQLite cannot add column {name} with a non-constant default",
            "use a constant DEFAULT; the application writes timestamps",
        )
    if added.reference and added.default:
        yield (
            f"SQLite cannot add column {name} with REFERENCES and a non-NULL default",
            "add it nullable, without a default",
        )


def _added(column: exp.ColumnDef) -> _Added:
    added = _Added(keys=[])
    for constraint in column.args.get("constraints") or []:
        kind = constraint.args.get("kind")
        if isinstance(kind, exp.PrimaryKeyColumnConstraint):
            added.keys.append("PRIMARY KEY")
        elif isinstance(kind, exp.UniqueColumnConstraint):
            added.keys.append("UNIQUE")
        elif isinstance(kind, exp.NotNullColumnConstraint) and not kind.args.get("allow_null"):
            added.not_null = True
        elif isinstance(kind, exp.DefaultColumnConstraint):
            value = kind.this
            while isinstance(value, exp.Paren):
                value = value.this
            if isinstance(value, exp.Neg):
                value = value.this
            added.default = not isinstance(value, exp.Null)
            added.constant_default = isinstance(value, exp.Literal | exp.Boolean | exp.Null)
        elif isinstance(kind, exp.Reference):
            added.reference = True
    return added
