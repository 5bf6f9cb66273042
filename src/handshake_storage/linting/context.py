"""What a check sees: one parsed statement (:class:`Stmt`) inside one file
(:class:`FileScope`), with the views several rules share — keyword text per
token, the tokens outside parentheses, the object a DDL statement names, the
table options after a column list, source lines of tokens and tree nodes."""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, NamedTuple

from sqlglot import exp
from sqlglot.tokens import Token, TokenType

from .. import sqlscript
from .rule import Hit

if TYPE_CHECKING:
    from .rule import Rule
    from .suppression import Directive

#: The dialects every statement is parsed as, with their names in messages.
DIALECTS: dict[str, str] = {"sqlite": "SQLite", "postgres": "PostgreSQL"}

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
_CREATE_MODIFIERS = ("UNIQUE", "TEMP", "TEMPORARY", "OR", "REPLACE")
_TRIGGER_MODIFIERS = ("TEMP", "TEMPORARY", "OR", "REPLACE", "CONSTRAINT")


def keywords(tokens: list[Token]) -> list[str]:
    """Upper-case keyword text per token ("" for a quoted identifier)."""
    return ["" if t.token_type == TokenType.IDENTIFIER else t.text.upper() for t in tokens]


@dataclass(frozen=True)
class Comment:
    offset: int
    line: int
    lines: tuple[str, ...]  # the comment's text, split into lines
    own_line: bool  # nothing but whitespace before it on its line
    statement: int | None = None  # the statement it leads, if any
    target_line: int | None = None  # else the line of code it is about


class Tok(NamedTuple):
    """A token with its neighbours, as the token rules read it."""

    index: int
    token: Token
    kind: TokenType
    word: str
    next: Token | None
    adjacent: bool  # the next token starts right after this one
    previous_word: str


@dataclass(frozen=True)
class Call:
    """A function written in the statement."""

    node: exp.Func
    name: str  # lower case, as written
    keyword: bool  # written as a keyword (CAST, CURRENT_TIMESTAMP...)
    line: int


@dataclass(frozen=True)
class Marker:
    """A ``-- @name args`` marker before the statement."""

    name: str
    kind: str  # the first argument ("" if none)
    args: list[str]  # the arguments after the kind
    line: int
    count: int  # this is the statement's count-th @rebuildable marker (0 for others)


@dataclass(frozen=True)
class TableOptions:
    """What follows the column list of a CREATE TABLE."""

    sqlite: list[tuple[Token, str]]  # STRICT, WITHOUT ROWID
    other: list[Token]  # anything else but commas


@dataclass
class FileScope:
    """One file being linted, and what its checks share."""

    display: str  # the path as reported
    name: str  # the file name (the naming rule)
    text: str  # normalized
    derived: dict[str, str]  # table -> where declared derived (shared by a run)
    rules: dict[str, Rule]
    statements: list[Stmt] = field(default_factory=list)
    checked: list[Stmt] = field(default_factory=list)  # not pieces of a trigger body
    comments: list[Comment] = field(default_factory=list)
    directives: list[Directive] = field(default_factory=list)  # its `lint:` comments

    @cached_property
    def newlines(self) -> list[int]:
        return [i for i, c in enumerate(self.text) if c == "\n"]

    def line_of(self, offset: int) -> int:
        return bisect.bisect_left(self.newlines, offset) + 1

    def next_code_line(self, line: int) -> int | None:
        lines = self.text.split("\n")
        for number in range(line + 1, len(lines) + 1):
            stripped = lines[number - 1].strip()
            if stripped and not stripped.startswith("--"):
                return number
        return None


@dataclass
class Stmt:
    """One statement, parsed as each dialect."""

    index: int
    statement: sqlscript.Statement
    start: int  # offset of the statement's first character in the file
    tokens: list[Token]  # PostgreSQL tokens (SQLite's if those fail)
    trees: dict[str, exp.Expr]  # dialect -> tree, for dialects that parsed it
    errors: dict[str, tuple[int, str]]  # dialect -> (relative line, message)
    scope: FileScope
    leading: list[Comment] = field(default_factory=list)

    @cached_property
    def words(self) -> list[str]:
        return keywords(self.tokens)

    @property
    def text(self) -> str:
        return self.statement.text

    @property
    def line(self) -> int:
        return self.statement.line

    @property
    def head(self) -> str:
        return self.words[0] if self.words else ""

    @property
    def second(self) -> str:
        return self.words[1] if len(self.words) > 1 else ""

    def tree(self) -> exp.Expr | None:
        return self.trees.get("postgres") or self.trees.get("sqlite")

    # -- where

    def hit(self, message: str, fix: str | None = None, line: int | None = None) -> Hit:
        return Hit(self.line if line is None else line, message, fix, self.index)

    def hit_at(self, token: Token, message: str, fix: str | None = None) -> Hit:
        return self.hit(message, fix, self.line_at(token))

    def line_at(self, token: Token) -> int:
        return self.scope.line_of(self.start + token.start)

    def line_of_node(self, node: exp.Expr) -> int:
        """The first source position found in ``node``, else its ancestors."""
        current: exp.Expr | None = node
        while current is not None:
            starts = [n.meta["start"] for n in current.walk() if "start" in n.meta]
            if starts:
                return self.scope.line_of(self.start + min(starts))
            current = current.parent
        return self.line

    # -- what kind of statement

    def is_create(self, obj: str) -> bool:
        """``CREATE [UNIQUE|TEMP|TEMPORARY|OR REPLACE] <obj>``."""
        if self.head != "CREATE":
            return False
        for word in self.words[1:6]:
            if word == obj:
                return True
            if word not in _CREATE_MODIFIERS:
                return False
        return False

    @cached_property
    def is_trigger(self) -> bool:
        """``CREATE``/``DROP [TEMP|OR REPLACE|CONSTRAINT...] TRIGGER``."""
        if self.head not in ("CREATE", "DROP"):
            return False
        for word in self.words[1:6]:
            if word == "TRIGGER":
                return True
            if word not in _TRIGGER_MODIFIERS:
                return False
        return False

    @cached_property
    def or_replace(self) -> bool:
        return self.head == "CREATE" and self._created[:2] == ["OR", "REPLACE"]

    @cached_property
    def ddl_object(self) -> str:
        """The kind of object a CREATE (after UNIQUE / OR REPLACE), DROP or ALTER names."""
        if self.head == "CREATE":
            rest = self._created[2:] if self.or_replace else self._created
            return rest[0] if rest else ""
        return self.second if self.head in ("DROP", "ALTER") else ""

    @property
    def _created(self) -> list[str]:
        return [w for w in self.words[1:6] if w != "UNIQUE"]

    def object_name(self) -> str | None:
        """The table (or index) a statement creates, alters or writes, lower case."""
        tree = self.tree()
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

    # -- token views

    @cached_property
    def scan(self) -> list[Tok]:
        tokens, words = self.tokens, self.words
        out = []
        for i, token in enumerate(tokens):
            nxt = tokens[i + 1] if i + 1 < len(tokens) else None
            out.append(
                Tok(
                    i,
                    token,
                    token.token_type,
                    words[i],
                    nxt,
                    nxt is not None and nxt.start == token.end + 1,
                    words[i - 1] if i > 0 else "",
                )
            )
        return out

    def token_hits(self, classify: Callable[[Tok], tuple[str, str | None] | None]) -> Iterator[Hit]:
        """A hit at every token ``classify`` gives a (message, fix) for."""
        for t in self.scan:
            found = classify(t)
            if found:
                yield self.hit_at(t.token, *found)

    def top_level(self) -> Iterator[tuple[Token, str]]:
        """Tokens outside any parentheses, with their keyword text."""
        depth = 0
        for token, word in zip(self.tokens, self.words, strict=True):
            if token.token_type in (TokenType.L_PAREN, TokenType.L_BRACKET):
                depth += 1
            elif token.token_type in (TokenType.R_PAREN, TokenType.R_BRACKET):
                depth -= 1
            elif depth == 0:
                yield token, word

    @cached_property
    def table_options(self) -> TableOptions | None:
        """The tokens after a CREATE TABLE's column list (None for AS SELECT)."""
        if not self.is_create("TABLE"):
            return None
        depth, closed, tail = 0, False, []
        for token, word in zip(self.tokens, self.words, strict=True):
            if closed:
                tail.append((token, word))
            elif token.token_type == TokenType.L_PAREN:
                depth += 1
            elif token.token_type == TokenType.R_PAREN:
                depth -= 1
                closed = depth == 0
            elif depth == 0 and word in ("AS", "SELECT"):
                return None
        sqlite, other = [], []
        for i, (token, word) in enumerate(tail):
            if word == "STRICT":
                sqlite.append((token, "STRICT"))
            elif word == "WITHOUT" and i + 1 < len(tail) and tail[i + 1][1] == "ROWID":
                sqlite.append((token, "WITHOUT ROWID"))
            elif word != "ROWID" and token.token_type != TokenType.COMMA:
                other.append(token)
        return TableOptions(sqlite, other)

    # -- tree and comment views

    @cached_property
    def calls(self) -> list[Call]:
        """Every function written in the statement, in each dialect's tree."""
        return [call for tree in self.trees.values() for call in self._calls(tree)]

    def _calls(self, tree: exp.Expr) -> Iterator[Call]:
        seen: dict[str, int] = {}
        for node in tree.walk(bfs=False):
            if not isinstance(node, exp.Func) or (
                isinstance(node, exp.If) and isinstance(node.parent, exp.Case)
            ):
                continue
            if "start" in node.meta:
                raw = self.text[node.meta["start"] : node.meta["end"] + 1]
                line = self.scope.line_of(self.start + node.meta["start"])
                yield Call(node, raw.strip('"`[]').lower(), False, line)
                continue
            name = _KEYWORD_FUNCTIONS.get(type(node).__name__, "")
            if name:  # else built by the parser itself, not written in the source
                occurrence = seen[name] = seen.get(name, -1) + 1
                yield Call(node, name, True, self._keyword_line(name.upper(), occurrence))

    def _keyword_line(self, word: str, occurrence: int) -> int:
        found = [t for t, w in zip(self.tokens, self.words, strict=True) if w == word]
        return self.line_at(found[occurrence]) if occurrence < len(found) else self.line

    @cached_property
    def markers(self) -> list[Marker]:
        """The statement's ``-- @name args`` markers, with the line each is on."""
        mine = [
            (match.group(1), comment.line + k)
            for comment in self.leading
            for k, text in enumerate(comment.lines)
            if (match := sqlscript.MARKER.match(text))
        ]
        found, count = [], 0
        for n, (name, args, _offset) in enumerate(self.statement.markers()):
            line = mine[n][1] if n < len(mine) and mine[n][0] == name else self.line
            parts = args.split()
            count += name == "rebuildable"
            number = count if name == "rebuildable" else 0
            found.append(Marker(name, parts[0] if parts else "", parts[1:], line, number))
        return found
