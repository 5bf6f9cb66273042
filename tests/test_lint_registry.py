"""The lint rules are units in a registry, and every listing of them is derived
from the units: ``RULES``, the lint module's reference, ``lint --rules`` and the
README's table cannot drift from the code that reports the findings."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from handshake_storage import lint
from handshake_storage.linting import registry, rule, sources
from handshake_storage.linting.rule import Rule

README = Path(__file__).parent.parent / "README.md"


def test_rules_mapping_is_derived_from_the_units_in_code_order() -> None:
    assert list(lint.RULES) == sorted(lint.RULES)
    assert {unit.code: unit.summary for unit in registry.ALL} == lint.RULES
    assert registry.BY_CODE["HS106"] is registry.ALL[[r.code for r in registry.ALL].index("HS106")]


def test_public_imports_are_the_units_types() -> None:
    from handshake_storage.lint import RULES, Finding, lint_paths, lint_text

    assert Finding is rule.Finding
    assert callable(lint_paths) and callable(lint_text) and RULES is lint.RULES


def test_every_unit_is_complete_and_reported_by_some_check() -> None:
    reported_by_the_file_set = {sources.HS002, sources.HS003, sources.HS004, sources.HS005}
    for unit in registry.ALL:
        assert re.fullmatch(r"HS\d{3}", unit.code)
        assert unit.summary and unit.fix and unit.doc
        assert "\n" not in unit.summary
        assert unit.checks or unit in reported_by_the_file_set, unit.code
        assert set(unit.checks) <= set(rule.PHASES)


def test_file_and_directive_rules_cannot_be_suppressed() -> None:
    unsuppressible = {unit.code for unit in registry.ALL if not unit.suppressible}
    assert unsuppressible == {
        "HS001",
        "HS002",
        "HS003",
        "HS004",
        "HS005",
        "HS901",
        "HS902",
        "HS903",
    }


def test_a_check_for_an_unknown_phase_is_refused() -> None:
    unit = Rule("HS999", "x", "y", "z")
    with pytest.raises(ValueError, match="unknown lint phase"):
        unit.check("later")


def test_the_module_reference_is_the_generated_listing() -> None:
    doc = lint.__doc__ or ""
    assert doc.endswith(registry.listing())
    for unit in registry.ALL:
        assert f"    {unit.code}  " in doc
    # every section lists exactly its own codes, in order
    listed = re.findall(r"^    (HS\d{3})  ", registry.listing(), re.M)
    assert listed == [unit.code for unit in registry.ALL]


def test_readme_table_is_the_generated_table() -> None:
    text = README.read_text(encoding="utf-8")
    match = re.search(r"<!-- lint-rules:[^>]*-->\n(.*?)\n<!-- /lint-rules -->", text, re.S)
    assert match, "README has no generated lint rule table"
    assert match.group(1) == registry.markdown_table(), (
        "README's lint rule table is stale: paste registry.markdown_table()"
    )


def test_the_first_rule_in_code_order_that_forbids_a_statement_speaks() -> None:
    # A temporary trigger is a trigger (HS103), not a temporary object (HS113).
    [finding] = lint.lint_text(
        "CREATE TEMP TRIGGER t AFTER INSERT ON x BEGIN SELECT 1; END;", "0001_a.sql"
    )
    assert finding.rule == "HS103"
    # CREATE OR REPLACE is reported even when the object kind forbids the statement.
    findings = lint.lint_text("CREATE OR REPLACE FUNCTION f() RETURNS int AS 'x';", "0001_a.sql")
    assert [(f.rule, f.message) for f in findings] == [
        ("HS109", "CREATE OR REPLACE is not supported by SQLite"),
        ("HS109", "CREATE FUNCTION is PostgreSQL-only"),
    ]
