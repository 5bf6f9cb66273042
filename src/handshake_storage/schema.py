"""A backend-neutral picture of a live schema, as introspection reports it.

Both adapters describe their catalog in these terms, so "the schema on
SQLite equals the schema on PostgreSQL" is a plain equality of snapshots.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Type families: the portable meaning of a declared column type.
TEXT = "text"
INTEGER = "integer"
FLOAT = "float"
BOOLEAN = "boolean"
TIMESTAMP = "timestamp"


@dataclass(frozen=True, order=True)
class Column:
    name: str
    family: str
    nullable: bool


@dataclass(frozen=True, order=True)
class ForeignKey:
    columns: tuple[str, ...]
    ref_table: str
    ref_columns: tuple[str, ...]
    on_delete: str  # "CASCADE", "NO ACTION", ...


@dataclass(frozen=True, order=True)
class Index:
    name: str
    table: str
    columns: tuple[str, ...]
    unique: bool


@dataclass(frozen=True, order=True)
class SchemaObject:
    """An object beyond tables and plain indexes (a view, a trigger, a
    sequence, a function, an index kind the snapshot leaves out): none is
    part of the portable schema, so any found is not a migration's."""

    kind: str
    name: str
    table: str | None = None  # what a trigger or an index is on

    def __str__(self) -> str:
        return f"{self.kind} {self.name}" + (f" on {self.table}" if self.table else "")


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]
    foreign_keys: tuple[ForeignKey, ...] = ()


@dataclass(frozen=True)
class SchemaSnapshot:
    tables: dict[str, Table] = field(default_factory=dict)
    indexes: dict[str, Index] = field(default_factory=dict)

    def without(self, *tables: str) -> SchemaSnapshot:
        """The snapshot minus some tables (e.g. the migration bookkeeping)."""
        drop = set(tables)
        return SchemaSnapshot(
            {n: t for n, t in self.tables.items() if n not in drop},
            {n: i for n, i in self.indexes.items() if i.table not in drop},
        )

    def differences(self, expected: SchemaSnapshot) -> list[str]:
        """How this snapshot differs from ``expected``, for people."""
        found: list[str] = []
        for kind, mine, theirs in (
            ("table", self.tables, expected.tables),
            ("index", self.indexes, expected.indexes),
        ):
            for name in sorted(set(mine) | set(theirs)):
                if name not in theirs:
                    found.append(f"{kind} {name} that no migration creates")
                elif name not in mine:
                    found.append(f"no {kind} {name}")
                elif mine[name] != theirs[name]:
                    found.append(f"{kind} {name} differs from its migration")
        return found
