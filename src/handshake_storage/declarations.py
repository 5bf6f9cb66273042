"""What the migration files declare, parsed in one place.

A low module beside ``sqlscript.py``: the file naming rule, the portable
column types, the migrations themselves (:func:`load_migrations`) and the
``-- @rebuildable`` declarations (:func:`registry`). The migrator, the
rebuildable-object tools, the copy and the linter all read these facts from
here, so none of them imports another to learn them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from . import schema, sqlscript
from .errors import MigrationError

#: ``NNNN_description.sql`` and its ``NNNN_description.down.sql``.
MIGRATION_FILE = re.compile(r"^(\d{4})_([a-z0-9][a-z0-9_]*)\.sql$")
DOWN_FILE = re.compile(r"^(\d{4})_([a-z0-9][a-z0-9_]*)\.down\.sql$")

#: The column types a portable migration may declare, and their type family.
PORTABLE_TYPES: dict[str, str] = {
    "TEXT": schema.TEXT,
    "BIGINT": schema.INTEGER,
    "INTEGER": schema.INTEGER,
    "SMALLINT": schema.INTEGER,
    "DOUBLE PRECISION": schema.FLOAT,
    "BOOLEAN": schema.BOOLEAN,
    "TIMESTAMP WITH TIME ZONE": schema.TIMESTAMP,
}


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    up_sql: str = field(repr=False)
    down_sql: str = field(repr=False)
    checksum: str

    @property
    def name(self) -> str:
        return f"{self.version:04d}_{self.description}"

    @property
    def down_checksum(self) -> str:
        """SHA-256 of the normalized ``.down.sql`` (shown by a rollback plan)."""
        return sqlscript.checksum(self.down_sql)


def load_migrations(directory: Path | None = None) -> list[Migration]:
    """The migrations shipped with the package (or those in ``directory``)."""
    root: Any = (
        directory if directory is not None else resources.files(__package__).joinpath("migrations")
    )
    ups: dict[int, tuple[str, Any]] = {}
    downs: dict[int, tuple[str, Any]] = {}
    for entry in root.iterdir():
        name = entry.name
        if name.endswith(".down.sql"):
            match = DOWN_FILE.match(name)
            table = downs
        elif name.endswith(".sql"):
            match = MIGRATION_FILE.match(name)
            table = ups
        else:
            continue
        if not match:
            raise MigrationError(
                f"migration file {name!r} is not named NNNN_description.sql "
                "(lower case letters, digits and underscores)"
            )
        version = int(match.group(1))
        if version in table:
            raise MigrationError(f"two migration files share version {version:04d}")
        table[version] = (match.group(2), entry)
    migrations = []
    for version in sorted(ups):
        description, up = ups[version]
        if version not in downs or downs[version][0] != description:
            raise MigrationError(
                f"migration {version:04d}_{description}.sql has no matching "
                f"{version:04d}_{description}.down.sql"
            )
        up_text = sqlscript.normalize(up.read_text(encoding="utf-8"))
        down_text = sqlscript.normalize(downs[version][1].read_text(encoding="utf-8"))
        migrations.append(
            Migration(version, description, up_text, down_text, sqlscript.checksum(up_text))
        )
    orphans = set(downs) - set(ups)
    if orphans:
        raise MigrationError(f"down migration without an up file: version {min(orphans):04d}")
    for expected, migration in enumerate(migrations, start=1):
        if migration.version != expected:
            raise MigrationError(
                f"migration versions must run 0001, 0002, ... without gaps; "
                f"found {migration.name} where {expected:04d} was expected"
            )
    return migrations


_NAME = r'"?([A-Za-z_][A-Za-z0-9_]*)"?'
_CREATE_INDEX = re.compile(
    rf"^CREATE\s+(UNIQUE\s+)?INDEX\s+(?:IF\s+NOT\s+EXISTS\s+)?{_NAME}\s+ON\s+{_NAME}\s*\((.*)\)\s*$",
    re.IGNORECASE | re.DOTALL,
)
_CREATE_TABLE = re.compile(rf"^CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?{_NAME}", re.IGNORECASE)
_DROP = re.compile(rf"^DROP\s+(INDEX|TABLE)\s+(?:IF\s+EXISTS\s+)?{_NAME}", re.IGNORECASE)


def fulltext_name(table: str) -> str:
    """The name of the engine full-text object an adapter materializes for a
    derived table declared ``fulltext=<column>``."""
    return f"{table}_fulltext"


@dataclass(frozen=True)
class RebuildableObject:
    name: str
    kind: str  # "index" | "derived" | "fulltext"
    table: str  # the indexed table, or the derived table itself
    source: str  # what it is computed from, for people
    create_sql: str
    version: int  # the migration that created it
    builder: str | None = None
    derived_from: tuple[str, ...] = ()
    columns: tuple[str, ...] = ()
    unique: bool = False


def registry(
    up_to: int | None = None, migrations: list[Migration] | None = None
) -> list[RebuildableObject]:
    """The rebuildable objects a database at version ``up_to`` (default:
    latest) contains, in creation order."""
    found: dict[str, RebuildableObject] = {}
    for migration in migrations if migrations is not None else load_migrations():
        if up_to is not None and migration.version > up_to:
            break
        for statement in sqlscript.split(migration.up_sql):
            declare(found, statement, migration)
    return list(found.values())


def declare(
    found: dict[str, RebuildableObject], statement: sqlscript.Statement, m: Migration
) -> None:
    text = " ".join(statement.text.split())
    markers = {name: args for name, args, _ in statement.markers() if name == "rebuildable"}
    drop = _DROP.match(text)
    if drop:
        name = drop.group(2)
        found.pop(name, None)
        if drop.group(1).upper() == "TABLE":
            for key in [k for k, o in found.items() if o.table == name]:
                del found[key]
        return
    index = _CREATE_INDEX.match(text)
    if index:
        if "rebuildable" not in markers:
            return  # the linter reports unclassified indexes
        unique, name, table, cols = index.groups()
        columns = tuple(c.strip().strip('"') for c in cols.split(","))
        found[name] = RebuildableObject(
            name=name,
            kind="index",
            table=table,
            source=f"{table}({', '.join(columns)})",
            create_sql=statement.text,
            version=m.version,
            columns=columns,
            unique=bool(unique),
        )
        return
    table_match = _CREATE_TABLE.match(text)
    if table_match and "rebuildable" in markers:
        args = dict(
            part.split("=", 1) for part in markers["rebuildable"].split()[1:] if "=" in part
        )
        kind = markers["rebuildable"].split()[0] if markers["rebuildable"] else ""
        if kind != "derived" or "builder" not in args or "from" not in args:
            raise MigrationError(
                f"{m.name} line {statement.line}: a rebuildable table needs "
                "`-- @rebuildable derived from=<tables> builder=<name>`"
            )
        name = table_match.group(1)
        sources = tuple(args["from"].split(","))
        fulltext = args.get("fulltext")
        found[name] = RebuildableObject(
            name=name,
            kind="derived",
            table=name,
            source=f"{', '.join(sources)} via builder {args['builder']}",
            create_sql=statement.text,
            version=m.version,
            builder=args["builder"],
            derived_from=sources,
        )
        if fulltext:
            found[fulltext_name(name)] = RebuildableObject(
                name=fulltext_name(name),
                kind="fulltext",
                table=name,
                source=f"{name}({fulltext}) in the engine's full-text index",
                create_sql="",
                version=m.version,
                columns=(fulltext,),
            )


def dropped_tables(sql: str) -> list[str]:
    """The tables a script drops, in order (a rollback's ``.down.sql``)."""
    found = []
    for statement in sqlscript.split(sql):
        match = _DROP.match(statement.text)
        if match and match.group(1).upper() == "TABLE":
            found.append(match.group(2))
    return found
