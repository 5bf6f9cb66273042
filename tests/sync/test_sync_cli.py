"""The sync commands: ``sync``, ``conflicts`` and ``ledger``, as the README's
walk-through uses them (a laptop file and a second database, edits on both,
one sync, a conflict shown and restored)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from sync_support import ADA, BOB

from handshake_storage import BlockUpdate, NewBlock, NewDocument, NewWorkspace, open_database
from handshake_storage.backends.base import WRITE
from handshake_storage.cli import main
from handshake_storage.transfer import copy_database


def cli(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), env=env)
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def laptop_and_server(databases, tmp_path):
    laptop_url = databases.url(migrated=True)
    with open_database(laptop_url) as laptop:
        laptop.reidentify()
        laptop.create_workspace(ADA, NewWorkspace("Notes", id="notes"))
        laptop.create_document(ADA, NewDocument("notes", "Plan", id="plan"))
        laptop.create_block(ADA, NewBlock("plan", "p", 1, "Ship on Friday", id="b1"))
    server_url = f"sqlite:///{tmp_path / 'server.db'}"
    copy_database(laptop_url, server_url)
    return laptop_url, server_url


def test_the_readme_walk_through(laptop_and_server) -> None:
    laptop_url, server_url = laptop_and_server
    env = {"HANDSHAKE_DATABASE_URL": laptop_url, "HANDSHAKE_SYNC_PEER_URL": server_url}
    with open_database(laptop_url) as laptop:
        laptop.update_block(ADA, "b1", BlockUpdate(raw_content="Friday (laptop)"))
    with open_database(server_url) as server:
        server.update_block(BOB, "b1", BlockUpdate(raw_content="Monday (server)"))
    code, out, err = cli("sync", "--verify", "--json", env=env)
    assert code == 0, err
    report = json.loads(out)
    assert report["verified"] is True and report["moved"] == 2
    assert all(t["equal"] for t in report["tables"])
    code, out, _ = cli("conflicts", "list", "--json", env=env)
    body = json.loads(out)
    assert body["ok"] is True
    (conflict,) = body["conflicts"]
    assert conflict["kind"] == "field" and conflict["loser"]["provenance"]["actor_id"] == "ada"
    code, out, _ = cli("conflicts", "show", conflict["id"], env=env)
    assert code == 0 and "losing raw_content: 'Friday (laptop)'" in out
    code, out, err = cli("conflicts", "restore", conflict["id"], "--actor", "ada", env=env)
    assert code == 0, err
    assert cli("sync", env=env)[0] == 0
    with open_database(server_url) as server:
        assert server.get_block("b1").raw_content == "Friday (laptop)"
    code, out, _ = cli("ledger", "status", "--json", env=env)
    assert code == 0 and json.loads(out)["applied"]["notes"]
    code, out, _ = cli("ledger", "changes", "--json", env=env)
    assert code == 0 and any(c["operation"] == "update_block" for c in json.loads(out)["changes"])
    code, out, _ = cli("ledger", "prune", "--json", env=env)
    assert code == 0 and json.loads(out)["peers"] == 1
    # Already restored: a one-line error and exit 1.
    code, _, err = cli("conflicts", "restore", conflict["id"], env=env)
    assert code == 1 and err.startswith("error: ") and "already restored" in err


def test_usage_errors_exit_2_and_urls_come_from_the_environment(laptop_and_server) -> None:
    laptop_url, server_url = laptop_and_server
    base = {"HANDSHAKE_DATABASE_URL": laptop_url}
    code, _, err = cli("sync", env=base)
    assert code == 2 and "peer database is missing" in err
    code, _, err = cli("sync", "--b-env", "NOT_SET_ANYWHERE", env=base)
    assert code == 2 and "NOT_SET_ANYWHERE" in err
    env = {**base, "PEER": server_url}
    code, out, err = cli("sync", "--b-env", "PEER", "--dry-run", "--json", env=env)
    assert code == 0, err
    assert json.loads(out)["dry_run"] is True
    code, _, err = cli("sync", laptop_url, server_url, "--workspace", "notes", env=base)
    assert code == 0, err
    code, _, err = cli("conflicts", "show", "no-such", env=base)
    assert code == 1 and "does not exist" in err


def test_sync_commands_follow_the_cli_conventions(laptop_and_server, tmp_path) -> None:
    """--database-url after the subcommand, one {"ok": ...} JSON document on
    success and on failure; no sync command creates a database that is not
    there (a mistyped path is an error, not a new empty replica)."""
    laptop_url, _ = laptop_and_server
    code, out, err = cli("ledger", "status", "--database-url", laptop_url, "--json", env={})
    assert code == 0, err
    body = json.loads(out)
    assert body["ok"] is True and body["replica_id"]
    code, out, err = cli(
        "conflicts", "show", "no-such", "--json", "--database-url", laptop_url, env={}
    )
    assert code == 1 and err.startswith("error: ") and "does not exist" in err
    failed = json.loads(out)
    assert (
        failed["ok"] is False and failed["exit_code"] == 1 and "does not exist" in failed["error"]
    )
    missing = tmp_path / "typo.db"
    for args in (
        ("conflicts", "list"),
        ("ledger", "status"),
        ("ledger", "changes"),
        ("ledger", "prune"),
        ("conflicts", "restore", "no-such", "--actor", "ada"),
    ):
        code, _, err = cli(*args, "--database-url", f"sqlite:///{missing}", env={})
        assert code == 1 and err.startswith("error: "), (args, err)
        assert not missing.exists(), args
    for sides in ((laptop_url, f"sqlite:///{missing}"), (f"sqlite:///{missing}", laptop_url)):
        code, _, err = cli("sync", *sides, env={})
        assert code == 1 and "no such file" in err, err
        assert not missing.exists()
    code, _, err = cli(
        "sync", "--database-url", "mysql://nothing", f"sqlite:///{tmp_path / 'peer.db'}", env={}
    )
    assert code == 2 and err.startswith("error: "), err
    assert not (tmp_path / "peer.db").exists()


def test_a_database_migrated_by_the_cli_has_its_replica_id_for_read_only_commands(
    databases,
) -> None:
    """`migrate` gives the database its replica id (as run_migrations does), so
    the read-only `ledger status` has one to show and never tries to write.
    On both backends, with the same messages."""
    url = databases.url()
    code, _, err = cli("migrate", "--database-url", url, env={})
    assert code == 0, err
    code, out, err = cli("ledger", "status", "--database-url", url, "--json", env={})
    assert code == 0, err
    body = json.loads(out)
    assert body["ok"] is True and body["replica_id"] and body["applied"] == {}
    # Migrated by another tool (no replica id row): read-only commands say so and write nothing.
    with open_database(url) as db, db._adapter.transaction(WRITE) as s:
        s.execute("DELETE FROM sync_replica")
    code, _, err = cli("ledger", "status", "--database-url", url, env={})
    assert code == 1 and err.startswith("error: ") and "has no replica id yet" in err, err
    with open_database(url) as db, db._adapter.transaction(WRITE) as s:
        assert s.execute("SELECT COUNT(*) FROM sync_replica").fetchone()[0] == 0
    code, _, err = cli("conflicts", "list", "--database-url", url, env={})
    assert code == 0, err


def test_a_file_cloned_with_cp_gets_its_own_replica_id_from_ledger_reidentify(
    laptop_and_server, tmp_path
) -> None:
    """A laptop file copied with ``cp`` is the same replica as its original:
    sync refuses the pair and names the command that fixes it; ``ledger
    reidentify`` on the clone gives it a new id (JSON: the new and the
    previous one), after which the two sync incrementally both ways. On a
    file that is not there it is an error and creates nothing."""
    import shutil

    laptop_url, _ = laptop_and_server
    laptop_path = laptop_url.removeprefix("sqlite:///")
    if not laptop_url.startswith("sqlite:///"):
        pytest.skip("cp clones a file")
    clone_url = f"sqlite:///{tmp_path / 'clone.db'}"
    shutil.copyfile(laptop_path, tmp_path / "clone.db")
    code, _, err = cli("sync", laptop_url, clone_url, env={})
    assert code == 1 and "same replica" in err and "ledger reidentify" in err, err
    with open_database(laptop_url) as laptop:
        original = laptop.replica_id
    code, out, err = cli("ledger", "reidentify", "--database-url", clone_url, "--json", env={})
    assert code == 0, err
    body = json.loads(out)
    assert body["ok"] is True and body["previous_replica_id"] == original
    assert body["replica_id"] not in (original, None)
    with open_database(clone_url) as clone:
        assert clone.replica_id == body["replica_id"]
        clone.update_block(BOB, "b1", BlockUpdate(raw_content="Ship on Monday"))
    with open_database(laptop_url) as laptop:
        assert laptop.replica_id == original  # the original keeps its id
    code, out, err = cli("sync", laptop_url, clone_url, "--json", env={})
    assert code == 0, err
    moved = json.loads(out)
    assert moved["pulled"]["applied"] == 1 and moved["pushed"]["applied"] == 0, moved
    with open_database(laptop_url) as laptop:
        assert laptop.get_block("b1").raw_content == "Ship on Monday"
    missing = tmp_path / "typo.db"
    code, _, err = cli("ledger", "reidentify", "--database-url", f"sqlite:///{missing}", env={})
    assert code == 1 and err.startswith("error: ") and not missing.exists(), err


def test_the_readme_walk_through_runs_as_written(postgres_server, tmp_path) -> None:
    """The README's "Working offline and syncing" block, run by bash as a
    new user would, with only the server made local: ``createdb`` and the
    example server URL point at the test's PostgreSQL, ``$HOME`` is a fresh
    directory, and the example conflict id is the one the log lists. Every
    step must succeed, and the restored edit must be on both sides."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme[readme.index("## Working offline and syncing") :]
    start = section.index("```bash\n") + len("```bash\n")
    block = section[start : section.index("```\n", start)]
    name = postgres_server.create()
    server_url = postgres_server.url_for(name)
    conflict_id = "82ac0719-4df2-4af8-9ec8-860ac9e4388a"
    first_id = (
        "$(handshake-storage conflicts list --json | "
        'python -c \'import json, sys; print(json.load(sys.stdin)["conflicts"][0]["id"])\')'
    )
    for example in ("createdb handshake", conflict_id):
        assert example in block, example  # the substitutions below still apply
    script = (
        block.replace("createdb handshake", ":")  # the database is made above
        .replace("postgresql://me@db.example.com/handshake", f"'{server_url}'")
        .replace("postgresql://me:secret@db.example.com/handshake", f"'{server_url}'")
        .replace(conflict_id, first_id)
    )
    bindir = Path(sys.executable).parent
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("HANDSHAKE_")},
        "HOME": str(tmp_path),
        "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}",
    }
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, (done.stdout[-2000:], done.stderr[-2000:])
    assert "1 conflict(s)" in done.stdout and "restored conflict" in done.stdout
    # the laptop restored its logged loss; the server logged its own, still open
    for url, restored in ((f"sqlite:///{tmp_path / 'handshake.db'}", True), (server_url, False)):
        with open_database(url) as db:
            assert db.get_block("b1").raw_content == "Ship on Friday (laptop, offline)", url
            assert [c.restored_at is not None for c in db.conflicts()] == [restored], url
    postgres_server.drop(name)
