"""Why a database cannot be used, told apart, through the installed script.

A wrong PostgreSQL password says *authentication failed*, naming user and
server (``AuthenticationError``, exit 1); a server that cannot be reached
(connection refused, unknown host, no answer) says *cannot reach*
(``BackendUnavailableError``, exit 1); a malformed URL says what is malformed
(exit 2, code ``HSK-422-URL``), on both schemes. No message shows the
password. Authentication runs against a server of the tests' own that really
checks passwords (SCRAM), see ``reliability_support.OwnPostgres``.
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from cli_support import one_line_error, run

from handshake_storage import (
    AuthenticationError,
    BackendUnavailableError,
    ValidationError,
    open_database,
)
from handshake_storage.url import URL_ERROR, parse_url

sys.path.insert(0, str(Path(__file__).parents[1] / "reliability"))

from reliability_support import OwnPostgres, own_postgres, stop_own_postgres

ROLE = "hs_login_tester"
PASSWORD = "Corr3ct-Horse"
WRONG = "Wr0ng-Batt3ry"
SECRETS = (PASSWORD, WRONG, "S3cr3t-Pw")


def assert_no_password(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text and quote(secret, safe="") not in text, text


@pytest.fixture(scope="session")
def login_server() -> Iterator[OwnPostgres]:
    server = own_postgres()
    server.admin(f'DROP ROLE IF EXISTS "{ROLE}"')
    server.admin(f"CREATE ROLE \"{ROLE}\" LOGIN PASSWORD '{PASSWORD}'")
    yield server
    stop_own_postgres()


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts TCP connections and never answers (a frozen server)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield listener.getsockname()[1]


def status(url: str) -> tuple[str, str]:
    result = run("--database-url", url, "status")
    return one_line_error(result, code=1), result.stdout + result.stderr


def test_a_wrong_password_says_authentication_failed_naming_user_and_server(login_server):
    host = f"127.0.0.1:{login_server.port}"
    for user, password in ((ROLE, WRONG), ("hs_no_such_role", WRONG)):
        url = login_server.url("postgres", user, password)
        error, output = status(url)
        assert error.startswith("error: authentication failed: ")
        assert f'the PostgreSQL server at {host} refused user "{user}"' in error
        assert "check the user name and password" in error
        assert "unreachable" not in error and "cannot reach" not in error
        assert_no_password(output)
        with pytest.raises(AuthenticationError) as raised:
            open_database(url).ping()
        assert raised.value.code == "HSK-401-AUTHENTICATION"
        assert isinstance(raised.value, BackendUnavailableError)  # what callers caught before
        assert f"user={user}" not in str(raised.value)
    error, output = status(f"postgresql://{ROLE}@{host}/postgres")  # no password at all
    assert "authentication failed" in error
    assert "the server asks for a password and the URL gives none" in error
    with open_database(login_server.url("postgres", ROLE, PASSWORD)) as db:
        db.ping()  # the right password works: the failures above were the password's


def test_copy_reports_a_refused_login_on_either_side(login_server, tmp_path):
    wrong = login_server.url("postgres", ROLE, WRONG)
    source = f"sqlite:///{tmp_path / 'source.db'}"
    with open_database(source) as db:
        db.run_migrations()
    for args in (("--from", source, "--to", wrong), ("--from", wrong, "--to", source)):
        result = run("copy", *args)
        assert result.exit_code == 1
        error = result.stderr.splitlines()[-1]  # after the "copying A -> B" line
        assert error.startswith("error: ") and "Traceback" not in result.stderr
        assert f'refused user "{ROLE}"' in error and "authentication failed" in error
        assert_no_password(result.stdout + result.stderr)


def test_an_unreachable_server_is_told_apart_from_a_refused_login(login_server, silent_port):
    cases = {
        f"postgresql://u:S3cr3t-Pw@127.0.0.1:{free_port()}/db": "connection refused",
        "postgresql://u:S3cr3t-Pw@no-such-host.invalid/db": "unknown host name",
        "postgresql://u@/db?host=/nonexistent-socket-dir": "no server listens there",
    }
    for url, reason in cases.items():
        error, output = status(url)
        assert error.startswith("error: cannot reach the PostgreSQL server at "), error
        assert reason in error and "authentication" not in error
        assert_no_password(output)
        with pytest.raises(BackendUnavailableError) as raised:
            open_database(url).ping()
        assert not isinstance(raised.value, AuthenticationError)
    frozen = f"postgresql://u:S3cr3t-Pw@127.0.0.1:{silent_port}/db"
    with pytest.raises(BackendUnavailableError, match=r"no answer within 2s") as raised:
        open_database(frozen, connect_timeout=2).ping()
    assert f"at 127.0.0.1:{silent_port}: " in str(raised.value)
    missing = login_server.url("no_such_database", ROLE, PASSWORD)
    error, output = status(missing)
    assert 'has no database "no_such_database"' in error and "authentication" not in error
    assert_no_password(output)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again: nothing listens there


MALFORMED = {
    "mysql://u:S3cr3t-Pw@h/db": "unsupported database URL scheme 'mysql'",
    "localhost/handshake": "has no scheme",
    "postgresql://u:S3cr3t-Pw@h:notaport/db": "the port in the database URL",
    "postgresql://u:S3cr3t-Pw@h:99999/db": "the port 99999",
    "postgresql://u:S3cr3t-Pw@h": "names no database",
    "postgresql://u:S3cr3t-Pw@h/": "names no database",
    "postgresql://u:S3cr/3t-Pw@h/db": "contains an unencoded '/': percent-encode it (/ as %2F)",
    "postgresql://u:S3cr#3t-Pw@h/db": "contains an unencoded '#'",
    "postgresql://u:S3cr@3t-Pw@h/db": "contains an unencoded '@': percent-encode it as %40",
    "postgresql://u:S3cr%zz3t-Pw@h/db": "a '%' that does not start a percent-encoded character",
    "postgresql://u:S3cr3t-Pw@[::1/db": "an unmatched '[' or ']'",
    "sqlite://host/file.db": "a sqlite URL has no host",
    "sqlite:///": "a sqlite URL must name a database file",
}


@pytest.mark.parametrize("url", MALFORMED)
def test_a_malformed_url_says_what_is_malformed(url):
    result = run("--database-url", url, "status")
    error = one_line_error(result, code=2)
    assert MALFORMED[url] in error, error
    assert_no_password(result.stdout + result.stderr)
    assert "3t-Pw" not in error and "S3cr" not in error  # no piece of the password either
    with pytest.raises(ValidationError) as raised:
        parse_url(url)
    assert raised.value.code == URL_ERROR and str(raised.value) in error


def test_a_bad_option_value_found_when_connecting_is_a_usage_error_too(login_server):
    url = login_server.url("postgres", ROLE, PASSWORD) + "?sslmode=bogus"
    result = run("--database-url", url, "status")
    error = one_line_error(result, code=2)
    assert 'invalid sslmode value: "bogus"' in error and "malformed URL" in error
    assert_no_password(result.stdout + result.stderr)
    unknown = run("--database-url", url.replace("sslmode=bogus", "no_such_option=1"), "status")
    assert 'invalid URI query parameter: "no_such_option"' in one_line_error(unknown, code=2)
