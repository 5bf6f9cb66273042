"""Database URLs: parsing, validation and redaction.

A URL is the one place a secret enters the library, so the redacted form is
computed once here and is what every message, log record and repr uses.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
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


def parse_url(url: str) -> DatabaseURL:
    """Parse and validate ``url``; raise :class:`ValidationError` if unusable."""
    if not isinstance(url, str) or not url:
        raise ValidationError("database URL must be a non-empty string")
    if _CONTROL.search(url):
        raise ValidationError("database URL contains control characters")
    try:
        parts = urlsplit(url)
    except ValueError:
        parts = None
    if parts is None:
        # Raised outside the handler: urllib's message quotes the whole
        # network location, password included, and must not be chained.
        raise ValidationError(
            f"malformed database URL: {redact(url)} (a character in it is not allowed "
            "there; percent-encode the user name and password)"
        )
    backend = _SCHEMES.get(parts.scheme.lower())
    if backend is None:
        raise ValidationError(
            f"unsupported database URL scheme {parts.scheme!r}: "
            "use sqlite:///path/to/file.db or postgresql://..."
        )
    secrets = _secrets_of(parts, url)
    redacted = redact(url)
    params = dict(parse_qsl(parts.query, keep_blank_values=True))
    if backend == "sqlite":
        if parts.netloc:
            raise ValidationError(
                f"a sqlite URL has no host: write sqlite:///relative.db or "
                f"sqlite:////absolute.db, not {redacted}"
            )
        raw_path = unquote(parts.path)
        path_text = raw_path[1:] if raw_path.startswith("/") else raw_path
        if not path_text or path_text == ":memory:":
            raise ValidationError("a sqlite URL must name a database file")
        return DatabaseURL(
            backend, url, redacted, path=Path(path_text), params=params, secrets=secrets
        )
    if not parts.path.strip("/") and not parts.netloc and "host" not in params:
        raise ValidationError(f"a postgresql URL needs a host or a database: {redacted}")
    return DatabaseURL(backend, url, redacted, params=params, secrets=secrets)


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
    except ValueError:
        return "<unparseable URL>"
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
