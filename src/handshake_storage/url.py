"""Database URLs: parsing, validation and redaction.

A URL is the one place a secret enters the library, so the redacted form is
computed once here and is what every message, log record and repr uses.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from platformdirs import user_data_dir

from .errors import ValidationError

ENV_VAR = "HANDSHAKE_DATABASE_URL"
REDACTED = "***"
_SECRET_KEYS = frozenset({"password", "passwd", "sslpassword"})
_SCHEMES = {"sqlite": "sqlite", "postgresql": "postgresql", "postgres": "postgresql"}


def default_sqlite_path() -> Path:
    """The embedded database a laptop uses when nothing else is configured."""
    return Path(user_data_dir("handshake", appauthor=False)) / "handshake.db"


def default_url() -> str:
    return os.environ.get(ENV_VAR) or f"sqlite:///{default_sqlite_path()}"


@dataclass(frozen=True)
class DatabaseURL:
    """A parsed database URL. ``repr`` and ``str`` never show the password."""

    backend: str  # "sqlite" | "postgresql"
    raw: str = field(repr=False)
    redacted: str
    path: Path | None = None  # sqlite only
    params: dict[str, str] = field(default_factory=dict, repr=False)
    secrets: tuple[str, ...] = field(default=(), repr=False)

    def __str__(self) -> str:
        return self.redacted

    def __repr__(self) -> str:
        return f"DatabaseURL({self.redacted!r})"

    def scrub(self, text: str) -> str:
        """Remove every secret of this URL from ``text`` (e.g. a driver message)."""
        return scrub(text, self.secrets)


def scrub(text: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return text


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SECRET_PARAM = re.compile(r"((?:^|[?&])(?:password|passwd|sslpassword)=)[^&#]*", re.IGNORECASE)


#: ``StorageError.code`` of every refused URL (a usage error for the CLI).
URL_ERROR = "HSK-422-URL"


def url_error(message: str) -> ValidationError:
    """The error for a URL that cannot work, saying what is wrong with it."""
    return ValidationError(message, code=URL_ERROR)


def parse_url(url: str) -> DatabaseURL:
    """Parse and validate ``url``; raise :class:`ValidationError` (code
    :data:`URL_ERROR`) naming what is malformed, never the password."""
    if not isinstance(url, str) or not url.strip():
        raise url_error("database URL must be a non-empty string")
    if _CONTROL.search(url):
        raise url_error("database URL contains control characters")
    try:
        parts = urlsplit(url)
    except ValueError:
        parts = None
    if parts is None:
        # Raised outside the handler: urllib's message quotes the whole
        # network location, password included, and must not be chained.
        raise url_error(
            f"malformed database URL {redact(url)}: an unmatched '[' or ']' (an IPv6 "
            "address is written [::1]; in a user name or password write %5B and %5D)"
        )
    if not parts.scheme:
        raise url_error(
            f"the database URL {redact(url)} has no scheme: "
            "write sqlite:///path/to/file.db or postgresql://user@host/dbname"
        )
    backend = _SCHEMES.get(parts.scheme.lower())
    if backend is None:
        raise url_error(
            f"unsupported database URL scheme {parts.scheme!r}: "
            "use sqlite:///path/to/file.db or postgresql://..."
        )
    secrets = _secrets_of(parts, url)
    redacted = redact(url)
    params = dict(parse_qsl(parts.query, keep_blank_values=True))
    if backend == "sqlite":
        if parts.netloc:
            raise url_error(
                f"a sqlite URL has no host: write sqlite:///relative.db or "
                f"sqlite:////absolute.db, not {redacted}"
            )
        raw_path = unquote(parts.path)
        path_text = raw_path[1:] if raw_path.startswith("/") else raw_path
        if not path_text or path_text == ":memory:":
            raise url_error("a sqlite URL must name a database file")
        return DatabaseURL(
            backend, url, redacted, path=Path(path_text), params=params, secrets=secrets
        )
    _check_postgresql(url, parts, params, redacted)
    return DatabaseURL(backend, url, redacted, params=params, secrets=secrets)


_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")


def _check_postgresql(url: str, parts: Any, params: dict[str, str], redacted: str) -> None:
    """What urllib accepts but libpq would read differently (connecting to
    another host, or quoting part of a password in its error) or refuse
    only when connecting. Messages name the problem, never the password."""
    netloc = parts.netloc
    rest = url.partition("://")[2]
    delimiters = [i for i in (rest.find(c) for c in "/?#") if i >= 0]
    cut = min(delimiters, default=len(rest))
    at = rest.find("@")
    colon = rest.find(":")
    after_port = 0 <= colon < cut and rest[colon + 1 : cut].isdigit()
    if "@" not in netloc and at > cut and "=" not in rest[:at] and not after_port:
        char = rest[cut]
        raise url_error(
            f"the password (or user name) in the database URL {redacted} contains an "
            f"unencoded {char!r}: percent-encode it ({char} as {quote(char, safe='')})"
        )
    userinfo, _, hostinfo = netloc.rpartition("@")
    if "@" in userinfo:
        raise url_error(
            f"the user name or password in the database URL {redacted} contains an "
            "unencoded '@': percent-encode it as %40"
        )
    if _PERCENT.search(userinfo):
        raise url_error(
            f"the user name or password in the database URL {redacted} contains a '%' "
            "that does not start a percent-encoded character (%XX): write a percent sign as %25"
        )
    ports = [_port_of(host) for host in hostinfo.split(",")] if hostinfo else []
    if params.get("port"):
        ports += params["port"].split(",")
    for port in ports:
        if port and not (port.isdigit() and 0 < int(port) < 65536):
            shown = f" {port}" if port.isdigit() else ""
            raise url_error(
                f"the port{shown} in the database URL {redacted} is not a number from 1 to 65535"
            )
    database = unquote(parts.path[1:]) if parts.path.startswith("/") else unquote(parts.path)
    if not database and not params.get("dbname") and not params.get("service"):
        raise url_error(
            f"the postgresql URL {redacted} names no database: write "
            "postgresql://user@host/DBNAME (or ?dbname=DBNAME)"
        )


def _port_of(host: str) -> str:
    """The port of one ``host[:port]`` of a network location ('' if none)."""
    if host.startswith("["):  # IPv6: [::1]:5432
        return host.partition("]")[2].removeprefix(":")
    return host.rpartition(":")[2] if ":" in host else ""


def _credentials(url: str) -> tuple[str, str, str] | None:
    """(prefix up to the user name, password, everything after the ``@``) of a
    URL with a password, or None.

    Drivers split a URL differently from ``urlsplit`` when an unencoded
    password holds ``/``, ``?``, ``#`` or ``@`` (``user:pa/ss@host``): the
    password then ends at the LAST ``@`` after ``//``, not where the network
    location seems to end, and a message may quote any piece of it.
    """
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return None
    userinfo, _, after = rest.rpartition("@")
    user, colon, password = userinfo.partition(":")
    if not colon or not password:
        return None
    return f"{scheme}://{user}", password, after


def _pieces(secret: str) -> list[str]:
    """The secret and the parts a parser may cut it into at URL delimiters."""
    found = [secret, unquote(secret), quote(unquote(secret), safe="")]
    found += [p for p in re.split(r"[/?#@:&=]", secret) if len(p) >= 3]
    return found


def _secrets_of(parts: object, url: str = "") -> tuple[str, ...]:
    found: list[str] = []
    password = getattr(parts, "password", None)
    if password:
        found += _pieces(password)
    credentials = _credentials(url)
    if credentials:
        found += _pieces(credentials[1])
    fragment = getattr(parts, "fragment", "")
    pairs = parse_qsl(getattr(parts, "query", ""), keep_blank_values=True)
    for i, (key, value) in enumerate(pairs):
        if key.lower() in _SECRET_KEYS and value:
            found += _pieces(value)
            if fragment and i == len(pairs) - 1:  # "password=a#b": the "#b" belongs to it
                found += _pieces(f"{value}#{fragment}")
    # Longest first so a secret that contains another is replaced whole.
    return tuple(sorted({f for f in found if f}, key=len, reverse=True))


def redact(url: str) -> str:
    """``url`` with any password replaced by ``***``; safe to print."""
    try:
        parts = urlsplit(url)
    except ValueError:  # unmatched brackets: mask what may be a password, by hand
        credentials = _credentials(url)
        shown = f"{credentials[0]}:{REDACTED}@{credentials[2]}" if credentials else url
        return _SECRET_PARAM.sub(rf"\g<1>{REDACTED}", shown)
    redacted = url
    netloc = parts.netloc
    credentials = _credentials(url)
    if "@" in netloc:
        userinfo, _, hostinfo = netloc.rpartition("@")
        if ":" in userinfo:
            user = userinfo.split(":", 1)[0]
            redacted = redacted.replace(netloc, f"{user}:{REDACTED}@{hostinfo}", 1)
    elif credentials:  # an unencoded password with a delimiter in it
        prefix, _, after = credentials
        redacted = f"{prefix}:{REDACTED}@{after}"
    if parts.query:
        pairs = parse_qsl(parts.query, keep_blank_values=True)
        if any(k.lower() in _SECRET_KEYS for k, _ in pairs):
            query = "&".join(
                f"{k}={REDACTED if k.lower() in _SECRET_KEYS else quote(v, safe='/:')}"
                for k, v in pairs
            )
            redacted = redacted.replace(parts.query, query, 1)
            if parts.fragment and pairs[-1][0].lower() in _SECRET_KEYS:
                redacted = redacted.replace(f"#{parts.fragment}", "", 1)
    return redacted
