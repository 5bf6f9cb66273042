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
import gc
import itertools
import os
import random
import resource
import signal
import sys
import time
from collections.abc import Iterator
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
ROUNDS = 200  # calls per process and fork in the fork test: enough that they interleave


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


def _fork_round(db: Any, tag: str) -> list[str]:
    """Fork once; parent and child then make ROUNDS calls each at the same
    time through the one Database. What went wrong, on either side."""
    problems: list[str] = []
    for _ in range(3):
        assert db.get_workspace("parent") is not None  # the pool holds a connection
    read, write = os.pipe()
    go_read, go_write = os.pipe()  # both start together, so their calls interleave
    pid = os.fork()
    if pid == 0:  # the child: its own rows, the parent's pool untouched
        report = b"ok"
        try:
            os.close(read)
            os.close(go_write)
            os.read(go_read, 1)
            for i in range(ROUNDS):
                db.create_workspace(CTX, NewWorkspace(f"child {i}", id=f"{tag}child-{i}"))
                got = db.get_workspace(f"{tag}child-{i}")
                if got is None or got.id != f"{tag}child-{i}":
                    report = f"child read {got!r} for {tag}child-{i}".encode()
                    break
            if db.get_workspace("parent") is None:
                report = b"child cannot see the parent's row"
        except BaseException as exc:
            report = f"child failed: {exc!r}".encode()[:500]
        finally:
            os.write(write, report)
            os._exit(0)
    os.close(write)
    os.close(go_read)
    os.write(go_write, b"g")
    os.close(go_write)
    try:
        for i in range(ROUNDS):
            got = db.get_workspace("parent")
            if got is None or got.id != "parent":
                problems.append(f"parent read {got!r}")
            db.create_workspace(CTX, NewWorkspace(f"parent {i}", id=f"{tag}parent-{i}"))
    except StorageError as exc:
        problems.append(f"parent failed: {exc!r}")
    status = wait_child(pid)
    with os.fdopen(read, "rb") as pipe:
        child = pipe.read()
    if status != 0 or child != b"ok":
        problems.append(f"child (exit {status}): {child!r}")
    return problems


def test_parent_and_forked_child_share_a_database_object_without_crossing(db):
    """Three forks in a row (each child and its parent racing ROUNDS calls):
    on the old pool one round in about five happened not to cross, three
    in a row failed every time."""
    db.create_workspace(CTX, NewWorkspace("parent", id="parent"))
    expected = {"parent"}
    for r in range(3):
        tag = f"r{r}-"
        assert _fork_round(db, tag) == []
        expected |= {f"{tag}{who}-{i}" for who in ("parent", "child") for i in range(ROUNDS)}
    assert {w.id for w in db.list_workspaces()} == expected


def test_a_forked_child_never_uses_a_connection_of_its_parent(db):
    """Deterministic companion of the race above: the child's first
    checkout is a connection it opened itself (on PostgreSQL: a server
    session other than the parent's), and the parent's pooled connection
    still serves the parent afterwards. The old pool handed the child the
    parent's idle connection every time."""
    pool = db._adapter.pool
    assert db.get_workspace("nothing") is None  # the pool now holds one idle connection
    conn = pool.acquire()
    parent_conn = id(conn)
    parent_session = conn.info.backend_pid if db.backend == "postgresql" else None
    pool.release(conn)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        report = b"ok"
        try:
            os.close(read)
            mine = pool.acquire()
            session = mine.info.backend_pid if db.backend == "postgresql" else None
            if id(mine) == parent_conn or (session is not None and session == parent_session):
                report = b"the child was handed its parent's connection"
            pool.release(mine)
            db.create_workspace(CTX, NewWorkspace("from the child", id="from-child"))
        except BaseException as exc:
            report = f"child failed: {exc!r}".encode()[:500]
        finally:
            os.write(write, report)
            os._exit(0)
    os.close(write)
    assert wait_child(pid) == 0
    with os.fdopen(read, "rb") as pipe:
        assert pipe.read() == b"ok"
    again = pool.acquire()
    try:
        assert id(again) == parent_conn  # the parent's connection survived the child
        if db.backend == "postgresql":
            assert again.info.backend_pid == parent_session
    finally:
        pool.release(again)
    assert db.get_workspace("from-child") is not None


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


@pytest.fixture
def frozen_heap() -> Iterator[None]:
    """The test session's objects moved out of the collector's sight
    (``gc.freeze``): the pool's ``gc.collect()`` after each interrupt then walks
    only what was made since — which includes everything an interrupt can
    leave unreachable — instead of the whole pytest process's heap, which was
    most of this test's time."""
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def test_a_thousand_interrupts_anywhere_in_checkout_and_return_leak_nothing(
    databases, record_property, frozen_heap
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
