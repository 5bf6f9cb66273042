"""Backend adapters. Only modules in this package import database drivers."""

from __future__ import annotations

from ..url import DatabaseURL
from .base import Adapter, Options


def create_adapter(url: DatabaseURL, options: Options) -> Adapter:
    """The adapter for ``url``'s backend, imported on first use."""
    if url.backend == "sqlite":
        from .sqlite import SQLiteAdapter

        return SQLiteAdapter(url, options)
    from .postgresql import PostgreSQLAdapter

    return PostgreSQLAdapter(url, options)


__all__ = ["Adapter", "Options", "create_adapter"]
