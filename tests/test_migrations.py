"""The migration runner, on SQLite and on PostgreSQL.

Applying, re-running (a no-op), targets up and down, the dry-run plan, the
recorded history (checksum, applied-at, execution time), checksum drift and
its deliberate acceptance, databases newer than the code, history gaps,
malformed migration directories, and a migration failing half-way.
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path

import pytest

from handshake_storage import Database, MigrationError, ValidationError
from handshake_storage.backends.base import AUTOCOMMIT
from handshake_storage.migrator import (
    BOOKKEEPING_TABLES,
    LOG_TABLE,
    VERSION_TABLE,
    Migration,
    Migrator,
    load_migrations,
)
from handshake_storage.sqlscript import checksum

SHIPPED = load_migrations()
LATEST = SHIPPED[-1].version

#: The tables each shipped migration creates (what its down file must remove).
CREATED_BY = {
    1: {"workspaces", "documents", "blocks", "canvases", "canvas_nodes", "canvas_edges"},
    2: {"ai_jobs", "workflow_runs", "workflow_node_executions"},
    3: {"block_terms"},
    4: {"block_search"},
    5: {
        "sync_replica",
        "sync_counters",
        "sync_changes",
        "sync_peers",
        "sync_pruned",
        "sync_conflicts",
    },
}
DROPPED_BY = {4: {"block_terms"}}


# -- helpers ------------------------------------------------------------------


def query(db: Database, sql: str, params: tuple = ()) -> list[tuple]:
    """Rows of a portable query, through the adapter (no driver in tests)."""
    adapter = db._adapter
    with adapter.transaction(AUTOCOMMIT) as session:
        return [tuple(r) for r in session.execute(adapter.compile(sql), params).fetchall()]


def execute(db: Database, sql: str, params: tuple = ()) -> None:
    adapter = db._adapter
    with adapter.transaction(AUTOCOMMIT) as session:
        session.execute(adapter.compile(sql), params)


def version_rows(db: Database) -> list[tuple]:
    return query(
        db,
        f"SELECT version, description, checksum, applied_at, execution_ms "
        f"FROM {VERSION_TABLE} ORDER BY version",
    )


def log_rows(db: Database) -> list[tuple]:
    """(version, action, checksum, previous_checksum, reason) in insertion-time order."""
    return query(
        db,
        f"SELECT version, action, checksum, previous_checksum, reason FROM {LOG_TABLE} "
        "ORDER BY at, version",
    )


def content_tables(db: Database) -> set[str]:
    return set(db.schema().tables) - set(BOOKKEEPING_TABLES)


def expected_tables(version: int) -> set[str]:
    tables: set[str] = set()
    for v in range(1, version + 1):
        tables = (tables - DROPPED_BY.get(v, set())) | CREATED_BY[v]
    return tables


def file_sha256(name: str) -> str:
    """The checksum of a shipped file, computed here independently of sqlscript."""
    raw = resources.files("handshake_storage").joinpath("migrations", name).read_bytes()
    text = raw.decode("utf-8").removeprefix("\ufeff").replace("\r\n", "\n")
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def edited(migration: Migration, extra: str = "\n-- an edit after the fact\n") -> Migration:
    up_sql = migration.up_sql + extra
    return replace(migration, up_sql=up_sql, checksum=checksum(up_sql))


def write_migrations(directory: Path, files: dict[str, str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(text, encoding="utf-8")
    return directory


def load_migrations_from(directory: Path, first: int) -> list[Migration]:
    """Migrations of a directory that continues the shipped sequence at ``first``."""
    out = []
    for up in sorted(directory.glob("*.sql")):
        if up.name.endswith(".down.sql"):
            continue
        version, description = int(up.name[:4]), up.stem[5:]
        assert version >= first
        text = up.read_text(encoding="utf-8")
        down = (directory / f"{up.stem}.down.sql").read_text(encoding="utf-8")
        out.append(Migration(version, description, text, down, checksum(text)))
    return out


@pytest.fixture
def fresh(databases) -> Database:
    """An empty, unmigrated database of the test's backend."""
    return databases.open(databases.url())


# -- migrate, re-run, status --------------------------------------------------------


def test_shipped_migrations_are_numbered_and_checksummed():
    assert [m.version for m in SHIPPED] == list(range(1, len(SHIPPED) + 1))
    assert set(CREATED_BY) == {m.version for m in SHIPPED}
    for m in SHIPPED:
        assert m.checksum == file_sha256(f"{m.name}.sql")
        assert m.up_sql.strip() and m.down_sql.strip()


def test_migrate_applies_every_migration_and_records_it(fresh):
    before = datetime.now(UTC)
    plan = fresh.run_migrations()
    after = datetime.now(UTC)

    assert (plan.current, plan.target) == (0, LATEST)
    assert [(s.direction, s.migration.version) for s in plan.steps] == [
        ("up", m.version) for m in SHIPPED
    ]
    assert content_tables(fresh) == expected_tables(LATEST)

    status = fresh.migration_status()
    assert [(r.version, r.description, r.state) for r in status] == [
        (m.version, m.description, "applied") for m in SHIPPED
    ]
    for row, migration in zip(status, SHIPPED, strict=True):
        assert row.db_checksum == row.file_checksum == file_sha256(f"{migration.name}.sql")
        assert row.applied_at is not None
        assert row.applied_at.tzinfo is not None
        assert row.applied_at.utcoffset() == timedelta(0)
        assert before - timedelta(seconds=1) <= row.applied_at <= after + timedelta(seconds=1)
        assert isinstance(row.execution_ms, int) and row.execution_ms >= 0
    applied_at = [r.applied_at for r in status]
    assert applied_at == sorted(applied_at)

    assert log_rows(fresh) == [(m.version, "up", m.checksum, None, None) for m in SHIPPED]


def test_rerun_is_a_no_op(fresh):
    fresh.run_migrations()
    versions, log, schema = version_rows(fresh), log_rows(fresh), fresh.schema()
    status = fresh.migration_status()

    again = fresh.run_migrations()

    assert again.steps == ()
    assert (again.current, again.target) == (LATEST, LATEST)
    assert version_rows(fresh) == versions
    assert log_rows(fresh) == log
    assert fresh.schema() == schema
    assert fresh.migration_status() == status


def test_a_second_database_object_finds_nothing_to_do(databases):
    url = databases.url()
    first = databases.open(url)
    first.run_migrations()
    second = databases.open(url)
    assert second.run_migrations().steps == ()
    assert [r.version for r in second.migration_status() if r.state == "applied"] == [
        m.version for m in SHIPPED
    ]


def test_status_of_an_unmigrated_database_lists_everything_pending(fresh):
    status = fresh.migration_status()
    assert [(r.version, r.state) for r in status] == [(m.version, "pending") for m in SHIPPED]
    for row, migration in zip(status, SHIPPED, strict=True):
        assert row.file_checksum == migration.checksum
        assert (row.db_checksum, row.applied_at, row.execution_ms) == (None, None, None)
    assert fresh.schema().tables == {}  # reading the status creates nothing


# -- targets ----------------------------------------------------------------------


def test_run_migrations_stops_at_the_target(fresh):
    plan = fresh.run_migrations(1)
    assert [s.migration.version for s in plan.steps] == [1]
    assert content_tables(fresh) == expected_tables(1)
    assert [(r.version, r.state) for r in fresh.migration_status()] == [
        (1, "applied"),
        *((m.version, "pending") for m in SHIPPED[1:]),
    ]

    plan = fresh.run_migrations(2)
    assert (plan.current, [s.migration.version for s in plan.steps]) == (1, [2])
    assert content_tables(fresh) == expected_tables(2)
    assert fresh.run_migrations(2).steps == ()

    plan = fresh.run_migrations()
    assert [s.migration.version for s in plan.steps] == [m.version for m in SHIPPED[2:]]
    assert [v[0] for v in version_rows(fresh)] == [m.version for m in SHIPPED]


def test_run_migrations_to_zero_applies_nothing(fresh):
    plan = fresh.run_migrations(0)
    assert plan.steps == ()
    assert content_tables(fresh) == set()
    assert version_rows(fresh) == []


@pytest.mark.parametrize("target", [LATEST + 1, 10_000])
def test_a_target_beyond_the_latest_migration_is_refused(fresh, target):
    with pytest.raises(MigrationError, match=f"beyond the latest migration \\({LATEST:04d}\\)"):
        fresh.run_migrations(target)
    assert content_tables(fresh) == set()


def test_migrating_below_the_current_version_is_refused(fresh):
    fresh.run_migrations(2)
    with pytest.raises(MigrationError, match="use rollback"):
        fresh.run_migrations(1)
    assert content_tables(fresh) == expected_tables(2)


@pytest.mark.parametrize("target", [-1, True, "2", 1.0])
def test_invalid_targets_are_refused_before_anything_runs(fresh, target):
    with pytest.raises(ValidationError):
        fresh.run_migrations(target)
    with pytest.raises(ValidationError):
        fresh.rollback_migrations(target)
    assert content_tables(fresh) == set()


def test_rollback_to_a_target(fresh):
    fresh.run_migrations()
    log_before = log_rows(fresh)

    plan = fresh.rollback_migrations(1)

    above_1 = range(LATEST, 1, -1)
    assert (plan.current, plan.target) == (LATEST, 1)
    assert [(s.direction, s.migration.version) for s in plan.steps] == [
        ("down", v) for v in above_1
    ]
    assert content_tables(fresh) == expected_tables(1)
    assert [v[0] for v in version_rows(fresh)] == [1]
    assert [(r.version, r.state) for r in fresh.migration_status()] == [
        (1, "applied"),
        *((v, "pending") for v in reversed(above_1)),
    ]
    by_version = {m.version: m for m in SHIPPED}
    assert sorted(log_rows(fresh)[len(log_before) :]) == [
        (v, "down", by_version[v].checksum, None, None) for v in reversed(above_1)
    ]

    assert fresh.rollback_migrations(1).steps == ()

    plan = fresh.rollback_migrations(0)
    assert [s.migration.version for s in plan.steps] == [1]
    assert content_tables(fresh) == set()
    assert set(fresh.schema().tables) == set(BOOKKEEPING_TABLES)
    assert version_rows(fresh) == []

    fresh.run_migrations()
    assert content_tables(fresh) == expected_tables(LATEST)


def test_rollback_above_the_current_version_is_refused(fresh):
    fresh.run_migrations(1)
    with pytest.raises(MigrationError, match="cannot roll back to 2"):
        fresh.rollback_migrations(2)
    assert [v[0] for v in version_rows(fresh)] == [1]


def test_rollback_needs_a_target(fresh):
    fresh.run_migrations()
    with pytest.raises(ValidationError, match="needs a target"):
        Migrator(fresh._adapter).rollback(None)  # type: ignore[arg-type]
    assert content_tables(fresh) == expected_tables(LATEST)


# -- the plan (dry run) -----------------------------------------------------------------


def test_plan_runs_nothing_and_creates_nothing(fresh):
    fresh.ping()  # the database exists (for SQLite: the file), but is empty
    migrator = Migrator(fresh._adapter)

    plan = migrator.plan()
    assert (plan.current, plan.target) == (0, LATEST)
    assert [(s.direction, s.migration.version) for s in plan.steps] == [
        ("up", m.version) for m in SHIPPED
    ]
    assert [s.sql for s in plan.steps] == [m.up_sql for m in SHIPPED]
    plan = migrator.plan(2)
    assert [s.migration.version for s in plan.steps] == [1, 2]

    assert fresh.schema().tables == {}  # not even the version table


def test_plan_of_a_rollback_runs_nothing(fresh):
    fresh.run_migrations()
    versions, schema = version_rows(fresh), fresh.schema()

    plan = Migrator(fresh._adapter).plan(1, down=True)

    above_1 = range(LATEST, 1, -1)
    assert [(s.direction, s.migration.version) for s in plan.steps] == [
        ("down", v) for v in above_1
    ]
    by_version = {m.version: m for m in SHIPPED}
    assert [s.sql for s in plan.steps] == [by_version[v].down_sql for v in above_1]
    assert version_rows(fresh) == versions
    assert fresh.schema() == schema


# -- checksums ----------------------------------------------------------------------------


def test_checksum_is_sha256_of_the_normalized_text():
    text = "CREATE TABLE t (id TEXT NOT NULL PRIMARY KEY);\n-- é\n"
    expected = hashlib.sha256(text.encode("utf-8")).hexdigest()
    assert checksum(text) == expected
    assert checksum("\ufeff" + text.replace("\n", "\r\n")) == expected
    assert checksum(text.replace("\n", "\r")) == expected
    assert checksum(text + " ") != expected
    assert checksum(text.replace("id", "Id")) != expected


def test_a_crlf_and_bom_copy_of_the_migrations_has_the_same_checksums(tmp_path):
    source = resources.files("handshake_storage").joinpath("migrations")
    for entry in source.iterdir():
        if entry.name.endswith(".sql"):
            text = entry.read_text(encoding="utf-8")
            windows = "\ufeff" + text.replace("\n", "\r\n")
            (tmp_path / entry.name).write_bytes(windows.encode("utf-8"))
    copied = load_migrations(tmp_path)
    assert [(m.version, m.description, m.checksum) for m in copied] == [
        (m.version, m.description, m.checksum) for m in SHIPPED
    ]
    assert [m.up_sql for m in copied] == [m.up_sql for m in SHIPPED]

    first = tmp_path / f"{SHIPPED[0].name}.sql"
    first.write_bytes(first.read_bytes() + b"-- edited\r\n")
    assert load_migrations(tmp_path)[0].checksum != SHIPPED[0].checksum


# -- drift, acceptance, unknown versions, gaps -------------------------------------------


@pytest.fixture
def migrated(databases) -> Database:
    db = databases.open(databases.url())
    db.run_migrations()
    return db


@pytest.mark.parametrize("changed", [1, 3])
def test_an_edited_applied_migration_stops_the_run(migrated, changed):
    versions, schema = version_rows(migrated), migrated.schema()
    migrations = [edited(m) if m.version == changed else m for m in SHIPPED]
    migrator = Migrator(migrated._adapter, migrations)
    name = SHIPPED[changed - 1].name

    with pytest.raises(MigrationError) as caught:
        migrator.migrate()
    message = str(caught.value)
    assert f"migration {name} was changed after it was applied" in message
    assert f"accept-checksum {changed}" in message
    assert SHIPPED[changed - 1].checksum[:12] in message

    with pytest.raises(MigrationError, match=f"migration {name} was changed"):
        migrator.rollback(0)
    with pytest.raises(MigrationError, match=f"migration {name} was changed"):
        migrator.plan()

    states = {r.version: r.state for r in migrator.status()}
    assert states == {m.version: "drifted" if m.version == changed else "applied" for m in SHIPPED}
    assert version_rows(migrated) == versions
    assert migrated.schema() == schema


def test_a_drifted_migration_below_the_target_is_refused_too(databases):
    db = databases.open(databases.url())
    db.run_migrations(1)
    migrator = Migrator(db._adapter, [edited(SHIPPED[0]), *SHIPPED[1:]])
    with pytest.raises(MigrationError, match="0001_content_tables was changed"):
        migrator.migrate()
    assert content_tables(db) == expected_tables(1)


def test_accept_checksum_records_the_edit_with_its_reason(migrated):
    new = edited(SHIPPED[0])
    migrator = Migrator(migrated._adapter, [new, *SHIPPED[1:]])
    versions, log = version_rows(migrated), log_rows(migrated)

    for reason in ("", "   ", None):
        with pytest.raises(ValidationError, match="needs a reason"):
            migrator.accept_checksum(1, reason)  # type: ignore[arg-type]
    assert version_rows(migrated) == versions
    assert log_rows(migrated) == log

    old, accepted = migrator.accept_checksum(1, "reworded a comment")

    assert (old, accepted) == (SHIPPED[0].checksum, new.checksum)
    rows = version_rows(migrated)
    assert rows[0][2] == new.checksum
    assert rows[0][:2] == versions[0][:2] and rows[0][3:] == versions[0][3:]
    assert rows[1:] == versions[1:]
    assert log_rows(migrated) == [
        *log,
        (1, "accept-checksum", new.checksum, SHIPPED[0].checksum, "reworded a comment"),
    ]

    assert migrator.migrate().steps == ()  # the edited set is now the accepted one
    assert [r.state for r in migrator.status()] == ["applied"] * len(SHIPPED)
    with pytest.raises(MigrationError, match="0001_content_tables was changed"):
        migrated.run_migrations()  # and the original file now counts as drifted

    assert migrator.accept_checksum(1, "again") == (new.checksum, new.checksum)
    assert len(log_rows(migrated)) == len(log) + 1  # nothing to accept, nothing logged


def test_accept_checksum_needs_a_known_applied_version(databases):
    db = databases.open(databases.url())
    db.run_migrations(1)
    migrator = Migrator(db._adapter)
    with pytest.raises(MigrationError, match="no migration file with version 0009"):
        migrator.accept_checksum(9, "reason")
    with pytest.raises(MigrationError, match="0002_ai_jobs_and_workflows has not been applied"):
        migrator.accept_checksum(2, "reason")
    assert [v[0] for v in version_rows(db)] == [1]
    assert [a for _v, a, *_ in log_rows(db)] == ["up"]


def test_a_database_newer_than_the_code_is_refused(migrated):
    older_code = Migrator(migrated._adapter, SHIPPED[:-1])
    versions, schema = version_rows(migrated), migrated.schema()
    newest = SHIPPED[-1].name

    for attempt in (older_code.migrate, lambda: older_code.rollback(0), older_code.plan):
        with pytest.raises(MigrationError) as caught:
            attempt()
        assert f"migration {newest} applied" in str(caught.value)
        assert "newer than the code" in str(caught.value)

    assert [r.state for r in older_code.status()] == ["applied"] * (len(SHIPPED) - 1) + ["unknown"]
    assert version_rows(migrated) == versions
    assert migrated.schema() == schema


def test_a_version_applied_by_newer_code_is_refused_by_the_shipped_code(migrated, tmp_path):
    future = f"{LATEST + 1:04d}_future_table"
    extra = write_migrations(
        tmp_path / "newer",
        {
            f"{future}.sql": "CREATE TABLE future_table (id TEXT NOT NULL PRIMARY KEY);\n",
            f"{future}.down.sql": "DROP TABLE future_table;\n",
        },
    )
    newer_code = Migrator(migrated._adapter, [*SHIPPED, *load_migrations_from(extra, LATEST + 1)])
    assert [s.migration.version for s in newer_code.migrate().steps] == [LATEST + 1]

    with pytest.raises(MigrationError, match=rf"{future} applied.*newer than the code"):
        migrated.run_migrations()
    with pytest.raises(MigrationError, match=f"{future} applied"):
        migrated.rollback_migrations(1)
    assert migrated.migration_status()[-1].state == "unknown"
    assert "future_table" in migrated.schema().tables


def test_a_gap_in_the_history_is_refused(migrated):
    execute(migrated, f"DELETE FROM {VERSION_TABLE} WHERE version = ?", (2,))
    schema = migrated.schema()
    for attempt in (migrated.run_migrations, lambda: migrated.rollback_migrations(0)):
        with pytest.raises(MigrationError, match="gap: 0003 is applied but 0002 is not"):
            attempt()
    assert migrated.schema() == schema


# -- migration directories ---------------------------------------------------------------

GOOD = {
    "0001_first.sql": "CREATE TABLE first_table (id TEXT NOT NULL PRIMARY KEY);\n",
    "0001_first.down.sql": "DROP TABLE first_table;\n",
    "0002_second_one.sql": "CREATE TABLE second_table (id TEXT NOT NULL PRIMARY KEY);\n",
    "0002_second_one.down.sql": "DROP TABLE second_table;\n",
}


def test_a_migration_directory_loads_in_order(tmp_path):
    directory = write_migrations(tmp_path, {**GOOD, "README.md": "notes", "x.txt": ""})
    migrations = load_migrations(directory)
    assert [(m.version, m.description, m.name) for m in migrations] == [
        (1, "first", "0001_first"),
        (2, "second_one", "0002_second_one"),
    ]
    assert migrations[1].up_sql == GOOD["0002_second_one.sql"]
    assert migrations[1].down_sql == GOOD["0002_second_one.down.sql"]
    assert migrations[1].checksum == checksum(GOOD["0002_second_one.sql"])


def _without(*names: str) -> dict[str, str]:
    return {k: v for k, v in GOOD.items() if k not in names}


BAD_DIRECTORIES = {
    "upper case": ({**GOOD, "0003_Third.sql": "", "0003_Third.down.sql": ""}, "'0003_Third."),
    "no description": ({**GOOD, "0003.sql": "", "0003.down.sql": ""}, "'0003."),
    "three digits": ({**GOOD, "003_third.sql": "", "003_third.down.sql": ""}, "003_third"),
    "dash": ({**GOOD, "0003-third.sql": "", "0003-third.down.sql": ""}, "0003-third"),
    "bad down name": ({**GOOD, "0003_third.sql": "", "0003_Third.down.sql": ""}, "0003_Third"),
    "missing down": (_without("0002_second_one.down.sql"), "no matching 0002_second_one.down"),
    "down of another name": (
        {**_without("0002_second_one.down.sql"), "0002_second.down.sql": ""},
        "no matching 0002_second_one.down",
    ),
    "orphan down": ({**GOOD, "0003_third.down.sql": ""}, "without an up file: version 0003"),
    "duplicate version": (
        {**GOOD, "0002_other.sql": "", "0002_other.down.sql": ""},
        "two migration files share version 0002",
    ),
    "gap": (
        {**GOOD, "0004_fourth.sql": "", "0004_fourth.down.sql": ""},
        "found 0004_fourth where 0003 was expected",
    ),
    "not starting at 0001": (
        _without("0001_first.sql", "0001_first.down.sql"),
        "found 0002_second_one where 0001 was expected",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_DIRECTORIES))
def test_a_malformed_migration_directory_is_refused(tmp_path, case):
    files, needle = BAD_DIRECTORIES[case]
    directory = write_migrations(tmp_path, files)
    with pytest.raises(MigrationError) as caught:
        load_migrations(directory)
    assert needle in str(caught.value)


# -- a migration failing half-way ----------------------------------------------------------

BASE = {
    "0001_base.sql": "CREATE TABLE base_table (id BIGINT NOT NULL PRIMARY KEY);\n",
    "0001_base.down.sql": "DROP TABLE base_table;\n",
}
SECOND_DOWN = "DROP TABLE never_table;\nDROP TABLE half_table;\n"
FAILURES = {
    "syntax error": "CREATE TABLE broken_table (id BIGINT NOT NULL PRIMARY KEY,,);",
    "constraint violation": "INSERT INTO base_table (id) VALUES (NULL);",
    "missing table": "INSERT INTO no_such_table (id) VALUES (1);",
}


def failing_set(directory: Path, bad_statement: str) -> list[Migration]:
    return load_migrations(
        write_migrations(
            directory,
            {
                **BASE,
                "0002_half.sql": (
                    "-- creates a table, then fails, then would create another\n"
                    "CREATE TABLE half_table (id BIGINT NOT NULL PRIMARY KEY);\n"
                    "INSERT INTO base_table (id) VALUES (7);\n"
                    f"{bad_statement}\n"
                    "CREATE TABLE never_table (id BIGINT NOT NULL PRIMARY KEY);\n"
                ),
                "0002_half.down.sql": SECOND_DOWN,
            },
        )
    )


@pytest.mark.parametrize("failure", sorted(FAILURES))
def test_a_migration_failing_half_way_leaves_the_previous_version(fresh, tmp_path, failure):
    migrator = Migrator(fresh._adapter, failing_set(tmp_path / "m", FAILURES[failure]))

    with pytest.raises(MigrationError) as caught:
        migrator.migrate()

    assert "0002_half.sql line 4 failed" in str(caught.value)
    assert "\n" not in str(caught.value)
    tables = set(fresh.schema().tables) - set(BOOKKEEPING_TABLES)
    assert tables == {"base_table"}  # nothing of 0002: no half_table, no never_table
    assert query(fresh, "SELECT id FROM base_table") == []  # nor its INSERT
    assert [(r.version, r.state) for r in migrator.status()] == [(1, "applied"), (2, "pending")]
    assert [(v, a) for v, a, *_ in log_rows(fresh)] == [(1, "up")]

    repaired = failing_set(tmp_path / "repaired", "")
    plan = Migrator(fresh._adapter, repaired).migrate()
    assert [s.migration.version for s in plan.steps] == [2]
    assert set(fresh.schema().tables) - set(BOOKKEEPING_TABLES) == {
        "base_table",
        "half_table",
        "never_table",
    }


def test_a_rollback_failing_half_way_leaves_the_version_applied(fresh, tmp_path):
    good = failing_set(tmp_path / "good", "")
    Migrator(fresh._adapter, good).migrate()
    broken = [
        good[0],
        replace(
            good[1], down_sql="DROP TABLE never_table;\nDROP TABLE no_such_table;\n" + SECOND_DOWN
        ),
    ]
    migrator = Migrator(fresh._adapter, broken)

    with pytest.raises(MigrationError, match=r"0002_half\.down\.sql line 2 failed"):
        migrator.rollback(0)

    assert set(fresh.schema().tables) - set(BOOKKEEPING_TABLES) == {
        "base_table",
        "half_table",
        "never_table",
    }
    assert [(r.version, r.state) for r in migrator.status()] == [(1, "applied"), (2, "applied")]
    assert [(v, a) for v, a, *_ in log_rows(fresh)] == [(1, "up"), (2, "up")]


def test_a_failed_run_keeps_the_migrations_applied_before_it(fresh, tmp_path):
    """Migrations before the failing one in the same run stay applied."""
    migrations = failing_set(tmp_path / "m", FAILURES["syntax error"])
    with pytest.raises(MigrationError):
        Migrator(fresh._adapter, migrations).migrate()
    assert [v[0] for v in version_rows(fresh)] == [1]
    assert "base_table" in fresh.schema().tables


def test_the_migrator_can_be_given_a_copy_of_the_shipped_directory(fresh, tmp_path):
    source = resources.files("handshake_storage").joinpath("migrations")
    with resources.as_file(source) as path:
        shutil.copytree(path, tmp_path / "copy", ignore=shutil.ignore_patterns("*.py", "__py*"))
    copy = load_migrations(tmp_path / "copy")
    Migrator(fresh._adapter, copy).migrate()
    assert fresh.run_migrations().steps == ()  # same checksums: no drift, nothing to do
