"""Server faults: a stopped, crashed or frozen PostgreSQL; a locked database.

PostgreSQL here is a server of the tests' own (``OwnPostgres``), on a TCP
port, because these tests stop it: the session's shared server is never
touched.

* Stopped mid-run (``pg_ctl stop -m fast``) or crashed (``-m immediate``)
  while writer threads are busy: every call in the outage fails with
  BackendUnavailableError within a bound instead of hanging; when the server
  is back, the SAME Database object works again without being reopened,
  and no acknowledged write is missing (an unacknowledged one is all there
  or not at all).
* Frozen (the postmaster stopped with SIGSTOP: connections hang): a call
  fails after the configured ``connect_timeout``, and works once it thaws.
* A connection stuck on the server: other callers fail after the configured
  ``pool_timeout``; a statement waiting on a lock fails after the configured
  ``statement_timeout``. On SQLite, a writer blocked by another's lock fails
  after the configured ``busy_timeout`` with the same error class.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from reliability_support import (
    OwnPostgres,
    actor,
    expected_blocks,
    generation_blocks,
    observed_blocks,
    own_postgres,
    stop_own_postgres,
)

from handshake_storage import (
    BackendUnavailableError,
    Database,
    NewBlock,
    NewDocument,
    NewWorkspace,
    WriteContext,
    open_database,
)
from handshake_storage.backends.base import WRITE

CTX = WriteContext.human("faults")


@pytest.fixture(scope="session")
def own_server() -> Iterator[OwnPostgres]:
    server = own_postgres()
    yield server
    stop_own_postgres()


@pytest.fixture
def own_db_url(own_server: OwnPostgres) -> Iterator[str]:
    if not own_server.running:
        own_server.start()
    name = own_server.create_database()
    yield own_server.url(name)
    if not own_server.running:
        own_server.start()
    own_server.admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def prepared(url: str, **options: Any) -> Database:
    db = open_database(url, **options)
    db.run_migrations()
    db.create_workspace(CTX, NewWorkspace("faults", id="ws"))
    return db


@contextmanager
def timed() -> Iterator[list[float]]:
    took: list[float] = []
    started = time.monotonic()
    try:
        yield took
    finally:
        took.append(time.monotonic() - started)


# -- stopped or crashed mid-run -------------------------------------------------------------------

#: Every call during the outage must end within this (refused connections are
#: immediate; a call cut off mid-statement ends when the server drops it).
CALL_BOUND = 5.0


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_a_server_stopped_mid_run_fails_calls_fast_and_the_same_object_recovers(
    own_server, own_db_url, mode, record_property
):
    db = prepared(own_db_url, connect_timeout=2, pool_timeout=3, pool_size=4)
    writers = 4
    for t in range(writers):
        db.create_document(CTX, NewDocument("ws", f"doc {t}", id=f"doc-{t}"))
    acknowledged: dict[int, list[str]] = {t: [] for t in range(writers)}
    attempted: dict[int, list[str]] = {t: [] for t in range(writers)}
    replaced: dict[int, list[int]] = {t: [] for t in range(writers)}
    failures: Counter[str] = Counter()
    slowest = [0.0]
    phase = {"now": "before"}
    successes_after: Counter[int] = Counter()
    stop = threading.Event()
    lock = threading.Lock()

    def writer(t: int) -> None:
        n = 0
        while not stop.is_set():
            n += 1
            block_id = f"b-{t}-{n}"
            attempted[t].append(block_id)
            generation = t * 10_000 + n
            started, when = time.monotonic(), phase["now"]
            try:
                if n % 3:
                    db.create_block(CTX, NewBlock(f"doc-{t}", "p", n, f"w{t} n{n}", id=block_id))
                    acknowledged[t].append(block_id)
                else:
                    db.replace_blocks(
                        actor(generation), f"rep-{t}", generation_blocks(f"rep-{t}", generation)
                    )
                    replaced[t].append(generation)
                if when == "after":
                    successes_after[t] += 1
            except Exception as exc:
                with lock:
                    failures[f"{when}: {type(exc).__name__}"] += 1
                    if not isinstance(exc, BackendUnavailableError):
                        failures[f"unexpected {type(exc).__name__}: {exc}"] += 1
                time.sleep(0.01)
            finally:
                with lock:
                    slowest[0] = max(slowest[0], time.monotonic() - started)

    for t in range(writers):
        db.create_document(CTX, NewDocument("ws", f"replaced {t}", id=f"rep-{t}"))
    threads = [threading.Thread(target=writer, args=(t,)) for t in range(writers)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(0.4)
        phase["now"] = "stopping"
        own_server.stop(mode)
        phase["now"] = "down"
        time.sleep(1.0)
        with (
            timed() as took,
            pytest.raises(
                BackendUnavailableError, match=r"cannot reach the PostgreSQL server at 127\.0\.0\.1"
            ),
        ):
            db.ping()
        assert took[0] < CALL_BOUND
        phase["now"] = "starting"
        own_server.start()
        phase["now"] = "after"
        deadline = time.monotonic() + 30
        while min(successes_after[t] for t in range(writers)) < 3:
            assert time.monotonic() < deadline, (successes_after, failures)
            time.sleep(0.02)
    finally:
        stop.set()
        for thread in threads:
            thread.join(60)
        if not own_server.running:
            own_server.start()

    record_property("failures_by_phase", dict(failures))
    assert not [k for k in failures if k.startswith("unexpected")], failures
    assert failures["down: BackendUnavailableError"] >= writers, failures  # noticed, not hidden
    assert slowest[0] < CALL_BOUND, slowest
    assert not failures.get("after: BackendUnavailableError"), failures  # recovered for good

    # the same object works; nothing acknowledged is missing, nothing is half there
    db.ping()
    for t in range(writers):
        stored = {b.id: b.raw_content for b in db.get_blocks(f"doc-{t}")}
        assert set(acknowledged[t]) <= set(stored), set(acknowledged[t]) - set(stored)
        assert set(stored) <= set(attempted[t])
        for block_id, content in stored.items():
            n = int(block_id.rsplit("-", 1)[1])
            assert content == f"w{t} n{n}"
        observed = observed_blocks(db, f"rep-{t}")
        assert replaced[t] and observed, (t, replaced[t])
        generation = int(observed[0][7][4:])
        assert generation >= replaced[t][-1]  # the last acknowledged one, or a later attempt
        assert observed == expected_blocks(f"rep-{t}", generation)
    db.close()


# -- frozen -------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("connect_timeout", [2, 3])
def test_a_frozen_server_fails_calls_after_connect_timeout(own_server, own_db_url, connect_timeout):
    db = prepared(own_db_url, connect_timeout=connect_timeout, pool_size=2)
    fresh = open_database(own_db_url, connect_timeout=connect_timeout)  # nothing pooled yet
    pid = own_server.postmaster_pid()
    os.kill(pid, signal.SIGSTOP)
    try:
        with (
            timed() as took,
            pytest.raises(
                BackendUnavailableError,
                match=r"cannot reach the PostgreSQL server at 127\.0\.0\.1.*no answer within",
            ),
        ):
            fresh.ping()
    finally:
        os.kill(pid, signal.SIGCONT)
    assert connect_timeout - 0.5 <= took[0] <= connect_timeout + 3, took
    # thawed: both objects work, the one that failed included
    fresh.ping()
    assert db.get_workspace("ws") is not None
    assert fresh.get_workspace("ws") is not None
    fresh.close()
    db.close()


@pytest.mark.slow
def test_a_stuck_connection_bounds_other_callers_by_pool_timeout(own_server, own_db_url):
    db = prepared(own_db_url, pool_size=1, pool_timeout=1)
    with db._adapter.transaction() as session:
        backend_pid = session.execute("SELECT pg_backend_pid()").fetchone()[0]
    os.kill(backend_pid, signal.SIGSTOP)  # the pool's only connection hangs on the server
    stuck = threading.Thread(target=db.ping)
    try:
        stuck.start()
        time.sleep(0.2)
        with (
            timed() as took,
            pytest.raises(BackendUnavailableError, match="no free database connection"),
        ):
            db.get_workspace("ws")
    finally:
        os.kill(backend_pid, signal.SIGCONT)
        stuck.join(30)
    assert 0.9 <= took[0] <= 3, took
    assert not stuck.is_alive()
    assert db.get_workspace("ws") is not None  # and the pool is whole again
    db.close()


def test_a_lock_wait_is_bounded_by_statement_timeout(own_server, own_db_url):
    db = prepared(own_db_url, statement_timeout=1)
    db.create_document(CTX, NewDocument("ws", "doc", id="doc"))
    holder = open_database(own_db_url)
    with holder._adapter.transaction(WRITE) as session:
        session.execute("SELECT id FROM documents WHERE id = 'doc' FOR UPDATE")
        with timed() as took, pytest.raises(BackendUnavailableError, match="timed out"):
            db.replace_blocks(CTX, "doc", [NewBlock("doc", "p", 0, "never")])
    assert 0.9 <= took[0] <= 4, took
    assert db.get_blocks("doc") == []
    db.replace_blocks(CTX, "doc", [NewBlock("doc", "p", 0, "now")])  # lock gone: it works
    assert [b.raw_content for b in db.get_blocks("doc")] == ["now"]
    holder.close()
    db.close()


def test_a_locked_sqlite_file_fails_writers_after_busy_timeout(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'locked.db'}"
    db = prepared(url, busy_timeout=0.5)
    holder = open_database(url)
    with holder._adapter.transaction(WRITE):  # BEGIN IMMEDIATE: the write lock
        with (
            timed() as took,
            pytest.raises(BackendUnavailableError, match="locked past the busy timeout"),
        ):
            db.create_document(CTX, NewDocument("ws", "doc", id="doc"))
        assert db.get_workspace("ws") is not None  # readers are not blocked (WAL)
    assert 0.4 <= took[0] <= 3, took
    db.create_document(CTX, NewDocument("ws", "doc", id="doc"))  # released: it works
    assert [d.id for d in db.list_documents("ws")] == ["doc"]
    holder.close()
    db.close()
