"""Rules about a file as a whole: its name (HS001) and what it mixes (HS110)."""

from __future__ import annotations

from ...declarations import DOWN_FILE, MIGRATION_FILE
from ..context import FileScope
from ..rule import Hit, Rule

HS001 = Rule(
    "HS001",
    "file name is not NNNN_description.sql / NNNN_description.down.sql (lower case)",
    "rename to NNNN_description.sql (four digits, then lower-case letters, digits, _)",
    "file name is not ``NNNN_description.sql`` / ``NNNN_description.down.sql``",
    suppressible=False,
)
HS110 = Rule(
    "HS110",
    "schema DDL and data changes (INSERT/UPDATE/DELETE) mixed in one file",
    "move the INSERT/UPDATE/DELETE statements to their own migration",
    "schema DDL (CREATE/ALTER/DROP) and data changes (INSERT/UPDATE/DELETE) in one file; "
    "a data-only migration is fine",
)

_DML = frozenset({"INSERT", "UPDATE", "DELETE", "REPLACE", "MERGE", "TRUNCATE"})
_DDL = frozenset({"CREATE", "ALTER", "DROP"})


@HS001.check("file")
def _file_name(scope: FileScope) -> list[Hit]:
    if MIGRATION_FILE.match(scope.name) or DOWN_FILE.match(scope.name):
        return []
    message = (
        f"{scope.name!r} is not named NNNN_description.sql or "
        "NNNN_description.down.sql (lower case)"
    )
    return [Hit(1, message)]


@HS110.check("file")
def _schema_and_data_mixed(scope: FileScope) -> list[Hit]:
    ddl = next((s for s in scope.checked if s.head in _DDL), None)
    dml = next((s for s in scope.checked if s.head in _DML), None)
    if ddl is None or dml is None:
        return []
    message = f"{dml.head} (data change) in a file with schema DDL ({ddl.head} at line {ddl.line})"
    return [dml.hit(message)]
