"""No password in any part of a raised error: message, args, repr, notes,
and the same for EVERY exception reachable through ``__cause__`` and
``__context__`` (a ``raise ... from None`` still keeps ``__context__``), nor
in a warning or a log record.

Before: the ValidationError for a password with a fullwidth number sign (U+FF03) was raised
``from`` urllib's ValueError, whose text holds the whole password; an
unencoded ``%`` left the password in psycopg's exception kept as
``__context__``.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

import pytest

from handshake_storage import StorageError, open_database
from handshake_storage.url import parse_url

CORE = "Sekr3tCore"


def chain(exc: BaseException) -> list[BaseException]:
    """Every exception reachable from ``exc`` (causes, contexts, groups)."""
    found: list[BaseException] = []
    todo = [exc]
    while todo:
        current = todo.pop()
        if any(current is f for f in found):
            continue
        found.append(current)
        for nxt in (current.__cause__, current.__context__):
            if nxt is not None:
                todo.append(nxt)
        todo += list(getattr(current, "exceptions", ()))
    return found


def texts(exc: BaseException) -> list[str]:
    out = []
    for e in chain(exc):
        out += [str(e), repr(e), repr(e.args), *map(str, getattr(e, "__notes__", ()))]
    return out


PASSWORDS = {
    "fullwidth number sign": f"pa\uff03{CORE}\uff03ss",
    "unencoded percent": f"pa%zz{CORE}%",
    "percent then hex": f"%41{CORE}%4",
    "fullwidth slash": f"{CORE}\uff0fx",
    "fullwidth at": f"{CORE}\uff20x",
}


@pytest.mark.parametrize("password", PASSWORDS.values(), ids=PASSWORDS.keys())
def test_no_password_anywhere_in_an_error_chain_a_warning_or_a_log(password, caplog):
    url = f"postgresql://someone:{password}@127.0.0.1:1/db"
    caplog.set_level(logging.DEBUG)
    raised: list[BaseException] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for attempt in (
            lambda: parse_url(url),
            lambda: open_database(url, connect_timeout=2).ping(),
        ):
            try:
                attempt()
            except StorageError as exc:
                raised.append(exc)
    assert raised, "a URL that cannot work must raise"
    for exc in raised:
        for text in texts(exc):
            assert CORE not in text, f"the password shows in the chain: {text}"
    shown: list[Any] = [str(w.message) for w in caught] + [r.getMessage() for r in caplog.records]
    for text in shown:
        assert CORE not in text, f"the password shows in a warning or log: {text}"
