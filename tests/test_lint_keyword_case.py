"""Keywords are matched case-insensitively by every rule."""

from __future__ import annotations

import pytest

from handshake_storage.lint import lint_text


@pytest.mark.parametrize("spelling", ["REGEXP", "regexp", "Regexp"])
def test_regexp_is_sqlite_only_in_any_case(spelling: str) -> None:
    # It used to be reported as a PostgreSQL-only operator unless spelled in capitals.
    [finding] = lint_text(f"CREATE TABLE t (a TEXT CHECK (a {spelling} 'x'));", "0001_a.sql")
    assert (finding.rule, finding.message) == ("HS108", "REGEXP is SQLite-only")


@pytest.mark.parametrize("spelling", ["GLOB", "glob"])
def test_glob_is_sqlite_only_in_any_case(spelling: str) -> None:
    [finding] = lint_text(f"CREATE TABLE t (a TEXT CHECK (a {spelling} 'x'));", "0001_a.sql")
    assert (finding.rule, finding.message) == ("HS108", "GLOB is SQLite-only")
