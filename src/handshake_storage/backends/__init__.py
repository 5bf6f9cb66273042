"""Backend adapters. Only modules in this package import database drivers."""

from __future__ import annotations

from .. import validation as check
from ..errors import ValidationError
from ..url import DatabaseURL
from .base import Adapter, Options

#: SQLite's ``synchronous`` levels (see check_options).
SYNCHRONOUS_LEVELS = ("off", "normal", "full", "extra")


def create_adapter(url: DatabaseURL, options: Options) -> Adapter:
    """The adapter for ``url``'s backend, imported on first use."""
    check_options(options)
    if url.backend == "sqlite":
        from .sqlite import SQLiteAdapter

        return SQLiteAdapter(url, options)
    from .postgresql import PostgreSQLAdapter

    return PostgreSQLAdapter(url, options)


def check_options(opts: Options) -> None:
    """Every option, for every backend, checked here once: an option value
    one backend refuses is refused by all (PostgreSQL ignores ``synchronous``,
    SQLite ``statement_timeout``)."""
    if check.integer(opts.pool_size, "pool_size") < 1:
        raise ValidationError("pool_size must be at least 1")
    check.integer_between(opts.retry_attempts, "retry_attempts", 1, 1000)
    for name in ("pool_timeout", "connect_timeout", "busy_timeout", "lock_timeout"):
        value = check.number(getattr(opts, name), name)
        if not 0 < value < 10**6:
            raise ValidationError(f"{name} must be a positive number of seconds")
    if (
        opts.statement_timeout is not None
        and check.number(opts.statement_timeout, "statement_timeout") <= 0
    ):
        raise ValidationError("statement_timeout must be positive")
    check.boolean(opts.read_only, "read_only")
    check.boolean(opts.create, "create")
    if check.text(opts.synchronous, "synchronous").lower() not in SYNCHRONOUS_LEVELS:
        raise ValidationError(
            f"synchronous must be one of {list(SYNCHRONOUS_LEVELS)}, not {opts.synchronous!r}"
        )


__all__ = ["Adapter", "Options", "check_options", "create_adapter"]
