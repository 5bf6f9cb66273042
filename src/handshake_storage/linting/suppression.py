"""``-- lint: ignore HSxxx reason``: reading the directives, applying them to a
file's findings, and the rules about directives themselves (HS901-HS903)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .context import Comment, FileScope
from .rule import Finding, Hit, Rule

HS901 = Rule(
    "HS901",
    "lint suppression without a rule code or without a reason",
    "write `-- lint: ignore HSxxx <reason>`",
    "suppression without a rule code or without a reason (or an unknown ``lint:`` "
    "directive); it silences nothing",
    suppressible=False,
)
HS902 = Rule(
    "HS902",
    "lint suppression naming an unknown or unsuppressible rule",
    "name one of the rule codes in handshake_storage.lint.RULES",
    "suppression naming an unknown or unsuppressible rule",
    suppressible=False,
)
HS903 = Rule(
    "HS903",
    "lint suppression that silences nothing",
    "remove the suppression",
    "suppression that silences nothing (HS205 is exempt: it depends on which other "
    "files are linted)",
    suppressible=False,
)

_SUPPRESS = re.compile(r"^\s*lint\s*:\s*(?P<rest>.*)$", re.I)
_IGNORE = re.compile(
    r"^ignore\b\s*(?P<codes>[A-Za-z]+\d\w*(?:\s*,\s*[A-Za-z]+\d\w*)*(?!\w))?(?P<reason>.*)$",
    re.I,
)


@dataclass
class Directive:
    """One ``lint:`` comment line."""

    line: int
    statement: int | None  # covers this whole statement ...
    target_line: int | None  # ... or findings on this line
    problem: str | None  # why it is malformed (HS901)
    codes: tuple[str, ...] = ()  # as written, upper case
    silences: tuple[str, ...] = ()  # the known, suppressible ones
    used: set[str] = field(default_factory=set)

    def covers(self, line: int, rule: str, statement: int | None) -> bool:
        return rule in self.silences and (
            (statement is not None and self.statement == statement) or self.target_line == line
        )


def read(scope: FileScope) -> None:
    """Fill ``scope.directives`` from the file's comments."""
    for comment in scope.comments:
        for k, text in enumerate(comment.lines):
            directive = _directive(scope, comment.line + k, text, comment)
            if directive is not None:
                scope.directives.append(directive)


def _directive(scope: FileScope, line: int, text: str, comment: Comment) -> Directive | None:
    match = _SUPPRESS.match(text)
    if not match:
        return None
    statement, target = comment.statement, comment.target_line
    rest = match.group("rest").strip()
    ignore = _IGNORE.match(rest)
    if not ignore:
        problem = (
            f"unknown lint directive {rest.split()[0] if rest else ''!r}; "
            "only `lint: ignore HSxxx reason` exists"
        )
    elif not ignore.group("codes"):
        problem = "lint: ignore names no rule code"
    elif not ignore.group("reason").strip().lstrip("-:\u2013\u2014").strip():
        problem = f"lint: ignore {ignore.group('codes')} gives no reason"
    else:
        codes = tuple(re.split(r"\s*,\s*", ignore.group("codes").upper()))
        silences = tuple(c for c in codes if c in scope.rules and scope.rules[c].suppressible)
        return Directive(line, statement, target, None, codes, silences)
    return Directive(line, statement, target, problem)


@HS901.check("comments")
def _malformed(scope: FileScope) -> list[Hit]:
    return [Hit(d.line, d.problem) for d in scope.directives if d.problem]


@HS902.check("comments")
def _names_no_suppressible_rule(scope: FileScope) -> list[Hit]:
    hits = []
    for directive in scope.directives:
        for code in directive.codes:
            if code not in scope.rules:
                hits.append(Hit(directive.line, f"lint: ignore names unknown rule {code}"))
            elif not scope.rules[code].suppressible:
                hits.append(Hit(directive.line, f"rule {code} cannot be suppressed"))
    return hits


@HS903.check("unused")
def _silences_nothing(scope: FileScope) -> list[Hit]:
    return [
        Hit(d.line, f"lint: ignore {code} silences nothing here")
        for d in scope.directives
        for code in d.silences
        if code not in d.used and not scope.rules[code].context_dependent
    ]


Raw = tuple[int, str, str, str, int | None]  # line, rule, message, fix, statement


def apply(scope: FileScope, raw: list[Raw]) -> list[Raw]:
    """The findings the directives leave, marking which directives were used.

    A fallback finding (HS010) on a statement that keeps another finding is
    explained by it and dropped; a directive naming it there counts as used.
    """
    directives = [d for d in scope.directives if d.silences]

    def silenced(line: int, rule: str, statement: int | None) -> bool:
        hit = False
        for directive in directives:
            if directive.covers(line, rule, statement):
                directive.used.add(rule)
                hit = True
        return hit

    kept: list[Raw] = []
    fallbacks: list[Raw] = []
    for item in dict.fromkeys(raw):  # drop duplicates, keep order
        line, rule, _message, _fix, statement = item
        if scope.rules[rule].fallback and statement is not None:
            fallbacks.append(item)
        elif not scope.rules[rule].suppressible or not silenced(line, rule, statement):
            kept.append(item)
    explained = {item[4] for item in kept if item[4] is not None}
    for item in fallbacks:
        line, rule, _message, _fix, statement = item
        if statement in explained:
            for directive in directives:  # a suppression of it there did its job
                if rule in directive.silences and (
                    directive.statement == statement or directive.target_line == line
                ):
                    directive.used.add(rule)
        elif not silenced(line, rule, statement):
            kept.append(item)
    return kept


def findings(scope: FileScope, kept: list[Raw]) -> list[Finding]:
    return [
        Finding(scope.display, line, rule, message, fix)
        for line, rule, message, fix, _statement in sorted(kept, key=lambda r: (r[0], r[1]))
    ]
