"""A Database survives forks, interrupts anywhere, high file descriptors and
connections the server drops.

* ``os.fork()``: parent and child keep using one Database at the same time;
  each gets its own rows, the child never touches the parent's connections
  (before: each got the other's rows, and the child hung).
* 1,000 ``KeyboardInterrupt``\\ s raised at seeded random points of the
  checkout and return paths (pool, transaction, adapter) where CPython
  delivers a signal's exception (after any call returns, on entry, on a
  backward jump), with
  ``pool_size=1``: every later call succeeds, the pool holds at most one
  connection and none mid-transaction (before: the pool was dead after a
  few).
* Pooled connections whose file descriptor is >= 1024 are kept and reused
  (before: ``select.select`` refused them, so every call opened a new one).
* ``pg_terminate_backend`` of the pool's connections between calls: the next
  call reconnects transparently.
"""

from __future__ import annotations

import dis
import itertools
import os
import random
import resource
import signal
import sys
import time
from typing import Any
from urllib.parse import urlsplit

import pytest

from handshake_storage import (
    NewBlock,
    NewCanvas,
    NewCanvasNode,
    NewDocument,
    NewWorkspace,
    StorageError,
    WriteContext,
)
from handshake_storage.backends import base

CTX = WriteContext.human("process-safety")


def wait_child(pid: int, timeout: float = 120.0) -> int:
    """The child's exit status; kills it and fails if it hangs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.02)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    pytest.fail("the forked child hung")


# -- fork -----------------------------------------------------------------------------------


def test_parent_and_forked_child_share_a_database_object_without_crossing(db):
    db.create_workspace(CTX, NewWorkspace("parent", id="parent"))
    for _ in range(3):
        assert db.get_workspace("parent") is not None  # the pool holds a connection
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its own rows, the parent's pool untouched
        report = b"ok"
        try:
            os.close(read)
            for i in range(150):
                db.create_workspace(CTX, NewWorkspace(f"child {i}", id=f"child-{i}"))
                got = db.get_workspace(f"child-{i}")
                if got is None or got.id != f"child-{i}":
                    report = f"child read {got!r} for child-{i}".encode()
                    break
            if db.get_workspace("parent") is None:
                report = b"child cannot see the parent's row"
        except BaseException as exc:
            report = f"child failed: {exc!r}".encode()[:500]
        finally:
            os.write(write, report)
            os._exit(0)
    os.close(write)
    wrong = []
    for i in range(150):
        got = db.get_workspace("parent")
        if got is None or got.id != "parent":
            wrong.append(got)
        db.create_workspace(CTX, NewWorkspace(f"parent {i}", id=f"parent-{i}"))
    assert wait_child(pid) == 0
    with os.fdopen(read, "rb") as pipe:
        assert pipe.read() == b"ok"
    assert wrong == []
    ids = {w.id for w in db.list_workspaces()}
    assert ids == {"parent"} | {f"parent-{i}" for i in range(150)} | {
        f"child-{i}" for i in range(150)
    }


# -- interrupts anywhere -------------------------------------------------------------------


def _checkout_code(db: Any) -> set[Any]:
    """The code objects of every checkout/return path (pool, transaction, adapter)."""
    adapter = db._adapter
    backend_module = sys.modules[type(adapter).__module__]
    found = set()
    owners = [base.ConnectionPool, base.Transaction, base.Adapter, type(adapter)]
    for owner in owners:
        for name, value in vars(owner).items():
            if name in ("__init__", "__init_subclass__", "close"):
                continue
            code = getattr(value, "__code__", None)
            if code is not None:
                found.add(code)
    for name in ("_usable", "_clean", "_close"):
        fn = getattr(backend_module, name, None)
        if fn is not None:
            found.add(fn.__code__)
    return found


def _delivery_points(code: Any) -> frozenset[int]:
    """Offsets where CPython can deliver an asynchronous exception
    (KeyboardInterrupt from a signal handler) in ``code``: right after any
    call returned (its result not yet stored), at function entry and on a
    backward jump. It checks for pending signals nowhere else."""
    points = set()
    instructions = list(dis.get_instructions(code))
    for before, after in itertools.pairwise(instructions):
        if before.opname in ("CALL", "RESUME") or before.opname.startswith("JUMP_BACKWARD"):
            points.add(after.offset)
    return frozenset(points)


class Interrupter:
    """Raises KeyboardInterrupt at the n-th place a signal could land in
    ``code`` (see :func:`_delivery_points`)."""

    def __init__(self, code: set[Any]) -> None:
        self.points = {c: _delivery_points(c) for c in code}
        self.countdown = 0
        self.fired = False

    def arm(self, n: int) -> None:
        self.countdown, self.fired = n, False
        sys.settrace(self._global)

    def disarm(self) -> None:
        sys.settrace(None)

    def _global(self, frame: Any, event: str, arg: Any) -> Any:
        if frame.f_code in self.points and not self.fired:
            frame.f_trace_opcodes = True
            frame.f_trace_lines = False
            return self._local
        return None

    def _local(self, frame: Any, event: str, arg: Any) -> Any:
        if event == "opcode" and not self.fired and frame.f_lasti in self.points[frame.f_code]:
            self.countdown -= 1
            if self.countdown <= 0:
                self.fired = True
                raise KeyboardInterrupt
        return self._local


def test_a_thousand_interrupts_anywhere_in_checkout_and_return_leak_nothing(
    databases, record_property
):
    db = databases.open(pool_size=1, pool_timeout=10)
    db.create_workspace(CTX, NewWorkspace("ws", id="ws"))
    db.create_document(CTX, NewDocument("ws", "doc", id="doc"))
    db.create_canvas(CTX, NewCanvas("ws", "canvas", id="canvas"))
    rng = random.Random(20261201)
    calls = [
        lambda: db.get_workspace("ws"),
        lambda: db.list_documents("ws"),
        lambda: db.create_workspace(CTX, NewWorkspace("w")),
        lambda: db.replace_blocks(CTX, "doc", [NewBlock("doc", "p", 0, "text")]),
        lambda: db.get_canvas_with_graph("canvas"),
        lambda: db.update_canvas_graph(CTX, "canvas", [NewCanvasNode("n", 0.0, 0.0)], []),
    ]
    interrupter = Interrupter(_checkout_code(db))
    interrupts = attempts = 0
    while interrupts < 1000:
        attempts += 1
        assert attempts < 20_000, "the interrupts stopped landing"
        interrupter.arm(rng.randrange(1, 40))
        try:
            rng.choice(calls)()
        except KeyboardInterrupt:
            interrupts += 1
        except StorageError as exc:  # the pool broke: no point going on
            pytest.fail(f"after {interrupts} interrupts a call failed: {exc}")
        finally:
            interrupter.disarm()
    pool = db._adapter.pool
    failures = 0
    for i in range(1000):
        try:
            if i % 2:
                assert db.get_workspace("ws") is not None
            else:
                db.replace_blocks(CTX, "doc", [NewBlock("doc", "p", 0, f"after {i}")])
        except Exception:  # counted: every one must succeed
            failures += 1
    record_property("checkouts_after_1000_interrupts", f"{1000 - failures} of 1000 succeeded")
    assert failures == 0
    assert pool.size <= 1
    adapter = db._adapter
    for conn in list(pool._idle):
        assert adapter.pool._clean(conn), "a connection sits in the pool mid-transaction"


# -- file descriptors >= 1024 -----------------------------------------------------------------


def test_connections_with_file_descriptors_above_1024_are_reused(databases, record_property):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1200:
        pytest.skip(f"the file descriptor limit ({hard}) is below 1200")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1200), hard))
    filler = []
    try:
        while True:  # push the next descriptor numbers past 1024
            fd = os.open(os.devnull, os.O_RDONLY)
            filler.append(fd)
            if fd >= 1030:
                break
        db = databases.open(pool_size=2)
        db.create_workspace(CTX, NewWorkspace("ws", id="ws"))
        pool = db._adapter.pool
        opened = []
        connect = pool._connect

        def counting() -> Any:
            conn = connect()
            opened.append(conn)
            return conn

        pool._connect = counting
        for _ in range(200):
            assert db.get_workspace("ws") is not None
        if db.backend == "postgresql":
            fds = [c.fileno() for c in pool._idle]
            assert fds and min(fds) >= 1024
        record_property("connections_opened_for_200_reads", len(opened))
        assert len(opened) == 0, f"{len(opened)} new connections for 200 reads"
    finally:
        for fd in filler:
            os.close(fd)


# -- connections the server drops -------------------------------------------------------------


@pytest.mark.parametrize("pool_size", [1, 4])
def test_a_call_after_pg_terminate_backend_reconnects(
    databases, postgres_server, pool_size, record_property
):
    if databases.backend != "postgresql":
        pytest.skip("a server-side session kill is a PostgreSQL matter")
    url = databases.url(migrated=True)
    name = urlsplit(url).path.lstrip("/")
    db = databases.open(url, pool_size=pool_size)
    db.create_workspace(CTX, NewWorkspace("ws", id="ws"))
    db.create_document(CTX, NewDocument("ws", "doc", id="doc"))
    admin = postgres_server.admin()
    failures: list[str] = []
    for i in range(50):
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )
        try:
            match i % 3:
                case 0:
                    assert db.get_workspace("ws") is not None
                case 1:
                    db.create_workspace(CTX, NewWorkspace(f"w{i}", id=f"w{i}"))
                case _:
                    db.replace_blocks(CTX, "doc", [NewBlock("doc", "p", 0, f"gen {i}")])
        except Exception as exc:  # counted: none may fail
            failures.append(f"{i}: {exc}")
    record_property("failed_after_terminate", f"{len(failures)} of 50")
    assert failures == []
    assert {f"w{i}" for i in range(1, 50, 3)} <= {w.id for w in db.list_workspaces()}
