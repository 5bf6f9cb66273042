"""Every finding's exact text stays what it was: ``lint_corpus/golden.json``
holds 536 migration texts (the SQL of test_lint.py and the corpus files, each
again behind a suppression of every rule it triggers, and with WITHOUT ROWID
added) with the findings — line, rule, message, fix — that the linter gave
before it was split into rule units (25e1234). A deliberate change of a
message regenerates it: ``python tests/test_lint_golden.py``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from handshake_storage.lint import lint_text

GOLDEN = Path(__file__).parent / "lint_corpus" / "golden.json"
CASES = json.loads(GOLDEN.read_text(encoding="utf-8"))


def findings(sql: str) -> list[list[object]]:
    return [[f.line, f.rule, f.message, f.fix] for f in lint_text(sql, "0001_case.sql")]


def test_golden_corpus_is_substantial() -> None:
    assert len(CASES) >= 500
    assert sum(len(case["findings"]) for case in CASES) >= 500
    assert len({f[1] for case in CASES for f in case["findings"]}) >= 20  # rules covered


@pytest.mark.parametrize("number", range(len(CASES)))
def test_findings_are_exactly_the_golden_ones(number: int) -> None:
    case = CASES[number]
    assert findings(case["sql"]) == case["findings"]


if __name__ == "__main__":  # regenerate after a deliberate change of a message
    for case in CASES:
        case["findings"] = findings(case["sql"])
    GOLDEN.write_text(json.dumps(CASES, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    sys.exit(0)
