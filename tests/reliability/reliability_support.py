"""Shared pieces of the reliability tests (crashes, concurrency, faults, input, files).

* Content *generations* for ``replace_blocks`` and ``update_canvas_graph``:
  every generation is distinguishable in every row (ids, text, the actor id
  stamped on the parent), so a state read back after a crash names exactly
  one generation, or shows a mix.
* :class:`Zygote`: a Python subprocess that has imported the package once
  and forks a fresh *worker* per command (``victim.py``). The test kills a
  worker with SIGKILL at a chosen moment; each kill point costs a fork, not
  an interpreter start, so many kill points fit in a few seconds.
* Helpers that read a database behind the API (the internal adapter handle is
  fine in tests; drivers are never imported here).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from handshake_storage import (
    AccessMode,
    Database,
    JobMetrics,
    NewAiJob,
    NewBlock,
    NewCanvasEdge,
    NewCanvasNode,
    SafetyMode,
    WriteContext,
    search,
)
from handshake_storage.backends.base import AUTOCOMMIT, SNAPSHOT
from handshake_storage.digest import TableDigest

HERE = Path(__file__).parent
VICTIM = HERE / "victim.py"

#: ``application_name`` of every connection a worker opens, so a test can
#: wait until the server has finished with a killed worker's sessions.
VICTIM_APP = "hs-reliability-victim"

#: Blocks per generation: half keep their ids across generations (a crash
#: between DELETE and INSERT must not leave both or neither), half are new.
BLOCKS_PER_GENERATION = 100
NODES_PER_GENERATION = 60


def actor(generation: int) -> WriteContext:
    return WriteContext.human(f"gen-{generation}")


def generation_blocks(document_id: str, generation: int) -> list[NewBlock]:
    blocks = []
    for i in range(BLOCKS_PER_GENERATION):
        block_id = f"{document_id}-{i}" if i % 2 == 0 else f"{document_id}-g{generation}-{i}"
        words = " ".join(f"gen{generation} word{i} w{(i * 7 + k) % 23}" for k in range(4))
        blocks.append(
            NewBlock(
                document_id,
                "paragraph" if i % 3 else "heading",
                (i * 37) % 101 - 50,
                words,
                display_content=f"<p>{generation}:{i}</p>",
                derived_content={"generation": generation, "i": i},
                id=block_id,
            )
        )
    return blocks


def expected_blocks(document_id: str, generation: int) -> list[tuple[Any, ...]]:
    """What ``get_blocks`` must return for a generation, in API order."""
    rows = [
        (
            b.id,
            b.document_id,
            b.kind,
            b.sequence,
            b.raw_content,
            b.display_content,
            b.derived_content,
            f"gen-{generation}",
        )
        for b in generation_blocks(document_id, generation)
    ]
    return sorted(rows, key=lambda r: (r[3], r[0]))


def expected_terms(workspace_id: str, document_id: str, generation: int) -> list[tuple[Any, ...]]:
    """The ``block_search`` rows of a generation's blocks, sorted."""
    return sorted(
        (workspace_id, *row)
        for b in generation_blocks(document_id, generation)
        for row in search.index_rows(b.id, b.raw_content)
    )


def observed_terms(db: Database, workspace_id: str) -> list[tuple[Any, ...]]:
    return sorted(
        rows(
            db,
            "SELECT workspace_id, block_id, chunk, word_count, tokens FROM block_search "
            "WHERE workspace_id = ?",
            (workspace_id,),
        )
    )


def observed_blocks(db: Database, document_id: str) -> list[tuple[Any, ...]]:
    return [
        (
            b.id,
            b.document_id,
            b.kind,
            b.sequence,
            b.raw_content,
            b.display_content,
            b.derived_content,
            b.last_actor_id,
        )
        for b in db.get_blocks(document_id)
    ]


def generation_graph(
    generation: int,
) -> tuple[list[NewCanvasNode], list[NewCanvasEdge]]:
    nodes = [
        NewCanvasNode(
            f"kind-{generation}",
            generation + i / 8,
            -generation * 0.5 - i,
            {"generation": generation, "i": i, "label": f"node {i} of {generation}"},
            id=f"n{i}" if i % 2 == 0 else f"g{generation}-n{i}",
        )
        for i in range(NODES_PER_GENERATION)
    ]
    edges = [
        NewCanvasEdge(
            nodes[i].id,  # type: ignore[arg-type]
            nodes[(i * 5 + 1) % len(nodes)].id,  # type: ignore[arg-type]
            f"edge-{generation}",
            id=f"e{i}" if i % 2 == 0 else f"g{generation}-e{i}",
        )
        for i in range(NODES_PER_GENERATION - 1)
    ]
    return nodes, edges


def expected_graph(generation: int) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], str]:
    nodes, edges = generation_graph(generation)
    return (
        [(n.id, n.kind, n.position_x, n.position_y, n.data) for n in nodes],
        [(e.id, e.from_node_id, e.to_node_id, e.kind) for e in edges],
        f"gen-{generation}",
    )


def observed_graph(db: Database, canvas_id: str) -> tuple[list[Any], list[Any], str | None]:
    graph = db.get_canvas_with_graph(canvas_id)
    return (
        [(n.id, n.kind, n.position_x, n.position_y, n.data) for n in graph.nodes],
        [(e.id, e.from_node_id, e.to_node_id, e.kind) for e in graph.edges],
        graph.canvas.last_actor_id,
    )


def new_job(k: int = 0, **fields: Any) -> NewAiJob:
    values: dict[str, Any] = {
        "trace_id": uuid.UUID(int=k + 1),
        "job_kind": f"kind-{k}",
        "protocol_id": "protocol",
        "profile_id": "profile",
        "capability_profile_id": "caps",
        "access_mode": AccessMode.APPLY_SCOPED,
        "safety_mode": SafetyMode.NORMAL,
        "metrics": JobMetrics(duration_ms=k),
        "job_inputs": {"k": k, "text": "héllo"},
    }
    values.update(fields)
    return NewAiJob(**values)


# -- reading behind the API ----------------------------------------------------------------


def scalar(db: Database, sql: str, params: tuple[Any, ...] = ()) -> Any:
    with db._adapter.transaction(SNAPSHOT) as session:
        return session.execute(db._adapter.compile(sql), params).fetchone()[0]


def rows(db: Database, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with db._adapter.transaction(SNAPSHOT) as session:
        return [tuple(r) for r in session.execute(db._adapter.compile(sql), params).fetchall()]


def table_digests(db: Database, only: set[str] | None = None) -> dict[str, TableDigest]:
    """Each table's row count and order-independent digest, in one snapshot."""
    adapter = db._adapter
    with adapter.transaction(SNAPSHOT) as session:
        schema = adapter.introspect(session)
        digests = {}
        for name, table in sorted(schema.tables.items()):
            if only is not None and name not in only:
                continue
            columns = ", ".join(c.name for c in table.columns)
            digest = TableDigest([c.family for c in table.columns], adapter.decode_timestamp)
            digests[name] = digest.add_all(adapter.stream(session, f"SELECT {columns} FROM {name}"))
    return digests


def wait_until_quiet(db: Database, timeout: float = 60) -> None:
    """PostgreSQL: until no session of a (killed) worker is left on the server.

    The server notices a dead client and rolls back (or finishes a COMMIT it
    had already received) on its own time; the state is final only then.
    """
    if db.backend != "postgresql":
        return
    deadline = time.monotonic() + timeout
    while True:
        with db._adapter.transaction(AUTOCOMMIT) as session:
            left = session.execute(
                "SELECT COUNT(*) FROM pg_stat_activity WHERE application_name = %s",
                (VICTIM_APP,),
            ).fetchone()[0]
        if not left:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{left} session(s) of a killed worker still on the server")
        time.sleep(0.005)


def victim_url(url: str) -> str:
    """``url`` tagged so the worker's sessions can be recognised on the server."""
    if not url.startswith("postgres"):
        return url
    joiner = "&" if "?" in url else "?"
    return f"{url}{joiner}application_name={VICTIM_APP}"


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("HANDSHAKE_DATABASE_URL", None)
    return env


# -- the zygote --------------------------------------------------------------------------------


class Worker:
    """One forked worker: its progress events, and the means to kill it."""

    def __init__(self, zygote: Zygote, pid: int) -> None:
        self.zygote = zygote
        self.pid = pid
        self.events: list[dict[str, Any]] = []
        self.exit_status: int | None = None

    def wait_for(self, predicate: Any, timeout: float = 60) -> dict[str, Any]:
        """The first event matching ``predicate`` (waiting for it to arrive)."""
        return self.zygote._wait(self, predicate, timeout)

    def wait_for_count(self, n: int, kind: str | None = None, timeout: float = 60) -> None:
        """Until the worker has reported ``n`` events (of ``kind``, if given)."""

        def reached() -> bool:
            return sum(1 for e in self.events if kind is None or e["ev"] == kind) >= n

        self.zygote._wait_until(self, reached, timeout)

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):  # it had finished already
            os.kill(self.pid, signal.SIGKILL)
        self.zygote._wait_exit(self)

    def finish(self, timeout: float = 120) -> int:
        return self.zygote._wait_exit(self, timeout)

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["ev"] == kind]


class Zygote:
    """``victim.py`` in a subprocess; :meth:`run` forks a worker per command."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(VICTIM)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=child_env(),
        )
        self._changed = threading.Condition()
        self._workers: dict[int, Worker] = {}
        self._pending: list[dict[str, Any]] = []
        self._closed = False
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            event = json.loads(line)
            with self._changed:
                worker = self._workers.get(event.get("pid", -1))
                if worker is None:
                    self._pending.append(event)
                else:
                    worker.events.append(event)
                    if event["ev"] == "exited":
                        worker.exit_status = event["status"]
                self._changed.notify_all()
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    def run(self, op: str, **args: Any) -> Worker:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"op": op, **args}) + "\n")
        self.proc.stdin.flush()
        with self._changed:
            deadline = time.monotonic() + 60
            while True:
                forked = [e for e in self._pending if e["ev"] == "forked"]
                if forked:
                    event = forked[0]
                    self._pending.remove(event)
                    worker = Worker(self, event["pid"])
                    self._workers[worker.pid] = worker
                    # events the worker wrote before we knew its pid
                    for early in [e for e in self._pending if e.get("pid") == worker.pid]:
                        self._pending.remove(early)
                        worker.events.append(early)
                        if early["ev"] == "exited":
                            worker.exit_status = early["status"]
                    return worker
                self._check_alive()
                if not self._changed.wait(max(0.0, deadline - time.monotonic())):
                    raise AssertionError("the zygote did not fork a worker")

    def _check_alive(self) -> None:
        if self._closed:
            err = self.proc.stderr.read() if self.proc.stderr else ""
            raise AssertionError(f"the zygote died: {err}")

    def _wait(self, worker: Worker, predicate: Any, timeout: float) -> dict[str, Any]:
        found: list[dict[str, Any]] = []

        def seen() -> bool:
            found.extend(e for e in worker.events if predicate(e))
            return bool(found)

        self._wait_until(worker, seen, timeout)
        return found[0]

    def _wait_until(self, worker: Worker, condition: Any, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                if condition():
                    return
                if worker.exit_status is not None:
                    raise AssertionError(f"worker exited first: {worker.events[-5:]}")
                self._check_alive()
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no such event within {timeout}s: {worker.events[-5:]}")
                self._changed.wait(left)

    def _wait_exit(self, worker: Worker, timeout: float = 60) -> int:
        deadline = time.monotonic() + timeout
        with self._changed:
            while worker.exit_status is None:
                self._check_alive()
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"worker {worker.pid} did not exit: {worker.events[-5:]}")
                self._changed.wait(left)
            return worker.exit_status

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(30)
        self._reader.join(30)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


@contextmanager
def zygote() -> Iterator[Zygote]:
    z = Zygote()
    try:
        yield z
    finally:
        z.close()


# -- a PostgreSQL server of our own -------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class OwnPostgres:
    """A PostgreSQL server of the tests' own, which they may stop, freeze and restart.

    Initialised by ``pgserver`` (its bundled binaries; as root it runs the
    server as the ``pgserver`` system user), then restarted on 127.0.0.1 with
    a fixed port and no Unix socket, so a stopped server refuses connections
    and a frozen one lets them hang. Role ``postgres`` is trusted; every other
    role must give its password (SCRAM), so authentication really is tested.
    The session's shared server is never touched.
    """

    def __init__(self, root: Path) -> None:
        import pgserver
        from pgserver import _commands

        self._pg_ctl = _commands.pg_ctl
        self.pgdata = root / "pgdata"
        handle = pgserver.get_server(self.pgdata, cleanup_mode=None)
        self.system_user = handle.system_user
        self._run(["-w", "-m", "fast", "stop"])
        self.port = free_port()
        with open(self.pgdata / "postgresql.conf", "a") as conf:
            conf.write(
                "\nlisten_addresses = '127.0.0.1'\n"
                f"port = {self.port}\n"
                "unix_socket_directories = ''\n"
                "password_encryption = 'scram-sha-256'\n"
                "fsync = on\n"
            )
        (self.pgdata / "pg_hba.conf").write_text(
            "host all postgres 127.0.0.1/32 trust\nhost all all 127.0.0.1/32 scram-sha-256\n"
        )
        self.running = False
        self.start()

    def _run(self, args: list[str]) -> None:
        self._pg_ctl(args, pgdata=self.pgdata, user=self.system_user, timeout=60)

    def url(self, database: str = "postgres", user: str = "postgres", password: str = "") -> str:
        secret = f":{quote(password, safe='')}" if password else ""
        return f"postgresql://{user}{secret}@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        self._run(["-w", "-l", str(self.pgdata / "log"), "start"])
        self.running = True

    def stop(self, mode: str = "fast") -> None:
        self._run(["-w", "-m", mode, "stop"])
        self.running = False

    def postmaster_pid(self) -> int:
        return int((self.pgdata / "postmaster.pid").read_text().split()[0])

    def admin(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Run one statement as the superuser, outside a transaction block."""
        from handshake_storage import open_database

        with open_database(self.url()) as db, db._adapter.transaction(AUTOCOMMIT) as session:
            cursor = session.execute(sql, params)
            return [tuple(r) for r in cursor.fetchall()] if cursor.description else []

    def create_database(self, owner: str = "postgres") -> str:
        name = f"own_{uuid.uuid4().hex[:10]}"
        self.admin(f'CREATE DATABASE "{name}" OWNER "{owner}"')
        return name

    def close(self) -> None:
        if self.running:
            with contextlib.suppress(Exception):
                self.stop("immediate")


_OWN: list[OwnPostgres] = []


_OWN_ROOTS: list[Path] = []


def own_postgres() -> OwnPostgres:
    """The one server of our own for this test session (started on first use).

    Its data directory is NOT under pytest's basetemp: a concurrent pytest
    session on the machine resets the permissions there (and may delete old
    runs), and the server, running as another user, would die or fail to
    start. ``tempfile.mkdtemp`` gives each run a private directory.
    """
    if not _OWN:
        root = Path(tempfile.mkdtemp(prefix="handshake-test-own-pg-"))
        _OWN_ROOTS.append(root)
        _OWN.append(OwnPostgres(root))
    server = _OWN[0]
    if not server.running:
        server.start()
    return server


def stop_own_postgres() -> None:
    while _OWN:
        _OWN.pop().close()
    while _OWN_ROOTS:
        shutil.rmtree(_OWN_ROOTS.pop(), ignore_errors=True)
