"""The process the crash tests kill (see reliability_support.Zygote).

Reads one JSON command per line on stdin. For each, forks a worker that
opens the database itself (nothing is connected before the fork), runs the
operation in a loop and prints one JSON event per step on stdout, flushed,
so the test knows exactly how far it got when it sends SIGKILL. The zygote
reports each worker's exit status. Not a test module.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from typing import Any

import reliability_support as support  # beside this script: sys.path[0]

from handshake_storage import open_database
from handshake_storage.migrator import Migrator
from handshake_storage.transfer import copy_database


def emit(**event: Any) -> None:
    event.setdefault("pid", os.getpid())
    event["t"] = time.monotonic()
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def replace(cmd: dict[str, Any]) -> None:
    with open_database(cmd["url"]) as db:
        document = cmd["document"]
        generation = cmd["first"]
        while generation <= cmd["last"]:
            blocks = support.generation_blocks(document, generation)
            emit(ev="start", gen=generation)
            started = time.perf_counter()
            db.replace_blocks(support.actor(generation), document, blocks)
            emit(ev="done", gen=generation, s=time.perf_counter() - started)
            generation += 1


def canvas(cmd: dict[str, Any]) -> None:
    with open_database(cmd["url"]) as db:
        canvas_id = cmd["canvas"]
        generation = cmd["first"]
        while generation <= cmd["last"]:
            nodes, edges = support.generation_graph(generation)
            emit(ev="start", gen=generation)
            started = time.perf_counter()
            db.update_canvas_graph(support.actor(generation), canvas_id, nodes, edges)
            emit(ev="done", gen=generation, s=time.perf_counter() - started)
            generation += 1


def migrate(cmd: dict[str, Any]) -> None:
    """migrate to the latest, roll back to 0, again; every step reported."""

    def progress(event: str, migration: Any, seconds: float | None) -> None:
        emit(ev=event, version=migration.version)

    with open_database(cmd["url"]) as db:
        migrator = Migrator(db._adapter)
        for _ in range(cmd["rounds"]):
            emit(ev="run", direction="up")
            migrator.migrate(progress=progress)
            emit(ev="ran", direction="up")
            emit(ev="run", direction="down")
            migrator.rollback(0, progress=progress)
            emit(ev="ran", direction="down")


def copy(cmd: dict[str, Any]) -> None:
    def progress(table: str, done: int, total: int) -> None:
        emit(ev="progress", table=table, done=done, total=total)

    emit(ev="start")
    started = time.perf_counter()
    report = copy_database(cmd["source"], cmd["target"], batch_size=cmd["batch"], progress=progress)
    emit(ev="copied", rows=report.total_rows, s=time.perf_counter() - started)


OPERATIONS = {"replace": replace, "canvas": canvas, "migrate": migrate, "copy": copy}


def worker(cmd: dict[str, Any]) -> None:
    code = 0
    try:
        OPERATIONS[cmd["op"]](cmd)
        emit(ev="finished")
    except BaseException as exc:
        emit(ev="error", type=type(exc).__name__, text="".join(traceback.format_exception(exc)))
        code = 1
    sys.stdout.flush()
    os._exit(code)


def main() -> None:
    for line in sys.stdin:
        cmd = json.loads(line)
        pid = os.fork()
        if pid == 0:
            worker(cmd)
        emit(ev="forked", pid=pid)
        _, status = os.waitpid(pid, 0)
        emit(ev="exited", pid=pid, status=os.waitstatus_to_exitcode(status))


if __name__ == "__main__":
    main()
