"""Moving a database between backends: ``copy_database`` and ``handshake-storage copy``.

Content read back through every list/get method of the API and every
table's digest are compared after SQLite -> PostgreSQL -> SQLite and after
same-backend copies. The target must be empty, ends at the source's
migration version, gets its derived tables rebuilt (never copied), and is
left untouched by any failure: a refused target, a failed verification,
Ctrl-C (KeyboardInterrupt) midway, or a SIGKILL of the copying process. The
source is never modified. A subprocess measures that memory does not grow
with the size of the database.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import select
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from handshake_storage import (
    BackendUnavailableError,
    Database,
    MigrationError,
    NewBlock,
    NewDocument,
    NewWorkspace,
    StorageError,
    ValidationError,
    open_database,
    rebuildable,
)
from handshake_storage import transfer as transfer_module
from handshake_storage.cli import main
from handshake_storage.migrator import BOOKKEEPING_TABLES, load_migrations
from handshake_storage.transfer import CopyReport, CopyVerificationError, copy_database
from portability_support import (
    HUMAN,
    OTHER,
    api_state,
    both_backends,
    execute,
    populate,
    table_digests,
    with_password,
)

LATEST = load_migrations()[-1].version
DERIVED = rebuildable.derived_tables()
#: What a copy rebuilds instead of copying: derived tables and full-text indexes.
REBUILT = [o.name for o in rebuildable.registry() if o.kind != "index"]


@pytest.fixture
def factories(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict]:
    yield from both_backends(request, tmp_path)


def raw_url(db: Database) -> str:
    return db._adapter.url.raw


def sqlite_path(url: str) -> Path:
    assert url.startswith("sqlite:///")
    return Path(url[len("sqlite:///") :])


def file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_untouched_empty(url: str, *, existed: bool) -> None:
    """The target holds nothing: a new SQLite file is gone (or, after a kill,
    holds no table), a PostgreSQL database has no table."""
    if url.startswith("sqlite:"):
        path = sqlite_path(url)
        if not existed:
            leftovers = list(path.parent.glob(path.name + "*"))
            assert leftovers == [], leftovers
            return
    with open_database(url) as db:
        assert db.schema().tables == {}


def without_identity(digests: dict) -> dict:
    """Every table but the replica id, which a copy makes anew (sync_replica)."""
    return {n: d for n, d in digests.items() if n != "sync_replica"}


def copied_content(copy: Database) -> dict:
    return without_identity(table_digests(copy))


def report_rows(report: CopyReport) -> dict[str, tuple[int, str]]:
    return {t.name: (t.rows, t.digest) for t in report.tables}


def assert_report_matches(report: CopyReport, digests: dict) -> None:
    """The report covers every canonical table (never a derived one) with the
    row count and digest computed from the source."""
    expected = {n: (d.count, d.hexdigest) for n, d in digests.items() if n not in DERIVED}
    # A copy of a copy carries its source's replica id (sync_replica), not the original's.
    assert without_identity(report_rows(report)) == without_identity(expected)
    assert report_rows(report).keys() == expected.keys()
    assert not DERIVED & set(report_rows(report))
    assert report.total_rows == sum(rows for rows, _ in expected.values())


# -- content round trips ---------------------------------------------------------------------


def test_sqlite_to_postgresql_to_sqlite_is_content_identical(factories) -> None:
    source = factories["sqlite"].open()
    w = populate(source)
    state, digests, schema = api_state(source, w), table_digests(source), source.schema()
    source_url = raw_url(source)
    source.close()
    before = file_hash(sqlite_path(source_url))

    pg_url = factories["postgresql"].url()
    there = copy_database(source_url, pg_url)
    back_url = factories["sqlite"].url()
    back = copy_database(pg_url, back_url)

    assert file_hash(sqlite_path(source_url)) == before, "the source file changed"
    for report in (there, back):
        assert report.version == LATEST and report.rebuilt == len(REBUILT) == 2
        assert_report_matches(report, digests)
        assert report.total_rows > 0 and report.seconds > 0
    assert without_identity(report_rows(there)) == without_identity(report_rows(back))
    assert there.target.startswith("postgresql") and back.source.startswith("postgresql")

    reference = factories["postgresql"].open()  # a freshly migrated PostgreSQL database
    for url, expected_schema in ((pg_url, reference.schema()), (back_url, schema)):
        with open_database(url) as copy:
            assert copy.schema() == expected_schema
            assert api_state(copy, w) == state
            assert copied_content(copy) == without_identity(digests)  # block_search: rebuilt
            assert all(r.equal for r in rebuildable.verify(copy))
            assert rebuildable.unclassified_indexes(copy) == []
            copy.run_migrations()  # nothing to do
            assert copied_content(copy) == without_identity(digests)


def test_same_backend_copy(databases) -> None:
    source = databases.open()
    w = populate(source)
    state, digests = api_state(source, w), table_digests(source)
    target_url = databases.url()
    report = copy_database(raw_url(source), target_url, batch_size=3)
    assert_report_matches(report, digests)
    assert table_digests(source) == digests
    with open_database(target_url) as copy:
        assert copy.schema() == source.schema()
        assert api_state(copy, w) == state
        assert copied_content(copy) == without_identity(digests)
        # the copy is a working database: writes keep the projection in step
        copy.create_block(HUMAN, NewBlock("doc-0-0", "p", 5, "zebra Zebra", id="new-block"))
        assert [b.id for b in copy.search_blocks("ws-0", "ZEBRA")] == ["new-block"]
        assert all(r.equal for r in rebuildable.verify(copy))


def test_copy_of_a_migrated_empty_source(backend, factories) -> None:
    source = factories[backend].open()
    digests = table_digests(source)
    target_url = factories[OTHER[backend]].url()
    report = copy_database(raw_url(source), target_url)
    assert report.version == LATEST
    assert_report_matches(report, digests)
    assert {n: r for n, (r, _) in report_rows(report).items() if r} == {
        **{n: LATEST for n in BOOKKEEPING_TABLES},
        "sync_replica": 1,
    }
    reference = factories[OTHER[backend]].open()
    with open_database(target_url) as copy:
        assert copy.schema() == reference.schema()
        assert copy.migration_status() == source.migration_status()
        assert copy.list_workspaces() == []
        copy.create_workspace(HUMAN, NewWorkspace("w", id="w"))
        copy.create_document(HUMAN, NewDocument("w", "d", id="d"))
        copy.create_block(HUMAN, NewBlock("d", "p", 1, "hello Hello", id="b"))
        assert [b.id for b in copy.search_blocks("w", "HELLO")] == ["b"]


def test_copy_of_an_older_version(backend, factories) -> None:
    source = factories[backend].open()
    populate(source)
    source.rollback_migrations(1)
    digests, status = table_digests(source), source.migration_status()
    assert "block_terms" not in digests and "ai_jobs" not in digests
    target_url = factories[OTHER[backend]].url()
    report = copy_database(raw_url(source), target_url)
    assert report.version == 1 and report.rebuilt == 0
    assert_report_matches(report, digests)
    reference = factories[OTHER[backend]].open(migrated=False)
    reference.run_migrations(1)
    with open_database(target_url) as copy:
        assert copy.schema() == reference.schema()
        assert copy.migration_status() == status
        assert [m.state for m in status] == ["applied"] + ["pending"] * (LATEST - 1)
        # Compared table by table, not through the API: the API reads the
        # latest schema, and a later migration may add columns to these tables.
        assert table_digests(copy) == digests
        assert {o.name for o in rebuildable.registry(1)} == set(copy.schema().indexes)
        assert all(r.equal for r in rebuildable.verify(copy))
        copy.run_migrations()
        assert [m.version for m in copy.migration_status() if m.state == "applied"] == list(
            range(1, LATEST + 1)
        )


# -- refusals -----------------------------------------------------------------------------


def test_non_empty_target_is_refused_and_left_untouched(backend, factories) -> None:
    source = factories[backend].open()
    populate(source)
    source_digests = table_digests(source)
    targets = factories[OTHER[backend]]
    full = targets.open()
    w = populate(full, prefix="t-")
    unrelated = targets.open(migrated=False)
    execute(unrelated, "CREATE TABLE notes (id TEXT PRIMARY KEY)")
    execute(unrelated, "INSERT INTO notes (id) VALUES (?)", ("keep me",))
    # (a migrated target holding no rows is accepted: tests/cli/test_cli_copy_targets.py)
    for target in (full, unrelated):
        before_schema, before = target.schema(), table_digests(target)
        with pytest.raises(ValidationError, match="not empty"):
            copy_database(raw_url(source), raw_url(target))
        assert target.schema() == before_schema
        assert table_digests(target) == before
    assert api_state(full, w)["workspaces"] == full.list_workspaces()
    assert len(full.list_workspaces()) == 3
    assert table_digests(source) == source_digests


def test_bad_arguments_are_refused(backend, factories, tmp_path: Path) -> None:
    source = factories[backend].open()
    url = raw_url(source)
    with pytest.raises(ValidationError, match="same"):
        copy_database(url, url)
    target_url = factories[backend].url()
    for batch in (0, -1, True, "5", 1.5):
        with pytest.raises(ValidationError, match="batch_size"):
            copy_database(url, target_url, batch_size=batch)
    missing = f"sqlite:///{tmp_path / 'missing.db'}"
    with pytest.raises(BackendUnavailableError):
        copy_database(missing, target_url)
    assert not (tmp_path / "missing.db").exists()
    assert_untouched_empty(target_url, existed=backend == "postgresql")


def test_same_database_under_another_spelling_is_refused(backend, factories, tmp_path) -> None:
    """An empty source copied onto itself would gain the bookkeeping tables
    (and a SQLite file would wait out its own lock): refused up front."""
    url = factories[backend].url()
    if backend == "sqlite":
        sqlite_path(url).touch()
        alias = tmp_path / "alias.db"
        alias.symlink_to(sqlite_path(url))
        other = f"sqlite:///{alias}"
    else:
        assert url.startswith("postgresql://")
        other = "postgres://" + url[len("postgresql://") :]
    with pytest.raises(ValidationError, match="same"):
        copy_database(url, other)
    with open_database(url) as db:
        assert db.schema().tables == {}


def test_source_with_a_table_no_migration_creates_is_refused(backend, factories) -> None:
    """Copying it would lose the table (or crash): refused with a storage error."""
    source = factories[backend].open()
    populate(source)
    execute(source, "CREATE TABLE notes (id TEXT PRIMARY KEY)")
    execute(source, "INSERT INTO notes (id) VALUES (?)", ("precious",))
    target_url = factories[OTHER[backend]].url()
    with pytest.raises(StorageError, match="notes"):
        copy_database(raw_url(source), target_url)
    assert_untouched_empty(target_url, existed=OTHER[backend] == "postgresql")
    result = CliRunner().invoke(main, ["copy", "--from", raw_url(source), "--to", target_url])
    assert result.exit_code == 1
    assert (
        result.stderr.rstrip()
        .splitlines()[-1]
        .startswith(
            "error: the source has table(s) that no migration creates holding rows: table notes"
        )
    )


def test_source_newer_than_the_code_is_refused(backend, factories) -> None:
    source = factories[backend].open()
    populate(source)
    execute(
        source,
        "INSERT INTO schema_migrations (version, description, checksum, applied_at, "
        "execution_ms) SELECT 99, 'from the future', checksum, applied_at, 0 "
        "FROM schema_migrations WHERE version = 1",
    )
    target_url = factories[OTHER[backend]].url()
    with pytest.raises(MigrationError):
        copy_database(raw_url(source), target_url)
    assert_untouched_empty(target_url, existed=backend == "sqlite")


def test_copy_never_overwrites_a_file_that_is_not_a_database(factories, tmp_path: Path) -> None:
    source = factories["sqlite"].open()
    populate(source)
    notes = tmp_path / "notes.db"
    notes.write_text("my precious notes, not a database\n" * 200)
    before = file_hash(notes)
    with pytest.raises(StorageError, match="not a database"):
        copy_database(raw_url(source), f"sqlite:///{notes}")
    assert file_hash(notes) == before
    assert sorted(p.name for p in tmp_path.glob("notes.db*")) == ["notes.db"]


def test_copy_reads_the_source_in_one_snapshot(backend, factories) -> None:
    """Writes to the source while the copy runs are not in the copy, and the
    copy is still complete and consistent."""
    source = factories[backend].open()
    w = populate(source)
    state, digests = api_state(source, w), table_digests(source)
    writes: list[str] = []

    def progress(table: str, done: int, total: int) -> None:
        if table == "blocks" and not writes:
            source.delete_workspace(HUMAN, w.workspaces[2])
            source.create_document(HUMAN, NewDocument(w.workspaces[0], "late", id="late-doc"))
            source.create_block(HUMAN, NewBlock("late-doc", "p", 1, "late alpha", id="late"))
            writes.append(table)

    target_url = factories[OTHER[backend]].url()
    report = copy_database(raw_url(source), target_url, batch_size=5, progress=progress)
    assert writes == ["blocks"]
    assert_report_matches(report, digests)
    assert table_digests(source) != digests
    with open_database(target_url) as copy:
        assert api_state(copy, w) == state
        assert copied_content(copy) == without_identity(digests)


# -- failures midway ----------------------------------------------------------------------


def _progress_events(source_url: str, scratch_url: str) -> list[tuple[str, int, int]]:
    events: list[tuple[str, int, int]] = []
    copy_database(source_url, scratch_url, batch_size=4, progress=lambda *e: events.append(e))
    return events


@pytest.mark.parametrize("existing_file", [False, True], ids=["new-target", "existing-target"])
def test_interrupted_copy_leaves_target_untouched(
    backend, factories, tmp_path: Path, existing_file: bool
) -> None:
    """Ctrl-C at any point (a progress callback raising KeyboardInterrupt)."""
    source = factories[OTHER[backend]].open()
    w = populate(source)
    state, digests = api_state(source, w), table_digests(source)
    source_url = raw_url(source)
    events = _progress_events(source_url, factories[backend].url())
    tables = [t for t, _, _ in events]
    assert tables.index("blocks") > tables.index("documents") > tables.index("workspaces")
    midway = next(e for e in events if e[0] == "blocks" and 0 < e[1] < e[2])
    points = {"midway through blocks": midway, "after the last row": events[-1]}
    for label, point in points.items():
        target_url = factories[backend].url()
        if existing_file and backend == "sqlite":
            sqlite_path(target_url).touch()

        def progress(table: str, done: int, total: int, point=point) -> None:
            if (table, done, total) == point:
                raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            copy_database(source_url, target_url, batch_size=4, progress=progress)
        assert_untouched_empty(target_url, existed=existing_file or backend == "postgresql")
        if existing_file and backend == "sqlite":
            # still there (an empty database file may gain a header, never a table)
            assert sqlite_path(target_url).exists(), label
        # the target is as good as new: a second attempt completes
        copy_database(source_url, target_url)
        with open_database(target_url) as copy:
            assert api_state(copy, w) == state, label
    assert table_digests(source) == digests


def test_failed_verification_rolls_back(backend, factories, monkeypatch) -> None:
    source = factories[backend].open()
    populate(source)
    source.create_block(HUMAN, NewBlock("doc-1-1", "p", 7, "tamper-me", id="victim"))
    real = transfer_module._converter

    def corrupting(src, dst, families):
        inner = real(src, dst, families)

        def convert(row):
            values = list(inner(row) if inner else row)
            return ["tampered" if v == "tamper-me" else v for v in values]

        return convert

    monkeypatch.setattr(transfer_module, "_converter", corrupting)
    target_url = factories[OTHER[backend]].url()
    with pytest.raises(CopyVerificationError, match="blocks"):
        copy_database(raw_url(source), target_url)
    assert_untouched_empty(target_url, existed=backend == "sqlite")


_KILLED_CHILD = textwrap.dedent(
    """
    import sys, time
    from handshake_storage.transfer import copy_database

    def progress(table, done, total):
        if table == "blocks" and 0 < done < total:
            print("MIDWAY", flush=True)
            time.sleep(120)

    copy_database(sys.argv[1], sys.argv[2], batch_size=50, progress=progress)
    print("FINISHED", flush=True)
    """
)


def test_killed_copy_leaves_target_untouched(backend, factories) -> None:
    """SIGKILL of the copying process in the middle of the blocks table."""
    source = factories[OTHER[backend]].open()
    w = populate(source)
    doc = "doc-2-0"
    source.replace_blocks(
        HUMAN, doc, [NewBlock(doc, "p", i, f"bulk {i}", id=f"bulk-{i}") for i in range(400)]
    )
    state, digests = api_state(source, w), table_digests(source)
    source_url, target_url = raw_url(source), factories[backend].url()
    child = subprocess.Popen(
        [sys.executable, "-c", _KILLED_CHILD, source_url, target_url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    ready, _, _ = select.select([child.stdout], [], [], 120)
    line = child.stdout.readline() if ready else ""  # type: ignore[union-attr]
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=30)
    assert line.strip() == "MIDWAY", child.stderr.read()  # type: ignore[union-attr]
    assert child.returncode == -signal.SIGKILL
    # the process had no chance to clean up: a SQLite file it created may be
    # left behind, but it must hold no table
    assert_untouched_empty(target_url, existed=True)
    assert table_digests(source) == digests
    report = copy_database(source_url, target_url)
    assert_report_matches(report, digests)
    with open_database(target_url) as copy:
        assert api_state(copy, w) == state


# -- the command line ------------------------------------------------------------------------


def test_cli_copy_verifies_every_table_and_never_prints_a_password(backend, factories) -> None:
    source = factories[backend].open()
    populate(source)
    digests = table_digests(source)
    source_url = raw_url(source)
    target_url = factories[OTHER[backend]].url()
    secret = "Sup3r-Secret-pw"
    if backend == "postgresql":
        source_url, secret = with_password(source_url, secret)
    else:
        target_url, secret = with_password(target_url, secret)

    runner = CliRunner()
    result = runner.invoke(
        main, ["copy", "--from", source_url, "--to", target_url, "--batch-size", "7"]
    )
    assert result.exit_code == 0, result.output
    assert secret not in result.stdout and secret not in result.stderr
    assert "***" in result.stderr  # the PostgreSQL URL is shown redacted
    lines = result.stdout.splitlines()
    for name, digest in digests.items():
        if name in DERIVED:
            assert not any(line.split()[0] == name for line in lines)
            continue
        pattern = rf"^{name}\s+{digest.count} rows\s+digest {digest.hexdigest[:16]}\s+verified$"
        assert sum(bool(re.match(pattern, line)) for line in lines) == 1, (name, lines)
    total = sum(d.count for n, d in digests.items() if n not in DERIVED)
    assert re.search(
        rf"^copied {total:,} rows and rebuilt [\d,]+ derived rows \({len(REBUILT)} derived",
        result.stdout,
        re.M,
    )
    for table in ("workspaces", "blocks", "canvas_edges"):
        assert table in result.stderr  # the progress bars are labelled by table

    again = runner.invoke(main, ["copy", "--from", source_url, "--to", target_url])
    assert again.exit_code == 1
    errors = [line for line in again.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "not empty" in errors[0]
    assert again.stderr.rstrip().splitlines()[-1] == errors[0]
    assert secret not in again.stdout and secret not in again.stderr


def test_cli_copy_errors_never_print_a_password(factories) -> None:
    sqlite_url = raw_url(factories["sqlite"].open())
    secret = "Secr3t!pw"
    unreachable = "postgresql://someone:Secr3t%21pw@127.0.0.1:1/nowhere?connect_timeout=2"
    for args in (
        ["--from", sqlite_url, "--to", unreachable],
        ["--from", unreachable, "--to", sqlite_url],
    ):
        result = CliRunner().invoke(main, ["copy", *args])
        assert result.exit_code == 1
        assert result.stderr.rstrip().splitlines()[-1].startswith("error: ")
        for shown in (result.stdout, result.stderr):
            assert secret not in shown and "Secr3t%21pw" not in shown


def test_cli_copy_interrupted_leaves_target_untouched(backend, factories, monkeypatch) -> None:
    """Ctrl-C after every row is written (while derived tables are rebuilt)."""
    source = factories[backend].open()
    populate(source)
    target_url = factories[OTHER[backend]].url()

    def interrupted(adapter, session):
        raise KeyboardInterrupt

    monkeypatch.setitem(rebuildable.BUILDERS, "block_search", interrupted)
    result = CliRunner().invoke(main, ["copy", "--from", raw_url(source), "--to", target_url])
    assert result.exit_code == 130
    assert result.stderr.rstrip().splitlines()[-1] == "error: interrupted"
    assert "verified" not in result.stdout
    assert_untouched_empty(target_url, existed=OTHER[backend] == "postgresql")


# -- streaming ------------------------------------------------------------------------------

# ru_maxrss is not usable in a child: Linux carries the parent's high-water
# mark over fork and exec. VmHWM is the peak of this process's own memory.
_MEASURED_CHILD = textwrap.dedent(
    """
    import json, sys
    import handshake_storage.backends.postgresql, handshake_storage.backends.sqlite
    from handshake_storage.transfer import copy_database

    def peak_kib():
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])

    before = peak_kib()
    report = copy_database(sys.argv[1], sys.argv[2], batch_size=1000)
    after = peak_kib()
    print(json.dumps({"before_kib": before, "after_kib": after, "rows": report.total_rows}))
    """
)


def _measured_copy(source_url: str, target_url: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", _MEASURED_CHILD, source_url, target_url],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def _add_blocks(db: Database, workspace: str, first: int, count: int) -> None:
    padding = "lorem ipsum dolor sit amet " * 15  # ~400 characters, not searched
    # Documents of 250 blocks: each replace_blocks is one change set, one row
    # of the ledger that copy carries; the copy streams rows, not values.
    for start in range(first, first + count, 250):
        doc = f"bulk-doc-{start}"
        db.create_document(HUMAN, NewDocument(workspace, doc, id=doc))
        db.replace_blocks(
            HUMAN,
            doc,
            [
                NewBlock(
                    doc,
                    "p",
                    i,
                    f"block {i} term{i % 97}",
                    display_content=f"{i} {padding}",
                    derived_content={"i": i, "pad": padding[: 100 + i % 50]},
                    id=f"bulk-{i}",
                )
                for i in range(start, min(start + 250, first + count))
            ],
        )


def test_copy_streams_memory_does_not_grow_with_size(backend, factories, record_property) -> None:
    source = factories[backend].open()
    source.create_workspace(HUMAN, NewWorkspace("bulk", id="bulk"))
    _add_blocks(source, "bulk", 0, 10_000)
    small = _measured_copy(raw_url(source), factories[OTHER[backend]].url())
    _add_blocks(source, "bulk", 10_000, 20_000)
    large_target = factories[OTHER[backend]].url()
    large = _measured_copy(raw_url(source), large_target)
    assert large["rows"] > small["rows"] + 20_000
    growth_small = small["after_kib"] - small["before_kib"]
    growth_large = large["after_kib"] - large["before_kib"]
    numbers = (
        f"{backend}->{OTHER[backend]}: peak growth 10k blocks +{growth_small} KiB, "
        f"30k blocks +{growth_large} KiB ({small}, {large})"
    )
    record_property("memory", numbers)
    print(numbers)
    # 20k more blocks hold ~14 MB of text alone; loading them would show up here
    assert growth_large - growth_small < 8 * 1024, numbers
    assert growth_large < 48 * 1024, numbers
    with open_database(large_target) as copy:
        assert len(copy.get_blocks("bulk-doc-25000")) == 250
        # equal scores (two words of two-word blocks): ordered by block id
        expected = sorted(f"bulk-{i}" for i in range(5, 30_000, 97))[:3]
        assert [b.id for b in copy.search_blocks("bulk", "term5 block", 3)] == expected
