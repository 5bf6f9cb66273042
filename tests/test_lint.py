"""The portability linter: shipped migrations, a good and a bad corpus, rules, suppression.

No database is needed: the linter only parses. The bad corpus has one case
directory per rule, and ``bad/expected.json`` lists exactly the findings
(file, line, rule) each case must produce.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
import time
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from handshake_storage import declarations, lint, migrator, sqlscript
from handshake_storage.errors import MigrationError
from handshake_storage.lint import RULES, Finding, lint_paths, lint_text

CORPUS = Path(__file__).parent / "lint_corpus"
GOOD = CORPUS / "good"
BAD = CORPUS / "bad"
EXPECTED = {
    name: case
    for name, case in json.loads((BAD / "expected.json").read_text(encoding="utf-8")).items()
    if not name.startswith("_")
}
SHIPPED = Path(lint.__file__).parent / "migrations"
ROOT = Path(__file__).parent.parent


def rules(findings: list[Finding]) -> list[str]:
    return sorted(f.rule for f in findings)


def check(sql: str, name: str = "0001_case.sql") -> list[str]:
    return rules(lint_text(sql, name))


# -- shipped migrations and the good corpus ------------------------------------------


def test_shipped_migrations_have_no_findings() -> None:
    assert len(list(SHIPPED.glob("*.sql"))) >= 6
    assert lint_paths() == []
    assert lint_paths([SHIPPED]) == []


def test_shipped_migrations_are_really_linted(tmp_path: Path) -> None:
    """A copy of the shipped set with one planted problem yields exactly that problem."""
    for path in SHIPPED.glob("*.sql"):
        shutil.copy(path, tmp_path / path.name)
    last = sorted(p for p in tmp_path.glob("*.sql") if not p.name.endswith(".down.sql"))[-1]
    text = last.read_text(encoding="utf-8")
    last.write_text(text + "\nCREATE INDEX idx_planted ON blocks (kind);\n", encoding="utf-8")
    findings = lint_paths([tmp_path])
    assert [(Path(f.path).name, f.rule) for f in findings] == [(last.name, "HS201")]
    assert findings[0].line == text.count("\n") + 2


def test_shipped_migrations_lint_fast() -> None:
    lint_paths()  # warm up imports and caches
    started = time.perf_counter()
    assert lint_paths() == []
    assert time.perf_counter() - started < 1.0


def test_good_corpus_has_no_findings() -> None:
    ups = [p for p in GOOD.glob("*.sql") if not p.name.endswith(".down.sql")]
    assert len(ups) >= 5
    assert lint_paths([GOOD]) == []


def test_good_corpus_is_a_valid_migration_set() -> None:
    """The migrator accepts the good corpus as it is (names, pairs, sequence)."""
    migrations = migrator.load_migrations(GOOD)
    assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))


def test_good_corpus_shows_a_used_suppression() -> None:
    """The good corpus is clean *because of* its suppressions, not by accident."""
    path = next(GOOD.glob("0005_*.sql"))
    text = path.read_text(encoding="utf-8")
    unsuppressed = re.sub(r"--\s*lint:[^\n]*", "", text)
    assert check(unsuppressed) == ["HS106", "HS106"]
    assert lint_text(text, path.name) == []


# -- the bad corpus -------------------------------------------------------------------


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_bad_corpus_case(case: str) -> None:
    findings = lint_paths([BAD / case])
    got = Counter((Path(f.path).name, f.line, f.rule) for f in findings)
    want = Counter(tuple(item) for item in EXPECTED[case]["findings"])
    assert got == want
    assert EXPECTED[case]["rule"] in {f.rule for f in findings}
    for finding in findings:
        assert finding.message and finding.fix
        assert finding.rule in RULES


def test_bad_corpus_covers_every_rule() -> None:
    assert {case["rule"] for case in EXPECTED.values()} == set(RULES)
    directories = {p.name for p in BAD.iterdir() if p.is_dir()}
    assert directories == set(EXPECTED)


def test_bad_corpus_migrator_agrees_on_file_rules() -> None:
    """Where the migrator refuses a set for its files, the linter says why."""
    for case in ("hs001_file_name", "hs002_missing_down", "hs003_orphan_down", "hs004_version_gap"):
        with pytest.raises(MigrationError):
            migrator.load_migrations(BAD / case)


# -- the API --------------------------------------------------------------------------


def test_rules_are_stable_documented_one_liners() -> None:
    assert all(re.fullmatch(r"HS\d{3}", code) for code in RULES)
    for code, description in RULES.items():
        assert description and "\n" not in description
        assert code in (lint.__doc__ or ""), f"{code} is not documented in the module docstring"


def test_finding_format() -> None:
    finding = Finding("m/0001_a.sql", 7, "HS104", "AUTOINCREMENT", "drop it")
    assert finding.format() == "m/0001_a.sql:7: HS104 AUTOINCREMENT (fix: drop it)"
    with pytest.raises(AttributeError):
        finding.line = 8  # type: ignore[misc]


def test_lint_text_reports_the_given_path_and_lines() -> None:
    sql = "CREATE TABLE t (\n    id TEXT NOT NULL PRIMARY KEY,\n    n INT\n);\n"
    [finding] = lint_text(sql, "db/migrations/0002_numbers.sql")
    assert (finding.path, finding.line, finding.rule) == (
        "db/migrations/0002_numbers.sql",
        3,
        "HS106",
    )
    assert "INT" in finding.message
    assert "INTEGER" in finding.fix


def test_crlf_and_bom_do_not_move_findings() -> None:
    sql = "-- header\nCREATE TABLE t (\n  a JSONB\n);\n"
    unix = [(f.line, f.rule) for f in lint_text(sql, "0001_a.sql")]
    windows = [
        (f.line, f.rule) for f in lint_text("\ufeff" + sql.replace("\n", "\r\n"), "0001_a.sql")
    ]
    assert unix == windows == [(3, "HS106")]


def test_file_naming_matches_the_migrator() -> None:
    # one rule, in declarations.py: the migrator loads files through it
    assert lint._UP is declarations.MIGRATION_FILE and lint._DOWN is declarations.DOWN_FILE
    assert migrator.load_migrations is declarations.load_migrations
    assert check("SELECT 1;", "0001_ok_name.sql") == []
    assert check("SELECT 1;", "0001_ok_name.down.sql") == []
    for bad in ("1_short.sql", "0001-dash.sql", "0001_Upper.sql", "0001_x.SQL", "notes.sql"):
        assert check("SELECT 1;", bad) == ["HS001"], bad


def test_lint_text_skips_sibling_rules() -> None:
    assert check("CREATE TABLE t (id TEXT NOT NULL PRIMARY KEY);", "0009_alone.sql") == []


def test_lint_module_imports_no_driver() -> None:
    tree = ast.parse(Path(lint.__file__).read_text(encoding="utf-8"))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            imported.add(node.module.split(".")[0])
    assert "sqlglot" in imported
    assert not imported & {"sqlite3", "psycopg", "psycopg2", "pgserver"}


# -- paths ----------------------------------------------------------------------------


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def test_single_file_finds_its_sibling_on_disk(tmp_path: Path) -> None:
    up = write(tmp_path, "0001_a.sql", "CREATE TABLE a (id TEXT NOT NULL PRIMARY KEY);\n")
    assert rules(lint_paths([up])) == ["HS002"]
    down = write(tmp_path, "0001_a.down.sql", "DROP TABLE a;\n")
    assert lint_paths([up]) == []
    up.unlink()
    assert rules(lint_paths([down])) == ["HS003"]


def test_missing_and_unreadable_paths(tmp_path: Path) -> None:
    [missing] = lint_paths([tmp_path / "0001_nope.sql"])
    assert missing.rule == "HS005"
    bad = tmp_path / "0001_bytes.sql"
    bad.write_bytes(b"SELECT '\xff';\n")
    write(tmp_path, "0001_bytes.down.sql", "SELECT 1;\n")
    assert rules(lint_paths([bad])) == ["HS005"]


def test_paths_are_linted_once(tmp_path: Path) -> None:
    write(tmp_path, "0001_a.sql", "CREATE TABLE a (id TEXT NOT NULL PRIMARY KEY, b JSONB);\n")
    write(tmp_path, "0001_a.down.sql", "DROP TABLE a;\n")
    assert rules(lint_paths([tmp_path, tmp_path / "0001_a.sql", tmp_path])) == ["HS106"]


def test_directory_versions_repeat(tmp_path: Path) -> None:
    for name in ("0001_a", "0001_b"):
        write(tmp_path, f"{name}.sql", "SELECT 1;\n")
        write(tmp_path, f"{name}.down.sql", "SELECT 1;\n")
    [finding] = lint_paths([tmp_path])
    assert (Path(finding.path).name, finding.rule) == ("0001_b.sql", "HS004")


def test_derived_tables_are_known_to_later_files_in_version_order(tmp_path: Path) -> None:
    first = write(
        tmp_path,
        "0001_terms.sql",
        "-- @rebuildable derived from=docs builder=terms\n"
        "CREATE TABLE terms (term TEXT NOT NULL PRIMARY KEY);\n",
    )
    write(tmp_path, "0001_terms.down.sql", "DROP TABLE terms;\n")
    second = write(tmp_path, "0002_weights.sql", "ALTER TABLE terms ADD COLUMN w BIGINT;\n")
    write(tmp_path, "0002_weights.down.sql", "ALTER TABLE terms DROP COLUMN w;\n")
    # Given in reverse order, still linted in version order.
    findings = lint_paths([second, first])
    assert [(Path(f.path).name, f.rule) for f in findings] == [("0002_weights.sql", "HS205")]
    assert "terms" in findings[0].message
    # Alone, the second file cannot know.
    assert lint_paths([second]) == []


def test_findings_come_in_version_then_line_order(tmp_path: Path) -> None:
    write(tmp_path, "0002_b.sql", "CREATE TABLE b (x INT);\nCREATE TABLE c (y JSONB);\n")
    write(tmp_path, "0002_b.down.sql", "DROP TABLE c;\nDROP TABLE b;\n")
    write(tmp_path, "0001_a.sql", "CREATE TABLE a (x UUID);\n")
    write(tmp_path, "0001_a.down.sql", "DROP TABLE a;\n")
    findings = lint_paths([tmp_path])
    assert [(Path(f.path).name, f.line) for f in findings] == [
        ("0001_a.sql", 1),
        ("0002_b.sql", 1),
        ("0002_b.sql", 2),
    ]


# -- parsing --------------------------------------------------------------------------


def test_parse_error_names_the_dialect() -> None:
    # Arrays parse as PostgreSQL only; with the type rule suppressed the
    # SQLite parse failure is what is left, and it names SQLite alone.
    sql = "-- lint: ignore HS106 array on purpose\nCREATE TABLE t (tags TEXT[]);\n"
    [finding] = lint_text(sql, "0001_a.sql")
    assert (finding.rule, finding.line) == ("HS010", 2)
    assert "SQLite" in finding.message and "PostgreSQL" not in finding.message


def test_parse_error_in_both_dialects() -> None:
    findings = lint_text("CREATE TABLE t (n BIGINT CHECK (n >));", "0001_a.sql")
    assert rules(findings) == ["HS010", "HS010"]
    assert {("SQLite" in f.message, "PostgreSQL" in f.message) for f in findings} == {
        (True, False),
        (False, True),
    }


def test_opaque_command_is_a_parse_finding() -> None:
    # sqlglot can only treat this as an opaque command in both dialects.
    assert check("CREATE TABLE t (a TEXT) WITHOUT ROWID;") == ["HS108"]
    findings = lint_text(
        "-- lint: ignore HS108 checking the fallback\nCREATE TABLE t (a TEXT) WITHOUT ROWID;",
        "0001_a.sql",
    )
    assert rules(findings) == ["HS010", "HS010"]
    assert all("opaque command" in f.message for f in findings)


def test_untokenizable_file_is_a_finding() -> None:
    assert check("SELECT 'never closed;\n") == ["HS010"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.sampled_from(
            [
                "CREATE",
                "TABLE",
                "INDEX",
                "t",
                "(",
                ")",
                ",",
                ";",
                "'",
                '"',
                "--",
                "/*",
                "*/",
                "\n",
                " ",
                "@rebuildable",
                "lint:",
                "ignore",
                "HS106",
                "?",
                "$1",
                "::",
                "ALTER",
                "ADD",
                "COLUMN",
                "x",
                "TEXT",
                "JSONB",
                "SELECT",
                "INSERT",
                "INTO",
                "VALUES",
                "1",
                "BEGIN",
                "END",
                "TRIGGER",
                "derived",
                "from=",
                "builder=",
                "CAST",
                "AS",
                "max",
            ]
        ),
        max_size=40,
    ).map("".join)
)
def test_lint_text_never_raises(sql: str) -> None:
    for finding in lint_text(sql, "0001_fuzz.sql"):
        assert finding.rule in RULES
        assert finding.line >= 1


# -- forbidden constructs -----------------------------------------------------------------


@pytest.mark.parametrize(
    "expression",
    [
        "strftime('%s', 'now')",
        "datetime('now')",
        "date('now')",
        "time('now')",
        "julianday('now')",
        "unixepoch()",
        "now()",
        "clock_timestamp()",
        "CURRENT_DATE",
        "CURRENT_TIME",
        "LOCALTIMESTAMP",
        "CURRENT_TIMESTAMP",
        "EXTRACT(YEAR FROM CURRENT_DATE)",
    ],
)
def test_time_functions(expression: str) -> None:
    findings = lint_text(f"UPDATE jobs SET\n    note = {expression};", "0001_a.sql")
    assert {f.rule for f in findings} == {"HS101"}
    assert {f.line for f in findings} == {2}


def test_current_timestamp_is_allowed_only_as_a_default() -> None:
    ok = "CREATE TABLE t (at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT CURRENT_TIMESTAMP);"
    assert check(ok) == []
    assert check(ok.replace("DEFAULT CURRENT_TIMESTAMP", "DEFAULT (CURRENT_TIMESTAMP)")) == []
    assert check(ok.replace("CURRENT_TIMESTAMP", "now()")) == ["HS101"]
    assert check(
        "CREATE TABLE t (at TIMESTAMP WITH TIME ZONE CHECK (at <= CURRENT_TIMESTAMP));"
    ) == ["HS101"]


@pytest.mark.parametrize("placeholder", ["?", "?1", "$1", ":name", "@name", "%s", "$name"])
def test_placeholders(placeholder: str) -> None:
    findings = lint_text(f"UPDATE t SET a = {placeholder} WHERE b = 'x';", "0001_a.sql")
    assert rules(findings) == ["HS102"]
    assert placeholder in findings[0].message


def test_placeholder_look_alikes_in_strings_and_comments_are_fine() -> None:
    assert check("-- is it ? or $1 or :name\nUPDATE t SET a = '?1 :x @y $2' WHERE b = 'z';") == []


@pytest.mark.parametrize(
    "sql",
    [
        "CREATE TRIGGER trg AFTER INSERT ON t BEGIN UPDATE t SET a = 1; UPDATE t SET b = 2; END;",
        "CREATE TRIGGER trg AFTER INSERT ON t FOR EACH ROW EXECUTE FUNCTION f();",
        "DROP TRIGGER IF EXISTS trg;",
    ],
)
def test_triggers(sql: str) -> None:
    # The splitter cuts a SQLite trigger body at its semicolons; the pieces
    # (UPDATE ..., END) are part of the trigger, not findings of their own.
    assert check(sql) == ["HS103"]


def test_autoincrement_and_pragma() -> None:
    assert check("CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT);") == ["HS104"]
    assert check("PRAGMA foreign_keys = ON;") == ["HS105"]


@pytest.mark.parametrize(
    "declared",
    [
        "TEXT",
        "BIGINT",
        "INTEGER",
        "SMALLINT",
        "DOUBLE PRECISION",
        "BOOLEAN",
        "TIMESTAMP WITH TIME ZONE",
        "timestamp with time zone",
        "Text",
    ],
)
def test_portable_types(declared: str) -> None:
    assert check(f"CREATE TABLE t (c {declared} NOT NULL);") == []
    assert check(f"ALTER TABLE t ADD COLUMN c {declared};") == []


@pytest.mark.parametrize(
    ("declared", "fix"),
    [
        ("JSONB", "JSON as text"),
        ("JSON", "JSON as text"),
        ("UUID", "UUID string"),
        ("SERIAL", "application"),
        ("BIGSERIAL", "application"),
        ("BYTEA", "base64"),
        ("BLOB", "base64"),
        ("TIMESTAMPTZ", "TIMESTAMP WITH TIME ZONE"),
        ("TIMESTAMP", "TIMESTAMP WITH TIME ZONE"),
        ("DATETIME", "TIMESTAMP WITH TIME ZONE"),
        ("DATE", "TIMESTAMP WITH TIME ZONE"),
        ("VARCHAR", "TEXT"),
        ("VARCHAR(10)", "TEXT"),
        ("CHAR(2)", "TEXT"),
        ("REAL", "DOUBLE PRECISION"),
        ("NUMERIC(10, 2)", "DOUBLE PRECISION"),
        ("INT", "INTEGER"),
        ("INT8", "INTEGER"),
        ("BOOL", "BOOLEAN"),
        ("TEXT[]", "JSON array"),
        ("DOUBLE  PRECISION", "single spaces"),
        ("TIMESTAMP WITH\n  TIME ZONE", "single spaces"),
    ],
)
def test_non_portable_types(declared: str, fix: str) -> None:
    findings = [
        f
        for f in lint_text(f"CREATE TABLE t (\n  c {declared} NOT NULL\n);", "0001_a.sql")
        if f.rule != "HS010"  # TEXT[] also fails the SQLite parse
    ]
    assert [(f.rule, f.line) for f in findings] == [("HS106", 2)]
    assert fix in findings[0].fix


def test_column_without_type_and_cast_targets() -> None:
    assert check("CREATE TABLE t (c);") == ["HS106"]
    assert check("UPDATE t SET a = CAST(b AS BIGINT);") == []
    assert check("UPDATE t SET a = CAST(b AS INT);") == ["HS106"]


@pytest.mark.parametrize(
    "expression",
    [
        "ifnull(a, 'x')",
        "printf('%d', a)",
        "json_extract(a, '$.k')",
        "group_concat(a)",
        "string_agg(a, ',')",
        "random()",
        "max(a, b)",
        "greatest(a, b)",
        "ltrim(a, 'x')",
        "gen_random_uuid()",
    ],
)
def test_non_portable_functions(expression: str) -> None:
    assert check(f"UPDATE t SET a = {expression};") == ["HS107"]


def test_portable_functions() -> None:
    sql = (
        "UPDATE t SET a = lower(upper(b)), c = length(d), e = coalesce(f, nullif(g, '')),"
        " h = abs(i), j = replace(k, 'x', 'y'), l = substr(m, 1, 2), n = trim(o),"
        " p = CASE WHEN q THEN 1 ELSE 0 END, r = CAST(s AS TEXT)"
        " WHERE u IN (SELECT max(v) FROM w GROUP BY x HAVING count(*) > 1 AND sum(y) > avg(z));"
    )
    assert check(sql) == []


@pytest.mark.parametrize(
    ("sql", "rule"),
    [
        ("CREATE TABLE t (a TEXT) STRICT;", "HS108"),
        ("CREATE TABLE t (a TEXT) WITHOUT ROWID;", "HS108"),
        ("INSERT OR REPLACE INTO t (a) VALUES (1);", "HS108"),
        ("REPLACE INTO t (a) VALUES (1);", "HS108"),
        ("CREATE TABLE t (a TEXT COLLATE NOCASE);", "HS108"),
        ("CREATE TABLE t (a TEXT CHECK (a GLOB 'x*'));", "HS108"),
        ("CREATE VIRTUAL TABLE f USING fts5(a);", "HS108"),
        ("ATTACH DATABASE 'other.db' AS other;", "HS108"),
        ("SELECT a::TEXT FROM t;", "HS109"),
        ("SELECT a FROM t WHERE a ILIKE 'x';", "HS109"),
        ("CREATE TABLE t (a TEXT CHECK (a ~ '^x'));", "HS109"),
        ("-- @rebuildable index\nCREATE INDEX CONCURRENTLY i ON t (a);", "HS109"),
        ("-- @rebuildable index\nCREATE INDEX i ON t USING gin (a);", "HS109"),
        ("CREATE TABLE t (id BIGINT GENERATED ALWAYS AS IDENTITY);", "HS109"),
        ("CREATE TABLE c (a TEXT) INHERITS (p);", "HS109"),
        ("CREATE EXTENSION pg_trgm;", "HS109"),
        ("CREATE OR REPLACE VIEW v AS SELECT 1;", "HS109"),
        ("DROP TABLE a, b;", "HS109"),
        ("DROP TABLE a CASCADE;", "HS109"),
        ("COMMENT ON TABLE t IS 'x';", "HS109"),
        ("DELETE FROM t USING u WHERE t.id = u.id;", "HS109"),
        ("BEGIN;", "HS111"),
        ("COMMIT;", "HS111"),
        ("SAVEPOINT s;", "HS111"),
        ("VACUUM;", "HS111"),
        ("ALTER TABLE t ALTER COLUMN a TYPE BIGINT;", "HS112"),
        ("ALTER TABLE t ADD CONSTRAINT c CHECK (a > 0);", "HS112"),
        ("ALTER TABLE t ADD COLUMN a TEXT, ADD COLUMN b TEXT;", "HS112"),
        ("ALTER TABLE t ADD COLUMN a TEXT NOT NULL;", "HS112"),
        ("ALTER TABLE t ADD COLUMN a TEXT UNIQUE;", "HS112"),
        ("ALTER TABLE t ADD COLUMN a TEXT DEFAULT (lower('X'));", "HS112"),
        ("ALTER TABLE IF EXISTS t ADD COLUMN a TEXT;", "HS112"),
        ("ALTER TABLE t ADD COLUMN b TEXT DEFAULT 'x' REFERENCES u (id);", "HS112"),
        ("ANALYZE t;", "HS113"),
        ("CREATE TEMP TABLE t (a TEXT);", "HS113"),
    ],
)
def test_dialect_only_syntax(sql: str, rule: str) -> None:
    assert check(sql) == [rule]


@pytest.mark.parametrize(
    "sql",
    [
        "ALTER TABLE t ADD COLUMN a TEXT;",
        "ALTER TABLE t ADD COLUMN a TEXT NOT NULL DEFAULT '';",
        "ALTER TABLE t ADD COLUMN a BIGINT NOT NULL DEFAULT -1;",
        "ALTER TABLE t ADD COLUMN a TEXT REFERENCES u (id);",
        "ALTER TABLE t RENAME COLUMN a TO b;",
        "ALTER TABLE t RENAME TO u;",
        "ALTER TABLE t DROP COLUMN a;",
        "INSERT INTO t (a) VALUES (1) ON CONFLICT (a) DO NOTHING RETURNING a;",
        "DROP TABLE IF EXISTS t;",
        "CREATE VIEW v AS SELECT a FROM t WHERE a LIKE 'x%';",
    ],
)
def test_portable_statements(sql: str) -> None:
    assert check(sql) == []


def test_ddl_and_dml_in_one_file() -> None:
    findings = lint_text(
        "UPDATE t SET a = 1;\nCREATE TABLE u (a TEXT);\nDELETE FROM t;\n", "0001_a.sql"
    )
    assert [(f.rule, f.line) for f in findings] == [("HS110", 1)]
    assert (
        check("UPDATE t SET a = 1;\nDELETE FROM t WHERE a = 2;\nINSERT INTO t (a) VALUES (3);")
        == []
    )
    assert check("CREATE TABLE u (a TEXT);\nDROP TABLE v;\nALTER TABLE u ADD COLUMN b TEXT;") == []


def test_finding_line_is_the_offending_token() -> None:
    sql = "CREATE TABLE t (\n  a TEXT,\n  b TEXT,\n  c TEXT DEFAULT (datetime('now'))\n);"
    assert [(f.rule, f.line) for f in lint_text(sql, "0001_a.sql")] == [("HS101", 4)]


# -- rebuildable markers ----------------------------------------------------------------


def test_index_marker_among_other_comments() -> None:
    sql = (
        "-- Finds rows by kind.\n"
        "-- @rebuildable index\n"
        "-- (kept small)\n"
        "CREATE UNIQUE INDEX uq_t_kind ON t (kind);\n"
    )
    assert check(sql) == []
    [statement] = sqlscript.split(sql)
    assert [(name, args) for name, args, _ in statement.markers()] == [("rebuildable", "index")]


def test_index_without_marker_even_in_a_down_file() -> None:
    findings = lint_text("CREATE INDEX idx_t_a ON t (a);", "0004_x.down.sql")
    assert [(f.rule, f.line) for f in findings] == [("HS201", 1)]
    assert "idx_t_a" in findings[0].message


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("-- @rebuildable derived from=a builder=b\nCREATE INDEX i ON t (a);", ["HS202"]),
        ("-- @rebuildable index\nDROP INDEX i;", ["HS202"]),
        ("-- @rebuildable index now\nCREATE INDEX i ON t (a);", ["HS203"]),
        ("-- @rebuildable\nCREATE INDEX i ON t (a);", ["HS203"]),
        ("-- @rebuildable derived builder=b\nCREATE TABLE d (a TEXT);", ["HS203"]),
        ("-- @rebuildable derived from=a builder=b owner=c\nCREATE TABLE d (a TEXT);", ["HS203"]),
        ("-- @rebuildable derived from=a, builder=b\nCREATE TABLE d (a TEXT);", ["HS203"]),
        ("-- @rebuildable derived from=a from=b builder=c\nCREATE TABLE d (a TEXT);", ["HS203"]),
        (
            "-- @rebuildable derived from=a builder=b fulltext=x\nCREATE TABLE d (a TEXT);",
            ["HS203"],
        ),
        (
            "-- @rebuildable derived from=a builder=b fulltext=n\nCREATE TABLE d (n BIGINT);",
            ["HS203"],
        ),
        ("-- @rebuildable derived from=a builder=b fulltext=\nCREATE TABLE d (a TEXT);", ["HS203"]),
        ("-- @rebuildable index\n-- @rebuildable index\nCREATE INDEX i ON t (a);", ["HS203"]),
        ("-- @rebuildable view\nCREATE VIEW v AS SELECT 1;", ["HS204"]),
        ("-- @rebuilable index\nCREATE INDEX i ON t (a);", ["HS201", "HS204"]),
        ("CREATE TABLE t (a TEXT); -- @rebuildable index\n", ["HS202"]),
        ("CREATE TABLE t (a TEXT);\n-- @rebuildable index\n", ["HS202"]),
    ],
)
def test_marker_problems(sql: str, expected: list[str]) -> None:
    assert check(sql) == expected


def test_fulltext_declaration_on_a_derived_table_is_accepted() -> None:
    sql = (
        "-- @rebuildable derived from=blocks builder=block_search fulltext=tokens\n"
        "CREATE TABLE block_search (block_id TEXT NOT NULL, tokens TEXT NOT NULL);\n"
    )
    assert check(sql) == []


def test_derived_marker_accepted() -> None:
    sql = (
        "-- @rebuildable derived from=blocks,documents builder=block_terms\n"
        "CREATE TABLE block_terms (term TEXT NOT NULL PRIMARY KEY);\n"
    )
    assert check(sql) == []


def test_derived_tables_are_not_altered_or_written() -> None:
    derived = (
        "-- @rebuildable derived from=docs builder=terms\n"
        "CREATE TABLE terms (term TEXT NOT NULL PRIMARY KEY);\n"
    )
    findings = lint_text(derived + "ALTER TABLE terms ADD COLUMN w BIGINT;\n", "0001_a.sql")
    assert [(f.rule, f.line) for f in findings] == [("HS205", 3)]
    assert "derived" in findings[0].message
    assert check(derived + "-- @rebuildable index\nCREATE INDEX i ON terms (term);") == []
    # Recreated as a canonical table: no longer derived.
    recreated = derived + (
        "DROP TABLE terms;\nCREATE TABLE terms (term TEXT);\nALTER TABLE terms ADD COLUMN w BIGINT;"
    )
    assert check(recreated) == []


def test_data_change_on_derived_table_across_files(tmp_path: Path) -> None:
    write(
        tmp_path,
        "0001_terms.sql",
        "-- @rebuildable derived from=docs builder=terms\n"
        "CREATE TABLE terms (term TEXT NOT NULL PRIMARY KEY);\n",
    )
    write(tmp_path, "0001_terms.down.sql", "DROP TABLE terms;\n")
    write(tmp_path, "0002_seed.sql", "INSERT INTO terms (term) VALUES ('x');\n")
    write(tmp_path, "0002_seed.down.sql", "DELETE FROM terms WHERE term = 'x';\n")
    findings = lint_paths([tmp_path])
    assert [(Path(f.path).name, f.rule) for f in findings] == [
        ("0002_seed.sql", "HS205"),
        ("0002_seed.down.sql", "HS205"),
    ]


# -- suppression --------------------------------------------------------------------------

TWO_PROBLEMS = "CREATE TABLE t (\n  body JSONB,\n  CHECK (json_valid(body))\n);\n"


def test_two_problems_without_suppression() -> None:
    assert check(TWO_PROBLEMS) == ["HS106", "HS107"]


def test_suppression_with_reason_silences_exactly_that_rule() -> None:
    findings = lint_text("-- lint: ignore HS106 legacy JSON column\n" + TWO_PROBLEMS, "0001_a.sql")
    assert [(f.rule, f.line) for f in findings] == [("HS107", 4)]


def test_suppressing_one_rule_does_not_silence_another() -> None:
    findings = lint_text(
        "-- lint: ignore HS107 validated in the app\n" + TWO_PROBLEMS, "0001_a.sql"
    )
    assert rules(findings) == ["HS106"]


def test_suppression_of_several_rules() -> None:
    assert check("-- lint: ignore HS106, hs107 - both legacy\n" + TWO_PROBLEMS) == []


def test_suppression_without_reason_is_a_finding_and_silences_nothing() -> None:
    findings = lint_text("-- lint: ignore HS106\n" + TWO_PROBLEMS, "0001_a.sql")
    assert [(f.rule, f.line) for f in findings] == [("HS901", 1), ("HS106", 3), ("HS107", 4)]


def test_suppression_without_rule_is_a_finding() -> None:
    assert check("-- lint: ignore because I said so\nCREATE TABLE t (a TEXT);") == ["HS901"]
    assert check("-- lint: disable HS106 nope\nCREATE TABLE t (a JSONB);") == ["HS106", "HS901"]


def test_suppression_of_unknown_rule_is_a_finding() -> None:
    findings = lint_text("-- lint: ignore HS999 no such rule\n" + TWO_PROBLEMS, "0001_a.sql")
    assert rules(findings) == ["HS106", "HS107", "HS902"]
    assert "HS999" in next(f for f in findings if f.rule == "HS902").message


def test_file_rules_cannot_be_suppressed() -> None:
    findings = lint_text("-- lint: ignore HS001 will rename\nSELECT 1;", "Bad.sql")
    assert rules(findings) == ["HS001", "HS902"]


def test_unused_suppression_is_a_finding() -> None:
    findings = lint_text("-- lint: ignore HS104 not needed\nCREATE TABLE t (a TEXT);", "0001_a.sql")
    assert [(f.rule, f.line) for f in findings] == [("HS903", 1)]


def test_suppression_covers_one_statement_only() -> None:
    sql = "-- lint: ignore HS106 first only\nCREATE TABLE a (x JSONB);\nCREATE TABLE b (y JSONB);\n"
    assert [(f.rule, f.line) for f in lint_text(sql, "0001_a.sql")] == [("HS106", 3)]


def test_trailing_suppression_covers_its_line_only() -> None:
    sql = (
        "CREATE TABLE t (\n  a JSONB, -- lint: ignore HS106 kept for the importer\n  b JSONB\n);\n"
    )
    assert [(f.rule, f.line) for f in lint_text(sql, "0001_a.sql")] == [("HS106", 3)]


def test_suppression_inside_a_statement_covers_the_next_line() -> None:
    sql = (
        "CREATE TABLE t (\n"
        "  a JSONB,\n"
        "  -- lint: ignore HS106 kept for the importer\n"
        "  b JSONB\n"
        ");\n"
    )
    assert [(f.rule, f.line) for f in lint_text(sql, "0001_a.sql")] == [("HS106", 2)]


def test_suppression_text_inside_a_string_is_not_a_suppression() -> None:
    sql = "CREATE TABLE t (a JSONB DEFAULT '-- lint: ignore HS106 not a comment');"
    assert check(sql) == ["HS106"]


def test_suppression_is_not_a_marker_and_markers_are_not_suppressions() -> None:
    sql = "-- lint: ignore HS201 rebuilt by hand\nCREATE INDEX i ON t (a);"
    assert check(sql) == []
    sql = "-- @rebuildable index\n-- lint: ignore HS201 not needed\nCREATE INDEX i ON t (a);"
    assert check(sql) == ["HS903"]


# -- the pre-commit hook ----------------------------------------------------------------


def test_pre_commit_hook_definition() -> None:
    text = (ROOT / ".pre-commit-hooks.yaml").read_text(encoding="utf-8")
    fields = dict(
        (key.strip().lstrip("- ").strip(), value.strip().strip("'\""))
        for key, _, value in (
            line.partition(":")
            for line in text.splitlines()
            if line.strip() and not line.lstrip().startswith("#")
        )
    )
    assert fields["id"] == "handshake-storage-lint"
    assert fields["entry"] == "handshake-storage lint"
    assert fields["language"] == "python"
    pattern = re.compile(fields["files"])
    assert pattern.search("src/handshake_storage/migrations/0001_content_tables.sql")
    assert pattern.search("migrations/0001_a.down.sql")
    assert not pattern.search("docs/example.sql")
    assert not pattern.search("src/handshake_storage/migrations/__init__.py")
