"""The ``handshake-storage`` command line: migrate, rollback, status and
accept-checksum on both backends; where the database URL comes from; one-line
errors; and no password in any output.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import pytest
from cli_support import Result, ok, one_line_error, run

from handshake_storage import Database, open_database
from handshake_storage.backends.base import AUTOCOMMIT
from handshake_storage.migrator import LOG_TABLE, VERSION_TABLE, Migrator, load_migrations
from handshake_storage.sqlscript import checksum
from handshake_storage.url import parse_url, redact

SHIPPED = load_migrations()
LATEST = SHIPPED[-1].version
ENV = "HANDSHAKE_DATABASE_URL"


@pytest.fixture(autouse=True)
def isolated_environment(monkeypatch, tmp_path):
    """No inherited database URL; the user data directory is a temporary one."""
    monkeypatch.delenv(ENV, raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))


def default_file(tmp_path: Path) -> Path:
    return tmp_path / "xdg-data" / "handshake" / "handshake.db"


def cli(*args: str, env: dict[str, str] | None = None) -> Result:
    return run(*args, env=env)


def query(db: Database, sql: str) -> list[tuple]:
    adapter = db._adapter
    with adapter.transaction(AUTOCOMMIT) as session:
        return [tuple(r) for r in session.execute(sql).fetchall()]


def state(db: Database) -> tuple:
    """Everything a command could change: schema, history, log."""
    schema = db.schema()
    if VERSION_TABLE not in schema.tables:
        return schema, [], []
    return (
        schema,
        query(db, f"SELECT * FROM {VERSION_TABLE} ORDER BY version"),
        sorted(query(db, f"SELECT id, version, action, checksum FROM {LOG_TABLE}")),
    )


def sqlite_files(url: str) -> dict[str, str]:
    """The SQLite database file and its companions, with a digest of each."""
    path = parse_url(url).path
    assert path is not None
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in path.parent.glob(path.name + "*")
    }


# -- migrate, status, rollback ---------------------------------------------------------


def test_migrate_applies_everything_then_finds_nothing_to_do(databases):
    url = databases.url()
    lines = ok(cli("--database-url", url, "migrate"))

    assert lines[0] == f"database: {redact(url)}"
    assert lines[-1] == f"migrated to version {LATEST}"
    progress = lines[1:-1]
    assert len(progress) == len(SHIPPED)
    for line, m in zip(progress, SHIPPED, strict=True):
        assert re.fullmatch(rf"  {m.name} \.\.\. ok \(\d+ ms\)", line), line
    db = databases.open(url)
    assert [(r.version, r.state) for r in db.migration_status()] == [
        (m.version, "applied") for m in SHIPPED
    ]
    before = state(db)

    lines = ok(cli("--database-url", url, "migrate"))
    assert lines[-1] == f"nothing to do: the database is at version {LATEST}"
    assert state(db) == before


STATUS_ROW = re.compile(
    r"(?P<version>\d{4}) {5}(?P<description>\S+) +(?P<state>applied|pending) +"
    r"(?P<checksum>[0-9a-f]{12}|) +(?P<applied_at>\S+ \S+|-) +(?P<ms>\d+|-)"
)


def test_status_after_a_fresh_migrate(databases, backend):
    url = databases.url()
    before = datetime.now(UTC)
    ok(cli("--database-url", url, "migrate"))
    after = datetime.now(UTC)

    lines = ok(cli("--database-url", url, "status"))

    assert lines[0].startswith(f"database: {redact(url)} ({backend}; ")
    assert lines[1] == f"version: {LATEST} (latest known: {LATEST})"
    assert lines[2].split() == [
        "VERSION",
        "DESCRIPTION",
        "STATE",
        "CHECKSUM",
        "APPLIED",
        "AT",
        "MS",
    ]
    assert len(lines) == 3 + len(SHIPPED)
    recorded = {r.version: r for r in databases.open(url).migration_status()}
    for line, m in zip(lines[3:], SHIPPED, strict=True):
        row = STATUS_ROW.fullmatch(line)
        assert row, line
        assert int(row["version"]) == m.version
        assert row["description"] == m.description
        assert row["state"] == "applied"
        assert row["checksum"] == m.checksum[:12]
        applied_at = datetime.fromisoformat(row["applied_at"])
        assert applied_at.utcoffset() == timedelta(0)
        assert before - timedelta(seconds=1) <= applied_at <= after + timedelta(seconds=1)
        assert applied_at == recorded[m.version].applied_at
        assert int(row["ms"]) == recorded[m.version].execution_ms


def test_status_of_an_unmigrated_database(databases, backend):
    url = databases.url()
    if backend == "sqlite":
        open_database(url).ping()  # an empty file: status never creates one itself
    lines = ok(cli("--database-url", url, "status"))
    assert lines[1] == f"version: 0 (latest known: {LATEST})"
    for line, m in zip(lines[3:], SHIPPED, strict=True):
        row = STATUS_ROW.fullmatch(line)
        assert row, line
        assert (row["state"], row["checksum"], row["applied_at"], row["ms"]) == (
            "pending",
            m.checksum[:12],
            "-",
            "-",
        )


def test_migrate_to_a_target_and_roll_back_to_a_target(databases):
    url = databases.url()
    db = databases.open(url)

    lines = ok(cli("--database-url", url, "migrate", "--to", "1"))
    assert lines[-1] == "migrated to version 1"
    assert [line.split()[0] for line in lines[1:-1]] == [SHIPPED[0].name]
    assert [r.state for r in db.migration_status()] == ["applied"] + ["pending"] * (
        len(SHIPPED) - 1
    )
    assert ok(cli("--database-url", url, "status"))[1] == f"version: 1 (latest known: {LATEST})"

    lines = ok(cli("--database-url", url, "migrate", "--to", "2"))
    assert [line.split()[0] for line in lines[1:-1]] == [SHIPPED[1].name]
    assert [r.state for r in db.migration_status()] == ["applied"] * 2 + ["pending"] * (
        len(SHIPPED) - 2
    )

    lines = ok(cli("--database-url", url, "rollback", "--to", "0"))
    assert lines[-1] == "rolled back to version 0"
    assert [line.split()[0] for line in lines[1:-1]] == [SHIPPED[1].name, SHIPPED[0].name]
    assert [r.state for r in db.migration_status()] == ["pending"] * len(SHIPPED)
    assert set(db.schema().tables) == {VERSION_TABLE, LOG_TABLE}

    assert ok(cli("--database-url", url, "rollback", "--to", "0"))[-1] == "nothing to do"


# -- the dry run ---------------------------------------------------------------------------


def assert_shows_sql(output: str, sql: str) -> None:
    shown = [line.partition("| ")[2] for line in output.splitlines() if "| " in line]
    expected = sql.rstrip().splitlines()
    for i in range(len(shown) - len(expected) + 1):
        if shown[i : i + len(expected)] == expected:
            return
    raise AssertionError(f"the SQL is not shown in full:\n{sql}")


def test_migrate_dry_run_shows_each_file_checksum_and_sql_and_creates_nothing(databases, backend):
    url = databases.url()
    result = cli("--database-url", url, "migrate", "--dry-run")
    lines = ok(result)

    assert lines[0] == f"plan: apply {len(SHIPPED)} migration(s), version 0 -> {LATEST}"
    for m in SHIPPED:
        assert f"  up   {m.name}.sql  sha256:{m.checksum}" in lines
        assert_shows_sql(result.stdout, m.up_sql)
    if backend == "sqlite":
        assert sqlite_files(url) == {}  # the database file was not even created
    else:
        assert databases.open(url).schema().tables == {}  # not even the version table


def test_dry_runs_on_a_migrated_database_change_nothing(databases, backend):
    url = databases.url()
    ok(cli("--database-url", url, "migrate", "--to", "1"))
    db = databases.open(url)
    before = state(db)
    files = None
    if backend == "sqlite":
        db.close()  # no connection of ours may touch the file meanwhile
        files = sqlite_files(url)

    result = cli("--database-url", url, "migrate", "--dry-run")
    lines = ok(result)
    assert lines[0] == f"plan: apply {len(SHIPPED) - 1} migration(s), version 1 -> {LATEST}"
    assert SHIPPED[0].name not in result.stdout
    for m in SHIPPED[1:]:
        assert f"  up   {m.name}.sql  sha256:{m.checksum}" in lines
        assert_shows_sql(result.stdout, m.up_sql)

    result = cli("--database-url", url, "rollback", "--to", "0", "--dry-run")
    lines = ok(result)
    assert lines[0] == "plan: revert 1 migration(s), version 1 -> 0"
    assert f"  down {SHIPPED[0].name}.down.sql  sha256:{checksum(SHIPPED[0].down_sql)}" in lines
    assert_shows_sql(result.stdout, SHIPPED[0].down_sql)

    assert ok(cli("--database-url", url, "migrate", "--to", "1", "--dry-run")) == [
        "nothing to do: the database is at version 1"
    ]
    if backend == "sqlite":
        # The database file is byte for byte the same. (A read-only connection
        # in WAL mode may leave an empty -wal and a -shm index beside it.)
        after = sqlite_files(url)
        assert after.pop(parse_url(url).path.name) == files.pop(parse_url(url).path.name)
        empty = hashlib.sha256(b"").hexdigest()
        assert after.get(parse_url(url).path.name + "-wal", empty) == empty
    assert state(databases.open(url)) == before


# -- accept-checksum --------------------------------------------------------------------------


def test_accept_checksum_after_a_deliberate_edit(databases):
    url = databases.url(migrated=True)
    db = databases.open(url)
    shipped = SHIPPED[0]
    older_text = shipped.up_sql.replace("-- Content:", "-- Content (older wording):", 1)
    assert older_text != shipped.up_sql
    older = replace(shipped, up_sql=older_text, checksum=checksum(older_text))
    # The database was migrated from an older wording of 0001: its checksum differs.
    Migrator(db._adapter, [older, *SHIPPED[1:]]).accept_checksum(1, "simulate an older file")
    before = state(db)

    result = cli("--database-url", url, "status")
    assert one_line_error(result) == "error: migration 0001 is drifted"
    assert re.search(
        rf"^0001 +content_tables +drifted +{older.checksum[:12]} ", result.stdout, re.M
    )

    error = one_line_error(cli("--database-url", url, "migrate"))
    assert "migration 0001_content_tables was changed after it was applied" in error
    assert "handshake-storage accept-checksum 1 --reason" in error
    assert one_line_error(cli("--database-url", url, "rollback", "--to", "0"))

    for reason in ("", "   "):
        error = one_line_error(
            cli("--database-url", url, "accept-checksum", "1", "--reason", reason)
        )
        assert error == "error: accepting a changed migration needs a reason"
    missing = cli("--database-url", url, "accept-checksum", "1")
    assert missing.exit_code != 0 and "--reason" in missing.stderr
    assert state(db) == before

    reason = "reworded the header comment"
    lines = ok(cli("--database-url", url, "accept-checksum", "1", "--reason", reason))
    assert lines == [
        f"accepted migration 0001: sha256:{older.checksum[:12]} -> "
        f"sha256:{shipped.checksum[:12]} (reason recorded)"
    ]
    log = query(
        db,
        f"SELECT version, action, checksum, previous_checksum, reason FROM {LOG_TABLE} "
        "WHERE action = 'accept-checksum'",
    )
    assert (1, "accept-checksum", shipped.checksum, older.checksum, reason) in log
    assert [r.state for r in db.migration_status()] == ["applied"] * len(SHIPPED)
    ok(cli("--database-url", url, "status"))
    assert ok(cli("--database-url", url, "migrate"))[-1].startswith("nothing to do")

    lines = ok(cli("--database-url", url, "accept-checksum", "1", "--reason", "again"))
    assert lines == [f"migration 0001 already matches its file (sha256:{shipped.checksum[:12]})"]
    error = one_line_error(cli("--database-url", url, "accept-checksum", "7", "--reason", "x"))
    assert error == "error: there is no migration file with version 0007"


# -- failures ----------------------------------------------------------------------------------


def test_failing_commands_exit_non_zero_with_a_one_line_error(databases, tmp_path):
    url = databases.url()
    db = databases.open(url)
    db.ping()  # exists, unmigrated
    cases = {
        ("migrate", "--to", "99"): "beyond the latest migration",
        ("migrate", "--to", "-1"): "non-negative integer",
        ("rollback", "--to", "2"): "cannot roll back to 2",
        ("migrate", "--dry-run", "--to", "99"): "beyond the latest migration",
    }
    for args, needle in cases.items():
        assert needle in one_line_error(cli("--database-url", url, *args)), args
    assert content_tables(db) == set()

    ok(cli("--database-url", url, "migrate", "--to", "2"))
    assert "use rollback" in one_line_error(cli("--database-url", url, "migrate", "--to", "1"))
    assert content_tables(db) >= {"ai_jobs"}

    missing_dir = f"sqlite:///{tmp_path / 'no-such-dir' / 'x.db'}"
    assert "does not exist" in one_line_error(cli("--database-url", missing_dir, "migrate"))
    assert "unsupported database URL scheme" in one_line_error(
        cli("--database-url", "mysql://u@h/db", "status"), code=2
    )


def content_tables(db: Database) -> set[str]:
    return set(db.schema().tables) - {VERSION_TABLE, LOG_TABLE}


def test_a_database_newer_than_the_code_is_refused(databases, tmp_path):
    url = databases.url(migrated=True)
    db = databases.open(url)
    up = "CREATE TABLE future_table (id TEXT NOT NULL PRIMARY KEY);\n"
    future = replace(
        SHIPPED[-1],
        version=LATEST + 1,
        description="future_table",
        up_sql=up,
        down_sql="DROP TABLE future_table;\n",
        checksum=checksum(up),
    )
    Migrator(db._adapter, [*SHIPPED, future]).migrate()
    name = f"{LATEST + 1:04d}_future_table"

    error = one_line_error(cli("--database-url", url, "migrate"))
    assert f"migration {name} applied" in error and "newer than the code" in error
    result = cli("--database-url", url, "status")
    assert one_line_error(result) == f"error: migration {LATEST + 1:04d} is unknown"
    assert re.search(rf"^{LATEST + 1:04d} +future_table +unknown ", result.stdout, re.M)
    assert "applied, which" in one_line_error(cli("--database-url", url, "rollback", "--to", "1"))
    assert "future_table" in db.schema().tables


# -- where the URL comes from ----------------------------------------------------------------------


def test_the_database_url_option_wins_over_the_environment(databases, tmp_path):
    url = databases.url()
    elsewhere = tmp_path / "from-env.db"
    lines = ok(cli("--database-url", url, "migrate", env={ENV: f"sqlite:///{elsewhere}"}))
    assert lines[0] == f"database: {redact(url)}"
    assert [r.state for r in databases.open(url).migration_status()] == ["applied"] * LATEST
    assert not elsewhere.exists()
    assert not default_file(tmp_path).exists()


def test_the_environment_variable_is_used_without_the_option(databases, tmp_path, monkeypatch):
    url = databases.url()
    monkeypatch.setenv(ENV, url)
    lines = ok(cli("migrate"))
    assert lines[0] == f"database: {redact(url)}"
    assert [r.state for r in databases.open(url).migration_status()] == ["applied"] * LATEST
    assert ok(cli("status"))[1] == f"version: {LATEST} (latest known: {LATEST})"
    assert not default_file(tmp_path).exists()


def test_without_url_the_embedded_file_in_the_user_data_directory_is_used(tmp_path):
    path = default_file(tmp_path)
    assert not path.parent.exists()

    lines = ok(cli("migrate"))

    assert path.is_file()
    assert lines[0] == f"database: sqlite:///{path}"
    with open_database(f"sqlite:///{path}") as db:
        assert [r.state for r in db.migration_status()] == ["applied"] * LATEST
    assert ok(cli("status"))[0].startswith(f"database: sqlite:///{path} (sqlite; ")
    assert ok(cli("migrate"))[-1].startswith("nothing to do")


def test_the_dry_run_does_not_create_the_default_file(tmp_path):
    lines = ok(cli("migrate", "--dry-run"))
    assert lines[0].startswith(f"plan: apply {len(SHIPPED)} migration(s)")
    assert not default_file(tmp_path).exists()


# -- no password in any output ---------------------------------------------------------------

PASSWORD = "Hs-pw_7d1e!@#/x"


def with_password(url: str, form: str) -> str:
    """``url`` with a password (the test server trusts local users and ignores it)."""
    secret = quote(PASSWORD, safe="")
    parts = urlsplit(url)
    if form == "userinfo":
        userinfo, _, host = parts.netloc.rpartition("@")
        user = userinfo.partition(":")[0] or "postgres"
        return urlunsplit(parts._replace(netloc=f"{user}:{secret}@{host}"))
    query = f"{parts.query}&password={secret}" if parts.query else f"password={secret}"
    return urlunsplit(parts._replace(query=query))


def assert_no_password(result: Result) -> None:
    text = result.stdout + result.stderr
    for form in (PASSWORD, quote(PASSWORD, safe=""), quote(PASSWORD), "Hs-pw_7d1e"):
        assert form not in text, text


@pytest.mark.parametrize("form", ["userinfo", "query"])
def test_no_command_prints_the_password(postgres_server, form):
    name = postgres_server.create()
    try:
        url = with_password(postgres_server.url_for(name), form)
        assert quote(PASSWORD, safe="") in url
        commands = [
            (0, ("migrate", "--dry-run")),
            (0, ("migrate", "--to", "1")),
            (0, ("status",)),
            (0, ("migrate",)),
            (0, ("rollback", "--to", "2", "--dry-run")),
            (0, ("rollback", "--to", "2")),
            (0, ("migrate",)),
            (0, ("accept-checksum", "3", "--reason", "r")),
            (1, ("migrate", "--to", "99")),
            (1, ("rollback", "--to", "9")),
            (1, ("accept-checksum", "9", "--reason", "r")),
        ]
        for code, args in commands:
            result = cli("--database-url", url, *args)
            assert result.exit_code == code, (args, result.output)
            assert_no_password(result)
            if (
                code == 0
                and args[0] in ("migrate", "rollback", "status")
                and "--dry-run" not in args
            ):
                assert "***" in result.output, args  # the redacted URL was shown
        result = cli("status", env={ENV: url})
        assert result.exit_code == 0
        assert_no_password(result)
    finally:
        postgres_server.drop(name)


@pytest.mark.parametrize("form", ["userinfo", "query"])
def test_a_failed_connection_does_not_print_the_password(form):
    base = "postgresql://postgres:@127.0.0.1:1/handshake?connect_timeout=2"
    url = with_password(base, form)
    for args in (
        ("migrate",),
        ("migrate", "--dry-run"),
        ("status",),
        ("rollback", "--to", "0"),
        ("accept-checksum", "1", "--reason", "r"),
    ):
        result = cli("--database-url", url, *args)
        error = one_line_error(result)
        assert "127.0.0.1" in error
        assert_no_password(result)


def test_the_installed_command_keeps_the_password_out_of_its_output(postgres_server):
    good = with_password(postgres_server.url_for("postgres"), "userinfo")
    closed = with_password("postgresql://postgres:@127.0.0.1:1/x", "userinfo")
    for url, code in ((good, 0), (closed, 1)):
        for module in (False, True):
            done = run("--database-url", url, "migrate", "--dry-run", module=module)
            assert done.exit_code == code, done
            assert PASSWORD not in done.output and quote(PASSWORD, safe="") not in done.output
            if code:
                assert done.stderr.count("\n") == 1 and done.stderr.startswith("error: ")
