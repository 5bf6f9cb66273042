"""One lint rule as a small unit: its stable code, what it finds, how to fix it,
and the check functions that report it.

The shape of flake8's plugin checks and sqlfluff's rule classes: a rule owns its
code and its text, its checks say where and what; the driver
(:mod:`handshake_storage.lint`) owns files, parsing, suppression and order.
Everything listed about the rules — ``lint.RULES``, the lint module's
docstring, ``handshake-storage lint --rules``, the README's table — is derived
from these units by :mod:`handshake_storage.linting.registry`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

#: When a check runs and what it is given (the driver runs them in this order):
PHASES: dict[str, str] = {
    "comments": "the file's comments, before any statement: check(scope) yields Hits",
    "parse": "every statement: check(stmt) yields Hits",
    "always": "every statement, forbidden as a whole or not: check(stmt) yields Hits",
    "forbids": "every statement, rules in code order: check(stmt) returns a Hit when the "
    "statement is forbidden as a whole; the first such Hit ends the phase, and the "
    "statement's details are then not checked",
    "detail": "every statement not forbidden as a whole: check(stmt) yields Hits",
    "file": "once the statements are checked: check(scope) yields Hits",
    "unused": "after suppressions are applied: check(scope) yields Hits",
}

Check = TypeVar("Check", bound=Callable[..., Any])


@dataclass(frozen=True)
class Finding:
    """One problem: where it is, which stable rule, what is wrong, how to fix it."""

    path: str
    line: int
    rule: str
    message: str
    fix: str

    def format(self) -> str:
        return f"{self.path}:{self.line}: {self.rule} {self.message} (fix: {self.fix})"


@dataclass(frozen=True)
class Hit:
    """What a check reports: the line, the message, a fix when the rule's own is
    too general, and the statement it belongs to (for suppressions)."""

    line: int
    message: str
    fix: str | None = None
    statement: int | None = None


@dataclass(eq=False)
class Rule:
    """A rule: ``summary`` is its one line (``RULES``), ``fix`` the default fix,
    ``doc`` the paragraph of the reference listing."""

    code: str
    summary: str
    fix: str
    doc: str
    suppressible: bool = True
    #: dropped when another kept finding on the same statement explains it (HS010)
    fallback: bool = False
    #: depends on which other files are linted: an unused suppression of it is fine
    context_dependent: bool = False
    checks: dict[str, list[Callable[..., Any]]] = field(default_factory=dict)

    def check(self, phase: str) -> Callable[[Check], Check]:
        """Decorator: register a check of this rule for ``phase`` (see PHASES)."""
        if phase not in PHASES:
            raise ValueError(f"unknown lint phase {phase!r}")

        def register(function: Check) -> Check:
            self.checks.setdefault(phase, []).append(function)
            return function

        return register

    def finding(self, path: str, message: str, line: int = 1) -> Finding:
        """A finding reported outside any statement (the file rules)."""
        return Finding(path, line, self.code, message, self.fix)
