"""The command line as scripts use it: exit codes, ``--json`` schemas,
``status --check``, ``history``, ``python -m``, ``-V``, global options after
the subcommand, shell completion, and read-only commands that never create
a database. Each runs the installed script, on both backends where a
database is involved.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from cli_support import ENV, ok, one_line_error, run

from handshake_storage import __version__, open_database
from handshake_storage.migrator import load_migrations
from handshake_storage.rebuildable import registry
from handshake_storage.sqlscript import checksum
from handshake_storage.url import redact

SHIPPED = load_migrations()
LATEST = SHIPPED[-1].version


@pytest.fixture(autouse=True)
def isolated_environment(monkeypatch, tmp_path):
    monkeypatch.delenv(ENV, raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))


# -- entry points and global options ----------------------------------------------------


def test_python_dash_m_and_version_flags():
    for flag in ("-V", "--version"):
        for module in (False, True):
            assert ok(run(flag, module=module)) == [f"handshake-storage, version {__version__}"]
    help_text = ok(run("--help", module=True))
    assert help_text[0].startswith("Usage: handshake-storage ")
    assert any(line.split()[:1] == ["history"] for line in help_text)


def test_the_database_url_is_accepted_before_or_after_the_subcommand(databases):
    url = databases.url(migrated=True)
    before = ok(run("--database-url", url, "status"))
    after = ok(run("status", "--database-url", url))
    both = ok(run("--database-url", url, "status", "--database-url", url))
    assert before == after == both
    assert before[0].startswith(f"database: {redact(url)} ")
    for args in (("history",), ("indexes", "list"), ("check",), ("migrate", "--dry-run")):
        assert run(*args, "--database-url", url).exit_code == 0, args
    error = one_line_error(
        run("--database-url", url, "status", "--database-url", "sqlite:///other.db"), code=2
    )
    assert "given twice with different values" in error
    assert not Path("other.db").exists()


# -- exit codes -------------------------------------------------------------------------


def test_usage_errors_exit_2_with_one_line(tmp_path):
    url = f"sqlite:///{tmp_path / 'x.db'}"
    cases = {
        ("no-such-command",): "No such command",
        ("status", "--bogus"): "No such option",
        ("migrate", "--to", "abc"): "is not a valid integer",
        ("rollback",): "Missing option '--to'",
        ("lint", str(tmp_path / "nope.sql")): "no such file",
        ("prune", "--older-than", "nan"): "non-negative number of days",
        ("prune", "--older-than", "-1"): "non-negative number of days",
        ("prune", "--keep-newest", "-1"): "-1 is not in the range",
        ("--database-url", "mysql://u@h/db", "status"): "unsupported database URL scheme",
        ("--database-url", "", "status"): "--database-url is empty",
        ("status", "--database-url", "  "): "--database-url is empty",
        ("completion", "tcsh"): "'tcsh' is not one of",
        ("copy", "--to", url): "the source (--from or --from-env) is missing",
        ("copy", "--from", url, "--to-env", "HS_TEST_UNSET_VAR"): "HS_TEST_UNSET_VAR",
        ("sync", "--bogus"): "No such option",
        ("sync", url, url, "--batch-size", "x"): "is not a valid integer",
        ("ledger", "nope"): "No such command",
        ("ledger", "prune", "--bogus"): "No such option",
        ("ledger", "reidentify", "extra"): "unexpected extra argument",
        ("conflicts", "show"): "Missing argument 'CONFLICT_ID'",
        ("conflicts", "list", "--kind", "bogus"): "'bogus' is not one of",
    }
    for args, needle in cases.items():
        error = one_line_error(run(*args), code=2)
        assert needle in error, (args, error)
    assert list(tmp_path.iterdir()) == []


def test_every_command_gives_usage_errors_as_one_line() -> None:
    """Every command and group in the tree (the sync commands are defined in
    their own module) is of the one-line usage error classes."""
    from handshake_storage.cli import main
    from handshake_storage.console import OneLineCommand, OneLineGroup

    def walk(command, path):
        yield path, command
        for name, sub in getattr(command, "commands", {}).items():
            yield from walk(sub, (*path, name))

    found = dict(walk(main, ("handshake-storage",)))
    assert ("handshake-storage", "ledger", "reidentify") in found
    for path, command in found.items():
        assert isinstance(command, OneLineCommand | OneLineGroup), " ".join(path)


def test_failures_exit_1_and_success_exits_0(databases):
    url = databases.url(migrated=True)
    assert run("--database-url", url, "status").exit_code == 0
    assert "beyond the latest" in one_line_error(run("--database-url", url, "migrate", "--to", "9"))
    unreachable = "postgresql://u@127.0.0.1:1/x?connect_timeout=2"
    assert "127.0.0.1" in one_line_error(run("--database-url", unreachable, "status"))


# -- status --------------------------------------------------------------------------------


def test_status_json_schema_and_check(databases, backend):
    url = databases.url()
    open_database(url).ping()  # exists, unmigrated
    doc = run("--database-url", url, "status", "--json")
    assert doc.exit_code == 0, doc
    status = doc.json()
    assert status["ok"] is True
    assert (status["database"], status["backend"]) == (redact(url), backend)
    assert (status["version"], status["latest"], status["pending"]) == (0, LATEST, LATEST)
    assert [m["state"] for m in status["migrations"]] == ["pending"] * LATEST
    assert isinstance(status["server"], dict)

    checked = run("--database-url", url, "status", "--check")
    error = one_line_error(checked)
    assert f"{LATEST} migration(s) pending" in error and "handshake-storage migrate" in error
    assert checked.stdout.splitlines()[1] == f"version: 0 (latest known: {LATEST})"
    checked_json = run("--database-url", url, "status", "--check", "--json")
    assert checked_json.exit_code == 1
    body = checked_json.json()
    assert body["ok"] is False and body["exit_code"] == 1 and body["pending"] == LATEST

    ok(run("--database-url", url, "migrate", "--to", "1"))
    assert run("--database-url", url, "status", "--check").exit_code == 1
    ok(run("--database-url", url, "migrate"))
    assert ok(run("--database-url", url, "status", "--check"))[1] == (
        f"version: {LATEST} (latest known: {LATEST})"
    )
    status = run("--database-url", url, "status", "--check", "--json").json()
    assert (status["ok"], status["version"], status["pending"]) == (True, LATEST, 0)
    recorded = {r.version: r for r in open_database(url).migration_status()}
    for entry, m in zip(status["migrations"], SHIPPED, strict=True):
        assert entry == {
            "version": m.version,
            "description": m.description,
            "state": "applied",
            "file_checksum": m.checksum,
            "db_checksum": m.checksum,
            "applied_at": recorded[m.version].applied_at.isoformat(),
            "execution_ms": recorded[m.version].execution_ms,
        }
        assert datetime.fromisoformat(entry["applied_at"]).utcoffset() == timedelta(0)


# -- history --------------------------------------------------------------------------------


def test_history_shows_every_apply_rollback_and_accepted_checksum(databases, backend):
    url = databases.url()
    db = open_database(url)
    db.ping()
    assert ok(run("--database-url", url, "history"))[1:] == [
        "no migration has been applied or rolled back"
    ]
    assert run("--database-url", url, "history", "--json").json()["entries"] == []
    ok(run("--database-url", url, "migrate"))
    ok(run("--database-url", url, "rollback", "--to", "1"))
    ok(run("--database-url", url, "accept-checksum", "1", "--reason", "nothing changed"))

    entries = run("--database-url", url, "history", "--json").json()["entries"]
    expected = [(m.version, "up") for m in SHIPPED] + [
        (m.version, "down") for m in reversed(SHIPPED[1:])
    ]
    assert [(e["version"], e["action"]) for e in entries] == expected
    ups = {m.version: m.checksum for m in SHIPPED}
    for e in entries:
        assert e["checksum"] == ups[e["version"]]
        assert e["reason"] is None and e["previous_checksum"] is None
        assert datetime.fromisoformat(e["at"]).utcoffset() == timedelta(0)
    times = [datetime.fromisoformat(e["at"]) for e in entries]
    assert times == sorted(times)

    lines = ok(run("--database-url", url, "history"))
    assert lines[0] == f"database: {redact(url)}"
    assert lines[1].split() == ["AT", "VERSION", "ACTION", "CHECKSUM", "REASON"]
    rows = lines[2:]
    assert len(rows) == len(expected)
    for line, (version, action) in zip(rows, expected, strict=True):
        match = re.fullmatch(r"(\S+ \S+) +(\d{4}) +(\S+) +([0-9a-f]{12})", line)
        assert match, line
        assert (int(match[2]), match[3], match[4]) == (version, action, ups[version][:12])

    # An accepted checksum (here: the file of an older wording) is in the log with its reason.
    from dataclasses import replace

    from handshake_storage.migrator import Migrator

    older_text = SHIPPED[0].up_sql + "\n-- older wording\n"
    older = replace(SHIPPED[0], up_sql=older_text, checksum=checksum(older_text))
    Migrator(db._adapter, [older, *SHIPPED[1:]]).accept_checksum(1, "older wording")
    ok(run("--database-url", url, "accept-checksum", "1", "--reason", "restored the file"))
    last = run("--database-url", url, "history", "--json").json()["entries"][-1]
    assert (last["action"], last["reason"]) == ("accept-checksum", "restored the file")
    assert (last["previous_checksum"], last["checksum"]) == (older.checksum, SHIPPED[0].checksum)
    assert ok(run("--database-url", url, "history"))[-1].endswith(" restored the file")
    db.close()


# -- read-only commands never create a database ---------------------------------------------


def test_read_only_commands_never_create_a_missing_sqlite_file(tmp_path):
    path = tmp_path / "typo.db"
    url = f"sqlite:///{path}"
    for args in (
        ("status",),
        ("status", "--json"),
        ("history",),
        ("indexes", "list"),
        ("indexes", "verify"),
        ("indexes", "rebuild"),
        ("check",),
        ("rollback", "--to", "0"),
        ("accept-checksum", "1", "--reason", "r"),
        ("prune", "--dry-run"),
    ):
        result = run("--database-url", url, *args)
        error = one_line_error(result)
        assert f"{path}: no such file" in error, (args, error)
        assert list(tmp_path.iterdir()) == [], args
    # the default embedded file too
    for args in (("status",), ("history",), ("indexes", "list")):
        assert "handshake does not exist" in one_line_error(run(*args))
    assert not (tmp_path / "xdg-data").exists()
    # dry runs plan against nothing, and create nothing either
    assert ok(run("--database-url", url, "migrate", "--dry-run"))[0].startswith("plan: apply")
    assert list(tmp_path.iterdir()) == []


# -- indexes --------------------------------------------------------------------------------


def test_indexes_list_reflects_the_database_version(databases):
    url = databases.url()
    ok(run("--database-url", url, "migrate", "--to", "1"))
    listed = run("--database-url", url, "indexes", "list", "--json").json()
    assert listed["version"] == 1
    names = [o["name"] for o in listed["objects"]]
    assert names == [o.name for o in registry(1)]
    assert "block_terms" not in names
    assert all(o["present"] for o in listed["objects"])
    lines = ok(run("--database-url", url, "indexes", "list"))
    assert lines[0] == f"database: {redact(url)} (version 1)"
    assert [line.split()[0] for line in lines[2:]] == names

    ok(run("--database-url", url, "migrate"))
    listed = run("--database-url", url, "indexes", "list", "--json").json()
    assert listed["version"] == LATEST
    assert [o["name"] for o in listed["objects"]] == [o.name for o in registry()]
    assert {o["kind"] for o in listed["objects"]} == {"index", "derived", "fulltext"}

    db = open_database(url)
    with db._adapter.transaction() as s:
        s.execute("DROP INDEX idx_ai_jobs_trace")
    missing = run("--database-url", url, "indexes", "list", "--json").json()["objects"]
    assert [o["name"] for o in missing if not o["present"]] == ["idx_ai_jobs_trace"]
    listing = "\n".join(ok(run("--database-url", url, "indexes", "list")))
    assert re.search(r"^idx_ai_jobs_trace +index +ai_jobs +MISSING ", listing, re.M)
    db.close()


def test_indexes_list_refuses_a_bad_url():
    assert "unsupported database URL scheme" in one_line_error(
        run("--database-url", "mysql://nothing", "indexes", "list"), code=2
    )


def test_indexes_verify_reports_without_narrating(databases):
    url = databases.url(migrated=True)
    result = run("--database-url", url, "indexes", "verify")
    lines = ok(result)  # nothing on stderr: no "rebuilding ..." lines
    names = [o.name for o in registry()]
    assert lines[0] == f"database: {redact(url)} (version {LATEST})"
    assert sorted(line.split()[1].rstrip(":") for line in lines[1:-1]) == sorted(names)
    assert all(line.startswith("ok ") for line in lines[1:-1])
    assert lines[-1] == f"verified {len(names)} object(s): each equals a rebuild"
    doc = run("--database-url", url, "indexes", "verify", "--json")
    assert doc.stderr == ""
    body = doc.json()
    assert (body["ok"], body["differ"], body["version"]) == (True, 0, LATEST)
    assert sorted(o["name"] for o in body["objects"]) == sorted(names)

    db = open_database(url)
    with db._adapter.transaction() as s:
        s.execute("DROP INDEX idx_ai_jobs_trace")
    db.close()
    failed = run("--database-url", url, "indexes", "verify", "--json")
    assert failed.exit_code == 1
    body = failed.json()
    assert (body["ok"], body["differ"]) == (False, 1)
    assert [o["name"] for o in body["objects"] if not o["equal"]] == ["idx_ai_jobs_trace"]
    assert failed.stderr == "error: 1 object(s) differ from a rebuild\n"


# -- check and lint -------------------------------------------------------------------------


def test_check_and_lint_json(databases, tmp_path):
    url = databases.url(migrated=True)
    body = run("--database-url", url, "check", "--json").json()
    assert body["ok"] is True and body["problems"] == 0
    assert [c["name"] for c in body["checks"]] == [
        "lint",
        "import boundary",
        "checksum drift",
        "index classification",
    ]
    assert all(c["ok"] and c["problems"] == [] for c in body["checks"])
    static = run("check", "--static-only", "--json").json()
    assert static["database"] is None and len(static["checks"]) == 2

    db = open_database(url)
    with db._adapter.transaction() as s:
        s.execute("CREATE INDEX handmade ON blocks (kind)")
    db.close()
    failed = run("--database-url", url, "check", "--json")
    assert failed.exit_code == 1
    body = failed.json()
    assert (body["ok"], body["problems"]) == (False, 1)
    problem = next(c for c in body["checks"] if not c["ok"])
    assert problem["name"] == "index classification" and "handmade" in problem["problems"][0]

    assert run("lint", "--json").json() == {"ok": True, "findings": []}
    bad = tmp_path / "0001_bad.sql"
    bad.write_text("CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT);\n")
    (tmp_path / "0001_bad.down.sql").write_text("DROP TABLE t;\n")
    linted = run("lint", str(bad), "--json")
    assert linted.exit_code == 1
    body = linted.json()
    assert body["ok"] is False and body["findings"]
    assert set(body["findings"][0]) == {"path", "line", "rule", "message", "fix"}
    assert any("AUTOINCREMENT" in f["message"] for f in body["findings"])


# -- completion --------------------------------------------------------------------------


def test_shell_completion_is_printed_and_completes_commands():
    for shell, needle in (
        ("bash", "complete -o nosort -F"),
        ("zsh", "#compdef handshake-storage"),
        ("fish", "complete --no-files --command handshake-storage"),
    ):
        script = run("completion", shell)
        assert script.exit_code == 0 and needle in script.stdout, (shell, script)
    done = run(
        env={
            "_HANDSHAKE_STORAGE_COMPLETE": "bash_complete",
            "COMP_WORDS": "handshake-storage st",
            "COMP_CWORD": "1",
        }
    )
    assert done.exit_code == 0
    assert "plain,status" in done.stdout.splitlines()
    done = run(
        env={
            "_HANDSHAKE_STORAGE_COMPLETE": "bash_complete",
            "COMP_WORDS": "handshake-storage indexes ",
            "COMP_CWORD": "2",
        }
    )
    assert {"plain,list", "plain,rebuild", "plain,verify"} <= set(done.stdout.splitlines())
