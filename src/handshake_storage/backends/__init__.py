"""Backend adapters. Only modules in this package import database drivers."""

from __future__ import annotations

from ..errors import ValidationError
from ..url import DatabaseURL
from .base import Adapter, Options

#: SQLite's ``synchronous`` levels. Checked for every backend, so an option
#: value one backend refuses is refused by all (PostgreSQL ignores it).
SYNCHRONOUS_LEVELS = ("off", "normal", "full", "extra")


def create_adapter(url: DatabaseURL, options: Options) -> Adapter:
    """The adapter for ``url``'s backend, imported on first use."""
    if not isinstance(options.synchronous, str) or (
        options.synchronous.lower() not in SYNCHRONOUS_LEVELS
    ):
        raise ValidationError(
            f"synchronous must be one of {list(SYNCHRONOUS_LEVELS)}, not {options.synchronous!r}"
        )
    if url.backend == "sqlite":
        from .sqlite import SQLiteAdapter

        return SQLiteAdapter(url, options)
    from .postgresql import PostgreSQLAdapter

    return PostgreSQLAdapter(url, options)


__all__ = ["Adapter", "Options", "create_adapter"]
