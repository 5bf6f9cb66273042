"""Data written by another tool that the API cannot decode is a
CorruptDataError naming the table, column and row, with the same message on
both backends; never a raw ValueError or KeyError. A copy names the database
that is actually at fault.

Before: a timestamp column holding ``'yesterday'`` made ``Block.created_at``
raise a raw ValueError (and ``handshake-storage copy`` died with a
traceback); invalid JSON text was a StorageError naming nothing; an unknown
enum string a KeyError; a corrupt SQLite *source* was reported as the new,
empty *target* being corrupt.
"""

from __future__ import annotations

import os
import shutil
import uuid
from typing import Any

import pytest
from click.testing import CliRunner

from handshake_storage import (
    CorruptDataError,
    NewBlock,
    NewCanvas,
    NewCanvasNode,
    NewDocument,
    NewWorkspace,
    StorageError,
    WriteContext,
    open_database,
)
from handshake_storage.backends.base import AUTOCOMMIT, WRITE
from handshake_storage.cli import main as cli_main
from handshake_storage.transfer import copy_database

CTX = WriteContext.human("foreign")
JOB = uuid.UUID("00000000-0000-4000-8000-00000000f00d")


def populate(db: Any) -> Any:
    db.create_workspace(CTX, NewWorkspace("ws", id="ws"))
    db.create_document(CTX, NewDocument("ws", "doc", id="doc"))
    db.create_block(CTX, NewBlock("doc", "p", 0, "text", id="b1"))
    db.create_canvas(CTX, NewCanvas("ws", "canvas", id="c1"))
    db.update_canvas_graph(CTX, "c1", [NewCanvasNode("n", 0.0, 0.0, id="n1")], [])
    from reliability_support import new_job

    return db.create_ai_job(new_job(1, id=JOB)).id


def write_behind_the_api(db: Any, sql: str, params: tuple[Any, ...]) -> None:
    adapter = db._adapter
    with adapter.transaction(WRITE) as session:
        session.execute(adapter.compile(sql), params)


def without_check(db: Any, table: str, constraint: str) -> None:
    """What a tool that does not know the schema's CHECKs can do."""
    adapter = db._adapter
    with adapter.transaction(AUTOCOMMIT) as session:
        if db.backend == "sqlite":
            session.execute("PRAGMA ignore_check_constraints = ON")
        else:
            session.execute(f"ALTER TABLE {table} DROP CONSTRAINT {constraint}")


#: (what another tool wrote, how the API reads it back, table, column, row id)
CASES = {
    "invalid JSON text": (
        "UPDATE blocks SET derived_content = ? WHERE id = 'b1'",
        ("{not json",),
        lambda db, job: db.get_block("b1").derived_content,
        ("blocks", "derived_content", "b1"),
    ),
    "JSON of the wrong shape": (
        "UPDATE ai_jobs SET entity_refs = ?",
        ('[{"unexpected": 1}]',),
        lambda db, job: db.get_ai_job(job).entity_refs,
        ("ai_jobs", "entity_refs", None),
    ),
    "unknown enum string inside JSON": (
        "UPDATE ai_jobs SET planned_operations = ?",
        ('[{"op_type": "explode", "target": {"entity_id": "x", "entity_kind": "y"}}]',),
        lambda db, job: db.get_ai_job(job).planned_operations,
        ("ai_jobs", "planned_operations", None),
    ),
    "unknown enum string": (
        "UPDATE ai_jobs SET status = ?",
        ("exploded",),
        lambda db, job: db.get_ai_job(job).status,
        ("ai_jobs", "status", None),
    ),
    "unknown actor kind in a list": (
        "UPDATE canvas_nodes SET last_actor_kind = ? WHERE id = 'n1'",
        ("ROBOT",),
        lambda db, job: db.get_canvas_with_graph("c1").nodes[0].last_actor_kind,
        ("canvas_nodes", "last_actor_kind", "n1"),
    ),
    "invalid JSON in a list": (
        "UPDATE canvas_nodes SET data = ? WHERE id = 'n1'",
        ("[1, 2",),
        lambda db, job: [n.data for n in db.get_canvas_with_graph("c1").nodes],
        ("canvas_nodes", "data", "n1"),
    ),
}


@pytest.mark.parametrize("case", CASES, ids=CASES)
def test_an_undecodable_stored_value_names_table_column_and_row_on_both_backends(
    migrated_pair, case
):
    sql, params, read, (table, column, row_id) = CASES[case]
    messages = []
    with migrated_pair(f"foreign-{abs(hash(case)) % 10**6}") as pair:
        for db in pair:
            job = populate(db)
            if "status" in sql:
                without_check(db, "ai_jobs", "ck_ai_jobs_status")
            if "last_actor_kind" in sql:
                without_check(db, "canvas_nodes", "ck_canvas_nodes_actor_kind")
            write_behind_the_api(db, sql, params)
            with pytest.raises(CorruptDataError) as raised:
                read(db, job)
            error = raised.value
            assert (error.table, error.column) == (table, column)
            assert error.row_id == (row_id if row_id is not None else str(job))
            assert error.__cause__ is None and error.__suppress_context__
            messages.append(str(error))
    assert messages[0] == messages[1], "the backends word the same fault differently"
    assert f"{table}.{column} of row" in messages[0]


def test_a_malformed_timestamp_text_is_a_corrupt_data_error(databases):
    db = databases.open()
    populate(db)
    if db.backend == "postgresql":
        # timestamptz cannot hold text that is not a timestamp at all; the
        # same fault reads the same through the codec on both backends.
        with pytest.raises(StorageError):
            write_behind_the_api(
                db, "UPDATE blocks SET created_at = CAST(? AS timestamptz)", ("not a time",)
            )
        return
    write_behind_the_api(db, "UPDATE blocks SET created_at = ? WHERE id = 'b1'", ("yesterday",))
    block = db.get_block("b1")
    assert block.raw_content == "text"  # the other fields still read
    with pytest.raises(CorruptDataError, match=r"blocks\.created_at of row 'b1' holds 'yesterday'"):
        block.created_at  # noqa: B018


@pytest.mark.parametrize("target_backend", ["sqlite", "postgresql"])
def test_copy_of_a_source_with_a_malformed_timestamp_names_it_and_leaves_the_target(
    tmp_path, postgres_server, target_backend
):
    source = f"sqlite:///{tmp_path / 'source.db'}"
    with open_database(source) as db:
        db.run_migrations()
        populate(db)
        write_behind_the_api(db, "UPDATE blocks SET updated_at = ? WHERE id = 'b1'", ("yesterday",))
    if target_backend == "sqlite":
        target = f"sqlite:///{tmp_path / 'target.db'}"
    else:
        target = postgres_server.url_for(postgres_server.create())
    with pytest.raises(CorruptDataError) as raised:
        copy_database(source, target)
    assert (raised.value.table, raised.value.column, raised.value.row_id) == (
        "blocks",
        "updated_at",
        "b1",
    )
    assert "source" in str(raised.value) and "source.db" in str(raised.value)
    result = CliRunner().invoke(cli_main, ["copy", "--from", source, "--to", target])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert "blocks.updated_at of row 'b1'" in result.output
    if target_backend == "sqlite":
        assert not (tmp_path / "target.db").exists()  # the target is untouched


def test_copy_of_a_corrupt_sqlite_source_names_the_source(tmp_path):
    source_path = tmp_path / "source.db"
    with open_database(f"sqlite:///{source_path}") as db:
        db.run_migrations()
        db.create_workspace(CTX, NewWorkspace("ws", id="ws"))
        db.create_document(CTX, NewDocument("ws", "doc", id="doc"))
        db.replace_blocks(
            CTX, "doc", [NewBlock("doc", "p", i, "words " * 50 + str(i)) for i in range(3000)]
        )
    shutil.copyfile(source_path, tmp_path / "pristine.db")
    size = source_path.stat().st_size
    with open(source_path, "r+b") as f:  # garbage over pages in the middle of the file
        f.seek(size // 2)
        f.write(os.urandom(size // 4))
    target_path = tmp_path / "target.db"
    with pytest.raises(StorageError) as raised:
        copy_database(f"sqlite:///{source_path}", f"sqlite:///{target_path}")
    message = str(raised.value)
    assert str(source_path) in message, message
    assert str(target_path) not in message, message
    assert not target_path.exists()
