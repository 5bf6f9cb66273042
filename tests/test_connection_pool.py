"""The connection pool hands each connection to one user at a time, wakes
waiters on release, and closes every connection when the pool closes, also
while threads are still using it. The pool is backend-independent, so these
run on plain objects standing in for connections."""

from __future__ import annotations

import itertools
import threading
import time

import pytest

from handshake_storage.backends.base import ConnectionPool
from handshake_storage.errors import BackendUnavailableError


class Conn:
    _ids = itertools.count()

    def __init__(self) -> None:
        self.id = next(self._ids)
        self.closed = False
        self.in_use = False


def make_pool(max_size: int, timeout: float = 5.0) -> tuple[ConnectionPool[Conn], list[Conn]]:
    opened: list[Conn] = []

    def connect() -> Conn:
        conn = Conn()
        opened.append(conn)
        return conn

    def close(conn: Conn) -> None:
        conn.closed = True

    pool = ConnectionPool(connect, close, lambda c: not c.closed, max_size, timeout)
    return pool, opened


def test_threads_never_share_a_connection_and_waiters_are_woken() -> None:
    pool, opened = make_pool(max_size=3, timeout=10.0)
    errors: list[BaseException] = []
    uses = 0
    count_lock = threading.Lock()

    def worker() -> None:
        nonlocal uses
        try:
            for _ in range(2000):
                conn = pool.acquire()
                assert not conn.in_use, "a connection was handed out twice"
                assert not conn.closed
                conn.in_use = True
                time.sleep(0)  # let another thread run while this one holds it
                conn.in_use = False
                pool.release(conn)
                with count_lock:
                    uses += 1
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert uses == 8 * 2000
    assert len(opened) <= 3
    pool.close()
    assert all(c.closed for c in opened)


def test_a_full_pool_times_out_with_backend_unavailable() -> None:
    pool, _ = make_pool(max_size=1, timeout=0.2)
    held = pool.acquire()
    started = time.monotonic()
    with pytest.raises(BackendUnavailableError, match="no free database connection"):
        pool.acquire()
    assert 0.15 <= time.monotonic() - started < 2
    pool.release(held)
    assert pool.acquire() is held


def test_a_release_wakes_a_waiting_acquirer() -> None:
    pool, _ = make_pool(max_size=1, timeout=5.0)
    held = pool.acquire()
    got: list[Conn] = []
    waiter = threading.Thread(target=lambda: got.append(pool.acquire()))
    waiter.start()
    time.sleep(0.1)
    pool.release(held)
    waiter.join(timeout=2)
    assert got == [held]


def test_close_closes_idle_and_later_released_connections() -> None:
    pool, opened = make_pool(max_size=4)
    first, second = pool.acquire(), pool.acquire()
    pool.release(first)
    pool.close()
    assert first.closed and not second.closed
    pool.release(second)
    assert second.closed
    with pytest.raises(BackendUnavailableError, match="closed"):
        pool.acquire()
    assert all(c.closed for c in opened)


def test_close_while_threads_work_leaves_nothing_open() -> None:
    pool, opened = make_pool(max_size=4, timeout=5.0)
    stop = threading.Event()
    outcomes: list[str] = []

    def worker() -> None:
        while not stop.is_set():
            try:
                conn = pool.acquire()
            except BackendUnavailableError:
                outcomes.append("closed")
                return
            assert not conn.closed or pool.closed
            pool.release(conn)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    time.sleep(0.2)
    pool.close()
    for t in threads:
        t.join(timeout=5)
    stop.set()
    assert outcomes == ["closed"] * 6
    assert opened and all(c.closed for c in opened)


def test_an_unusable_idle_connection_is_replaced() -> None:
    pool, opened = make_pool(max_size=2)
    conn = pool.acquire()
    pool.release(conn)
    conn.closed = True  # e.g. the server dropped it while idle
    fresh = pool.acquire()
    assert fresh is not conn and not fresh.closed
    assert len(opened) == 2
