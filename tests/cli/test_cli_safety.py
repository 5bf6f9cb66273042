"""Commands that destroy or remove data: a rollback that drops tables holding
rows asks on a terminal and refuses without ``--yes`` otherwise; the prune
report (aligned, honest in a dry run, ``--json``). Installed script, both
backends; the terminal is a real pseudo-terminal.
"""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import time
import uuid

import pytest
from cli_support import ENV, command, ok, one_line_error, run

from handshake_storage import (
    AccessMode,
    JobState,
    JobStatusUpdate,
    NewAiJob,
    NewDocument,
    NewWorkspace,
    SafetyMode,
    WriteContext,
    open_database,
)
from handshake_storage.migrator import load_migrations

_VERSION = {m.description: m.version for m in load_migrations()}
LEDGER = _VERSION["change_ledger"]  # its tables hold rows after any write
SEARCH = _VERSION["block_search_fulltext"]  # derived only: rolling it back drops no rows
ME = WriteContext.human("cli-test")


@pytest.fixture(autouse=True)
def isolated_environment(monkeypatch, tmp_path):
    monkeypatch.delenv(ENV, raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))


def in_terminal(*args: str, answer: str | None, timeout: float = 120) -> tuple[int, str]:
    """Run the command on a pseudo-terminal; type ``answer`` at its prompt."""
    master, slave = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    proc = subprocess.Popen(
        [*command(), *args], stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True
    )
    os.close(slave)
    output = b""
    answered = answer is None
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # the child closed the terminal
                    break
                if not chunk:
                    break
                output += chunk
                if not answered and b"[y/N]" in output:
                    os.write(master, answer.encode() + b"\r")  # type: ignore[union-attr]
                    answered = True
            elif proc.poll() is not None:
                break
        code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
    return code, output.decode(errors="replace").replace("\r\n", "\n")


def content(url: str) -> tuple[set[str], list[str]]:
    """The tables, and the workspaces' names if that table is still there."""
    with open_database(url) as db:
        tables = set(db.schema().tables)
        names = [w.name for w in db.list_workspaces()] if "workspaces" in tables else []
    return tables, names


def test_a_rollback_that_drops_rows_asks_or_refuses(databases):
    url = databases.url(migrated=True)
    with open_database(url) as db:
        ws = db.create_workspace(ME, NewWorkspace("kept"))
        db.create_document(ME, NewDocument(ws.id, "doc"))
    before = content(url)

    refused = run("--database-url", url, "rollback", "--to", "0")
    error = one_line_error(refused)
    assert "drops tables holding rows: " in error
    assert "workspaces (1 row)" in error and "documents (1 row)" in error
    assert "rerun with --yes" in error
    assert content(url) == before

    code, shown = in_terminal("--database-url", url, "rollback", "--to", "0", answer="n")
    assert code == 1, shown
    assert "Drop them? [y/N]" in shown and "rollback cancelled; nothing was changed" in shown
    assert content(url) == before

    # The change ledger holds the change sets: rolling it back needs --yes.
    lines = ok(run("--database-url", url, "rollback", "--to", str(LEDGER - 1), "--yes"))
    assert lines[-1] == f"rolled back to version {LEDGER - 1}"
    # Rolling back what holds no rows (the search projection, derived) asks nothing.
    lines = ok(run("--database-url", url, "rollback", "--to", str(SEARCH - 1)))
    assert lines[-1] == f"rolled back to version {SEARCH - 1}"

    lines = ok(run("--database-url", url, "rollback", "--to", "1"))  # 0002's tables are empty
    assert lines[-1] == "rolled back to version 1"
    tables, names = content(url)
    assert names == ["kept"] and "ai_jobs" not in tables

    result = run("--database-url", url, "rollback", "--to", "0", "--yes", "--json")
    assert result.exit_code == 0, result
    body = result.json()
    assert body["rows_dropped"] == {"documents": 1, "workspaces": 1}
    assert (body["from_version"], body["to_version"]) == (1, 0)
    tables, _ = content(url)
    assert "workspaces" not in tables


def test_a_rollback_asks_on_a_terminal_and_proceeds_on_yes(databases):
    url = databases.url(migrated=True)
    with open_database(url) as db:
        db.create_workspace(ME, NewWorkspace("gone"))
    code, shown = in_terminal("--database-url", url, "rollback", "--to", "0", answer="y")
    assert code == 0, shown
    assert "workspaces (1 row)" in shown and "rolled back to version 0" in shown
    tables, _ = content(url)
    assert "workspaces" not in tables


def new_job(k: int) -> NewAiJob:
    return NewAiJob(
        trace_id=uuid.UUID(int=k + 1),
        job_kind="summarize",
        protocol_id="p",
        profile_id="pr",
        capability_profile_id="c",
        access_mode=AccessMode.ANALYSIS_ONLY,
        safety_mode=SafetyMode.NORMAL,
        job_inputs={"text": "x" * 100},
    )


def test_prune_report_is_aligned_honest_in_a_dry_run_and_has_json(databases):
    url = databases.url(migrated=True)
    with open_database(url) as db:
        jobs = [db.create_ai_job(new_job(k)) for k in range(6)]
        for job in jobs[:5]:
            db.update_ai_job_status(JobStatusUpdate(job.id, JobState.COMPLETED))
        db.set_job_pinned(jobs[0].id)
    args = ("--database-url", url, "prune", "--older-than", "0", "--keep-newest", "2")

    lines = ok(run(*args, "--dry-run"))
    assert lines[0] == "dry run: would prune 2 job(s)"
    assert "bytes freed" not in "\n".join(lines)
    labels = {line.split(":")[0].strip(): line for line in lines[1:]}
    assert set(labels) == {
        "scanned (expired terminal jobs)",
        "spared, pinned",
        "spared, among the newest 2",
        "bytes that would be freed",
        "at",
    }
    # every label ends with a colon and the numbers are right-aligned in one column
    numbers = [line for line in lines[1:] if not line.lstrip().startswith("at:")]
    assert all(re.fullmatch(r"  [^:]+: +\d[\d,]*", line) for line in numbers), numbers
    assert len({len(line) for line in numbers}) == 1, numbers
    with open_database(url) as db:
        assert all(db.get_ai_job(j.id) for j in jobs)

    body = run(*args, "--dry-run", "--json").json()
    assert body["ok"] is True and body["dry_run"] is True
    assert (body["items_scanned"], body["items_pruned"]) == (5, 2)
    assert (body["items_spared_pinned"], body["items_spared_window"]) == (1, 2)
    assert body["total_bytes_freed"] > 0

    done = run(*args, "--json").json()
    assert done["dry_run"] is False and done["items_pruned"] == 2
    assert done["total_bytes_freed"] == body["total_bytes_freed"]
    lines = ok(run(*args))
    assert lines[0] == "pruned 0 job(s)"
    assert any(line.startswith("  bytes freed:") for line in lines)
    # --min-versions is the same option under the API's name
    same = run("--database-url", url, "prune", "--older-than", "0", "--min-versions", "2", "--json")
    assert same.json()["items_spared_window"] == 2
