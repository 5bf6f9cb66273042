"""A database password never shows: not in an exception, a log record, CLI output or a repr.

The server is one of the tests' own (``OwnPostgres``) that checks passwords
(SCRAM) for the role used here, so a wrong password is a real
authentication failure. Every channel is checked for every form of each
password: as given, URL-encoded, and a distinctive core of it.

``tests/test_cli.py`` already keeps passwords out of the migration
commands' output against a trusting server; here the password is checked
for real, and every other command, every error path, tracebacks, chained
exceptions, log records (every logger, psycopg's included, at DEBUG) and
reprs are covered too.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from click.testing import CliRunner
from reliability_support import OwnPostgres, child_env, own_postgres, stop_own_postgres

from handshake_storage import (
    NewWorkspace,
    StorageError,
    ValidationError,
    WriteContext,
    open_database,
)
from handshake_storage.cli import main as cli_main
from handshake_storage.transfer import copy_database
from handshake_storage.url import parse_url

ROLE = "hs_secret_owner"
#: The right password, and a wrong one: neither may ever be shown. Both hold
#: URL delimiters, so they only work encoded (and leak in odd ways if not).
PASSWORD = "Pw-QX7core_9/?#@:%x y"
WRONG = "Wr0ng-ZK4core/#?@x"
CORES = ("QX7core", "ZK4core")


def forms(secret: str) -> list[str]:
    return [secret, quote(secret, safe=""), quote(secret)]


SECRET_FORMS = [*forms(PASSWORD), *forms(WRONG), *CORES]


def assert_clean(text: str, where: str) -> None:
    for form in SECRET_FORMS:
        assert form not in text, f"{where} shows a password: {text[:2000]}"


def exception_texts(exc: BaseException) -> str:
    """Everything an exception can show: str, repr, args, the formatted
    traceback, and the same for every chained cause or context."""
    parts = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        parts += [str(current), repr(current), repr(current.args)]
        parts.append("".join(traceback.format_exception(current)))
        current = current.__cause__ or current.__context__
    return "\n".join(parts)


@pytest.fixture(scope="session")
def secret_server() -> Iterator[OwnPostgres]:
    server = own_postgres()
    server.admin(f'DROP ROLE IF EXISTS "{ROLE}"')
    literal = PASSWORD.replace("'", "''").replace("%", "%%")  # "%" is psycopg's placeholder
    server.admin(f"CREATE ROLE \"{ROLE}\" LOGIN CREATEDB PASSWORD '{literal}'")
    yield server
    stop_own_postgres()


@pytest.fixture
def secret_urls(secret_server: OwnPostgres) -> Iterator[dict[str, str]]:
    name = secret_server.create_database(owner=ROLE)
    empty = secret_server.create_database(owner=ROLE)
    good = secret_server.url(name, ROLE, PASSWORD)
    query_form = (
        f"postgresql://{ROLE}@127.0.0.1:{secret_server.port}/{name}"
        f"?password={quote(PASSWORD, safe='')}"
    )
    yield {
        "good": good,
        "good-query": query_form,
        "empty-target": secret_server.url(empty, ROLE, PASSWORD),
        "wrong": secret_server.url(name, ROLE, WRONG),
        "wrong-query": f"postgresql://{ROLE}@127.0.0.1:{secret_server.port}/{name}"
        f"?password={quote(WRONG, safe='')}",
        "no-such-db": secret_server.url("no_such_database", ROLE, PASSWORD),
        "closed-port": f"postgresql://{ROLE}:{quote(PASSWORD, safe='')}@127.0.0.1:1/x",
        "unencoded": f"postgresql://{ROLE}:{WRONG}@127.0.0.1:1/x",
        "bad-port": f"postgresql://{ROLE}:{quote(PASSWORD, safe='')}@127.0.0.1:notaport/x",
        "bad-param": secret_server.url(name, ROLE, PASSWORD) + "?no_such_param=1",
        "bad-sslmode": secret_server.url(name, ROLE, PASSWORD) + "?sslmode=bogus",
    }
    for db_name in (name, empty):
        secret_server.admin(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')


def test_the_server_really_checks_the_password(secret_urls):
    with open_database(secret_urls["good"]) as db:
        db.ping()
    with pytest.raises(StorageError, match="password authentication failed"):
        open_database(secret_urls["wrong"]).ping()


def failing_calls(urls: dict[str, str], tmp_path: Path) -> list[tuple[str, Any]]:
    """(label, call) pairs that must each raise a StorageError."""
    ctx = WriteContext.system()

    def duplicate() -> None:
        with open_database(urls["good"]) as db:
            db.run_migrations()
            db.create_workspace(ctx, NewWorkspace("a", id="dup"))
            db.create_workspace(ctx, NewWorkspace("b", id="dup"))

    def not_found() -> None:
        with open_database(urls["good-query"]) as db:
            db.get_document("missing")

    def migration() -> None:
        with open_database(urls["good"]) as db:
            db.run_migrations(99)

    def timeout() -> None:
        with (
            open_database(urls["good"], statement_timeout=0.01) as db,
            db._adapter.transaction() as session,
        ):
            session.execute("SELECT pg_sleep(1)")

    def copy_into_non_empty() -> None:
        source = tmp_path / "source.db"
        with open_database(f"sqlite:///{source}") as db:
            db.run_migrations()
        with open_database(urls["good"]) as db:
            db.run_migrations()
        copy_database(f"sqlite:///{source}", urls["good"])

    calls: list[tuple[str, Any]] = [
        (label, lambda url=urls[label]: open_database(url).ping())
        for label in (
            "wrong",
            "wrong-query",
            "no-such-db",
            "closed-port",
            "unencoded",
            "bad-port",
            "bad-param",
            "bad-sslmode",
        )
    ]
    calls += [
        ("migrate with a wrong password", lambda: open_database(urls["wrong"]).run_migrations()),
        ("copy from a wrong password", lambda: copy_database(urls["wrong"], "sqlite:///x")),
        (
            "copy to a wrong password",
            lambda: copy_database(f"sqlite:///{tmp_path / 'nothing.db'}", urls["wrong-query"]),
        ),
        ("duplicate key", duplicate),
        ("not found", not_found),
        ("migration error", migration),
        ("statement timeout", timeout),
        ("copy into a non-empty target", copy_into_non_empty),
    ]
    return calls


def test_no_exception_shows_the_password(secret_urls, tmp_path):
    for label, call in failing_calls(secret_urls, tmp_path):
        with pytest.raises(StorageError) as caught:
            call()
        assert_clean(exception_texts(caught.value), f"the {label!r} error")


def test_no_log_record_shows_the_password(secret_urls, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)  # every logger: the package's, psycopg's, the root
    for name in ("psycopg", "psycopg.pool", "handshake_storage"):
        caplog.set_level(logging.DEBUG, logger=name)
    app = logging.getLogger("reliability.app")
    for label, call in failing_calls(secret_urls, tmp_path):
        try:
            call()
        except StorageError as exc:  # what an application does with the error
            app.exception("%s failed: %s", label, exc)
            app.warning("database %s: %r", label, exc)
    with open_database(secret_urls["good"]) as db:
        db.run_migrations()
        app.info("opened %s (%r), %s", db, db, db.describe())
    assert len(caplog.records) >= 2 * len(failing_calls(secret_urls, tmp_path))
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    for record in caplog.records:
        assert_clean(formatter.format(record), f"a log record of {record.name}")
        assert_clean(repr(record.args), f"the arguments of a log record of {record.name}")


def test_no_repr_shows_the_password(secret_urls):
    for label in ("unencoded", "bad-port"):  # refused by the parser, saying why
        with pytest.raises(ValidationError) as refused:
            parse_url(secret_urls[label])
        assert "***" in str(refused.value)
        assert_clean(exception_texts(refused.value), f"the refusal of {label!r}")
    for label in ("bad-param",):  # refused when opened: the URL alone
        parsed = parse_url(secret_urls[label])
        assert "***" in parsed.redacted
        for text in (repr(parsed), str(parsed), parsed.redacted):
            assert_clean(text, f"a repr for {label!r}")
    for label in ("good", "good-query", "wrong", "bad-sslmode"):
        url = secret_urls[label]
        db = open_database(url)
        parsed = parse_url(url)
        shown = [repr(db), str(db), db.url, repr(parsed), str(parsed), parsed.redacted]
        shown.append(repr(db._adapter.url))
        if label.startswith("good"):
            shown.append(repr(db.describe()))
            shown.append(repr(db.migration_status()))
        assert "***" in db.url, (label, db.url)
        for text in shown:
            assert_clean(text, f"a repr for {label!r}")
        db.close()


def test_copy_reports_show_no_password(secret_urls, tmp_path):
    source = f"sqlite:///{tmp_path / 'source.db'}"
    with open_database(source) as db:
        db.run_migrations()
        db.create_workspace(WriteContext.system(), NewWorkspace("copied", id="ws"))
    report = copy_database(source, secret_urls["empty-target"])
    assert_clean(repr(report), "a copy report")
    assert "***" in report.target
    back = copy_database(secret_urls["empty-target"], f"sqlite:///{tmp_path / 'back.db'}")
    assert_clean(repr(back), "a copy report")
    assert "***" in back.source


def cli(*args: str) -> Any:
    return CliRunner().invoke(cli_main, list(args), catch_exceptions=False)


def test_no_cli_output_shows_the_password(secret_urls, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    good, target = secret_urls["good"], secret_urls["empty-target"]
    sqlite_source = f"sqlite:///{tmp_path / 'cli-source.db'}"
    with open_database(sqlite_source) as db:  # copied, so the target then holds rows
        db.run_migrations()
        db.create_workspace(WriteContext.system(), NewWorkspace("copied"))
    succeeding = [
        ("--database-url", good, "migrate", "--dry-run"),
        ("--database-url", good, "migrate"),
        ("--database-url", good, "status"),
        ("--database-url", good, "indexes", "list"),
        ("--database-url", good, "indexes", "verify"),
        ("--database-url", good, "indexes", "rebuild"),
        ("--database-url", good, "check"),
        ("--database-url", good, "prune", "--dry-run"),
        ("--database-url", secret_urls["good-query"], "status"),
        ("--database-url", sqlite_source, "migrate"),
        ("copy", "--from", sqlite_source, "--to", target),
        ("copy", "--from", target, "--to", f"sqlite:///{tmp_path / 'cli-back.db'}"),
    ]
    failing = [
        ("--database-url", secret_urls["wrong"], "status"),
        ("--database-url", secret_urls["wrong-query"], "migrate"),
        ("--database-url", secret_urls["closed-port"], "indexes", "verify"),
        ("--database-url", secret_urls["no-such-db"], "prune"),
        ("--database-url", good, "migrate", "--to", "99"),
        ("--database-url", good, "rollback", "--to", "9"),
        ("--database-url", good, "indexes", "rebuild", "nope"),
        ("copy", "--from", sqlite_source, "--to", target),  # not empty any more
        ("copy", "--from", secret_urls["wrong"], "--to", f"sqlite:///{tmp_path / 'n.db'}"),
    ]
    malformed = [  # usage errors: the URL says what is wrong with it
        ("--database-url", secret_urls["unencoded"], "migrate"),
        ("--database-url", secret_urls["bad-port"], "status"),
        ("--database-url", secret_urls["bad-param"], "check"),
        ("--database-url", secret_urls["bad-sslmode"], "status"),
    ]
    for code, commands in ((0, succeeding), (1, failing), (2, malformed)):
        for args in commands:
            result = cli(*args)
            assert result.exit_code == code, (args, result.output)
            assert_clean(result.stdout + result.stderr, f"the output of {args[-2:]}")
    # and the installed command, in a process of its own
    script = Path(sys.executable).with_name("handshake-storage")
    command = (
        [str(script)]
        if script.exists()
        else [sys.executable, "-c", "from handshake_storage.cli import main; main()"]
    )
    for url, code in ((good, 0), (secret_urls["wrong"], 1), (secret_urls["unencoded"], 2)):
        done = subprocess.run(
            [*command, "--database-url", url, "status"],
            capture_output=True,
            text=True,
            timeout=60,
            env=child_env(),
        )
        assert done.returncode == code, done
        assert_clean(done.stdout + done.stderr, "the installed command")
