"""The runner refuses a migration that opens, ends or splits a transaction,
before running anything, with the same MigrationError on both backends.

Before, ``COMMIT;`` inside a migration committed half of it (the table and
one row existed, the version stayed behind, a re-run failed with "already
exists"), and SQLite's own error ("cannot rollback - no transaction is
active") hid the real one.
"""

from __future__ import annotations

import pytest

from handshake_storage import MigrationError, open_database
from handshake_storage.backends.base import AUTOCOMMIT
from handshake_storage.migrator import Migrator, load_migrations

FIRST = {
    "0001_fine.sql": "CREATE TABLE fine (id TEXT NOT NULL PRIMARY KEY);\n",
    "0001_fine.down.sql": "DROP TABLE fine;\n",
}

CONTROL = [
    "COMMIT",
    "BEGIN",
    "ROLLBACK",
    "SAVEPOINT before_insert",
    "RELEASE SAVEPOINT before_insert",
    "END",
    "start transaction",
]


def write(directory, files: dict[str, str]):
    for name, text in files.items():
        (directory / name).write_text(text, encoding="utf-8")
    return directory


def has_table(db, name: str) -> bool:
    with db._adapter.transaction(AUTOCOMMIT) as session:
        return db._adapter.has_table(session, name)


@pytest.mark.parametrize("statement", CONTROL)
def test_a_migration_with_transaction_control_is_refused_before_anything_runs(
    databases, tmp_path, statement
):
    second = (
        "CREATE TABLE half (id TEXT NOT NULL PRIMARY KEY);\n"
        "INSERT INTO half (id) VALUES ('one');\n"
        f"{statement};\n"
        "INSERT INTO half (id) VALUES ('two');\n"
    )
    directory = write(
        tmp_path,
        {**FIRST, "0002_split.sql": second, "0002_split.down.sql": "DROP TABLE half;\n"},
    )
    url = databases.url()
    with open_database(url) as db:
        migrator = Migrator(db._adapter, load_migrations(directory))
        with pytest.raises(MigrationError) as raised:
            migrator.migrate()
        word = statement.split()[0].upper()
        assert str(raised.value) == (
            f"0002_split.sql line 3: {word} inside a migration; the runner runs each "
            "migration in one transaction of its own, remove it (nothing was applied)"
        )
        # Nothing of the run happened, not even the first, harmless migration.
        assert migrator.current_version() == 0
        assert not has_table(db, "fine")
        assert not has_table(db, "half")


def test_a_down_migration_with_commit_is_refused_too(databases, tmp_path):
    directory = write(
        tmp_path,
        {
            **FIRST,
            "0002_two.sql": "CREATE TABLE two (id TEXT NOT NULL PRIMARY KEY);\n",
            "0002_two.down.sql": "DELETE FROM two;\nCOMMIT;\nDROP TABLE two;\n",
        },
    )
    with open_database(databases.url()) as db:
        migrator = Migrator(db._adapter, load_migrations(directory))
        migrator.migrate()
        with pytest.raises(MigrationError, match=r"^0002_two\.down\.sql line 2: COMMIT inside"):
            migrator.rollback(0)
        assert migrator.current_version() == 2
        assert has_table(db, "two") and has_table(db, "fine")
