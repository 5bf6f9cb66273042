"""Migrators in separate processes: running at once, and killed with SIGKILL.

Several processes migrating one database at once: one applies, the others
wait and find nothing to do; never a double apply, never a crash. A migrator
killed at any point leaves the database at a clean version (every recorded
migration wholly present, nothing of an unrecorded one), and a migrator
started right after it completes the job.

The killing tests use ``tests/data/migrations_slow`` (see its README): slow
on purpose, so the kill can land inside a migration, between two, or while
PostgreSQL commits one.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from handshake_storage import Database
from handshake_storage.backends.base import AUTOCOMMIT, SNAPSHOT
from handshake_storage.migrator import (
    BOOKKEEPING_TABLES,
    LOG_TABLE,
    VERSION_TABLE,
    Migrator,
    load_migrations,
)

SLOW_DIR = Path(__file__).parent / "data" / "migrations_slow"
SLOW = load_migrations(SLOW_DIR)
SHIPPED = load_migrations()
#: What each slow migration creates, and how many rows its tables hold.
SLOW_OBJECTS = {
    1: {"slow_first"},
    2: {"slow_fill", "idx_slow_fill_n"},
    3: {"slow_parent", "slow_child"},
    4: {"slow_last"},
}
SLOW_ROWS = {"slow_fill": 400_000, "slow_parent": 100_000, "slow_child": 100_000}

#: Runs the migrator on a directory of migrations, printing its progress.
#: argv: URL, migrations directory, go-file ("-": start at once).
RUNNER = r"""
import sys, time
from pathlib import Path
from handshake_storage.backends import Options, create_adapter
from handshake_storage.migrator import Migrator, load_migrations
from handshake_storage.url import parse_url

url, directory, go = sys.argv[1:4]
adapter = create_adapter(parse_url(url), Options())
migrator = Migrator(adapter, load_migrations(Path(directory)))
if go != "-":
    print("ready", flush=True)
    while not Path(go).exists():
        time.sleep(0.001)
print("go", flush=True)
plan = migrator.migrate(progress=lambda event, m, s: print(event, m.version, flush=True))
print("applied", len(plan.steps), flush=True)
adapter.close()
"""

#: The CLI's ``main`` started in step with other processes. argv: go-file, CLI args.
CLI_AFTER_GO = r"""
import sys, time
from pathlib import Path
from handshake_storage.cli import main
go = Path(sys.argv[1])
print("ready", flush=True)
while not go.exists():
    time.sleep(0.001)
main(sys.argv[2:], prog_name="handshake-storage")
"""


def cli_executable() -> list[str]:
    script = Path(sys.executable).with_name("handshake-storage")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from handshake_storage.cli import main; main()"]


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("HANDSHAKE_DATABASE_URL", None)
    return env


def scalar(db: Database, sql: str) -> object:
    with db._adapter.transaction(SNAPSHOT) as session:
        return session.execute(sql).fetchone()[0]


def clean_version(db: Database) -> int:
    """Check, in one snapshot, that the recorded history matches the schema
    (slow migration set); return the version the database is at."""
    adapter = db._adapter
    with adapter.transaction(SNAPSHOT) as session:
        snapshot = adapter.introspect(session)
        versions: list[int] = []
        ups = 0
        if VERSION_TABLE in snapshot.tables:
            versions = [
                r[0]
                for r in session.execute(
                    f"SELECT version FROM {VERSION_TABLE} ORDER BY version"
                ).fetchall()
            ]
            ups = session.execute(
                f"SELECT COUNT(*) FROM {LOG_TABLE} WHERE action = 'up'"
            ).fetchone()[0]
        counts = {
            table: session.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
            for table in SLOW_ROWS
            if table in snapshot.tables
        }
    version = len(versions)
    assert versions == list(range(1, version + 1)), f"history is not a prefix: {versions}"
    assert ups == version, f"{ups} 'up' log rows for {version} applied migrations"
    present = (set(snapshot.tables) | set(snapshot.indexes)) - set(BOOKKEEPING_TABLES)
    expected = set().union(*(SLOW_OBJECTS[v] for v in versions))
    assert present == expected, f"at version {version}: objects {sorted(present)}"
    for table, count in counts.items():
        assert count == SLOW_ROWS[table], f"{table} has {count} rows"
    return version


class Child:
    """A subprocess whose output lines are collected as they arrive."""

    def __init__(self, args: list[str]) -> None:
        self.proc = subprocess.Popen(
            args,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=child_env(),
        )
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def wait_for_line(self, line: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        with self._changed:
            while line not in self.lines:
                if self.proc.poll() is not None and not self._reader.is_alive():
                    raise AssertionError(f"exited without printing {line!r}: {self.lines}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no {line!r} within {timeout}s: {self.lines}")
                self._changed.wait(left)

    def kill(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)
        self._reader.join(30)

    def finish(self, timeout: float = 120) -> tuple[int, str]:
        self.proc.wait(timeout)
        self._reader.join(timeout)
        assert self.proc.stderr is not None
        return self.proc.returncode, self.proc.stderr.read()


# -- at the same time ------------------------------------------------------------------


@pytest.mark.parametrize("round_", [1, 2, 3])
def test_two_cli_migrators_at_once_apply_each_migration_exactly_once(databases, tmp_path, round_):
    url = databases.url()
    go = tmp_path / "go"
    children = [
        Child([sys.executable, "-c", CLI_AFTER_GO, str(go), "--database-url", url, "migrate"])
        for _ in range(2)
    ]
    for child in children:  # both have imported the package and wait for the signal
        child.wait_for_line("ready")
    go.touch()
    results = [child.finish() for child in children]

    for (code, err), child in zip(results, children, strict=True):
        assert code == 0, (err, child.lines)
        assert err == ""
    outputs = sorted("\n".join(child.lines[1:]) for child in children)
    finished = [o for o in outputs if f"migrated to version {len(SHIPPED)}" in o]
    idle = [o for o in outputs if f"nothing to do: the database is at version {len(SHIPPED)}" in o]
    assert len(finished) == 1 and len(idle) == 1, outputs
    for m in SHIPPED:
        assert finished[0].count(f"{m.name} ... ok") == 1
        assert m.name not in idle[0]

    db = databases.open(url)
    assert scalar(db, f"SELECT COUNT(*) FROM {VERSION_TABLE}") == len(SHIPPED)
    assert scalar(db, f"SELECT COUNT(*) FROM {LOG_TABLE} WHERE action = 'up'") == len(SHIPPED)
    assert scalar(db, f"SELECT COUNT(*) FROM {LOG_TABLE}") == len(SHIPPED)
    assert [r.state for r in db.migration_status()] == ["applied"] * len(SHIPPED)
    assert db.schema() == databases.open().schema()  # the complete schema


def test_two_handshake_storage_processes_started_together(databases):
    url = databases.url()
    command = [*cli_executable(), "--database-url", url, "migrate"]
    children = [Child(command), Child(command)]
    results = [child.finish() for child in children]

    assert [code for code, _ in results] == [0, 0], results
    texts = ["\n".join(child.lines) for child in children]
    assert sum(f"migrated to version {len(SHIPPED)}" in t for t in texts) == 1, texts
    db = databases.open(url)
    assert scalar(db, f"SELECT COUNT(*) FROM {VERSION_TABLE}") == len(SHIPPED)
    assert scalar(db, f"SELECT COUNT(*) FROM {LOG_TABLE} WHERE action = 'up'") == len(SHIPPED)
    assert db.schema() == databases.open().schema()


def test_slow_migrators_at_once_one_applies_the_others_wait(databases, tmp_path):
    url = databases.url()
    go = tmp_path / "go"
    children = [
        Child([sys.executable, "-c", RUNNER, url, str(SLOW_DIR), str(go)]) for _ in range(3)
    ]
    for child in children:
        child.wait_for_line("ready")
    go.touch()
    results = [child.finish() for child in children]

    assert [code for code, _ in results] == [0, 0, 0], results
    applied = sorted(child.lines[-1] for child in children)
    assert applied == ["applied 0", "applied 0", f"applied {len(SLOW)}"]
    for child in children:
        starts = [line for line in child.lines if line.startswith("start")]
        if child.lines[-1] == "applied 0":
            assert starts == []  # it waited for the lock, then found nothing to do
        else:
            assert starts == [f"start {m.version}" for m in SLOW]

    db = databases.open(url)
    assert clean_version(db) == len(SLOW)
    assert scalar(db, f"SELECT COUNT(*) FROM {LOG_TABLE}") == len(SLOW)


# -- killed -----------------------------------------------------------------------------

#: Where the migrator is killed: after a progress line (+ a delay), or while
#: migration 0003 commits (PostgreSQL: its COMMIT is running on the server;
#: SQLite commits the whole run at its end, so: right after 0003 finished).
#:
#: "while-0003-commits" guards the PostgreSQL migration lock: it must stay held
#: until the dead migrator's COMMIT has ended. A lock held on a connection of
#: its own is released the moment the process dies, the next migrator reads a
#: history without 0003, and re-applying 0003 fails with "already exists".
KILL_POINTS = {
    "at-start-of-0001": ("start 1", 0.0),
    "inside-0002": ("start 2", 0.15),
    "between-0002-and-0003": ("done 2", 0.0),
    "inside-0003": ("start 3", 0.05),
    "while-0003-commits": ("commit", 0.0),
    "after-0004": ("done 4", 0.0),
    "0.25s-after-go": ("go", 0.25),
    "0.45s-after-go": ("go", 0.45),
}


def wait_for_commit(db: Database, child: Child, timeout: float = 60) -> None:
    """Until the migrator's session is running a COMMIT (PostgreSQL)."""
    sql = (
        "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND pid <> pg_backend_pid() AND state = 'active' AND query ILIKE 'commit%'"
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.proc.poll() is not None:
            raise AssertionError(f"the migrator ended before committing 0003: {child.lines}")
        with db._adapter.transaction(AUTOCOMMIT) as session:
            if session.execute(sql).fetchone()[0]:
                return
        time.sleep(0.002)
    raise AssertionError("never saw the migrator's COMMIT")


@pytest.mark.slow
@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_a_killed_migrator_leaves_a_clean_version_and_a_rerun_completes(databases, point):
    url = databases.url()
    db = databases.open(url)
    child = Child([sys.executable, "-c", RUNNER, url, str(SLOW_DIR), "-"])
    line, delay = KILL_POINTS[point]
    if line == "commit":
        if db.backend == "postgresql":
            child.wait_for_line("start 3")
            wait_for_commit(db, child)
        else:
            child.wait_for_line("done 3")
    else:
        child.wait_for_line(line)
    time.sleep(delay)
    child.kill()
    if line not in ("done 4", "go"):  # there, the run may have ended by itself
        assert child.proc.returncode == -signal.SIGKILL, child.lines
    done_before_kill = sum(1 for out in child.lines if out.startswith("done"))

    # A migrator started right away: under its lock, before it changes anything,
    # the database must be at a clean version.
    seen: list[int] = []

    def progress(event: str, migration: object, seconds: float | None) -> None:
        if not seen:
            seen.append(clean_version(db))

    plan = Migrator(db._adapter, SLOW).migrate(progress=progress)
    if not seen:
        seen.append(clean_version(db))
    start = seen[0]
    assert plan.current == start
    assert [s.migration.version for s in plan.steps] == list(range(start + 1, len(SLOW) + 1))
    if db.backend == "postgresql":
        # each migration commits on its own: what was reported done is kept
        assert start >= done_before_kill, (start, child.lines)

    assert clean_version(db) == len(SLOW)
    assert Migrator(db._adapter, SLOW).migrate().steps == ()
