"""`handshake-storage lint --rules` lists the rule units, from the registry."""

from __future__ import annotations

from cli_support import run

from handshake_storage import lint
from handshake_storage.linting import registry


def test_lint_rules_command_lists_the_units() -> None:
    listed = run("lint", "--rules", "--json")
    assert listed.exit_code == 0
    assert listed.json() == {"ok": True, "rules": registry.as_json()}
    assert [r["code"] for r in listed.json()["rules"]] == list(lint.RULES)
    human = run("lint", "--rules")
    assert human.exit_code == 0
    for unit in registry.ALL:
        assert f"{unit.code}  {unit.summary}" in human.stdout
        assert f"fix: {unit.fix}" in human.stdout
