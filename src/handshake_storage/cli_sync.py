"""``handshake-storage sync``, ``conflicts`` and ``ledger``: the sync commands.

They follow :mod:`handshake_storage.console` like every other command:
``--database-url`` before or after the subcommand, ``--json`` printing one
``{"ok": ...}`` document (schemas: README, "Scripting"), one ``error:`` line
and the documented exit code on failure, URLs from environment variables so
that no password shows in ``ps``, progress on stderr. ``cli.py`` adds
:data:`COMMANDS` to its group.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import click

from .console import (
    Context,
    OneLineCommand,
    OneLineGroup,
    emit,
    fail,
    json_option,
    reported,
    url_from,
    uses_database,
)
from .guard import WriteContext
from .url import redact

#: The peer URL used when ``sync`` is given only one database.
PEER_ENV_VAR = "HANDSHAKE_SYNC_PEER_URL"


def _peer_url(url_b: str | None, b_env: str | None) -> str:
    """URL_B, else --b-env VAR, else $HANDSHAKE_SYNC_PEER_URL."""
    if url_b is not None or b_env is not None:
        return url_from(url_b, b_env, "URL_B")
    if os.environ.get(PEER_ENV_VAR):
        return url_from(None, PEER_ENV_VAR, "URL_B")
    fail(f"the peer database is missing: give URL_B, --b-env VAR or ${PEER_ENV_VAR}", 2)


@click.command(cls=OneLineCommand)
@click.argument("url_a", required=False, metavar="[URL_A]")
@click.argument("url_b", required=False, metavar="[URL_B]")
@click.option("--a-env", metavar="VAR", help="Read URL_A from this environment variable.")
@click.option("--b-env", metavar="VAR", help="Read URL_B from this environment variable.")
@click.option(
    "--workspace",
    "workspaces",
    multiple=True,
    metavar="ID",
    help="Only this workspace (repeat).",
)
@click.option("--push", "direction", flag_value="push", help="Only A -> B.")
@click.option("--pull", "direction", flag_value="pull", help="Only B -> A.")
@click.option("--dry-run", is_flag=True, help="Count what would move; change nothing.")
@click.option("--verify", is_flag=True, help="Compare every table's rows and digest afterwards.")
@click.option("--batch-size", default=500, show_default=True, help="Change sets per batch.")
@json_option
@uses_database
def sync(
    ctx: Context,
    url_a: str | None,
    url_b: str | None,
    a_env: str | None,
    b_env: str | None,
    workspaces: tuple[str, ...],
    direction: str | None,
    dry_run: bool,
    verify: bool,
    batch_size: int,
    as_json: bool,
) -> None:
    """Sync two databases both ways (or one way with --push/--pull).

    Given one URL, it is B and A is the usual database (--database-url,
    $HANDSHAKE_DATABASE_URL, else the embedded file); without URL_B, B comes
    from --b-env VAR or $HANDSHAKE_SYNC_PEER_URL. --a-env / --b-env read a URL
    from an environment variable (keeps passwords out of ps). Exit status 1
    if --verify finds a difference.
    """
    from .sync import sync_databases

    if url_b is None and url_a is not None:  # one URL: the peer of the usual database
        url_a, url_b = None, url_a
    a = url_from(url_a, a_env, "URL_A") if url_a or a_env else ctx.checked_url()
    b = _peer_url(url_b, b_env)

    def progress(way: str, moved: int, batches: int) -> None:
        if not as_json:
            click.echo(f"  {way}: {moved} change set(s) in {batches} batch(es)", err=True)

    with reported():
        if not as_json:
            click.echo(f"syncing {redact(a)} <-> {redact(b)}", err=True)
        report = sync_databases(
            a,
            b,
            workspaces=list(workspaces) or None,
            direction=direction or "both",
            dry_run=dry_run,
            verify=verify,
            batch_size=batch_size,
            progress=progress,
        )

    def human() -> None:
        verb = "would move" if dry_run else "moved"
        for name, part in (("A -> B", report.pushed), ("B -> A", report.pulled)):
            click.echo(
                f"{name}: {verb} {part.applied + part.rejected} change set(s): "
                f"{part.applied} applied, {part.rejected} rejected, "
                f"{part.skipped} already there, {part.conflicts} conflict(s)"
            )
        if report.tables is not None:
            for t in report.tables:
                state = "equal" if t.equal else "DIFFERENT"
                click.echo(f"{t.name:26} {t.rows_a:>9} / {t.rows_b:<9} {state}")
        click.echo(f"done in {report.seconds:.2f}s")

    if report.verified is False:
        if not as_json:
            human()
        fail("the databases differ after the sync (see the table above)", payload=report.as_dict())
    emit(as_json, report.as_dict(), human)


# -- conflicts ----------------------------------------------------------------------------


@click.group(cls=OneLineGroup)
def conflicts() -> None:
    """The conflict log: changes that lost a merge, with both sides' provenance."""


def _who(p: dict[str, Any]) -> str:
    if not p:
        return "-"
    actor = p.get("actor_id") or p.get("actor_kind") or "?"
    return f"{actor}@{str(p.get('origin_id', '?'))[:8]}"


@conflicts.command("list")
@click.option("--workspace", metavar="ID", help="Only this workspace.")
@click.option("--kind", type=click.Choice(["field", "stale_generation", "deleted", "rejected"]))
@click.option("--open", "only_open", is_flag=True, help="Only those not restored.")
@json_option
@uses_database
def conflicts_list(
    ctx: Context, workspace: str | None, kind: str | None, only_open: bool, as_json: bool
) -> None:
    """List conflicts, oldest first."""
    with reported(), ctx.open(read_only=True) as db:
        found = db.conflicts(workspace_id=workspace, kind=kind, include_restored=not only_open)

    def human() -> None:
        if not found:
            click.echo("no conflicts")
        for c in found:
            lost, won = c.loser_provenance, c.winner_provenance
            state = "restored" if c.restored_at else "open"
            click.echo(
                f"{c.id}  {c.kind:16} {c.table_name}/{c.row_id}  lost: {_who(lost)}  "
                f"won: {_who(won)}  [{state}]"
            )

    emit(as_json, {"conflicts": [c.as_dict() for c in found]}, human)


@conflicts.command("show")
@click.argument("conflict_id")
@json_option
@uses_database
def conflicts_show(ctx: Context, conflict_id: str, as_json: bool) -> None:
    """Show one conflict: what lost, what won, and who made each."""
    with reported(), ctx.open(read_only=True) as db:
        c = db.get_conflict(conflict_id)

    def human() -> None:
        click.echo(f"conflict {c.id} ({c.kind}) on {c.table_name}/{c.row_id}")
        click.echo(f"  detected: {c.detected_at.isoformat()}")
        click.echo(f"  lost:     {json.dumps(c.loser_provenance, sort_keys=True)}")
        click.echo(f"  won:      {json.dumps(c.winner_provenance, sort_keys=True)}")
        if "columns" in c.loser:
            for name, value in zip(c.loser["columns"][1:], c.loser["values"][1:], strict=True):
                click.echo(f"  losing {name}: {value!r}")
        state = f"restored {c.restored_at.isoformat()}" if c.restored_at else "open"
        click.echo(f"  state:    {state}")

    emit(as_json, {"conflict": c.as_dict()}, human)


@conflicts.command("restore")
@click.argument("conflict_id")
@click.option("--actor", default=None, help="Who restores it (recorded as a human edit).")
@json_option
@uses_database
def conflicts_restore(ctx: Context, conflict_id: str, actor: str | None, as_json: bool) -> None:
    """Write what lost again, as a new edit by --actor."""
    with reported(), ctx.open(create=False) as db:
        c = db.restore_conflict(WriteContext.human(actor), conflict_id)
    emit(
        as_json,
        {"conflict": c.as_dict()},
        lambda: click.echo(f"restored conflict {c.id} as edit {c.restored_event_id}"),
    )


# -- the ledger ---------------------------------------------------------------------------


@click.group(cls=OneLineGroup)
def ledger() -> None:
    """The change ledger: replica id, change sets, pruning."""


@ledger.command("status")
@json_option
@uses_database
def ledger_status(ctx: Context, as_json: bool) -> None:
    """This replica's id and what it has applied, per workspace and origin."""
    with reported(), ctx.open(read_only=True) as db:
        status = {"replica_id": db.replica_id, "applied": db.sync_vector()}

    def human() -> None:
        click.echo(f"replica: {status['replica_id']}")
        for scope, origins in sorted(status["applied"].items()):
            for origin, seq in sorted(origins.items()):
                click.echo(f"  {scope or '(jobs)':38} {origin}  up to {seq}")

    emit(as_json, status, human)


@ledger.command("changes")
@click.option("--workspace", metavar="ID")
@click.option("--job", metavar="UUID", help="Only what this AI job changed.")
@click.option("--actor", metavar="ID")
@click.option("--limit", default=100, show_default=True)
@json_option
@uses_database
def ledger_changes(
    ctx: Context,
    workspace: str | None,
    job: str | None,
    actor: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """List change sets of the ledger, oldest write first."""
    from .sync.batch import encode

    try:
        job_id = None if job is None else UUID(job)
    except ValueError:
        fail(f"--job must be a UUID, not {job!r}", 2)
    with reported(), ctx.open(read_only=True) as db:
        found = db.changes(workspace_id=workspace, job_id=job_id, actor_id=actor, limit=limit)

    def human() -> None:
        for c in found:
            click.echo(
                f"{c.hlc}  {c.operation:38} {c.subject_table}/{c.subject_id}  "
                f"{c.actor_kind.value}:{c.actor_id or '-'}  [{c.status}]"
            )

    emit(as_json, {"changes": encode("", found, True)["changes"]}, human)


@ledger.command("prune")
@click.option("--dry-run", is_flag=True, help="Report what would be pruned; change nothing.")
@json_option
@uses_database
def ledger_prune(ctx: Context, dry_run: bool, as_json: bool) -> None:
    """Compact change sets that every known peer has applied."""
    with reported(), ctx.open(create=False) as db:
        report = db.prune_ledger(dry_run=dry_run)

    def human() -> None:
        verb = "would prune" if dry_run else "pruned"
        click.echo(
            f"{verb} {report.pruned} of {report.scanned} change set(s); kept {report.kept} "
            f"(newest of a live row, or not yet applied by every peer); peers known: {report.peers}"
        )

    emit(as_json, {**report.__dict__, "at": datetime.now(UTC).isoformat()}, human)


@ledger.command("reidentify")
@json_option
@uses_database
def ledger_reidentify(ctx: Context, as_json: bool) -> None:
    """Give this database a new replica id (a file cloned with cp, not copy).

    A clone made outside the library has its original's id, so the two
    cannot sync; this gives it its own, as ``copy`` gives its target one.
    Its ledger keeps its origins, so it then syncs incrementally with the
    original. Run it on the clone, never on the original."""
    with reported(), ctx.open(create=False) as db:
        previous = db.replica_id
        replica = db.reidentify()

    def human() -> None:
        click.echo(f"replica: {replica} (was {previous})")

    emit(as_json, {"replica_id": replica, "previous_replica_id": previous}, human)


#: What ``cli.py`` adds to the ``handshake-storage`` group.
COMMANDS = (sync, conflicts, ledger)
