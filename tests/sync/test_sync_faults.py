"""Sync under faults and concurrency, on every backend pair: a sync process
SIGKILLed at seeded random moments leaves both sides consistent and the next
sync completes with nothing doubled or lost; concurrent writers on
PostgreSQL while a sync reads never have a late-committing change set
skipped; a clock that jumps back cannot make a replica's edits lose forever."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from sync_support import ADA, BOB, PAIRS, content, replicas

from handshake_storage import BlockUpdate, NewBlock, NewDocument, NewWorkspace, ledger
from handshake_storage.sync import sync_databases

KILLS = 6


@pytest.fixture(params=PAIRS, ids=["-".join(p) for p in PAIRS])
def pair(request, tmp_path):
    yield from replicas(request, tmp_path, request.param)


def fill(db, prefix: str, documents: int, blocks: int) -> None:
    ws = db.create_workspace(ADA, NewWorkspace(prefix, id=f"{prefix}-ws"))
    for d in range(documents):
        doc = db.create_document(ADA, NewDocument(ws.id, f"{prefix} {d}", id=f"{prefix}-d{d}"))
        for b in range(blocks):
            db.create_block(BOB, NewBlock(doc.id, "p", b, f"{prefix} text {b}", id=f"{doc.id}-{b}"))


def ledger_keys(db) -> list[tuple]:
    return sorted((c.origin_id, c.workspace_id or "", c.seq) for c in db.changes(limit=1_000_000))


SYNC_SCRIPT = textwrap.dedent(
    """
    import sys
    from handshake_storage.sync import sync_databases
    print("start", flush=True)
    sync_databases(
        sys.argv[1], sys.argv[2], batch_size=2,
        progress=lambda way, moved, batches: print("batch", flush=True),
    )
    print("done", flush=True)
    """
)


@pytest.mark.slow
def test_a_killed_sync_is_completed_by_the_next_one(pair, record_property) -> None:
    a, b = pair
    fill(a, "a", 4, 12)
    fill(b, "b", 3, 12)
    urls = [db._adapter.url.raw for db in (a, b)]
    rng = random.Random(f"sync-kill/{a.backend}/{b.backend}")
    outcomes = {"killed": 0, "finished": 0}
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    for point in range(KILLS):
        # fresh edits on both sides each round, so every round has work to interrupt
        for i in range(6):
            a.update_block(ADA, f"a-d{point % 4}-{i}", BlockUpdate(raw_content=f"{point} a"))
            b.update_block(BOB, f"b-d{point % 3}-{i}", BlockUpdate(raw_content=f"{point} b"))
        first, second = urls if point % 2 == 0 else urls[::-1]  # both directions first
        proc = subprocess.Popen(
            [sys.executable, "-c", SYNC_SCRIPT, first, second],
            stdout=subprocess.PIPE,
            env=env,
        )
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == b"start"
        # after a seeded number of committed batches, or at a seeded moment
        for _ in range(rng.randint(0, 4)):
            if not proc.stdout.readline():
                break
        time.sleep(rng.uniform(0.0, 0.005))
        proc.send_signal(signal.SIGKILL)
        proc.wait(60)
        outcomes["killed" if proc.returncode == -signal.SIGKILL else "finished"] += 1
        # consistent right after the kill: no change set applied twice on either side
        for db in (a, b):
            keys = ledger_keys(db)
            assert len(keys) == len(set(keys))
    report = sync_databases(a, b, verify=True)
    assert report.verified
    assert content(a) == content(b)
    assert ledger_keys(a) == ledger_keys(b)
    assert sync_databases(a, b).moved == 0
    record_property("kills", outcomes)
    print("sync kills:", outcomes)
    assert outcomes["killed"] >= 1


def test_a_late_committing_change_set_is_never_skipped(request, tmp_path) -> None:
    """Writers on PostgreSQL commit in any order while syncs read; the
    receiver ends with every change set (tracking is per origin and scope,
    and sequence numbers commit in order)."""
    gen = replicas(request, tmp_path, ("postgresql", "sqlite"))
    server, laptop = next(gen)
    try:
        ws = server.create_workspace(ADA, NewWorkspace("busy", id="busy"))
        docs = [server.create_document(ADA, NewDocument(ws.id, f"d{i}")).id for i in range(4)]
        errors: list[BaseException] = []

        def writer(doc: str) -> None:
            try:
                for i in range(25):
                    server.create_block(BOB, NewBlock(doc, "p", i, f"text {i}"))
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=writer, args=(d,)) for d in docs]
        for t in threads:
            t.start()
        syncs = 0
        while any(t.is_alive() for t in threads):
            sync_databases(server, laptop, direction="push", batch_size=4)
            syncs += 1
        for t in threads:
            t.join(120)
        assert not errors
        sync_databases(server, laptop, direction="push")
        assert ledger_keys(laptop) == ledger_keys(server)
        assert sum(len(laptop.get_blocks(d)) for d in docs) == 100
        assert laptop.content_digests() == server.content_digests()
        assert syncs >= 1
    finally:
        next(gen, None)


def test_a_clock_that_jumps_back_cannot_make_edits_lose_forever(pair, monkeypatch) -> None:
    a, b = pair
    fill(a, "c", 1, 1)
    sync_databases(a, b)
    real = ledger.wall_clock_ms
    # b's edit is made later in real time, but a's clock is a day ahead
    monkeypatch.setattr(ledger, "wall_clock_ms", lambda: real() + 86_400_000)
    a.update_block(ADA, "c-d0-0", BlockUpdate(raw_content="from the fast clock"))
    monkeypatch.setattr(ledger, "wall_clock_ms", real)
    b.update_block(BOB, "c-d0-0", BlockUpdate(raw_content="concurrent, normal clock"))
    sync_databases(a, b)
    assert a.get_block("c-d0-0").raw_content == "from the fast clock"  # concurrent: stamps decide
    # Having seen it, b's next edit wins, although b's wall clock is a day behind that stamp.
    b.update_block(BOB, "c-d0-0", BlockUpdate(raw_content="after seeing it"))
    sync_databases(a, b)
    assert (
        a.get_block("c-d0-0").raw_content == b.get_block("c-d0-0").raw_content == "after seeing it"
    )
    # And a clock that jumps back: a's edits after the jump still beat what a has seen.
    monkeypatch.setattr(ledger, "wall_clock_ms", lambda: real() - 86_400_000 * 30)
    a.update_block(ADA, "c-d0-0", BlockUpdate(raw_content="after the jump back"))
    sync_databases(a, b)
    assert b.get_block("c-d0-0").raw_content == "after the jump back"
