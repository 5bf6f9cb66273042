"""Every rule unit, in code order, and everything derived from them: the
``RULES`` mapping, the checks per phase, the reference listing of the lint
module's docstring, ``handshake-storage lint --rules`` and the README's table."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import sources, suppression
from .rule import PHASES, Rule
from .rules import alter, expressions, files, kinds, markers, parsing, postgres_only, sqlite_only
from .rules import types as types_rules

_MODULES = (
    files,
    sources,
    parsing,
    expressions,
    kinds,
    sqlite_only,
    types_rules,
    postgres_only,
    alter,
    markers,
    suppression,
)


def _collect() -> tuple[Rule, ...]:
    found = [value for module in _MODULES for value in vars(module).values()]
    rules = sorted((r for r in found if isinstance(r, Rule)), key=lambda r: r.code)
    codes = [r.code for r in rules]
    if len(set(codes)) != len(codes):
        raise RuntimeError(f"lint rule codes repeat: {codes}")
    return tuple(rules)


ALL: tuple[Rule, ...] = _collect()
BY_CODE: dict[str, Rule] = {rule.code: rule for rule in ALL}


def checks(phase: str) -> list[tuple[Rule, Callable[..., Any]]]:
    """The checks of ``phase``, rules in code order, each rule's in registration order."""
    return [(rule, check) for rule in ALL for check in rule.checks.get(phase, ())]


CHECKS: dict[str, list[tuple[Rule, Callable[..., Any]]]] = {p: checks(p) for p in PHASES}


# -- the reference listing


@dataclass(frozen=True)
class Section:
    title: str
    prefix: str  # the codes it lists
    intro: str = ""
    outro: str = ""


SECTIONS = (
    Section("File rules (cannot be suppressed)", "HS00"),
    Section("Parsing", "HS01"),
    Section(
        "Forbidden constructs",
        "HS1",
        outro="``RETURNING`` is allowed: both backends support it (SQLite since 3.35). A "
        "statement forbidden as a whole (a trigger, a PRAGMA, ``CREATE EXTENSION``...) gets "
        "that one finding, not one per detail inside it; when several rules would forbid it, "
        "the first in code order speaks (HS113, the catch-all, is last). The pieces a SQLite "
        "trigger body is cut into by the splitter belong to the trigger.",
    ),
    Section(
        "Rebuildable indexes and derived tables (pillar 3)",
        "HS2",
        intro="The convention, read by the rebuildable registry through "
        ":meth:`handshake_storage.sqlscript.Statement.markers`: among the comment lines "
        "directly before the statement, ``-- @rebuildable index`` before every "
        "``CREATE [UNIQUE] INDEX`` and ``-- @rebuildable derived from=<table>[,<table>...] "
        "builder=<name>`` before the ``CREATE TABLE`` of a derived table. "
        "``fulltext=<column>`` added to it declares the engine's full-text index over that "
        "TEXT column: the portable declaration of a per-backend object that each adapter "
        "materializes (SQLite FTS5, PostgreSQL GIN on a tsvector), since no portable DDL "
        "creates one.",
    ),
    Section(
        "Suppression",
        "HS9",
        intro="``-- lint: ignore HS106 reason text`` (several codes: ``HS106,HS107``) "
        "silences exactly the named rules. Placed among the comment lines directly before a "
        "statement it covers the whole statement; placed after code on a line it covers "
        "findings reported on that line; on its own line inside a statement it covers the "
        "next line of code. The reason is mandatory. File rules and HS9xx cannot be "
        "suppressed.",
    ),
)


def _members(section: Section) -> list[Rule]:
    return [rule for rule in ALL if rule.code.startswith(section.prefix)]


def listing() -> str:
    """The rule reference in the shape of the lint module's docstring."""
    out = []
    for section in SECTIONS:
        out.append(section.title)
        if section.intro:
            out.append(_wrap(section.intro, " " * 4, " " * 4) + "\n")
        out.extend(_wrap(rule.doc, f"    {rule.code}  ", " " * 11) for rule in _members(section))
        if section.outro:
            out.append("\n" + _wrap(section.outro, "", ""))
        out.append("")
    return "\n".join(out)


def _wrap(text: str, first: str, rest: str) -> str:
    return textwrap.fill(
        text, 79, initial_indent=first, subsequent_indent=rest, break_on_hyphens=False
    )


def text_table() -> str:
    """``handshake-storage lint --rules``: one rule per line, its fix below."""
    return "\n".join(f"{r.code}  {r.summary}\n       fix: {r.fix}" for r in ALL)


def markdown_table() -> str:
    """The README's rule table."""
    rows = ["| code | finds | fix | suppressible |", "|---|---|---|---|"]
    for rule in ALL:
        cells = (rule.code, rule.summary, rule.fix, "yes" if rule.suppressible else "no")
        rows.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(rows)


def as_json() -> list[dict[str, Any]]:
    return [
        {"code": r.code, "summary": r.summary, "fix": r.fix, "suppressible": r.suppressible}
        for r in ALL
    ]
