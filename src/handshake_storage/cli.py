"""The ``handshake-storage`` command line.

Reads the database URL from ``--database-url`` (before or after the
subcommand), else ``HANDSHAKE_DATABASE_URL``, else the embedded SQLite file.
Prints only redacted URLs. Exit codes, ``--json``, URLs from environment
variables and progress follow :mod:`handshake_storage.console`, which the
README's "Scripting" section documents. Read-only commands open the database
read-only and never create a missing SQLite file.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import click

from . import __version__, cli_sync
from .console import (
    Context,
    OneLineGroup,
    PhaseDisplay,
    emit,
    fail,
    json_option,
    reported,
    rows_text,
    url_from,
    usage_error,
    uses_database,
    warn,
)
from .errors import ValidationError
from .migrator import Migration, Plan
from .url import ENV_VAR, parse_url, redact

F = TypeVar("F", bound=Callable[..., Any])


@click.group(cls=OneLineGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--database-url",
    metavar="URL",
    help=f"sqlite:///path.db or postgresql://... (default: ${ENV_VAR}, "
    "else the embedded SQLite file). Also accepted after the command.",
)
@click.version_option(__version__, "-V", "--version", prog_name="handshake-storage")
@click.pass_context
def main(ctx: click.Context, database_url: str | None) -> None:
    """Handshake Storage: migrations, checks, indexes and copies for SQLite and PostgreSQL.

    Exit status: 0 success, 1 failure, 2 usage error, 130 interrupted.
    Shell completion: `handshake-storage completion bash|zsh|fish`.
    """
    ctx.obj = Context(None)
    if database_url is not None:
        ctx.obj.give_url(database_url)


# -- migrations -------------------------------------------------------------------


def _plan_json(plan: Plan, *, dry_run: bool) -> dict[str, Any]:
    return {
        "dry_run": dry_run,
        "from_version": plan.current,
        "to_version": plan.target,
        "steps": [
            {
                "direction": s.direction,
                "version": s.migration.version,
                "file": s.file_name,
                "checksum": s.checksum,
            }
            for s in plan.steps
        ],
    }


def _echo_plan(plan: Plan, *, show_sql: bool) -> None:
    if not plan.steps:
        click.echo(f"nothing to do: the database is at version {plan.current}")
        return
    verb = "apply" if plan.steps[0].direction == "up" else "revert"
    click.echo(
        f"plan: {verb} {len(plan.steps)} migration(s), version {plan.current} -> {plan.target}"
    )
    for step in plan.steps:
        click.echo(f"  {step.direction:4} {step.file_name}  sha256:{step.checksum}")
        if show_sql:
            for line in step.sql.rstrip().splitlines():
                click.echo(f"       | {line}")


def _step_printer(enabled: bool) -> Callable[[str, Migration, float | None], None] | None:
    if not enabled:
        return None

    def progress(event: str, migration: Migration, seconds: float | None) -> None:
        if event == "start":
            click.echo(f"  {migration.name} ...", nl=False)
        else:
            click.echo(f" ok ({(seconds or 0) * 1000:.0f} ms)")

    return progress


def _plan_without_writing(ctx: Context, target: int | None, *, down: bool) -> Plan:
    with ctx.open(read_only=True) as db:  # a missing file plans like an empty database
        return db.migrations.plan(target, down=down)


@main.command()
@click.option("--to", "target", type=int, metavar="N", help="Stop at version N (default: latest).")
@click.option("--dry-run", is_flag=True, help="Show each file, its checksum and SQL; run nothing.")
@json_option
@uses_database
def migrate(ctx: Context, target: int | None, dry_run: bool, as_json: bool) -> None:
    """Apply pending migrations."""
    with reported():
        if dry_run:
            plan = _plan_without_writing(ctx, target, down=False)
            emit(as_json, _plan_json(plan, dry_run=True), lambda: _echo_plan(plan, show_sql=True))
            return
        with ctx.open() as db:
            if not as_json:
                click.echo(f"database: {db.url}")
            plan = db.run_migrations(target, progress=_step_printer(not as_json))

            def human() -> None:
                if plan.steps:
                    click.echo(f"migrated to version {plan.target}")
                else:
                    click.echo(f"nothing to do: the database is at version {plan.current}")

            emit(as_json, {"database": db.url, **_plan_json(plan, dry_run=False)}, human)


@main.command()
@click.option("--to", "target", type=int, required=True, metavar="N", help="Target version.")
@click.option("--dry-run", is_flag=True, help="Show what would be reverted; run nothing.")
@click.option("--yes", "-y", is_flag=True, help="Drop tables that hold rows without asking.")
@json_option
@uses_database
def rollback(ctx: Context, target: int, dry_run: bool, yes: bool, as_json: bool) -> None:
    """Revert applied migrations down to version N (0 reverts everything).

    A rollback that would drop tables holding rows asks first on a terminal,
    and without a terminal refuses unless --yes is given.
    """
    from .rollback_safety import refuse_beyond, rows_at_risk_now

    with reported():
        if dry_run:
            plan = _plan_without_writing(ctx, target, down=True)
            emit(as_json, _plan_json(plan, dry_run=True), lambda: _echo_plan(plan, show_sql=True))
            return
        with ctx.open(create=False) as db:
            migrator = db.migrations
            at_risk = rows_at_risk_now(migrator, migrator.plan(target, down=True))
            if at_risk and not yes:
                _confirm_data_loss(target, at_risk)
            if not as_json:
                click.echo(f"database: {db.url}")
            plan = migrator.rollback(
                target,
                progress=_step_printer(not as_json),
                check=refuse_beyond(migrator, at_risk),
            )
            emit(
                as_json,
                {"database": db.url, "rows_dropped": at_risk, **_plan_json(plan, dry_run=False)},
                lambda: click.echo(
                    f"rolled back to version {plan.target}" if plan.steps else "nothing to do"
                ),
            )


def _confirm_data_loss(target: int, at_risk: dict[str, int]) -> None:
    listed = ", ".join(f"{table} ({rows_text(rows)})" for table, rows in at_risk.items())
    question = f"rolling back to version {target} drops tables holding rows: {listed}"
    if not (sys.stdin.isatty() and sys.stderr.isatty()):
        fail(f"{question}; nothing was changed: rerun with --yes to drop them")
    if not click.confirm(f"{question}. Drop them?", default=False, err=True):
        fail("rollback cancelled; nothing was changed")


@main.command()
@click.option("--check", "check_", is_flag=True, help="Exit 1 if any migration is pending.")
@json_option
@uses_database
def status(ctx: Context, check_: bool, as_json: bool) -> None:
    """Show the schema version and every migration's state."""
    with reported(), ctx.open(read_only=True) as db:
        info = db.describe()
        rows = db.migration_status()
        applied = [r for r in rows if r.state in ("applied", "drifted", "unknown")]
        latest = max((r.version for r in rows if r.state != "unknown"), default=0)
        current = max((r.version for r in applied), default=0)
        pending = [r for r in rows if r.state == "pending"]
        problems = [r for r in rows if r.state in ("drifted", "unknown")]
        payload = {
            "database": db.url,
            "backend": db.backend,
            "server": {k: v for k, v in info.items() if k not in ("backend", "url")},
            "version": current,
            "latest": latest,
            "pending": len(pending),
            "migrations": [
                {
                    "version": r.version,
                    "description": r.description,
                    "state": r.state,
                    "file_checksum": r.file_checksum,
                    "db_checksum": r.db_checksum,
                    "applied_at": r.applied_at,
                    "execution_ms": r.execution_ms,
                }
                for r in rows
            ],
        }

        def human() -> None:
            facts = ", ".join(f"{k} {v}" for k, v in payload["server"].items())
            click.echo(f"database: {db.url} ({db.backend}; {facts})")
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

        if problems:
            if not as_json:
                human()
            fail(
                "; ".join(f"migration {r.version:04d} is {r.state}" for r in problems),
                payload=payload,
            )
        if check_ and pending:
            if not as_json:
                human()
            fail(
                f"{len(pending)} migration(s) pending (the database is at version {current} "
                f"of {latest}): run `handshake-storage migrate`",
                payload=payload,
            )
        emit(as_json, payload, human)


@main.command()
@json_option
@uses_database
def history(ctx: Context, as_json: bool) -> None:
    """Every apply, rollback and accepted checksum (schema_migration_log), oldest first."""
    with reported(), ctx.open(read_only=True) as db:
        entries = db.migrations.history()

        def human() -> None:
            click.echo(f"database: {db.url}")
            if not entries:
                click.echo("no migration has been applied or rolled back")
                return
            click.echo(f"{'AT':32}  {'VERSION':7}  {'ACTION':15}  {'CHECKSUM':12}  REASON")
            for e in entries:
                click.echo(
                    f"{e.at.isoformat(' '):32}  {e.version:04d}     {e.action:15}  "
                    f"{(e.checksum or '-')[:12]:12}  {e.reason or ''}".rstrip()
                )

        emit(as_json, {"database": db.url, "entries": entries}, human)


@main.command("accept-checksum")
@click.argument("version", type=int)
@click.option("--reason", required=True, help="Why the applied file was edited (recorded).")
@uses_database
def accept_checksum(ctx: Context, version: int, reason: str) -> None:
    """Accept a deliberate edit of an applied migration file, and record it."""
    with reported(), ctx.open(create=False) as db:
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
@click.option("--rules", "list_rules", is_flag=True, help="List every rule and its fix, then exit.")
@json_option
def lint(files: tuple[Path, ...], list_rules: bool, as_json: bool) -> None:
    """Check migration files for non-portable SQL (default: the shipped migrations)."""
    from .lint import lint_paths

    if list_rules:
        from .linting import registry

        emit(as_json, {"rules": registry.as_json()}, lambda: click.echo(registry.text_table()))
        return
    missing = [str(p) for p in files if not p.exists()]
    if missing:
        usage_error(f"no such file: {', '.join(missing)}")
    with reported():
        findings = lint_paths(list(files) if files else None)
        payload = {"findings": findings}
        if findings:
            if not as_json:
                for finding in findings:
                    click.echo(finding.format())
            fail(f"{len(findings)} finding(s)", payload=payload)
        emit(as_json, payload, lambda: click.echo("lint: no findings"))


@main.command()
@click.option("--static-only", is_flag=True, help="Skip the checks that need a database.")
@json_option
@uses_database
def check(ctx: Context, static_only: bool, as_json: bool) -> None:
    """Lint + checksum drift + index classification + import-boundary audit."""
    from .audit import audit_imports
    from .lint import lint_paths
    from .rebuildable import unclassified_indexes

    checks: list[dict[str, Any]] = []
    database = None

    def report(name: str, problems: list[str]) -> None:
        checks.append({"name": name, "ok": not problems, "problems": problems})
        if as_json:
            return
        click.echo(f"{'FAIL' if problems else 'ok  '} {name}")
        for p in problems:
            click.echo(f"     {p}")

    with reported():
        report("lint", [f.format() for f in lint_paths(None)])
        report("import boundary", [str(v) for v in audit_imports()])
        if not static_only:
            with ctx.open(read_only=True) as db:
                database = db.url
                if not as_json:
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
                report("index classification", unclassified_indexes(db))
    failures = sum(len(c["problems"]) for c in checks)
    payload = {"database": database, "checks": checks, "problems": failures}
    if failures:
        fail(f"{failures} problem(s)", payload=payload)
    emit(as_json, payload, lambda: None)


# -- indexes, copy, prune -----------------------------------------------------------


@main.group()
def indexes() -> None:
    """List, rebuild and verify rebuildable indexes and derived tables."""


@indexes.command("list")
@json_option
@uses_database
def indexes_list(ctx: Context, as_json: bool) -> None:
    """The rebuildable objects of the database's version: table, source, present or missing."""
    with reported(), ctx.open(read_only=True) as db:
        version, listed = db.indexes.listing()
        objects = [
            {
                "name": item.obj.name,
                "kind": item.obj.kind,
                "table": item.obj.table,
                "computed_from": item.obj.source,
                "migration": item.obj.version,
                "present": item.present,
            }
            for item in listed
        ]

        def human() -> None:
            click.echo(f"database: {db.url} (version {version})")
            if not objects:
                click.echo("no rebuildable objects at this version")
                return
            click.echo(f"{'NAME':36} {'KIND':8} {'TABLE':26} {'STATE':8} COMPUTED FROM")
            for o in objects:
                state = "present" if o["present"] else "MISSING"
                click.echo(
                    f"{o['name']:36} {o['kind']:8} {o['table']:26} {state:8} {o['computed_from']}"
                )

        emit(as_json, {"database": db.url, "version": version, "objects": objects}, human)


@indexes.command("rebuild")
@click.argument("names", nargs=-1)
@json_option
@uses_database
def indexes_rebuild(ctx: Context, names: tuple[str, ...], as_json: bool) -> None:
    """Drop and recreate rebuildable objects (all, or those named) in one transaction."""
    from .rebuildable import rebuild

    with reported(), ctx.open(create=False) as db, PhaseDisplay(enabled=not as_json) as shown:
        rebuilt = rebuild(db, list(names) or None, progress=_steps(shown))
        shown.close()

        def human() -> None:
            click.echo(f"database: {db.url}")
            click.echo(f"rebuilt {len(rebuilt)} object(s): {', '.join(rebuilt)}")

        emit(as_json, {"database": db.url, "rebuilt": rebuilt}, human)


@indexes.command("verify")
@click.argument("names", nargs=-1)
@json_option
@uses_database
def indexes_verify(ctx: Context, names: tuple[str, ...], as_json: bool) -> None:
    """Prove that rebuilding yields the current state (nothing is changed).

    Reports one line per object; in a terminal a transient display shows the
    work meanwhile, in a pipe nothing but the report is printed."""
    from .rebuildable import verify

    with reported(), ctx.open(create=False) as db:
        version = db.migrations.current_version()
        with PhaseDisplay(enabled=False, live=not as_json) as shown:
            results = verify(db, list(names) or None, progress=_steps(shown))
            shown.close()
        bad = [r for r in results if not r.equal]
        payload = {
            "database": db.url,
            "version": version,
            "objects": [{"name": r.name, "equal": r.equal, "detail": r.detail} for r in results],
            "differ": len(bad),
        }

        def human() -> None:
            click.echo(f"database: {db.url} (version {version})")
            for r in results:
                click.echo(f"{'ok  ' if r.equal else 'DIFF'} {r.name}: {r.detail}")

        if bad:
            if not as_json:
                human()
            fail(f"{len(bad)} object(s) differ from a rebuild", payload=payload)
        emit(as_json, payload, human)
        if not as_json:
            click.echo(f"verified {len(results)} object(s): each equals a rebuild")


def _steps(shown: PhaseDisplay) -> Callable[[str], None]:
    """The rebuild's step messages as phases of ``shown``."""

    def step(message: str) -> None:
        shown.close()
        shown.start(message)

    return step


@main.command()
@click.option("--from", "source", metavar="URL", help="Database to copy from.")
@click.option(
    "--from-env", metavar="VAR", help="Read the source URL from environment variable VAR."
)
@click.option(
    "--to", "target", metavar="URL", help="Empty database (no tables, or migrated, no rows)."
)
@click.option("--to-env", metavar="VAR", help="Read the target URL from environment variable VAR.")
@click.option("--batch-size", default=5000, show_default=True, help="Rows per batch.")
@click.option(
    "--skip-undeclared",
    is_flag=True,
    help="Copy even if the source has tables no migration creates holding rows "
    "(they are left out, like every undeclared object).",
)
@json_option
def copy(
    source: str | None,
    from_env: str | None,
    target: str | None,
    to_env: str | None,
    batch_size: int,
    skip_undeclared: bool,
    as_json: bool,
) -> None:
    """Copy a whole database to an empty one, on any pair of backends, and verify it.

    The target has no tables, or is migrated (to at most the source's version)
    and holds no rows. Objects on the source that no migration declares (a
    hand-made index, view, trigger, table) are not copied: they are listed in
    a warning; a table among them that holds rows stops the copy unless
    --skip-undeclared is given.

    Give each URL with --from/--to, or name an environment variable holding it
    with --from-env/--to-env (so that `ps` never shows a password).
    """
    from .transfer import copy_database

    source = url_from(source, from_env, "the source (--from or --from-env)")
    target = url_from(target, to_env, "the target (--to or --to-env)")
    for url in (source, target):
        try:
            parse_url(url)
        except ValidationError as exc:
            usage_error(str(exc))
    with reported():
        if not as_json:
            click.echo(f"copying {redact(source)} -> {redact(target)}", err=True)
        with PhaseDisplay(enabled=not as_json) as shown:
            report = copy_database(
                source, target, batch_size=batch_size, phases=shown, skip_undeclared=skip_undeclared
            )
        if report.undeclared and not as_json:
            listed = ", ".join(map(str, report.undeclared))
            warn(
                f"the source has {len(report.undeclared)} object(s) that no migration "
                f"declares; the copy does not carry them: {listed}"
            )
        payload = {
            "source": report.source,
            "target": report.target,
            "version": report.version,
            "target_version_before": report.target_version_before,
            "undeclared": [
                {"kind": o.kind, "name": o.name, "table": o.table, "rows": o.rows}
                for o in report.undeclared
            ],
            "tables": [{"name": t.name, "rows": t.rows, "digest": t.digest} for t in report.tables],
            "rows_copied": report.total_rows,
            "rows_rebuilt": report.rows_rebuilt,
            "derived_objects": report.rebuilt,
            "seconds": round(report.seconds, 3),
            "rows_per_second": round(report.rows_per_second, 1),
            "rows_written_per_second": round(report.rows_written_per_second, 1),
            "phases": shown.timings,
        }

        def human() -> None:
            for table in report.tables:
                click.echo(
                    f"{table.name:28} {table.rows:>10,} rows  digest {table.digest[:16]}  verified"
                )
            click.echo(
                f"copied {report.total_rows:,} rows and rebuilt {report.rows_rebuilt:,} derived "
                f"rows ({report.rebuilt} derived object(s)) in {report.seconds:.1f}s: "
                f"{report.rows_per_second:,.0f} copied rows/s, "
                f"{report.rows_written_per_second:,.0f} rows written/s"
            )

        emit(as_json, payload, human)


def _prune_window(days: float) -> timedelta:
    try:
        window = timedelta(days=days)
    except (ValueError, OverflowError):  # NaN, infinity, beyond timedelta's range
        window = None
    if window is None or window < timedelta(0):
        usage_error(f"--older-than must be a non-negative number of days, not {days!r}")
    return window


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
    "--keep-newest",
    "--min-versions",
    "keep",
    type=click.IntRange(min=0),
    default=3,
    show_default=True,
    help="Always keep this many of the newest unpinned terminal jobs, however old "
    "(--min-versions is the same option under the API's name).",
)
@click.option("--dry-run", is_flag=True, help="Report what would be pruned; change nothing.")
@json_option
@uses_database
def prune(ctx: Context, days: float, keep: int, dry_run: bool, as_json: bool) -> None:
    """Remove old terminal AI jobs (pinned jobs are always kept)."""
    from .retention import RetentionPolicy, RetentionService

    window = _prune_window(days)
    with reported(), ctx.open(create=not dry_run) as db:
        policy = RetentionPolicy(window=window, min_versions=keep)
        report = RetentionService(db).run(policy, dry_run=dry_run)
        payload = {"database": db.url, "dry_run": dry_run, **_prune_fields(report)}

        def human() -> None:
            freed = "bytes that would be freed" if dry_run else "bytes freed"
            rows = [
                ("scanned (expired terminal jobs)", f"{report.items_scanned:,}"),
                ("spared, pinned", f"{report.items_spared_pinned:,}"),
                (f"spared, among the newest {keep}", f"{report.items_spared_window:,}"),
                (freed, f"{report.total_bytes_freed:,}"),
            ]
            mode = "dry run: would prune" if dry_run else "pruned"
            click.echo(f"{mode} {report.items_pruned:,} job(s)")
            width = max(len(label) for label, _ in rows) + 1
            number = max(len(value) for _, value in rows)
            for label, value in rows:
                click.echo(f"  {label + ':':{width}} {value:>{number}}")
            click.echo(f"  {'at:':{width}} {report.timestamp.isoformat()}")

        emit(as_json, payload, human)


def _prune_fields(report: Any) -> dict[str, Any]:
    return {
        name: getattr(report, name)
        for name in (
            "timestamp",
            "items_scanned",
            "items_pruned",
            "items_spared_pinned",
            "items_spared_window",
            "total_bytes_freed",
        )
    }


# -- shell completion -----------------------------------------------------------------


@main.command()
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
@click.pass_context
def completion(ctx: click.Context, shell: str) -> None:
    """Print the shell completion script, e.g. `eval "$(handshake-storage completion bash)"`."""
    from click.shell_completion import get_completion_class

    cls = get_completion_class(shell)
    assert cls is not None
    root = ctx.find_root()
    prog = root.info_name or "handshake-storage"
    var = "_" + prog.replace("-", "_").upper() + "_COMPLETE"
    click.echo(cls(root.command, {}, prog, var).source())


# The sync commands (sync, conflicts, ledger).
for _command in cli_sync.COMMANDS:
    main.add_command(_command)
