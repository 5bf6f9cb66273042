"""Conventions every ``handshake-storage`` command follows, in one place.

A command that reports offers ``--json`` (:data:`json_option`) and hands its
result to :func:`emit`: one JSON document on stdout, or the human text. A
failure goes through :func:`fail`: one ``error: ...`` line on stderr, the exit
code of :class:`Exit`, and under ``--json`` also ``{"ok": false, ...}`` on
stdout. URLs come from an option or an environment variable
(:func:`url_from`); the database a command works on is the :class:`Context`
(``--database-url`` before or after the subcommand: :func:`uses_database`).
Long work shows progress through :class:`PhaseDisplay`.
The README ("Scripting") documents the exit codes and every JSON schema;
new commands (sync, conflicts, ledger) reuse these helpers.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from enum import Enum, IntEnum
from typing import Any, NoReturn, TypeVar
from uuid import UUID

import click

from .database import Database, open_database
from .errors import StorageError, ValidationError
from .url import ENV_VAR, URL_ERROR, default_sqlite_path, parse_url

F = TypeVar("F", bound=Callable[..., Any])


class Exit(IntEnum):
    """Exit codes (README, "Scripting")."""

    OK = 0  # the command did what was asked (a check found nothing wrong)
    FAILURE = 1  # it ran and failed, found a problem, or refused to destroy data
    USAGE = 2  # the command line is wrong: unknown option, bad value, missing file
    INTERRUPTED = 130  # Ctrl-C (nothing half-done is left behind)


#: ``--json`` for a reporting command; the value arrives as ``as_json``.
json_option = click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print one JSON document on stdout (schemas: README, 'Scripting').",
)


def _json_requested() -> bool:
    ctx = click.get_current_context(silent=True)
    while ctx is not None:
        if ctx.params.get("as_json"):
            return True
        ctx = ctx.parent
    return False


def fail(message: str, code: int = Exit.FAILURE, payload: dict[str, Any] | None = None) -> NoReturn:
    """Exit with ``code`` after one line ``error: message`` on stderr; under
    ``--json``, stdout gets ``{"ok": false, **payload, "error", "exit_code"}``
    (a check that found problems still reports them in full)."""
    message = " ".join(str(message).split())
    if _json_requested():
        write_json({"ok": False, **(payload or {}), "error": message, "exit_code": int(code)})
    click.echo(f"error: {message}", err=True)
    sys.exit(int(code))


def usage_error(message: str) -> NoReturn:
    fail(message, Exit.USAGE)


#: A group called without a command shows its help (a usage error in click 8.2+).
_SHOW_HELP: Any = getattr(click.exceptions, "NoArgsIsHelpError", ())


class _OneLineUsage:
    """Bad arguments (a usage error) give a one-line ``error: ...`` and exit 2,
    like every other failure, instead of click's usage block."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)  # type: ignore[misc, no-any-return]
        except click.UsageError as exc:
            if isinstance(exc, _SHOW_HELP):
                raise
            usage_error(f"{exc.format_message()} (see {ctx.command_path} --help)")

    def resolve_command(self, ctx: click.Context, args: list[str]) -> Any:
        try:
            return super().resolve_command(ctx, args)  # type: ignore[misc]
        except click.UsageError as exc:
            usage_error(f"{exc.format_message()} (see {ctx.command_path} --help)")


class OneLineCommand(_OneLineUsage, click.Command):
    """Every command of ``handshake-storage`` (``cls=``)."""


class OneLineGroup(_OneLineUsage, click.Group):
    """Every group of ``handshake-storage``; its commands and subgroups too."""

    command_class = OneLineCommand
    group_class = type  # subgroups are OneLineGroup too


def warn(message: str) -> None:
    click.echo(f"warning: {' '.join(message.split())}", err=True)


@contextmanager
def reported() -> Iterator[None]:
    """Storage errors become a one-line message and exit 1 (a URL found
    malformed only when connecting: 2, like one refused up front); Ctrl-C
    exits 130."""
    try:
        yield
    except StorageError as exc:
        fail(str(exc), Exit.USAGE if exc.code == URL_ERROR else Exit.FAILURE)
    except KeyboardInterrupt:
        fail("interrupted", Exit.INTERRUPTED)


def jsonable(value: Any) -> Any:
    """The JSON form of the values commands report: datetimes as ISO 8601
    with their UTC offset, UUIDs and enums as strings, dataclasses as objects."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def rows_text(n: int) -> str:
    """``1 row``, ``52,000 rows``."""
    return f"{n:,} row" if n == 1 else f"{n:,} rows"


def write_json(payload: dict[str, Any]) -> None:
    click.echo(json.dumps(jsonable(payload), indent=2, ensure_ascii=False))


def emit(as_json: bool, payload: dict[str, Any], human: Callable[[], None]) -> None:
    """Report a result: ``{"ok": true, **payload}`` as JSON, or ``human()``."""
    if as_json:
        write_json({"ok": True, **payload})
    else:
        human()


def url_from(value: str | None, env: str | None, what: str) -> str:
    """A database URL given either on the command line or, so that ``ps``
    never shows its password, in the environment variable named ``env``."""
    if value is not None and env is not None:
        usage_error(f"give {what} either as a URL or with its --*-env option, not both")
    if env is not None:
        found = os.environ.get(env)
        if not found or not found.strip():
            usage_error(f"environment variable {env} (for {what}) is not set or empty")
        return found
    if value is None or not value.strip():
        usage_error(f"{what} is missing or empty")
    return value


# -- the database a command works on -------------------------------------------------


class Context:
    """Where the database is, however the user said it."""

    def __init__(self, url: str | None) -> None:
        self.explicit_url = url

    def give_url(self, url: str) -> None:
        """``--database-url`` after the subcommand; it must agree with one before."""
        if not url.strip():
            usage_error("--database-url is empty")  # never fall back to another database
        if self.explicit_url is not None and self.explicit_url != url:
            usage_error("--database-url is given twice with different values")
        self.explicit_url = url

    @property
    def url(self) -> str:
        if self.explicit_url:
            return self.explicit_url
        env = os.environ.get(ENV_VAR)
        if env:
            return env
        return f"sqlite:///{default_sqlite_path()}"

    def checked_url(self) -> str:
        """The URL, validated: a malformed one is a usage error (exit 2)."""
        try:
            parse_url(self.url)
        except ValidationError as exc:
            usage_error(str(exc))
        return self.url

    def open(self, *, read_only: bool = False, create: bool = True) -> Database:
        """Open the database; ``create=False`` (and ``read_only``) refuse a
        missing SQLite file instead of creating it."""
        url = self.checked_url()
        creating = create and not read_only
        if creating and not self.explicit_url and not os.environ.get(ENV_VAR):
            default_sqlite_path().parent.mkdir(parents=True, exist_ok=True)
        return open_database(url, read_only=read_only, create=creating)


pass_context = click.make_pass_decorator(Context)


def _late_url(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value is not None:
        ctx.find_object(Context).give_url(value)  # type: ignore[union-attr]


def uses_database(f: F) -> F:
    """A command that opens the database: accepts ``--database-url`` after
    its name too, and receives the :class:`Context`."""
    option = click.option(
        "--database-url",
        metavar="URL",
        expose_value=False,
        callback=_late_url,
        help=f"Database URL (default: ${ENV_VAR}, else the embedded SQLite file).",
    )
    return option(pass_context(f))  # type: ignore[return-value]


# -- progress ---------------------------------------------------------------------------


def _interactive(stream: Any) -> bool:
    """A person is watching: a terminal, and not a CI log."""
    ci = os.environ.get("CI", "").lower() in ("1", "true", "yes")
    return bool(getattr(stream, "isatty", lambda: False)()) and not ci


class PhaseDisplay:
    """Progress of long work, phase by phase, on stderr.

    In a terminal: a live ``rich`` display, one line per phase with a bar (or
    a spinner while the total is unknown), elapsed time and rows; it redraws
    in place and leaves the finished lines. In a pipe or CI: no animation and
    no control characters, one plain line when each phase ends (and one every
    ``heartbeat`` seconds during a long phase), so logs stay readable.
    Implements the library's phase protocol (``start`` / ``advance`` /
    ``finish``) used by ``copy_database(phases=...)``.
    """

    def __init__(
        self, *, enabled: bool = True, live: bool | None = None, heartbeat: float = 10.0
    ) -> None:
        """``enabled``: log progress lines in a pipe or CI. ``live``: animate in
        a terminal (default: when enabled). A command that only reports (like
        ``indexes verify``) animates in a terminal and logs nothing in a pipe."""
        self.live = (enabled if live is None else live) and _interactive(sys.stderr)
        self.enabled = enabled
        self._heartbeat = heartbeat
        self._progress: Any = None
        self._task: Any = None
        self._label = ""
        self._started = 0.0
        self._last_line = 0.0
        self._done = 0
        self._total: int | None = None
        self.timings: list[dict[str, Any]] = []

    def __enter__(self) -> PhaseDisplay:
        if self.live:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                Progress,
                SpinnerColumn,
                TextColumn,
                TimeElapsedColumn,
            )

            self._progress = Progress(
                SpinnerColumn(finished_text="[green]✓[/]"),
                TextColumn("{task.description:<32}"),
                BarColumn(),
                TextColumn("{task.fields[count]:>21}"),
                TimeElapsedColumn(),
                TextColumn("{task.fields[note]}"),
                console=Console(stderr=True),
                transient=False,
            )
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def close(self) -> None:
        """Finish the current phase, if one is open."""
        if self._label:
            self.finish()

    def start(self, phase: str, item: str = "", total: int | None = None) -> None:
        self.close()
        self._label = f"{phase} {item}".strip()
        self._started = self._last_line = time.perf_counter()
        self._done, self._total = 0, total
        if self._progress is not None:
            self._task = self._progress.add_task(
                self._label, total=total, note="", count=self._count(0)
            )

    def advance(self, done: int) -> None:
        self._done = done
        if self._progress is not None:
            self._progress.update(self._task, completed=done, count=self._count(done))
        elif self.enabled:
            now = time.perf_counter()
            if now - self._last_line >= self._heartbeat:
                self._last_line = now
                of = f"/{self._total:,}" if self._total is not None else ""
                click.echo(f"  {self._label}: {done:,}{of} rows so far ...", err=True)

    def _count(self, done: int) -> str:
        if self._total is None:
            return rows_text(done) if done else ""
        return f"{done:,}/{self._total:,}"

    def finish(self, rows: int | None = None, note: str = "") -> None:
        if not self._label:
            return
        seconds = time.perf_counter() - self._started
        self.timings.append({"phase": self._label, "rows": rows, "seconds": round(seconds, 3)})
        if self._progress is not None:
            # An empty or row-less phase shows a full bar, not one stuck at 0 %.
            count = rows_text(rows) if rows is not None else ""
            self._progress.update(self._task, total=1, completed=1, note=note, count=count)
        elif self.enabled:
            what = rows_text(rows) if rows is not None else "done"
            extra = f", {note}" if note else ""
            click.echo(f"  {self._label}: {what}{extra} ({seconds:.1f}s)", err=True)
        self._label = ""
