"""``indexes list|rebuild|verify`` and ``check`` through the installed script,
on both backends: tampering is reported by verify and repaired by rebuild;
unknown names are refused; undeclared indexes are flagged."""

from __future__ import annotations

import re

from cli_support import Result
from cli_support import run as run_cli

from handshake_storage import Database, rebuildable
from portability_support import execute, populate, scalar, table_digests

#: Tampering with the search rows: one block's rows disappear.
DELETE_ONE = ("DELETE FROM block_search WHERE block_id = ?", ("blk-0-0-1",))


def run(db: Database, *args: str) -> Result:
    return run_cli("--database-url", db._adapter.url.raw, *args)


def error_lines(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


def test_cli_indexes_list(db: Database) -> None:
    result = run(db, "indexes", "list")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[1].split() == ["NAME", "KIND", "TABLE", "STATE", "COMPUTED", "FROM"]
    rows = {line.split()[0]: line for line in lines[2:]}
    registry = rebuildable.registry()
    assert set(rows) == {o.name for o in registry}
    for obj in registry:
        assert rows[obj.name].split()[1:4] == [obj.kind, obj.table, "present"]
        assert rows[obj.name].rstrip().endswith(obj.source)
    assert "blocks" in rows["block_search"] and "block_search" in rows["block_search"]
    assert "full-text" in rows["block_search_fulltext"]


def test_cli_rebuild_and_verify(db: Database) -> None:
    populate(db)
    good = table_digests(db)
    result = run(db, "indexes", "verify")
    assert result.exit_code == 0, result.output
    ok = [line for line in result.stdout.splitlines() if line.startswith("ok   ")]
    assert len(ok) == len(rebuildable.registry())
    execute(db, *DELETE_ONE)
    result = run(db, "indexes", "verify")
    assert result.exit_code == 1
    assert re.search(r"^DIFF block_search", result.stdout, re.M)
    assert error_lines(result) == ["error: 1 object(s) differ from a rebuild"]
    result = run(db, "indexes", "rebuild", "block_search")
    assert result.exit_code == 0, result.output
    assert "rebuilt 2 object(s)" in result.stdout
    assert table_digests(db) == good
    result = run(db, "indexes", "rebuild")
    assert result.exit_code == 0
    assert f"rebuilt {len(rebuildable.registry())} object(s)" in result.stdout
    assert table_digests(db) == good
    assert run(db, "indexes", "verify", "block_search", "block_search_fulltext").exit_code == 0


def test_cli_refuses_unknown_names(db: Database) -> None:
    populate(db)
    execute(db, *DELETE_ONE)
    before = table_digests(db)
    for command in ("rebuild", "verify"):
        result = run(db, "indexes", command, "block_search", "no_such_index")
        assert result.exit_code == 1
        (line,) = error_lines(result)
        assert "no_such_index" in line and "unknown rebuildable" in line
        assert result.stderr.rstrip().splitlines()[-1] == line
    assert table_digests(db) == before


def test_cli_check_flags_an_undeclared_index(db: Database) -> None:
    result = run(db, "check")
    assert "ok   index classification" in result.stdout
    execute(db, "CREATE INDEX idx_handmade ON documents (title)")
    result = run(db, "check")
    assert result.exit_code == 1
    assert "FAIL index classification" in result.stdout
    assert re.search(r"idx_handmade on documents is not declared", result.stdout)
    assert scalar(db, "SELECT COUNT(*) FROM documents") == 0
