"""``handshake-storage sync``, ``conflicts`` and ``ledger``: the sync commands.

Registered on the main group by ``cli.py`` (``register``), which hands in
its helpers, so this module does not import it back. Every command that reports offers
``--json``; URLs may come from environment variables so that no password
shows in ``ps``; progress goes to stderr.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any, NoReturn

import click

from .guard import WriteContext
from .url import redact

#: The peer URL used when ``sync`` is given only one database.
PEER_ENV_VAR = "HANDSHAKE_SYNC_PEER_URL"


def _echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=True, default=str))


def register(
    main: click.Group,
    *,
    fail: Callable[..., NoReturn],
    pass_context: Callable[..., Any],
    reported: Callable[[], AbstractContextManager[None]],
) -> None:
    """Add ``sync``, ``conflicts`` and ``ledger`` to the ``main`` group."""

    def _env_url(var: str) -> str:
        value = os.environ.get(var)
        if not value:
            fail(f"environment variable {var} is not set", 2)
        return value

    @main.command()
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
    @click.option(
        "--verify", is_flag=True, help="Compare every table's rows and digest afterwards."
    )
    @click.option("--batch-size", default=500, show_default=True, help="Change sets per batch.")
    @click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
    @pass_context
    def sync(
        ctx: Any,
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
        a = _env_url(a_env) if a_env else (url_a or ctx.url)
        if b_env:
            b = _env_url(b_env)
        elif url_b:
            b = url_b
        elif os.environ.get(PEER_ENV_VAR):
            b = _env_url(PEER_ENV_VAR)
        else:
            fail(f"the peer database is missing: give URL_B, --b-env VAR or ${PEER_ENV_VAR}", 2)

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
        if as_json:
            _echo_json(report.as_dict())
        else:
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
            fail("the databases differ after the sync (see the table above)")

    @main.group()
    def conflicts() -> None:
        """The conflict log: changes that lost a merge, with both sides' provenance."""

    @conflicts.command("list")
    @click.option("--workspace", metavar="ID", help="Only this workspace.")
    @click.option("--kind", type=click.Choice(["field", "stale_generation", "deleted", "rejected"]))
    @click.option("--open", "only_open", is_flag=True, help="Only those not restored.")
    @click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
    @pass_context
    def conflicts_list(
        ctx: Any, workspace: str | None, kind: str | None, only_open: bool, as_json: bool
    ) -> None:
        """List conflicts, oldest first."""
        with reported(), ctx.open() as db:
            found = db.conflicts(workspace_id=workspace, kind=kind, include_restored=not only_open)
        if as_json:
            _echo_json([c.as_dict() for c in found])
            return
        if not found:
            click.echo("no conflicts")
        for c in found:
            lost, won = c.loser_provenance, c.winner_provenance
            state = "restored" if c.restored_at else "open"
            click.echo(
                f"{c.id}  {c.kind:16} {c.table_name}/{c.row_id}  lost: {_who(lost)}  "
                f"won: {_who(won)}  [{state}]"
            )

    def _who(p: dict[str, Any]) -> str:
        if not p:
            return "-"
        actor = p.get("actor_id") or p.get("actor_kind") or "?"
        return f"{actor}@{str(p.get('origin_id', '?'))[:8]}"

    @conflicts.command("show")
    @click.argument("conflict_id")
    @click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
    @pass_context
    def conflicts_show(ctx: Any, conflict_id: str, as_json: bool) -> None:
        """Show one conflict: what lost, what won, and who made each."""
        with reported(), ctx.open() as db:
            c = db.get_conflict(conflict_id)
        if as_json:
            _echo_json(c.as_dict())
            return
        click.echo(f"conflict {c.id} ({c.kind}) on {c.table_name}/{c.row_id}")
        click.echo(f"  detected: {c.detected_at.isoformat()}")
        click.echo(f"  lost:     {json.dumps(c.loser_provenance, sort_keys=True)}")
        click.echo(f"  won:      {json.dumps(c.winner_provenance, sort_keys=True)}")
        if "columns" in c.loser:
            for name, value in zip(c.loser["columns"][1:], c.loser["values"][1:], strict=True):
                click.echo(f"  losing {name}: {value!r}")
        state = f"restored {c.restored_at.isoformat()}" if c.restored_at else "open"
        click.echo(f"  state:    {state}")

    @conflicts.command("restore")
    @click.argument("conflict_id")
    @click.option("--actor", default=None, help="Who restores it (recorded as a human edit).")
    @click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
    @pass_context
    def conflicts_restore(ctx: Any, conflict_id: str, actor: str | None, as_json: bool) -> None:
        """Write what lost again, as a new edit by --actor."""
        with reported(), ctx.open() as db:
            c = db.restore_conflict(WriteContext.human(actor), conflict_id)
        if as_json:
            _echo_json(c.as_dict())
        else:
            click.echo(f"restored conflict {c.id} as edit {c.restored_event_id}")

    @main.group()
    def ledger() -> None:
        """The change ledger: replica id, change sets, pruning."""

    @ledger.command("status")
    @click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
    @pass_context
    def ledger_status(ctx: Any, as_json: bool) -> None:
        """This replica's id and what it has applied, per workspace and origin."""
        with reported(), ctx.open(read_only=True) as db:
            status = {"replica_id": db.replica_id, "applied": db.sync_vector()}
        if as_json:
            _echo_json(status)
            return
        click.echo(f"replica: {status['replica_id']}")
        for scope, origins in sorted(status["applied"].items()):
            for origin, seq in sorted(origins.items()):
                click.echo(f"  {scope or '(jobs)':38} {origin}  up to {seq}")

    @ledger.command("changes")
    @click.option("--workspace", metavar="ID")
    @click.option("--job", metavar="UUID", help="Only what this AI job changed.")
    @click.option("--actor", metavar="ID")
    @click.option("--limit", default=100, show_default=True)
    @click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
    @pass_context
    def ledger_changes(
        ctx: Any,
        workspace: str | None,
        job: str | None,
        actor: str | None,
        limit: int,
        as_json: bool,
    ) -> None:
        """List change sets of the ledger, oldest stamp first."""
        from uuid import UUID

        try:
            job_id = None if job is None else UUID(job)
        except ValueError:
            fail(f"--job must be a UUID, not {job!r}", 2)
        with reported(), ctx.open(read_only=True) as db:
            found = db.changes(workspace_id=workspace, job_id=job_id, actor_id=actor, limit=limit)
        if as_json:
            from .sync.batch import encode

            _echo_json(encode("", found, True)["changes"])
            return
        for c in found:
            click.echo(
                f"{c.hlc}  {c.operation:38} {c.subject_table}/{c.subject_id}  "
                f"{c.actor_kind.value}:{c.actor_id or '-'}  [{c.status}]"
            )

    @ledger.command("prune")
    @click.option("--dry-run", is_flag=True, help="Report what would be pruned; change nothing.")
    @click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
    @pass_context
    def ledger_prune(ctx: Any, dry_run: bool, as_json: bool) -> None:
        """Compact change sets that every known peer has applied."""
        with reported(), ctx.open() as db:
            report = db.prune_ledger(dry_run=dry_run)
        if as_json:
            _echo_json({**report.__dict__, "at": datetime.now(UTC).isoformat()})
            return
        verb = "would prune" if dry_run else "pruned"
        click.echo(
            f"{verb} {report.pruned} of {report.scanned} change set(s); kept {report.kept} "
            f"(newest of a live row, or not yet applied by every peer); peers known: {report.peers}"
        )
