"""The portability linter for migration files (requirements, pillars 2 and 3).

One set of migration files has to run unchanged on SQLite and PostgreSQL, and
every index and derived table has to be declared rebuildable where it is
created. Nothing enforces that at run time until a user moves a database, so
this module checks it statically: each statement (split by
:func:`handshake_storage.sqlscript.split`, the same splitter the migrator
uses) is parsed with sqlglot as *both* dialects, ``"sqlite"`` and
``"postgres"``, and the forbidden-construct rules below are applied to the
tokens and syntax trees. It never connects to a database.

Rule codes are stable; ``RULES`` maps each to a one-line description.

File rules (cannot be suppressed)
    HS001  file name is not ``NNNN_description.sql`` / ``NNNN_description.down.sql``
    HS002  up migration without its ``.down.sql`` sibling
    HS003  down migration without its up migration
    HS004  versions in a linted directory repeat or leave a gap
    HS005  file cannot be read as UTF-8 text (or does not exist)

Parsing
    HS010  statement does not parse, or parses only as an opaque command, as
           SQLite or PostgreSQL (reported only when no other finding on the
           statement already explains it). ``WITHOUT ROWID`` tables and
           ``SAVEPOINT``/``RELEASE`` are read as opaque commands in both
           dialects whatever sqlglot release is installed (the linter decides
           it from its own tokens).

Forbidden constructs
    HS101  database-side date/time function: SQLite ``strftime``, ``datetime()``,
           ``date()``, ``time()``, ``julianday``, ``unixepoch``; PostgreSQL
           ``now()``, ``clock_timestamp()``, ``extract``, ``date_trunc`` ...;
           ``CURRENT_DATE``/``CURRENT_TIME``/``LOCALTIMESTAMP``. Bare
           ``CURRENT_TIMESTAMP`` is allowed only as a column ``DEFAULT`` (the
           fallback; the application writes timestamps as parameters).
    HS102  parameter placeholder (``?``, ``?1``, ``$1``, ``:name``, ``@name``,
           ``%s``): a migration has no parameters
    HS103  trigger (``CREATE``/``DROP TRIGGER``, ``ENABLE``/``DISABLE TRIGGER``):
           mutation tracking is done by the application
    HS104  ``AUTOINCREMENT``
    HS105  ``PRAGMA``
    HS106  column or cast type outside the portable list, which is exactly
           ``TEXT``, ``BIGINT``, ``INTEGER``, ``SMALLINT``, ``DOUBLE PRECISION``,
           ``BOOLEAN``, ``TIMESTAMP WITH TIME ZONE`` (case-insensitive, single
           spaces: SQLite keeps the declared type verbatim and the adapters map
           these spellings to type families). So ``INT``, ``TIMESTAMPTZ``,
           ``VARCHAR(n)`` (PostgreSQL enforces the length, SQLite does not),
           ``REAL`` (4 bytes on PostgreSQL), ``NUMERIC``, ``JSON``/``JSONB``,
           ``UUID``, ``SERIAL``, ``BYTEA``/``BLOB``, ``DATETIME``, arrays and
           columns without a type are findings.
    HS107  function outside the portable list: ``lower``, ``upper``,
           ``length``, ``coalesce``, ``nullif``, ``abs``, ``count``, ``sum``,
           ``avg``, ``min``/``max`` (one argument), ``replace``, ``substr``,
           ``substring``, ``trim``/``ltrim``/``rtrim`` (one argument), ``CAST``,
           ``CASE``
    HS108  SQLite-only syntax: ``WITHOUT ROWID``, ``STRICT``, ``INSERT OR ...``,
           ``REPLACE INTO``, ``GLOB``, ``REGEXP``, ``COLLATE NOCASE``,
           ``CREATE VIRTUAL TABLE``, ``ATTACH``, ``INDEXED BY``
    HS109  PostgreSQL-only syntax: ``::`` casts, ``ILIKE``, ``SIMILAR TO``,
           ``~`` regular-expression and ``->``/``->>``/``@>`` JSON operators
           (JSON is stored as TEXT), ``DISTINCT ON``,
           ``CONCURRENTLY``, ``CREATE INDEX ... USING <method>``,
           ``DELETE ... USING``, identity columns, table options (``INHERITS``,
           ``PARTITION BY``, ``WITH (...)``...), ``CREATE OR REPLACE``,
           ``DROP ... CASCADE``, dropping several objects at once, PostgreSQL
           objects (``EXTENSION``, ``TYPE``, ``SEQUENCE``, ``FUNCTION``...) and
           statements (``COMMENT ON``, ``GRANT``, ``TRUNCATE``, ``SET``...)
    HS110  schema DDL (CREATE/ALTER/DROP) and data changes (INSERT/UPDATE/
           DELETE) in one file; a data-only migration is fine
    HS111  transaction control (``BEGIN``, ``COMMIT``, ``ROLLBACK``,
           ``SAVEPOINT``, ``VACUUM``): the runner wraps each migration in one
           transaction, and a ``COMMIT`` inside it would break atomicity
    HS112  ``ALTER TABLE`` form that one backend rejects: anything but a single
           ADD COLUMN / RENAME TO / RENAME COLUMN / DROP COLUMN, ``IF EXISTS``,
           ``ONLY``; and columns SQLite cannot add (PRIMARY KEY, UNIQUE,
           NOT NULL without a default, non-constant default, REFERENCES with a
           non-NULL default)
    HS113  other statement kinds outside the portable set (CREATE/DROP TABLE,
           INDEX, VIEW; ALTER TABLE; INSERT, UPDATE, DELETE, SELECT)

``RETURNING`` is allowed: both backends support it (SQLite since 3.35).
A statement forbidden as a whole (a trigger, a PRAGMA, ``CREATE EXTENSION``...)
gets that one finding, not one per detail inside it; the pieces a SQLite
trigger body is cut into by the splitter belong to the trigger.

Rebuildable indexes and derived tables (pillar 3)
    The convention, read by the rebuildable registry through
    :meth:`handshake_storage.sqlscript.Statement.markers`: among the comment
    lines directly before the statement,
    ``-- @rebuildable index`` before every ``CREATE [UNIQUE] INDEX`` and
    ``-- @rebuildable derived from=<table>[,<table>...] builder=<name>`` before
    the ``CREATE TABLE`` of a derived table. ``fulltext=<column>`` added to it
    declares the engine's full-text index over that TEXT column: the portable
    declaration of a per-backend object that each adapter materializes (SQLite
    FTS5, PostgreSQL GIN on a tsvector), since no portable DDL creates one.

    HS201  ``CREATE INDEX`` without a ``@rebuildable`` marker (unclassified)
    HS202  marker on the wrong kind of statement (``index`` on a table,
           ``derived`` on an index...), or in a comment no statement owns
    HS203  malformed marker: ``derived`` without ``from=`` or ``builder=``,
           unknown or repeated keys, arguments after ``index``, two markers,
           ``fulltext=`` naming anything but one TEXT column of the table
    HS204  unknown marker (``@something``) or unknown ``@rebuildable`` kind
    HS205  ``ALTER TABLE`` (or INSERT/UPDATE/DELETE) on a table declared
           derived earlier in the linted files: derived tables are dropped and
           recreated, never altered

Suppression
    ``-- lint: ignore HS106 reason text`` (several codes: ``HS106,HS107``)
    silences exactly the named rules. Placed among the comment lines directly
    before a statement it covers the whole statement; placed after code on a
    line it covers findings reported on that line; on its own line inside a
    statement it covers the next line of code. The reason is mandatory. File
    rules and HS9xx cannot be suppressed.

    HS901  suppression without a rule code or without a reason (or an unknown
           ``lint:`` directive); it silences nothing
    HS902  suppression naming an unknown or unsuppressible rule
    HS903  suppression that silences nothing (HS205 is exempt: it depends on
           which other files are linted)
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path, PurePath
from typing import Any

from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import ParseError, TokenError
from sqlglot.tokens import Token, TokenType

from . import sqlscript
from .declarations import DOWN_FILE, MIGRATION_FILE, PORTABLE_TYPES
from .errors import MigrationError

RULES: dict[str, str] = {
    "HS001": "file name is not NNNN_description.sql / NNNN_description.down.sql (lower case)",
    "HS002": "up migration has no NNNN_description.down.sql sibling",
    "HS003": "down migration has no matching up migration",
    "HS004": "migration versions in a directory repeat or leave a gap",
    "HS005": "file cannot be read as UTF-8 text",
    "HS010": "statement does not parse (structurally) as SQLite or as PostgreSQL",
    "HS101": "database-side date/time function (strftime, datetime(), now(), ...)",
    "HS102": "parameter placeholder (?, ?1, $1, :name, @name): migrations take no parameters",
    "HS103": "trigger: mutation tracking is done by the application",
    "HS104": "AUTOINCREMENT",
    "HS105": "PRAGMA",
    "HS106": "column or cast type outside the portable type list",
    "HS107": "function outside the portable function list",
    "HS108": "SQLite-only syntax (WITHOUT ROWID, STRICT, INSERT OR ..., GLOB, ...)",
    "HS109": "PostgreSQL-only syntax (::, ILIKE, CONCURRENTLY, USING <method>, ...)",
    "HS110": "schema DDL and data changes (INSERT/UPDATE/DELETE) mixed in one file",
    "HS111": "transaction control inside a migration (each runs in one transaction)",
    "HS112": "ALTER TABLE form that SQLite or PostgreSQL rejects",
    "HS113": "statement kind outside the portable set",
    "HS201": "CREATE INDEX without a `-- @rebuildable index` marker (unclassified index)",
    "HS202": "rebuildable marker on the wrong kind of statement, or on no statement",
    "HS203": "malformed rebuildable marker (derived needs from= and builder=)",
    "HS204": "unknown marker or unknown @rebuildable kind",
    "HS205": "ALTER TABLE or data change on a derived table (they are dropped and recreated)",
    "HS901": "lint suppression without a rule code or without a reason",
    "HS902": "lint suppression naming an unknown or unsuppressible rule",
    "HS903": "lint suppression that silences nothing",
}

_FIXES: dict[str, str] = {
    "HS001": "rename to NNNN_description.sql (four digits, then lower-case letters, digits, _)",
    "HS002": "add the matching NNNN_description.down.sql that reverts it",
    "HS003": "rename it to match its up migration, or delete it",
    "HS004": "number the migrations 0001, 0002, ... without repeats or gaps",
    "HS005": "save the file as UTF-8",
    "HS010": "rewrite it in the SQL both SQLite and PostgreSQL accept",
    "HS101": "write timestamps from the application as parameters "
    "(DEFAULT CURRENT_TIMESTAMP is the only allowed fallback)",
    "HS102": "write literal values; migrations run without parameters",
    "HS103": "track mutations in the application (the storage guard), not in triggers",
    "HS104": "drop AUTOINCREMENT; ids are assigned by the application (text UUIDs)",
    "HS105": "remove the PRAGMA; connection settings belong to the backend adapter",
    "HS106": f"use one of {', '.join(PORTABLE_TYPES)}",
    "HS107": "compute it in the application, or use a portable function "
    "(lower, upper, length, coalesce, nullif, abs, count, sum, avg, min, max, ...)",
    "HS108": "use the portable form both backends accept",
    "HS109": "use the portable form both backends accept",
    "HS110": "move the INSERT/UPDATE/DELETE statements to their own migration",
    "HS111": "remove it; the runner already wraps each migration in one transaction",
    "HS112": "use one ADD COLUMN / RENAME / DROP COLUMN per statement, or rebuild the table",
    "HS113": "use CREATE/DROP TABLE, INDEX or VIEW, ALTER TABLE, INSERT, UPDATE, DELETE",
    "HS201": "add `-- @rebuildable index` on the comment line directly before it",
    "HS202": "use `@rebuildable index` before CREATE INDEX and `@rebuildable derived` "
    "before CREATE TABLE, directly before the statement",
    "HS203": "write `-- @rebuildable derived from=<table>[,<table>...] builder=<name>` "
    "(optionally `fulltext=<text column>`)",
    "HS204": "use `-- @rebuildable index` or `-- @rebuildable derived from=... builder=...`",
    "HS205": "drop the derived table and recreate it (with its marker); "
    "the rebuild command recomputes its rows",
    "HS901": "write `-- lint: ignore HSxxx <reason>`",
    "HS902": "name one of the rule codes in handshake_storage.lint.RULES",
    "HS903": "remove the suppression",
}

_FILE_RULES = frozenset({"HS001", "HS002", "HS003", "HS004", "HS005"})
_UNSUPPRESSIBLE = _FILE_RULES | {"HS901", "HS902", "HS903"}
_DIALECTS = ("sqlite", "postgres")

# The migrator's naming rules.
_UP = MIGRATION_FILE
_DOWN = DOWN_FILE


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


def lint_text(text: str, filename: str) -> list[Finding]:
    """Lint one migration file's text.

    ``filename`` is reported in findings and its last component is checked
    against the naming rule; sibling files are not looked for (there is no
    file system here), so HS002/HS003/HS004 never fire.
    """
    return _FileLinter(filename, PurePath(filename).name, text, {}).run()


def lint_paths(paths: list[Path] | None = None) -> list[Finding]:
    """Lint migration files and directories (default: the shipped migrations).

    A directory means every ``*.sql`` file directly in it, with the version
    sequence checked (HS004). An up file's ``.down.sql`` sibling (and a down
    file's up file) may be in the linted set or on disk next to it, so a
    pre-commit hook that passes only the changed files works. Files are
    linted in version order and a table declared derived in one file is
    known to the files after it (HS205).
    """
    sources: list[_Source] = []
    findings: list[Finding] = []
    if paths is None:
        root: Any = resources.files("handshake_storage").joinpath("migrations")
        sources.extend(_directory_sources(root, findings))
    else:
        seen: set[str] = set()
        for path in paths:
            path = Path(path)
            if path.is_dir():
                new = _directory_sources(path, findings)
            elif path.is_file():
                new = [_Source(path, str(path), path.name)]
            else:
                findings.append(_file_finding(str(path), "HS005", "no such file or directory"))
                continue
            for source in new:
                key = _key(source.entry)
                if key not in seen:
                    seen.add(key)
                    sources.append(source)
    findings.extend(_sibling_findings(sources))
    derived: dict[str, str] = {}
    for source in sorted(sources, key=_version_order):
        try:
            text = source.entry.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            findings.append(
                _file_finding(source.display, "HS005", f"not valid UTF-8 (byte {exc.start})")
            )
            continue
        except OSError as exc:
            findings.append(_file_finding(source.display, "HS005", f"cannot read: {exc}"))
            continue
        findings.extend(_FileLinter(source.display, source.name, text, derived).run())
    order = {source.display: i for i, source in enumerate(sorted(sources, key=_version_order))}
    return sorted(findings, key=lambda f: (order.get(f.path, -1), f.path, f.line, f.rule))


# -- file sets ------------------------------------------------------------------


@dataclass(frozen=True)
class _Source:
    entry: Any  # Path or importlib.resources Traversable
    display: str
    name: str


def _key(entry: Any) -> str:
    try:
        return str(Path(entry).resolve())
    except TypeError:
        return str(entry)


def _directory_sources(root: Any, findings: list[Finding]) -> list[_Source]:
    """The ``*.sql`` files directly in ``root``, with HS004 for the sequence."""
    sources = [
        _Source(entry, str(entry), entry.name)
        for entry in sorted(root.iterdir(), key=lambda e: e.name)
        if entry.name.endswith(".sql") and entry.is_file()
    ]
    by_version: dict[int, list[_Source]] = {}
    for source in sources:
        match = _UP.match(source.name)
        if match:
            by_version.setdefault(int(match.group(1)), []).append(source)
    expected = 1
    for version in sorted(by_version):
        group = by_version[version]
        for duplicate in group[1:]:
            findings.append(
                _file_finding(
                    duplicate.display,
                    "HS004",
                    f"version {version:04d} is also used by {group[0].name}",
                )
            )
        if version != expected:
            findings.append(
                _file_finding(
                    group[0].display,
                    "HS004",
                    f"version {version:04d} follows {expected - 1:04d}: {expected:04d} is missing",
                )
            )
        expected = version + 1
    return sources


def _sibling_findings(sources: list[_Source]) -> list[Finding]:
    """HS002/HS003: an up file without its down file, or the reverse."""
    present = {(_key(_parent(s.entry)), s.name) for s in sources}
    findings = []
    for source in sources:
        up, down = _UP.match(source.name), _DOWN.match(source.name)
        if not up and not down:
            continue  # HS001, reported when the file is linted
        if up:
            sibling, rule, what = f"{source.name[:-4]}.down.sql", "HS002", "has no down migration"
        else:
            sibling, rule, what = f"{source.name[:-9]}.sql", "HS003", "has no up migration"
        parent = _parent(source.entry)
        if (_key(parent), sibling) in present or parent.joinpath(sibling).is_file():
            continue
        findings.append(_file_finding(source.display, rule, f"{source.name} {what} ({sibling})"))
    return findings


def _parent(entry: Any) -> Any:
    parent = getattr(entry, "parent", None)
    if parent is None:  # a Traversable without .parent: resolve through the package
        return resources.files("handshake_storage").joinpath("migrations")
    return parent


def _version_order(source: _Source) -> tuple[int, int, str]:
    match = _UP.match(source.name) or _DOWN.match(source.name)
    version = int(match.group(1)) if match else 1 << 30
    return version, int(source.name.endswith(".down.sql")), source.name


def _file_finding(path: str, rule: str, message: str) -> Finding:
    return Finding(path, 1, rule, message, _FIXES[rule])


# -- comments -----------------------------------------------------------------

# Comments and the quoted text that may hide comment markers, left to right.
_LEXEME = re.compile(
    r"--[^\n]*|/\*.*?(?:\*/|\Z)|'(?:[^']|'')*(?:'|\Z)|\"(?:[^\"]|\"\")*(?:\"|\Z)"
    r"|`[^`]*(?:`|\Z)|\$(?P<tag>[A-Za-z_]\w*)?\$.*?(?:\$(?P=tag)\$|\Z)",
    re.S,
)
_SUPPRESS = re.compile(r"^\s*lint\s*:\s*(?P<rest>.*)$", re.I)
_IGNORE = re.compile(
    r"^ignore\b\s*(?P<codes>[A-Za-z]+\d\w*(?:\s*,\s*[A-Za-z]+\d\w*)*(?!\w))?(?P<reason>.*)$",
    re.I,
)
_MARKER = sqlscript.MARKER


@dataclass(frozen=True)
class _Comment:
    offset: int
    line: int
    lines: tuple[str, ...]  # the comment's text, split into lines
    own_line: bool  # nothing but whitespace before it on its line


def _scan_comments(text: str, line_of: Any) -> list[_Comment]:
    comments = []
    for match in _LEXEME.finditer(text):
        lexeme = match.group(0)
        if lexeme.startswith("--"):
            body = lexeme[2:]
        elif lexeme.startswith("/*"):
            body = lexeme[2:-2] if lexeme.endswith("*/") else lexeme[2:]
        else:
            continue
        start = match.start()
        line_start = text.rfind("\n", 0, start) + 1
        comments.append(
            _Comment(
                start,
                line_of(start),
                tuple(body.splitlines() or [""]),
                not text[line_start:start].strip(),
            )
        )
    return comments


@dataclass
class _Suppression:
    line: int
    codes: tuple[str, ...]
    statement: int | None  # covers this whole statement ...
    target_line: int | None  # ... or findings on this line
    used: set[str] = field(default_factory=set)


# -- statements -----------------------------------------------------------------


@dataclass
class _Stmt:
    index: int
    statement: sqlscript.Statement
    start: int  # offset of the statement's first character in the file
    tokens: list[Token]  # PostgreSQL tokens (SQLite's if those fail)
    words: list[str]  # upper-case keyword text per token ("" for quoted identifiers)
    trees: dict[str, exp.Expr]  # dialect -> tree, for dialects that parsed it
    errors: dict[str, tuple[int, str]]  # dialect -> (relative line, message)
    leading: list[_Comment] = field(default_factory=list)

    @property
    def text(self) -> str:
        return self.statement.text

    def tree(self) -> exp.Expr | None:
        return self.trees.get("postgres") or self.trees.get("sqlite")

    @property
    def head(self) -> str:
        return self.words[0] if self.words else ""

    def is_create(self, obj: str) -> bool:
        """``CREATE [UNIQUE|TEMP|TEMPORARY|OR REPLACE] <obj>``."""
        if self.head != "CREATE":
            return False
        for word in self.words[1:6]:
            if word == obj:
                return True
            if word not in ("UNIQUE", "TEMP", "TEMPORARY", "OR", "REPLACE"):
                return False
        return False


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


def _parse(sql: str, name: str) -> tuple[list[Token], exp.Expr | None, tuple[int, str] | None]:
    dialect, parser_class = _dialect(name)
    try:
        tokens = dialect.tokenize(sql)
    except TokenError as exc:
        return [], None, (1, f"cannot tokenize: {exc}")
    if _words(tokens[:1]) and _words(tokens[:1])[0] in _OPAQUE_HEADS:
        return tokens, None, (1, "understood only as an opaque command")
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
    if isinstance(trees[0], exp.Command) or _has_opaque_clause(tokens):
        return tokens, None, (1, "understood only as an opaque command")
    return tokens, trees[0], None


# Statements the linter reads only as an opaque command, in every dialect, whatever
# the installed sqlglot makes of them, so that the findings (HS010 behind a
# suppressed HS108/HS111, and no tree-based rule on them) are the same on every
# release: sqlglot before 30.31 fell back to a Command on WITHOUT ROWID in both
# dialects, 30.31 reads it as SQLite; before 30.31 SAVEPOINT s parsed as the
# alias `SAVEPOINT AS s`, 30.31 reads it as a Command.
_OPAQUE_CLAUSES = (("WITHOUT", "ROWID"),)
_OPAQUE_HEADS = frozenset({"SAVEPOINT", "RELEASE"})


def _has_opaque_clause(tokens: list[Token]) -> bool:
    words = _words(tokens)
    return any(
        tuple(words[i : i + len(clause)]) == clause
        for clause in _OPAQUE_CLAUSES
        for i in range(len(words) - len(clause) + 1)
    )


def _words(tokens: list[Token]) -> list[str]:
    return ["" if t.token_type == TokenType.IDENTIFIER else t.text.upper() for t in tokens]


# -- rule data ------------------------------------------------------------------

_TIME_FUNCTIONS = frozenset(
    {
        "strftime",
        "datetime",
        "date",
        "time",
        "julianday",
        "unixepoch",
        "timediff",
        "now",
        "current_timestamp",
        "current_date",
        "current_time",
        "localtime",
        "localtimestamp",
        "clock_timestamp",
        "statement_timestamp",
        "transaction_timestamp",
        "timeofday",
        "date_trunc",
        "date_part",
        "date_bin",
        "extract",
        "age",
        "to_timestamp",
        "to_date",
        "to_char",
        "make_date",
        "make_time",
        "make_timestamp",
        "make_timestamptz",
        "make_interval",
        "justify_days",
        "justify_hours",
        "justify_interval",
        "isfinite",
    }
)
_PORTABLE_FUNCTIONS = frozenset(
    {
        "lower",
        "upper",
        "length",
        "coalesce",
        "nullif",
        "abs",
        "count",
        "sum",
        "avg",
        "min",
        "max",
        "replace",
        "substr",
        "substring",
        "trim",
        "ltrim",
        "rtrim",
        "cast",
        "case",
    }
)
_SINGLE_ARGUMENT = frozenset({"min", "max", "trim", "ltrim", "rtrim"})
# Functions written as keywords (no name token in the tree's metadata).
_KEYWORD_FUNCTIONS = {
    "Cast": "cast",
    "TryCast": "try_cast",
    "Case": "case",
    "Extract": "extract",
    "Trim": "trim",
    "Substring": "substring",
    "StrPosition": "position",
    "GroupConcat": "group_concat",
    "CurrentTimestamp": "current_timestamp",
    "CurrentDate": "current_date",
    "CurrentTime": "current_time",
    "Localtimestamp": "localtimestamp",
    "Localtime": "localtime",
    "CurrentUser": "current_user",
}

_PORTABLE_TYPES = tuple(PORTABLE_TYPES)
_PORTABLE_TYPE = re.compile(
    "(?:" + "|".join(sorted(map(re.escape, PORTABLE_TYPES), key=len, reverse=True)) + ")"
    r"(?![\w$])(?!\s*[(\[])",
    re.I,
)
_TYPE_FIXES: tuple[tuple[frozenset[str], str], ...] = tuple(
    (frozenset(names.split()), fix)
    for names, fix in (
        ("JSON JSONB", "use TEXT and store JSON as text"),
        ("UUID", "use TEXT holding the UUID string"),
        (
            "SERIAL BIGSERIAL SMALLSERIAL SERIAL4 SERIAL8",
            "use BIGINT (or a TEXT UUID) with ids assigned by the application",
        ),
        ("BYTEA BLOB BINARY VARBINARY", "store bytes as base64 in TEXT"),
        (
            "TIMESTAMP TIMESTAMPTZ DATETIME DATE TIME TIMETZ INTERVAL",
            "use TIMESTAMP WITH TIME ZONE, spelled exactly so",
        ),
        (
            "VARCHAR CHAR CHARACTER NVARCHAR NCHAR CLOB STRING CITEXT NAME",
            "use TEXT (add CHECK (length(col) <= n) if a limit matters)",
        ),
        (
            "REAL FLOAT FLOAT4 FLOAT8 DOUBLE NUMERIC DECIMAL MONEY",
            "use DOUBLE PRECISION (or BIGINT for exact amounts)",
        ),
        ("INT INT2 INT4 INT8 TINYINT MEDIUMINT", "use INTEGER, SMALLINT or BIGINT"),
        ("BOOL", "use BOOLEAN"),
    )
)
_CONSTRAINT_WORDS = frozenset(
    {
        "NOT",
        "NULL",
        "DEFAULT",
        "PRIMARY",
        "REFERENCES",
        "UNIQUE",
        "CHECK",
        "CONSTRAINT",
        "COLLATE",
        "GENERATED",
        "AS",
        "ON",
    }
)

_TRANSACTION_WORDS = sqlscript.TRANSACTION_WORDS
_PG_OBJECTS = frozenset(
    {
        "EXTENSION",
        "TYPE",
        "DOMAIN",
        "SEQUENCE",
        "FUNCTION",
        "PROCEDURE",
        "SCHEMA",
        "MATERIALIZED",
        "RULE",
        "POLICY",
        "ROLE",
        "USER",
        "AGGREGATE",
        "OPERATOR",
        "CAST",
        "COLLATION",
        "PUBLICATION",
        "SUBSCRIPTION",
        "SERVER",
        "FOREIGN",
        "EVENT",
        "TABLESPACE",
        "DATABASE",
        "LANGUAGE",
        "STATISTICS",
        "CONVERSION",
        "TRANSFORM",
        "ACCESS",
        "GROUP",
        "UNLOGGED",
    }
)
_PG_STATEMENTS = frozenset(
    {
        "COMMENT",
        "GRANT",
        "REVOKE",
        "DO",
        "SET",
        "RESET",
        "LOCK",
        "TRUNCATE",
        "LISTEN",
        "NOTIFY",
        "UNLISTEN",
        "COPY",
        "CLUSTER",
        "REFRESH",
        "SECURITY",
        "DISCARD",
        "CALL",
        "PREPARE",
        "EXECUTE",
        "DEALLOCATE",
    }
)
_SQLITE_STATEMENTS = frozenset({"ATTACH", "DETACH", "REPLACE"})
_PORTABLE_OBJECTS = frozenset({"TABLE", "INDEX", "VIEW"})
_DML = frozenset({"INSERT", "UPDATE", "DELETE", "REPLACE", "MERGE", "TRUNCATE"})
_DDL = frozenset({"CREATE", "ALTER", "DROP"})
_SQLITE_COLLATIONS = frozenset({"NOCASE", "BINARY", "RTRIM"})
# Regular-expression, JSON and geometric operators (JSON is stored as TEXT here).
_PG_OPERATORS = frozenset(
    getattr(TokenType, name)
    for name in (
        "IRLIKE",
        "ARROW",
        "DARROW",
        "HASH_ARROW",
        "DHASH_ARROW",
        "AT_GT",
        "LT_AT",
        "LR_ARROW",
    )
    if hasattr(TokenType, name)
)
_ALTER_ACTIONS = {"altercolumn": "ALTER COLUMN", "addconstraint": "ADD CONSTRAINT"}


# -- one file -----------------------------------------------------------------


class _FileLinter:
    """Runs every statement and file rule over one file's text."""

    def __init__(self, display: str, name: str, text: str, derived: dict[str, str]) -> None:
        self.display = display
        self.name = name
        self.text = sqlscript.normalize(text)
        self.derived = derived  # table -> where it was declared derived (shared by a run)
        self.newlines = [i for i, c in enumerate(self.text) if c == "\n"]
        self.raw: list[tuple[int, str, str, str, int | None]] = []
        self.statements: list[_Stmt] = []

    # -- plumbing

    def line_of(self, offset: int) -> int:
        return bisect.bisect_left(self.newlines, offset) + 1

    def add(
        self, stmt: _Stmt | None, line: int, rule: str, message: str, fix: str | None = None
    ) -> None:
        self.raw.append((line, rule, message, fix or _FIXES[rule], stmt.index if stmt else None))

    def at_token(self, stmt: _Stmt, token: Token) -> int:
        return self.line_of(stmt.start + token.start)

    def at_stmt(self, stmt: _Stmt) -> int:
        return stmt.statement.line

    def at_node(self, stmt: _Stmt, node: exp.Expr) -> int:
        """The first source position found in ``node``, else its ancestors."""
        current: exp.Expr | None = node
        while current is not None:
            starts = [n.meta["start"] for n in current.walk() if "start" in n.meta]
            if starts:
                return self.line_of(stmt.start + min(starts))
            current = current.parent
        return self.at_stmt(stmt)

    # -- driver

    def run(self) -> list[Finding]:
        if not _UP.match(self.name) and not _DOWN.match(self.name):
            self.add(
                None,
                1,
                "HS001",
                f"{self.name!r} is not named NNNN_description.sql or "
                "NNNN_description.down.sql (lower case)",
            )
        try:
            statements = sqlscript.split(self.text)
        except MigrationError as exc:
            self.add(None, 1, "HS010", f"the file does not tokenize: {exc}")
            return self.finish([])
        cursor = 0
        for index, statement in enumerate(statements):
            line_start = 0 if statement.line == 1 else self.newlines[statement.line - 2] + 1
            start = self.text.find(statement.text, max(cursor, line_start))
            cursor = start + len(statement.text)
            self.statements.append(self.analyse(index, statement, start))
        comments = _scan_comments(self.text, self.line_of)
        suppressions = self.attach_comments(comments)
        in_trigger = False
        checked = []
        for stmt in self.statements:
            if in_trigger:  # the splitter cut a trigger body at its semicolons
                in_trigger = stmt.head != "END"
                continue
            self.check_statement(stmt)
            checked.append(stmt)
            in_trigger = self.head_is_trigger(stmt) and "BEGIN" in stmt.words
        self.check_mixing(checked)
        return self.finish(suppressions)

    def analyse(self, index: int, statement: sqlscript.Statement, start: int) -> _Stmt:
        trees: dict[str, exp.Expr] = {}
        errors: dict[str, tuple[int, str]] = {}
        tokens_by_dialect: dict[str, list[Token]] = {}
        for name in _DIALECTS:
            tokens, tree, error = _parse(statement.text, name)
            tokens_by_dialect[name] = tokens
            if tree is not None:
                trees[name] = tree
            if error is not None:
                errors[name] = error
        tokens = tokens_by_dialect["postgres"] or tokens_by_dialect["sqlite"]
        return _Stmt(index, statement, start, tokens, _words(tokens), trees, errors)

    def attach_comments(self, comments: list[_Comment]) -> list[_Suppression]:
        """Give statements their leading comments; turn ``lint:`` comments into suppressions."""
        spans = [(s.start, s.start + len(s.text)) for s in self.statements]
        starts = [span[0] for span in spans]
        suppressions = []
        for comment in comments:
            i = bisect.bisect_right(starts, comment.offset)  # statements starting before it
            inside = i > 0 and comment.offset < spans[i - 1][1]
            statement: int | None = None
            target: int | None = None
            if comment.own_line and not inside and i < len(self.statements):
                self.statements[i].leading.append(comment)
                statement = i
            elif comment.own_line:
                target = self.next_code_line(comment.line + len(comment.lines) - 1)
            else:
                target = comment.line
            if statement is None:
                for k, text in enumerate(comment.lines):
                    if _MARKER.match(text):
                        self.add(
                            None,
                            comment.line + k,
                            "HS202",
                            f"marker {text.strip()!r} is not on a comment line directly "
                            "before a statement; nothing reads it",
                        )
            for k, text in enumerate(comment.lines):
                suppression = self.suppression(comment.line + k, text, statement, target)
                if suppression:
                    suppressions.append(suppression)
        return suppressions

    def next_code_line(self, line: int) -> int | None:
        lines = self.text.split("\n")
        for number in range(line + 1, len(lines) + 1):
            stripped = lines[number - 1].strip()
            if stripped and not stripped.startswith("--"):
                return number
        return None

    def suppression(
        self, line: int, text: str, statement: int | None, target: int | None
    ) -> _Suppression | None:
        match = _SUPPRESS.match(text)
        if not match:
            return None
        rest = match.group("rest").strip()
        ignore = _IGNORE.match(rest)
        if not ignore:
            self.add(
                None,
                line,
                "HS901",
                f"unknown lint directive {rest.split()[0] if rest else ''!r}; "
                "only `lint: ignore HSxxx reason` exists",
            )
            return None
        if not ignore.group("codes"):
            self.add(None, line, "HS901", "lint: ignore names no rule code")
            return None
        reason = ignore.group("reason").strip().lstrip("-:\u2013\u2014").strip()
        if not reason:
            self.add(
                None,
                line,
                "HS901",
                f"lint: ignore {ignore.group('codes')} gives no reason",
            )
            return None
        codes = []
        for code in re.split(r"\s*,\s*", ignore.group("codes").upper()):
            if code not in RULES:
                self.add(None, line, "HS902", f"lint: ignore names unknown rule {code}")
            elif code in _UNSUPPRESSIBLE:
                self.add(None, line, "HS902", f"rule {code} cannot be suppressed")
            else:
                codes.append(code)
        if not codes:
            return None
        return _Suppression(line, tuple(codes), statement, target)

    def finish(self, suppressions: list[_Suppression]) -> list[Finding]:
        def silenced(line: int, rule: str, stmt: int | None) -> bool:
            hit = False
            for s in suppressions:
                if rule in s.codes and (
                    (stmt is not None and s.statement == stmt) or s.target_line == line
                ):
                    s.used.add(rule)
                    hit = True
            return hit

        kept = []
        parse_errors = []
        for item in dict.fromkeys(self.raw):  # drop duplicates, keep order
            line, rule, _message, _fix, stmt = item
            if rule == "HS010" and stmt is not None:
                parse_errors.append(item)
            elif rule in _UNSUPPRESSIBLE or not silenced(line, rule, stmt):
                kept.append(item)
        explained = {item[4] for item in kept if item[4] is not None}
        for item in parse_errors:
            line, rule, _message, _fix, stmt = item
            if stmt in explained:
                for s in suppressions:  # a suppression of HS010 there did its job
                    if rule in s.codes and (s.statement == stmt or s.target_line == line):
                        s.used.add(rule)
                continue
            if not silenced(line, rule, stmt):
                kept.append(item)
        for s in suppressions:
            for code in s.codes:
                if code not in s.used and code != "HS205":
                    kept.append(
                        (
                            s.line,
                            "HS903",
                            f"lint: ignore {code} silences nothing here",
                            _FIXES["HS903"],
                            None,
                        )
                    )
        return [
            Finding(self.display, line, rule, message, fix)
            for line, rule, message, fix, _stmt in sorted(kept, key=lambda r: (r[0], r[1]))
        ]

    # -- statement rules

    def check_statement(self, stmt: _Stmt) -> None:
        for name, (line, message) in stmt.errors.items():
            label = "SQLite" if name == "sqlite" else "PostgreSQL"
            self.add(
                stmt,
                stmt.statement.line + line - 1,
                "HS010",
                f"does not parse as {label}: {message}",
            )
        if not self.check_kind(stmt):
            self.check_tokens(stmt)
            self.check_table_options(stmt)
            self.check_alter(stmt)
            self.check_types(stmt)
            self.check_functions(stmt)
        self.check_markers(stmt)
        self.check_derived(stmt)

    def head_is_trigger(self, stmt: _Stmt) -> bool:
        if stmt.head not in ("CREATE", "DROP"):
            return False
        for word in stmt.words[1:6]:
            if word == "TRIGGER":
                return True
            if word not in ("TEMP", "TEMPORARY", "OR", "REPLACE", "CONSTRAINT"):
                return False
        return False

    def check_kind(self, stmt: _Stmt) -> bool:
        """Which statement it is: the portable set, or which rule forbids it.

        Returns True when the statement as a whole is forbidden (a trigger, a
        PRAGMA, a PostgreSQL object...): its details are then not reported.
        """
        words, first = stmt.words, stmt.head
        second = words[1] if len(words) > 1 else ""
        where = self.at_stmt(stmt)

        def reject(rule: str, message: str, fix: str | None = None) -> bool:
            self.add(stmt, where, rule, message, fix)
            return True

        if first == "PRAGMA":
            return reject("HS105", "PRAGMA statement in a migration")
        if first in _TRANSACTION_WORDS:
            return reject("HS111", f"{first} inside a migration")
        if first in _SQLITE_STATEMENTS:
            fix = "use INSERT ... ON CONFLICT, supported by both" if first == "REPLACE" else None
            return reject("HS108", f"{first} is SQLite-only", fix)
        if self.head_is_trigger(stmt):
            return reject("HS103", f"{first} TRIGGER in a migration")
        if first in _PG_STATEMENTS:
            return reject("HS109", f"{first} is PostgreSQL-only")
        if first in ("INSERT", "UPDATE") and second == "OR":
            self.add(
                stmt,
                where,
                "HS108",
                f"{first} OR {words[2] if len(words) > 2 else ''} is SQLite-only",
                "use INSERT ... ON CONFLICT, supported by both",
            )
        elif first == "CREATE":
            rest = [w for w in words[1:6] if w != "UNIQUE"]
            if rest[:2] == ["OR", "REPLACE"]:
                self.add(
                    stmt,
                    where,
                    "HS109",
                    "CREATE OR REPLACE is not supported by SQLite",
                    "DROP ... IF EXISTS, then CREATE",
                )
                rest = rest[2:]
            obj = rest[0] if rest else ""
            if obj in ("TEMP", "TEMPORARY"):
                return reject("HS113", "temporary objects do not outlive the migration")
            if obj == "VIRTUAL":
                return reject(
                    "HS108",
                    "CREATE VIRTUAL TABLE is SQLite-only",
                    "use a derived table declared with `@rebuildable derived`",
                )
            if obj in _PG_OBJECTS:
                return reject("HS109", f"CREATE {obj} is PostgreSQL-only")
            if obj not in _PORTABLE_OBJECTS:
                return reject("HS113", f"CREATE {obj or '?'} is outside the portable set")
        elif first == "DROP":
            if second in _PG_OBJECTS:
                return reject("HS109", f"DROP {second} is PostgreSQL-only")
            if second not in _PORTABLE_OBJECTS:
                return reject("HS113", f"DROP {second or '?'} is outside the portable set")
            for token, word in self.top_level(stmt):
                if word in ("CASCADE", "RESTRICT"):
                    self.add(
                        stmt,
                        self.at_token(stmt, token),
                        "HS109",
                        f"DROP ... {word} is PostgreSQL-only",
                        "drop dependent objects explicitly, in order",
                    )
                elif token.token_type == TokenType.COMMA:
                    self.add(
                        stmt,
                        self.at_token(stmt, token),
                        "HS109",
                        "dropping several objects in one statement is PostgreSQL-only",
                        "one DROP statement per object",
                    )
                    break
        elif first == "ALTER":
            if second in _PG_OBJECTS:
                return reject("HS109", f"ALTER {second} is PostgreSQL-only")
            if second != "TABLE":
                return reject("HS113", f"ALTER {second or '?'} is outside the portable set")
        elif first not in ("INSERT", "UPDATE", "DELETE", "SELECT", "WITH", "VALUES"):
            return reject("HS113", f"{first or 'this'} statement is outside the portable set")
        return False

    def top_level(self, stmt: _Stmt) -> Iterator[tuple[Token, str]]:
        """Tokens outside any parentheses, with their keyword text."""
        depth = 0
        for token, word in zip(stmt.tokens, stmt.words, strict=True):
            if token.token_type in (TokenType.L_PAREN, TokenType.L_BRACKET):
                depth += 1
            elif token.token_type in (TokenType.R_PAREN, TokenType.R_BRACKET):
                depth -= 1
            elif depth == 0:
                yield token, word

    def check_tokens(self, stmt: _Stmt) -> None:
        """Rules that a single token (or two) decide."""
        tokens, words = stmt.tokens, stmt.words
        is_index = stmt.is_create("INDEX")
        for i, token in enumerate(tokens):
            kind, word = token.token_type, words[i]
            nxt = tokens[i + 1] if i + 1 < len(tokens) else None
            adjacent = nxt is not None and nxt.start == token.end + 1
            where = self.at_token(stmt, token)
            if kind == TokenType.PLACEHOLDER:
                text = "?" + (
                    nxt.text if adjacent and nxt and nxt.token_type == TokenType.NUMBER else ""
                )
                self.add(stmt, where, "HS102", f"parameter placeholder {text}")
            elif kind == TokenType.PARAMETER or (kind == TokenType.COLON and adjacent):
                text = token.text + (nxt.text if adjacent and nxt else "")
                self.add(stmt, where, "HS102", f"parameter placeholder {text}")
            elif (
                kind == TokenType.MOD
                and adjacent
                and nxt
                and (nxt.text == "s" or nxt.token_type == TokenType.L_PAREN)
            ):
                self.add(stmt, where, "HS102", f"parameter placeholder %{nxt.text}")
            elif kind == TokenType.AUTO_INCREMENT:
                self.add(stmt, where, "HS104", f"{token.text} is SQLite/MySQL-only")
            elif kind == TokenType.DCOLON:
                self.add(
                    stmt, where, "HS109", "`::` cast is PostgreSQL-only", "use CAST(value AS type)"
                )
            elif kind == TokenType.ILIKE:
                self.add(
                    stmt,
                    where,
                    "HS109",
                    "ILIKE is PostgreSQL-only",
                    "compare lower(x) LIKE lower(pattern)",
                )
            elif word == "SIMILAR" and nxt is not None and nxt.text.upper() == "TO":
                self.add(
                    stmt,
                    where,
                    "HS109",
                    "SIMILAR TO is PostgreSQL-only",
                    "use LIKE, or check the value in the application",
                )
            elif word == "CONCURRENTLY":
                self.add(
                    stmt,
                    where,
                    "HS109",
                    "CONCURRENTLY is PostgreSQL-only (and cannot run "
                    "inside the migration's transaction)",
                    "drop CONCURRENTLY",
                )
            elif word == "IDENTITY" and i > 0 and words[i - 1] == "AS":
                self.add(
                    stmt,
                    where,
                    "HS109",
                    "identity columns are PostgreSQL-only",
                    "assign ids in the application (text UUIDs)",
                )
            elif word == "DISTINCT" and nxt is not None and nxt.text.upper() == "ON":
                self.add(
                    stmt,
                    where,
                    "HS109",
                    "DISTINCT ON is PostgreSQL-only",
                    "use GROUP BY or a subquery",
                )
            elif (
                kind in _PG_OPERATORS
                or (kind == TokenType.RLIKE and token.text.upper() != "REGEXP")
                or (kind == TokenType.LIKE and token.text == "~~")
            ):
                self.add(
                    stmt,
                    where,
                    "HS109",
                    f"operator {token.text} is PostgreSQL-only",
                    "use LIKE, or compute it in the application"
                    if token.text.startswith("~")
                    else "compute it in the application (JSON is stored as TEXT)",
                )
            elif kind == TokenType.GLOB or word == "REGEXP":
                self.add(
                    stmt,
                    where,
                    "HS108",
                    f"{token.text.upper()} is SQLite-only",
                    "use LIKE, or check the value in the application",
                )
            elif word == "INDEXED" and (
                (i > 0 and words[i - 1] == "NOT") or (nxt is not None and nxt.text.upper() == "BY")
            ):
                self.add(
                    stmt,
                    where,
                    "HS108",
                    "INDEXED BY / NOT INDEXED is SQLite-only",
                    "remove the index hint",
                )
            elif kind == TokenType.COLLATE and nxt is not None:
                collation = nxt.text.upper()
                if collation in _SQLITE_COLLATIONS:
                    self.add(
                        stmt,
                        where,
                        "HS108",
                        f"COLLATE {collation} is SQLite-only",
                        "compare lower(x) in queries, or normalise in the application",
                    )
                else:
                    self.add(
                        stmt,
                        where,
                        "HS109",
                        f"COLLATE {nxt.text} is not portable",
                        "remove the collation; order in the application if needed",
                    )
            elif word == "TRIGGER" and stmt.head == "ALTER":
                self.add(stmt, where, "HS103", "enabling/disabling triggers in a migration")
        if is_index or stmt.head == "DELETE":
            for token, word in self.top_level(stmt):
                if word == "USING":
                    if is_index:
                        self.add(
                            stmt,
                            self.at_token(stmt, token),
                            "HS109",
                            "CREATE INDEX ... USING <method> is PostgreSQL-only",
                            "drop USING; both backends build their default b-tree",
                        )
                    else:
                        self.add(
                            stmt,
                            self.at_token(stmt, token),
                            "HS109",
                            "DELETE ... USING is PostgreSQL-only",
                            "use WHERE ... IN (SELECT ...)",
                        )
        for i in range(len(tokens)):  # CAST(value AS <type>)
            if (
                words[i] == "CAST"
                and i + 1 < len(tokens)
                and (tokens[i + 1].token_type == TokenType.L_PAREN)
            ):
                depth = 0
                for j in range(i + 1, len(tokens)):
                    kind = tokens[j].token_type
                    depth += kind == TokenType.L_PAREN
                    depth -= kind == TokenType.R_PAREN
                    if depth == 0:
                        break
                    if depth == 1 and words[j] == "AS" and j + 1 < len(tokens):
                        self.check_type_at(stmt, j + 1, "CAST target")
                        break

    def check_table_options(self, stmt: _Stmt) -> None:
        """Anything after the column list of CREATE TABLE is a dialect's table option."""
        if not stmt.is_create("TABLE"):
            return
        depth, closed, tail = 0, False, []
        for token, word in zip(stmt.tokens, stmt.words, strict=True):
            if closed:
                tail.append((token, word))
            elif token.token_type == TokenType.L_PAREN:
                depth += 1
            elif token.token_type == TokenType.R_PAREN:
                depth -= 1
                closed = depth == 0
            elif depth == 0 and word in ("AS", "SELECT"):
                return  # CREATE TABLE ... AS SELECT
        other = []
        for i, (token, word) in enumerate(tail):
            if word == "STRICT":
                self.add(
                    stmt,
                    self.at_token(stmt, token),
                    "HS108",
                    "STRICT tables are SQLite-only",
                    "remove STRICT",
                )
            elif word == "WITHOUT" and i + 1 < len(tail) and tail[i + 1][1] == "ROWID":
                self.add(
                    stmt,
                    self.at_token(stmt, token),
                    "HS108",
                    "WITHOUT ROWID is SQLite-only",
                    "remove WITHOUT ROWID",
                )
            elif word != "ROWID" and token.token_type != TokenType.COMMA:
                other.append(token)
        if other:
            text = stmt.text[other[0].start : other[-1].end + 1]
            self.add(
                stmt,
                self.at_token(stmt, other[0]),
                "HS109",
                f"table option {text!r} is not portable",
                "remove the table option",
            )

    def check_alter(self, stmt: _Stmt) -> None:
        """ALTER TABLE: only the forms both backends run."""
        tree = stmt.tree()
        if not isinstance(tree, exp.Alter) or stmt.words[1:2] != ["TABLE"]:
            return
        where = self.at_stmt(stmt)
        if tree.args.get("exists"):
            self.add(stmt, where, "HS112", "ALTER TABLE IF EXISTS is PostgreSQL-only")
        if tree.args.get("only"):
            self.add(stmt, where, "HS112", "ALTER TABLE ONLY is PostgreSQL-only")
        actions = tree.args.get("actions") or []
        if len(actions) != 1:
            self.add(
                stmt,
                where,
                "HS112",
                f"ALTER TABLE with {len(actions)} actions; SQLite runs one per statement",
            )
        for action in actions:
            at = self.at_node(stmt, action)
            if isinstance(action, exp.ColumnDef):
                self.check_added_column(stmt, action, at)
            elif isinstance(action, exp.Drop) and str(action.args.get("kind")).upper() == "COLUMN":
                if action.args.get("exists"):
                    self.add(stmt, at, "HS112", "DROP COLUMN IF EXISTS is PostgreSQL-only")
            elif not isinstance(action, exp.AlterRename | exp.RenameColumn):
                label = _ALTER_ACTIONS.get(action.key, action.key.upper())
                if isinstance(action, exp.Drop):
                    label = f"DROP {action.args.get('kind') or ''}".strip()
                self.add(stmt, at, "HS112", f"ALTER TABLE ... {label} is not supported by SQLite")

    def check_added_column(self, stmt: _Stmt, column: exp.ColumnDef, at: int) -> None:
        name = column.name
        if column.args.get("exists"):
            self.add(stmt, at, "HS112", "ADD COLUMN IF NOT EXISTS is PostgreSQL-only")
        not_null = default = reference = False
        constant_default = True
        for constraint in column.args.get("constraints") or []:
            kind = constraint.args.get("kind")
            if isinstance(kind, exp.PrimaryKeyColumnConstraint | exp.UniqueColumnConstraint):
                what = (
                    "PRIMARY KEY" if isinstance(kind, exp.PrimaryKeyColumnConstraint) else "UNIQUE"
                )
                self.add(
                    stmt,
                    at,
                    "HS112",
                    f"SQLite cannot add column {name} with {what}",
                    "create a new table and copy, or add a separate unique index",
                )
            elif isinstance(kind, exp.NotNullColumnConstraint) and not kind.args.get("allow_null"):
                not_null = True
            elif isinstance(kind, exp.DefaultColumnConstraint):
                value = kind.this
                while isinstance(value, exp.Paren):
                    value = value.this
                if isinstance(value, exp.Neg):
                    value = value.this
                default = not isinstance(value, exp.Null)
                constant_default = isinstance(value, exp.Literal | exp.Boolean | exp.Null)
            elif isinstance(kind, exp.Reference):
                reference = True
        if not_null and not default:
            self.add(
                stmt,
                at,
                "HS112",
                f"SQLite cannot add NOT NULL column {name} without a non-NULL default",
                "give it a constant DEFAULT, or add it nullable and backfill",
            )
        if not constant_default:
            self.add(
                stmt,
                at,
                "HS112",
                f"SQLite cannot add column {name} with a non-constant default",
                "use a constant DEFAULT; the application writes timestamps",
            )
        if reference and default:
            self.add(
                stmt,
                at,
                "HS112",
                f"SQLite cannot add column {name} with REFERENCES and a non-NULL default",
                "add it nullable, without a default",
            )

    def check_types(self, stmt: _Stmt) -> None:
        tree = stmt.tree()
        if tree is None:
            return
        if isinstance(tree, exp.Create) and isinstance(tree.this, exp.Schema):
            for item in tree.this.expressions:  # SQLite's `CREATE TABLE t (c)`
                if isinstance(item, exp.Identifier):
                    self.add(
                        stmt, self.at_node(stmt, item), "HS106", f"column {item.name} has no type"
                    )
        for column in tree.find_all(exp.ColumnDef):
            ident = column.this
            end = ident.meta.get("end") if isinstance(ident, exp.Identifier) else None
            if column.args.get("kind") is None:
                self.add(
                    stmt, self.at_node(stmt, column), "HS106", f"column {column.name} has no type"
                )
                continue
            if end is None:
                continue
            for i, token in enumerate(stmt.tokens):
                if token.start > end:
                    self.check_type_at(stmt, i, f"column {column.name}")
                    break

    def check_type_at(self, stmt: _Stmt, index: int, what: str) -> None:
        """The type spelled from token ``index`` must be one of the portable spellings."""
        tokens, words = stmt.tokens, stmt.words
        start = tokens[index].start
        if _PORTABLE_TYPE.match(stmt.text, start):
            return
        depth, last = 0, index
        for j in range(index, len(tokens)):
            kind = tokens[j].token_type
            if (
                depth == 0
                and j > index
                and (
                    words[j] in _CONSTRAINT_WORDS
                    or kind in (TokenType.COMMA, TokenType.R_PAREN, TokenType.R_BRACKET)
                )
            ):
                break
            if kind in (TokenType.L_PAREN, TokenType.L_BRACKET):
                depth += 1
            elif kind in (TokenType.R_PAREN, TokenType.R_BRACKET):
                if depth == 0:
                    break
                depth -= 1
            last = j
        spelled = stmt.text[start : tokens[last].end + 1]
        normal = " ".join(spelled.upper().split())
        first = re.split(r"[\s(\[]", normal, maxsplit=1)[0]
        if normal in _PORTABLE_TYPES:
            fix = f"spell it {normal!r} with single spaces (SQLite keeps declared types verbatim)"
        elif "[" in normal:
            fix = "use TEXT holding a JSON array"
        else:
            fix = next((f for names, f in _TYPE_FIXES if first in names), _FIXES["HS106"])
        self.add(
            stmt,
            self.at_token(stmt, tokens[index]),
            "HS106",
            f"{what} has non-portable type {spelled!r}",
            fix,
        )

    def check_functions(self, stmt: _Stmt) -> None:
        for tree in stmt.trees.values():
            seen: dict[str, int] = {}
            for node in tree.walk(bfs=False):
                if not isinstance(node, exp.Func) or (
                    isinstance(node, exp.If) and isinstance(node.parent, exp.Case)
                ):
                    continue
                if "start" in node.meta:
                    raw = stmt.text[node.meta["start"] : node.meta["end"] + 1]
                    name = raw.strip('"`[]').lower()
                    where = self.line_of(stmt.start + node.meta["start"])
                    keyword = False
                else:
                    name = _KEYWORD_FUNCTIONS.get(type(node).__name__, "")
                    if not name:
                        continue  # built by the parser itself, not written in the source
                    occurrence = seen[name] = seen.get(name, -1) + 1
                    where = self.keyword_position(stmt, name.upper(), occurrence)
                    keyword = True
                self.check_function(stmt, node, name, keyword, where)

    def keyword_position(self, stmt: _Stmt, word: str, occurrence: int) -> int:
        found = [t for t, w in zip(stmt.tokens, stmt.words, strict=True) if w == word]
        if occurrence < len(found):
            return self.at_token(stmt, found[occurrence])
        return self.at_stmt(stmt)

    def check_function(
        self, stmt: _Stmt, node: exp.Func, name: str, keyword: bool, where: int
    ) -> None:
        if name == "current_timestamp" and keyword:
            parent = node.parent
            while isinstance(parent, exp.Paren):
                parent = parent.parent
            if isinstance(parent, exp.DefaultColumnConstraint):
                return
            self.add(
                stmt,
                where,
                "HS101",
                "CURRENT_TIMESTAMP outside a column DEFAULT (the database's clock and "
                "format differ per backend)",
            )
        elif name in _TIME_FUNCTIONS:
            label = (
                name.upper() if keyword and name.startswith(("current", "local")) else (f"{name}()")
            )
            self.add(stmt, where, "HS101", f"database-side date/time function {label}")
        elif name not in _PORTABLE_FUNCTIONS:
            self.add(stmt, where, "HS107", f"function {name}() is not in the portable set")
        elif name in _SINGLE_ARGUMENT and len(list(node.iter_expressions())) > 1:
            fix = (
                "use least()/greatest() ... or better, compute it in the application"
                if name in ("min", "max")
                else "compute it in the application"
            )
            self.add(
                stmt,
                where,
                "HS107",
                f"{name}() with several arguments behaves differently per backend",
                fix,
            )

    # -- rebuildable markers

    def check_markers(self, stmt: _Stmt) -> None:
        markers = stmt.statement.markers()
        mine = [
            (match.group(1), comment.line + k)
            for comment in stmt.leading
            for k, text in enumerate(comment.lines)
            if (match := _MARKER.match(text))
        ]
        is_index, is_table = stmt.is_create("INDEX"), stmt.is_create("TABLE")
        rebuildable = 0
        for n, (name, args, _offset) in enumerate(markers):
            line = mine[n][1] if n < len(mine) and mine[n][0] == name else stmt.statement.line
            where = line
            if name != "rebuildable":
                self.add(stmt, where, "HS204", f"unknown marker @{name}")
                continue
            rebuildable += 1
            if rebuildable == 2:
                self.add(stmt, where, "HS203", "more than one @rebuildable marker on a statement")
            parts = args.split()
            kind = parts[0] if parts else ""
            target = (
                "CREATE INDEX"
                if is_index
                else "CREATE TABLE"
                if is_table
                else (" ".join(stmt.words[:2]) or "this statement")
            )
            if kind == "index":
                if not is_index:
                    self.add(stmt, where, "HS202", f"@rebuildable index on {target}")
                if parts[1:]:
                    self.add(
                        stmt,
                        where,
                        "HS203",
                        f"@rebuildable index takes no arguments (got {' '.join(parts[1:])!r})",
                        "write exactly `-- @rebuildable index`",
                    )
            elif kind == "derived":
                if not is_table:
                    self.add(stmt, where, "HS202", f"@rebuildable derived on {target}")
                self.check_derived_args(stmt, where, parts[1:])
            elif not kind:
                self.add(
                    stmt,
                    where,
                    "HS203",
                    "@rebuildable names no kind (index or derived)",
                    _FIXES["HS204"],
                )
            else:
                self.add(stmt, where, "HS204", f"unknown @rebuildable kind {kind!r}")
        if is_index and not rebuildable:
            index = self.object_name(stmt)
            self.add(
                stmt,
                self.at_stmt(stmt),
                "HS201",
                f"index {index + ' ' if index else ''}is not classified rebuildable",
            )

    def check_derived_args(self, stmt: _Stmt, where: int, args: list[str]) -> None:
        values: dict[str, str] = {}
        for arg in args:
            key, sep, value = arg.partition("=")
            if not sep or key not in ("from", "builder", "fulltext"):
                self.add(stmt, where, "HS203", f"unexpected {arg!r} in @rebuildable derived")
            elif key in values:
                self.add(stmt, where, "HS203", f"{key}= given twice in @rebuildable derived")
            else:
                values[key] = value
        tables = values.get("from")
        if tables is None:
            self.add(stmt, where, "HS203", "@rebuildable derived has no from=<table>[,<table>]")
        elif not all(re.fullmatch(r"[A-Za-z_]\w*", t) for t in tables.split(",")):
            self.add(stmt, where, "HS203", f"from={tables!r} is not a comma-separated table list")
        builder = values.get("builder")
        if builder is None:
            self.add(stmt, where, "HS203", "@rebuildable derived has no builder=<name>")
        elif not re.fullmatch(r"[A-Za-z_][\w.]*", builder):
            self.add(stmt, where, "HS203", f"builder={builder!r} is not a name")
        column = values.get("fulltext")
        if column is not None:
            types = self.column_types(stmt)
            if types.get(column.lower()) != "TEXT":
                self.add(
                    stmt,
                    where,
                    "HS203",
                    f"fulltext={column!r} is not a TEXT column of this table",
                    "name one TEXT column declared in the CREATE TABLE",
                )

    def column_types(self, stmt: _Stmt) -> dict[str, str]:
        """Column name (lower case) -> declared type (upper case) of a CREATE TABLE."""
        tree = stmt.tree()
        schema = tree.this if isinstance(tree, exp.Create) else None
        if not isinstance(schema, exp.Schema):
            return {}
        return {
            c.name.lower(): (c.args["kind"].sql().upper() if c.args.get("kind") else "")
            for c in schema.expressions
            if isinstance(c, exp.ColumnDef)
        }

    # -- derived tables and file shape

    def object_name(self, stmt: _Stmt) -> str | None:
        """The table (or index) a statement creates, alters or writes, lower case."""
        tree = stmt.tree()
        if tree is None:
            return None
        target = tree.this
        if isinstance(tree, exp.Create) and isinstance(target, exp.Index):
            return target.name.lower() or None
        while isinstance(target, exp.Schema):
            target = target.this
        if isinstance(target, exp.Table):
            return target.name.lower() or None
        return None

    def check_derived(self, stmt: _Stmt) -> None:
        name = self.object_name(stmt)
        if name is None:
            return
        if stmt.is_create("TABLE"):
            derived = any(
                n == "rebuildable" and a.split()[:1] == ["derived"]
                for n, a, _ in stmt.statement.markers()
            )
            if derived:
                self.derived[name] = f"{self.name}:{stmt.statement.line}"
            else:
                self.derived.pop(name, None)
        elif stmt.head in ("ALTER", "INSERT", "UPDATE", "DELETE") and name in self.derived:
            verb = "altered" if stmt.head == "ALTER" else "written row by row"
            self.add(
                stmt,
                self.at_stmt(stmt),
                "HS205",
                f"{name} is a derived table (declared at {self.derived[name]}); it must "
                f"not be {verb} by a migration",
            )

    def check_mixing(self, statements: list[_Stmt]) -> None:
        ddl = next((s for s in statements if s.head in _DDL), None)
        dml = next((s for s in statements if s.head in _DML), None)
        if ddl is not None and dml is not None:
            self.add(
                dml,
                self.at_stmt(dml),
                "HS110",
                f"{dml.head} (data change) in a file with schema DDL "
                f"({ddl.head} at line {ddl.statement.line})",
            )
