"""The portability linter for migration files (requirements, pillars 2 and 3).

One set of migration files has to run unchanged on SQLite and PostgreSQL, and
every index and derived table has to be declared rebuildable where it is
created. Nothing enforces that at run time until a user moves a database, so
this module checks it statically: each statement (split by
:func:`handshake_storage.sqlscript.split`, the same splitter the migrator
uses) is parsed with sqlglot as *both* dialects, ``"sqlite"`` and
``"postgres"``, and the rules are applied to the tokens and syntax trees. It
never connects to a database.

This module is the driver: files in, parsing, the order of the rule phases,
suppression, findings out. Each rule is a small unit in
:mod:`handshake_storage.linting.rules` (its code, summary, fix, documentation
and checks); :mod:`handshake_storage.linting.registry` collects them. Rule
codes are stable; ``RULES`` maps each to a one-line description, and the
reference below is generated from the units.

"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from pathlib import Path, PurePath

from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import ParseError, TokenError
from sqlglot.tokens import Token

from . import sqlscript
from .declarations import DOWN_FILE, MIGRATION_FILE
from .errors import MigrationError
from .linting import comments, registry, sources, suppression
from .linting.context import DIALECTS, FileScope, Stmt, keywords
from .linting.rule import Finding, Hit, Rule
from .linting.rules.parsing import HS010

__doc__ = (__doc__ or "") + registry.listing()
__all__ = ["RULES", "Finding", "lint_paths", "lint_text"]

RULES: dict[str, str] = {rule.code: rule.summary for rule in registry.ALL}

# The migrator's naming rules (the same objects: one rule, in declarations.py).
_UP = MIGRATION_FILE
_DOWN = DOWN_FILE


def lint_text(text: str, filename: str) -> list[Finding]:
    """Lint one migration file's text.

    ``filename`` is reported in findings and its last component is checked
    against the naming rule; sibling files are not looked for (there is no
    file system here), so HS002/HS003/HS004 never fire.
    """
    return _lint_file(filename, PurePath(filename).name, text, {})


def lint_paths(paths: list[Path] | None = None) -> list[Finding]:
    """Lint migration files and directories (default: the shipped migrations).

    A directory means every ``*.sql`` file directly in it, with the version
    sequence checked (HS004). An up file's ``.down.sql`` sibling (and a down
    file's up file) may be in the linted set or on disk next to it, so a
    pre-commit hook that passes only the changed files works. Files are
    linted in version order and a table declared derived in one file is
    known to the files after it (HS205).
    """
    findings: list[Finding] = []
    found = sources.collect(paths, findings)
    findings.extend(sources.siblings(found))
    ordered = sorted(found, key=sources.version_order)
    derived: dict[str, str] = {}
    for source in ordered:
        text = sources.read(source, findings)
        if text is not None:
            findings.extend(_lint_file(source.display, source.name, text, derived))
    order = {source.display: i for i, source in enumerate(ordered)}
    return sorted(findings, key=lambda f: (order.get(f.path, -1), f.path, f.line, f.rule))


# -- one file -----------------------------------------------------------------


def _lint_file(display: str, name: str, text: str, derived: dict[str, str]) -> list[Finding]:
    scope = FileScope(display, name, sqlscript.normalize(text), derived, registry.BY_CODE)
    found = _Found()
    try:
        statements = sqlscript.split(scope.text)
    except MigrationError as exc:
        found.add(HS010, [Hit(1, f"the file does not tokenize: {exc}")])
        statements = None
    cursor = 0
    for index, statement in enumerate(statements or ()):
        line_start = 0 if statement.line == 1 else scope.newlines[statement.line - 2] + 1
        start = scope.text.find(statement.text, max(cursor, line_start))
        cursor = start + len(statement.text)
        scope.statements.append(_analyse(scope, index, statement, start))
    if statements is not None:
        comments.attach(scope)
        suppression.read(scope)
    found.run("comments", scope)
    in_trigger = False
    for stmt in scope.statements:
        if in_trigger:  # the splitter cut a trigger body at its semicolons
            in_trigger = stmt.head != "END"
            continue
        _check_statement(stmt, found)
        scope.checked.append(stmt)
        in_trigger = stmt.is_trigger and "BEGIN" in stmt.words
    found.run("file", scope)
    kept = suppression.apply(scope, found.raw)
    unused = _Found()
    unused.run("unused", scope)
    return suppression.findings(scope, kept + unused.raw)


def _check_statement(stmt: Stmt, found: _Found) -> None:
    """The statement phases, in order (see linting.rule.PHASES)."""
    found.run("parse", stmt)
    found.run("always", stmt)
    for rule, check in registry.CHECKS["forbids"]:
        hit = check(stmt)
        if hit is not None:  # forbidden as a whole: the first rule to say so speaks
            found.add(rule, [hit], stmt.index)
            return
    found.run("detail", stmt)


class _Found:
    """The raw findings of one file, in the order the checks report them."""

    def __init__(self) -> None:
        self.raw: list[suppression.Raw] = []

    def run(self, phase: str, subject: FileScope | Stmt) -> None:
        statement = subject.index if isinstance(subject, Stmt) else None
        for rule, check in registry.CHECKS[phase]:
            self.add(rule, check(subject), statement)

    def add(self, rule: Rule, hits: Iterable[Hit], statement: int | None = None) -> None:
        for hit in hits:
            index = statement if hit.statement is None else hit.statement
            self.raw.append((hit.line, rule.code, hit.message, hit.fix or rule.fix, index))


# -- parsing ------------------------------------------------------------------


def _analyse(scope: FileScope, index: int, statement: sqlscript.Statement, start: int) -> Stmt:
    trees: dict[str, exp.Expr] = {}
    errors: dict[str, tuple[int, str]] = {}
    tokens_by_dialect: dict[str, list[Token]] = {}
    for name in DIALECTS:
        tokens, tree, error = _parse(statement.text, name)
        tokens_by_dialect[name] = tokens
        if tree is not None:
            trees[name] = tree
        if error is not None:
            errors[name] = error
    tokens = tokens_by_dialect["postgres"] or tokens_by_dialect["sqlite"]
    return Stmt(index, statement, start, tokens, trees, errors, scope)


@cache
def _dialect(name: str) -> tuple[Dialect, type]:
    """The dialect and a parser class that records instead of logging.

    sqlglot logs a warning whenever it falls back to an opaque ``Command``;
    the linter reports that as HS010 itself, so the warning is silenced.
    """
    dialect = Dialect.get_or_raise(name)
    base = dialect.parser_class
    quiet = type(f"_Quiet{base.__name__}", (base,), {"_warn_unsupported": lambda self: None})
    return dialect, quiet


_OPAQUE = (1, "understood only as an opaque command")


def _parse(sql: str, name: str) -> tuple[list[Token], exp.Expr | None, tuple[int, str] | None]:
    dialect, parser_class = _dialect(name)
    try:
        tokens = dialect.tokenize(sql)
    except TokenError as exc:
        return [], None, (1, f"cannot tokenize: {exc}")
    words = keywords(tokens)
    if words[:1] and words[0] in _OPAQUE_HEADS:
        return tokens, None, _OPAQUE
    try:
        trees = [t for t in parser_class(dialect=dialect).parse(tokens, sql) if t is not None]
    except ParseError as exc:
        error = exc.errors[0] if exc.errors else {}
        description = error.get("description") or str(exc).splitlines()[0]
        return tokens, None, (int(error.get("line") or 1), description)
    except Exception as exc:  # a sqlglot bug must not crash the linter
        return tokens, None, (1, f"{type(exc).__name__}: {exc}")
    if len(trees) != 1:
        return tokens, None, (1, f"parses as {len(trees)} statements")
    if isinstance(trees[0], exp.Command) or _has_opaque_clause(words):
        return tokens, None, _OPAQUE
    return tokens, trees[0], None


# Statements the linter reads only as an opaque command, in every dialect, whatever
# the installed sqlglot makes of them, so that the findings (HS010 behind a
# suppressed HS108/HS111, and no tree-based rule on them) are the same on every
# release: sqlglot before 30.31 fell back to a Command on WITHOUT ROWID in both
# dialects, 30.31 reads it as SQLite; before 30.31 SAVEPOINT s parsed as the
# alias `SAVEPOINT AS s`, 30.31 reads it as a Command.
_OPAQUE_CLAUSES = (("WITHOUT", "ROWID"),)
_OPAQUE_HEADS = frozenset({"SAVEPOINT", "RELEASE"})


def _has_opaque_clause(words: list[str]) -> bool:
    return any(
        tuple(words[i : i + len(clause)]) == clause
        for clause in _OPAQUE_CLAUSES
        for i in range(len(words) - len(clause) + 1)
    )
