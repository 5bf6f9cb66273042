"""The ``handshake-storage`` command line.

Reads the database URL from ``--database-url``, else ``HANDSHAKE_DATABASE_URL``,
else the embedded SQLite file. Prints only redacted URLs. Every failure
exits non-zero with a one-line ``error: ...`` on stderr.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any, NoReturn

import click

from . import __version__
from .database import Database, open_database
from .errors import StorageError
from .migrator import Migration, Plan
from .url import ENV_VAR, default_sqlite_path, redact


class Context:
    def __init__(self, url: str | None) -> None:
        self.explicit_url = url

    @property
    def url(self) -> str:
        if self.explicit_url:
            return self.explicit_url
        env = os.environ.get(ENV_VAR)
        if env:
            return env
        return f"sqlite:///{default_sqlite_path()}"

    def open(self, **options: Any) -> Database:
        if not self.explicit_url and not os.environ.get(ENV_VAR):
            default_sqlite_path().parent.mkdir(parents=True, exist_ok=True)
        return open_database(self.url, **options)


pass_context = click.make_pass_decorator(Context)


def fail(message: str, code: int = 1) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


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
            fail(f"{exc.format_message()} (see {ctx.command_path} --help)", 2)

    def resolve_command(self, ctx: click.Context, args: list[str]) -> Any:
        try:
            return super().resolve_command(ctx, args)  # type: ignore[misc]
        except click.UsageError as exc:
            fail(f"{exc.format_message()} (see {ctx.command_path} --help)", 2)


class _Command(_OneLineUsage, click.Command):
    pass


class _Group(_OneLineUsage, click.Group):
    command_class = _Command
    group_class = type  # subgroups are _Group too


@contextmanager
def reported() -> Iterator[None]:
    """Turn storage errors into a one-line message and exit status 1."""
    try:
        yield
    except StorageError as exc:
        fail(" ".join(str(exc).split()))
    except KeyboardInterrupt:
        fail("interrupted", 130)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--database-url",
    metavar="URL",
    help=f"sqlite:///path.db or postgresql://... (default: ${ENV_VAR}, "
    "else the embedded SQLite file).",
)
@click.version_option(__version__, prog_name="handshake-storage")
@click.pass_context
def main(ctx: click.Context, database_url: str | None) -> None:
    """Handshake Storage: migrations, checks, indexes and copies for SQLite and PostgreSQL."""
    if database_url is not None and not database_url.strip():
        fail("--database-url is empty")  # never fall back to another database silently
    ctx.obj = Context(database_url)


# -- migrations -------------------------------------------------------------------


def _echo_plan(plan: Plan, *, show_sql: bool) -> None:
    if not plan.steps:
        click.echo(f"nothing to do: the database is at version {plan.current}")
        return
    verb = "apply" if plan.steps[0].direction == "up" else "revert"
    click.echo(
        f"plan: {verb} {len(plan.steps)} migration(s), version {plan.current} -> {plan.target}"
    )
    for step in plan.steps:
        m = step.migration
        suffix = ".sql" if step.direction == "up" else ".down.sql"
        click.echo(f"  {step.direction:4} {m.name}{suffix}  sha256:{m.checksum}")
        if show_sql:
            for line in step.sql.rstrip().splitlines():
                click.echo(f"       | {line}")


def _progress(event: str, migration: Migration, seconds: float | None) -> None:
    if event == "start":
        click.echo(f"  {migration.name} ...", nl=False)
    else:
        click.echo(f" ok ({(seconds or 0) * 1000:.0f} ms)")


@main.command()
@click.option("--to", "target", type=int, metavar="N", help="Stop at version N (default: latest).")
@click.option("--dry-run", is_flag=True, help="Show each file, its checksum and SQL; run nothing.")
@pass_context
def migrate(ctx: Context, target: int | None, dry_run: bool) -> None:
    """Apply pending migrations."""
    with reported():
        if dry_run:
            _echo_plan(_plan_without_writing(ctx, target, down=False), show_sql=True)
            return
        with ctx.open() as db:
            click.echo(f"database: {db.url}")
            plan = db.migrations.migrate(target, progress=_progress)
            if plan.steps:
                click.echo(f"migrated to version {plan.target}")
            else:
                click.echo(f"nothing to do: the database is at version {plan.current}")


@main.command()
@click.option("--to", "target", type=int, required=True, metavar="N", help="Target version.")
@click.option("--dry-run", is_flag=True, help="Show what would be reverted; run nothing.")
@pass_context
def rollback(ctx: Context, target: int, dry_run: bool) -> None:
    """Revert applied migrations down to version N (0 reverts everything)."""
    with reported():
        if dry_run:
            _echo_plan(_plan_without_writing(ctx, target, down=True), show_sql=True)
            return
        with ctx.open() as db:
            click.echo(f"database: {db.url}")
            plan = db.migrations.rollback(target, progress=_progress)
            click.echo(f"rolled back to version {plan.target}" if plan.steps else "nothing to do")


def _plan_without_writing(ctx: Context, target: int | None, *, down: bool) -> Plan:
    with open_database(ctx.url, read_only=True) as db:  # a missing file is not created
        return db.migrations.plan(target, down=down)


@main.command()
@pass_context
def status(ctx: Context) -> None:
    """Show the schema version and every migration's state."""
    with reported(), ctx.open() as db:
        info = db.describe()
        facts = ", ".join(f"{k} {v}" for k, v in info.items() if k not in ("backend", "url"))
        click.echo(f"database: {db.url} ({db.backend}; {facts})")
        rows = db.migration_status()
        applied = [r for r in rows if r.state in ("applied", "drifted", "unknown")]
        latest = max((r.version for r in rows if r.state != "unknown"), default=0)
        current = max((r.version for r in applied), default=0)
        click.echo(f"version: {current} (latest known: {latest})")
        click.echo(
            f"{'VERSION':8} {'DESCRIPTION':28} {'STATE':8} {'CHECKSUM':13} {'APPLIED AT':33} MS"
        )
        for r in rows:
            checksum = (r.db_checksum or r.file_checksum or "")[:12]
            applied_at = r.applied_at.isoformat(" ") if r.applied_at else "-"
            ms = "-" if r.execution_ms is None else str(r.execution_ms)
            click.echo(
                f"{r.version:04d}     {r.description:28} {r.state:8} {checksum:13} "
                f"{applied_at:33} {ms}"
            )
        problems = [r for r in rows if r.state in ("drifted", "unknown")]
        if problems:
            fail("; ".join(f"migration {r.version:04d} is {r.state}" for r in problems))


@main.command("accept-checksum")
@click.argument("version", type=int)
@click.option("--reason", required=True, help="Why the applied file was edited (recorded).")
@pass_context
def accept_checksum(ctx: Context, version: int, reason: str) -> None:
    """Accept a deliberate edit of an applied migration file, and record it."""
    with reported(), ctx.open() as db:
        old, new = db.migrations.accept_checksum(version, reason)
        if old == new:
            click.echo(f"migration {version:04d} already matches its file (sha256:{new[:12]})")
        else:
            click.echo(
                f"accepted migration {version:04d}: sha256:{old[:12]} -> sha256:{new[:12]} "
                f"(reason recorded)"
            )


# -- checks -------------------------------------------------------------------------


@main.command()
@click.argument("files", nargs=-1, type=click.Path(path_type=Path))
def lint(files: tuple[Path, ...]) -> None:
    """Check migration files for non-portable SQL (default: the shipped migrations)."""
    from .lint import lint_paths

    with reported():
        for path in files:
            if not path.exists():
                fail(f"no such file: {path}")
        findings = lint_paths(list(files) if files else None)
        for finding in findings:
            click.echo(finding.format())
        if findings:
            fail(f"{len(findings)} finding(s)")
        click.echo("lint: no findings")


@main.command()
@click.option("--static-only", is_flag=True, help="Skip the checks that need a database.")
@pass_context
def check(ctx: Context, static_only: bool) -> None:
    """Lint + checksum drift + index classification + import-boundary audit."""
    from .audit import audit_imports
    from .lint import lint_paths

    failures = 0

    def report(name: str, problems: list[str]) -> None:
        nonlocal failures
        if problems:
            failures += len(problems)
            click.echo(f"FAIL {name}")
            for p in problems:
                click.echo(f"     {p}")
        else:
            click.echo(f"ok   {name}")

    with reported():
        report("lint", [f.format() for f in lint_paths(None)])
        report("import boundary", [str(v) for v in audit_imports()])
        if not static_only:
            with ctx.open() as db:
                click.echo(f"database: {db.url}")
                rows = db.migration_status()
                report(
                    "checksum drift",
                    [
                        f"migration {r.version:04d} is {r.state}"
                        for r in rows
                        if r.state in ("drifted", "unknown")
                    ],
                )
                from .rebuildable import unclassified_indexes

                report("index classification", unclassified_indexes(db))
    if failures:
        fail(f"{failures} problem(s)")


# -- indexes, copy, prune -----------------------------------------------------------


@main.group()
def indexes() -> None:
    """List, rebuild and verify rebuildable indexes and derived tables."""


@indexes.command("list")
@pass_context
def indexes_list(ctx: Context) -> None:
    """Every rebuildable object, its table and what it is computed from."""
    from .rebuildable import registry

    with reported():
        objects = registry()
        click.echo(f"{'NAME':36} {'KIND':8} {'TABLE':26} COMPUTED FROM")
        for obj in objects:
            click.echo(f"{obj.name:36} {obj.kind:8} {obj.table:26} {obj.source}")


@indexes.command("rebuild")
@click.argument("names", nargs=-1)
@pass_context
def indexes_rebuild(ctx: Context, names: tuple[str, ...]) -> None:
    """Drop and recreate rebuildable objects (all, or those named) in one transaction."""
    from .rebuildable import rebuild

    with reported(), ctx.open() as db:
        click.echo(f"database: {db.url}")
        report = rebuild(db, list(names) or None, progress=_step_progress)
        click.echo(f"rebuilt {len(report)} object(s)")


@indexes.command("verify")
@click.argument("names", nargs=-1)
@pass_context
def indexes_verify(ctx: Context, names: tuple[str, ...]) -> None:
    """Prove that rebuilding yields the current state (nothing is changed)."""
    from .rebuildable import verify

    with reported(), ctx.open() as db:
        click.echo(f"database: {db.url}")
        results = verify(db, list(names) or None, progress=_step_progress)
        bad = [r for r in results if not r.equal]
        for r in results:
            click.echo(f"{'ok  ' if r.equal else 'DIFF'} {r.name}: {r.detail}")
        if bad:
            fail(f"{len(bad)} object(s) differ from a rebuild")


def _step_progress(message: str) -> None:
    click.echo(f"  {message}", err=True)


@main.command()
@click.option("--from", "source", required=True, metavar="URL", help="Database to copy from.")
@click.option("--to", "target", required=True, metavar="URL", help="Empty database to copy to.")
@click.option("--batch-size", default=5000, show_default=True, help="Rows per batch.")
def copy(source: str, target: str, batch_size: int) -> None:
    """Copy a whole database to an empty one, on any pair of backends, and verify it."""
    from .transfer import copy_database

    with reported():
        click.echo(f"copying {redact(source)} -> {redact(target)}", err=True)
        report = copy_database(source, target, batch_size=batch_size, progress=_copy_progress())
        for table in report.tables:
            click.echo(
                f"{table.name:28} {table.rows:>10} rows  digest {table.digest[:16]}  verified"
            )
        click.echo(
            f"copied {report.total_rows} rows in {report.seconds:.1f}s "
            f"({report.rows_per_second:,.0f} rows/s); rebuilt {report.rebuilt} derived object(s)"
        )


def _copy_progress() -> Callable[[str, int, int], None]:
    bars: dict[str, Any] = {}

    def progress(table: str, done: int, total: int) -> None:
        bar = bars.get(table)
        if bar is None:
            for other in bars.values():
                other.render_finish()
            bar = click.progressbar(length=max(total, 1), label=f"{table:28}", file=sys.stderr)
            bar.__enter__()
            bars[table] = bar
        bar.update(done - bar.pos)
        if done >= total:
            bar.render_finish()

    return progress


@main.command()
@click.option(
    "--older-than",
    "days",
    type=float,
    default=30.0,
    show_default=True,
    help="Prune terminal jobs created more than this many days ago.",
)
@click.option(
    "--min-versions",
    type=int,
    default=3,
    show_default=True,
    help="Always keep this many newest jobs.",
)
@click.option("--dry-run", is_flag=True, help="Report what would be pruned; change nothing.")
@pass_context
def prune(ctx: Context, days: float, min_versions: int, dry_run: bool) -> None:
    """Remove old terminal AI jobs (pinned jobs are always kept)."""
    from .retention import RetentionPolicy, RetentionService

    try:
        window = timedelta(days=days)
    except (ValueError, OverflowError):  # NaN, infinity, beyond timedelta's range
        window = None
    if window is None or window < timedelta(0):
        fail(f"--older-than must be a non-negative number of days, not {days!r}")
    with reported(), ctx.open() as db:
        policy = RetentionPolicy(window=window, min_versions=min_versions)
        report = RetentionService(db).run(policy, dry_run=dry_run)
        mode = "dry run: would prune" if dry_run else "pruned"
        click.echo(f"{mode} {report.items_pruned} job(s)")
        click.echo(f"  scanned (expired terminal jobs): {report.items_scanned}")
        click.echo(f"  spared, pinned:                  {report.items_spared_pinned}")
        click.echo(f"  spared, newest {min_versions:<4}             {report.items_spared_window}")
        click.echo(f"  bytes freed:                     {report.total_bytes_freed}")
        click.echo(f"  at:                              {report.timestamp.isoformat()}")
