"""SQLite files that cannot be written: clear errors, and an intact file afterwards.

* A read-only database (``read_only=True``; a file made immutable with
  ``chattr +i``, which stops even root; a directory mounted read-only):
  reads work, writes fail with BackendUnavailableError naming the file.
* A missing directory: BackendUnavailableError naming it; nothing is created.
* A full disk: a file-size limit (``RLIMIT_FSIZE``, SIGXFSZ ignored) in a
  subprocess, and a 1 MiB tmpfs: the write that does not fit fails with
  BackendUnavailableError, every earlier acknowledged write is still there,
  and the same Database object works once there is room again.

After each, ``PRAGMA integrity_check`` says ``ok``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from reliability_support import child_env

from handshake_storage import (
    BackendUnavailableError,
    Database,
    NewBlock,
    NewDocument,
    NewWorkspace,
    WriteContext,
    open_database,
)
from handshake_storage.backends.base import AUTOCOMMIT

CTX = WriteContext.human("files")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def integrity(url: str) -> list[tuple[str, ...]]:
    with open_database(url) as db, db._adapter.transaction(AUTOCOMMIT) as session:
        return [tuple(r) for r in session.execute("PRAGMA integrity_check").fetchall()]


def seeded(path: Path) -> str:
    url = f"sqlite:///{path}"
    with open_database(url) as db:
        db.run_migrations()
        db.create_workspace(CTX, NewWorkspace("files", id="ws"))
        db.create_document(CTX, NewDocument("ws", "doc", id="doc"))
        db.create_block(CTX, NewBlock("doc", "p", 0, "kept", id="kept"))
    return url


def assert_read_only_behaviour(db: Database, path: Path) -> None:
    assert db.get_block("kept").raw_content == "kept"  # reads work
    writes = [
        lambda: db.create_block(CTX, NewBlock("doc", "p", 1, "new")),
        lambda: db.replace_blocks(CTX, "doc", []),
        lambda: db.create_workspace(CTX, NewWorkspace("other")),
        lambda: db.run_migrations(),  # nothing to do, but the lock needs a write
    ]
    for write in writes[:3]:
        with pytest.raises(BackendUnavailableError) as caught:
            write()
        assert "read-only" in str(caught.value) or "readonly" in str(caught.value)
        assert str(path) in str(caught.value)
    assert [b.id for b in db.get_blocks("doc")] == ["kept"]


def need_root_tool(tool: str) -> None:
    if os.geteuid() != 0 or shutil.which(tool) is None:
        if IN_CI:
            pytest.fail(f"CI runs as root with {tool} available")
        pytest.skip(f"needs root and {tool}")


def test_a_database_opened_read_only_refuses_writes(tmp_path: Path):
    path = tmp_path / "ro.db"
    url = seeded(path)
    with open_database(url, read_only=True) as db:
        assert_read_only_behaviour(db, path)
    assert integrity(url) == [("ok",)]


def test_an_immutable_file_refuses_writes_even_to_root(tmp_path: Path):
    need_root_tool("chattr")
    path = tmp_path / "immutable.db"
    url = seeded(path)
    subprocess.run(["chattr", "+i", str(path)], check=True)
    try:
        with open_database(url) as db:
            assert_read_only_behaviour(db, path)
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)
    assert integrity(url) == [("ok",)]
    with open_database(url) as db:  # writable again
        db.create_block(CTX, NewBlock("doc", "p", 1, "after", id="after"))
        assert [b.id for b in db.get_blocks("doc")] == ["kept", "after"]


@contextmanager
def mounted(args: list[str], target: Path) -> Iterator[None]:
    subprocess.run(["mount", *args, str(target)], check=True, capture_output=True)
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", str(target)], check=False, capture_output=True)


def test_a_read_only_mount_refuses_writes(tmp_path: Path):
    need_root_tool("mount")
    source = tmp_path / "data"
    source.mkdir()
    url = seeded(source / "mounted.db")
    view = tmp_path / "view"
    view.mkdir()
    with mounted(["--bind", str(source)], view):
        subprocess.run(["mount", "-o", "remount,ro,bind", str(view)], check=True)
        path = view / "mounted.db"
        with open_database(f"sqlite:///{path}") as db:
            with pytest.raises(BackendUnavailableError) as caught:
                db.create_block(CTX, NewBlock("doc", "p", 1, "new"))
            assert str(path) in str(caught.value)
    assert integrity(url) == [("ok",)]
    with open_database(url) as db:
        assert [b.id for b in db.get_blocks("doc")] == ["kept"]


def test_a_missing_directory_is_a_clear_error_and_nothing_is_created(tmp_path: Path):
    missing = tmp_path / "no" / "such" / "dir"
    db = open_database(f"sqlite:///{missing / 'x.db'}")
    for call in (db.ping, db.run_migrations, db.list_workspaces):
        with pytest.raises(BackendUnavailableError, match="does not exist") as caught:
            call()
        assert str(missing) in str(caught.value)
    assert not (tmp_path / "no").exists()
    with pytest.raises(BackendUnavailableError, match="does not exist"):
        open_database(f"sqlite:///{missing / 'x.db'}", read_only=True).ping()


#: In a subprocess: fill the database under a file-size limit; report as JSON.
FILL_UNDER_LIMIT = r"""
import json, resource, signal, sys
from handshake_storage import open_database, NewBlock, WriteContext, StorageError
url, limit = sys.argv[1], int(sys.argv[2])
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
db = open_database(url)
ctx = WriteContext.human("filler")
db.get_blocks("doc")  # connected before the limit
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
acknowledged, error = [], None
for i in range(10_000):
    try:
        db.create_block(ctx, NewBlock("doc", "p", i, f"fill {i} " + "x" * 20_000, id=f"f{i}"))
        acknowledged.append(f"f{i}")
    except StorageError as exc:
        error = (type(exc).__name__, str(exc))
        break
resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
db.create_block(ctx, NewBlock("doc", "p", -1, "room again", id="after"))  # same object
db.close()
print(json.dumps({"acknowledged": acknowledged, "error": error}))
"""


@pytest.mark.parametrize("headroom", [50_000, 400_000])
def test_a_file_size_limit_fails_the_write_cleanly(tmp_path: Path, headroom: int):
    path = tmp_path / "limited.db"
    url = seeded(path)
    size = sum(p.stat().st_size for p in tmp_path.glob("limited.db*"))
    done = subprocess.run(
        [sys.executable, "-c", FILL_UNDER_LIMIT, url, str(size + headroom)],
        capture_output=True,
        text=True,
        timeout=120,
        env=child_env(),
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["error"] is not None, "the limit was never reached"
    kind, message = report["error"]
    assert kind == "BackendUnavailableError", report["error"]
    assert str(path) in message and ("full" in message or "I/O error" in message), message
    assert integrity(url) == [("ok",)]
    with open_database(url) as db:
        ids = [b.id for b in db.get_blocks("doc")]
    assert set(report["acknowledged"]) <= set(ids)  # nothing acknowledged was lost
    assert "after" in ids and "kept" in ids
    assert len(report["acknowledged"]) >= 1 or headroom < 100_000


def test_a_full_tmpfs_fails_the_write_cleanly(tmp_path: Path):
    need_root_tool("mount")
    disk = tmp_path / "small-disk"
    disk.mkdir()
    with mounted(["-t", "tmpfs", "-o", "size=1m", "tmpfs"], disk):
        path = disk / "full.db"
        url = seeded(path)
        ballast = disk / "ballast"  # removed later to make room again
        ballast.write_bytes(b"\0" * 200_000)
        acknowledged: list[str] = []
        with open_database(url) as db:
            with pytest.raises(BackendUnavailableError) as caught:
                for i in range(1000):
                    db.create_block(CTX, NewBlock("doc", "p", i, "y" * 30_000, id=f"b{i}"))
                    acknowledged.append(f"b{i}")
            message = str(caught.value)
            assert "full" in message or "I/O error" in message, message
            assert str(path) in message
            assert len(acknowledged) >= 1
            # the database still reads, and every acknowledged write is there
            ids = {b.id for b in db.get_blocks("doc")}
            assert set(acknowledged) | {"kept"} <= ids
            ballast.unlink()  # room again: the same object writes
            db.create_block(CTX, NewBlock("doc", "p", -1, "room again", id="after"))
        assert integrity(url) == [("ok",)]
        with open_database(url) as db:
            assert "after" in {b.id for b in db.get_blocks("doc")}
