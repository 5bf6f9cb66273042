"""The linter, not the installed sqlglot release, decides which statements it reads
only as opaque commands, so its findings do not move with sqlglot's parser."""

from __future__ import annotations

import pytest

from handshake_storage.lint import lint_text


def findings(sql: str) -> list[tuple[int, str, str]]:
    return [(f.line, f.rule, f.message) for f in lint_text(sql, "0001_a.sql")]


OPAQUE = [
    (2, "HS010", "does not parse as SQLite: understood only as an opaque command"),
    (2, "HS010", "does not parse as PostgreSQL: understood only as an opaque command"),
]


def test_without_rowid_is_opaque_in_both_dialects_and_no_tree_rule_runs() -> None:
    # sqlglot 30.31 reads WITHOUT ROWID as SQLite (earlier releases did not):
    # the column type rule must not start firing on such a table with 30.31.
    sql = "-- lint: ignore HS108 checking the fallback\nCREATE TABLE t (a JSONB) WITHOUT ROWID;"
    assert findings(sql) == OPAQUE


@pytest.mark.parametrize("statement", ["SAVEPOINT s;", "RELEASE s;", "RELEASE SAVEPOINT s;"])
def test_savepoint_statements_are_opaque_in_both_dialects(statement: str) -> None:
    # Before 30.31 sqlglot parsed `SAVEPOINT s` as the alias `SAVEPOINT AS s`
    # and `RELEASE SAVEPOINT s` not at all; 30.31 reads both as commands.
    assert findings("-- lint: ignore HS111 checking the fallback\n" + statement) == OPAQUE
    assert [f.rule for f in lint_text(statement, "0001_a.sql")] == ["HS111"]


def test_a_parse_error_still_wins_over_an_opaque_clause() -> None:
    sql = "-- lint: ignore HS108 x\nCREATE TABLE t (n BIGINT CHECK (n >)) WITHOUT ROWID;"
    assert [rule for _, rule, _ in findings(sql)] == ["HS010", "HS010"]
    assert not any("opaque" in message for _, _, message in findings(sql))
