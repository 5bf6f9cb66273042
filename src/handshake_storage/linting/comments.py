"""The comments of a file and whom they belong to: the statement they lead, or
the line of code they are about (markers and suppressions are read from them)."""

from __future__ import annotations

import bisect
import re

from .context import Comment, FileScope

# Comments and the quoted text that may hide comment markers, left to right.
_LEXEME = re.compile(
    r"--[^\n]*|/\*.*?(?:\*/|\Z)|'(?:[^']|'')*(?:'|\Z)|\"(?:[^\"]|\"\")*(?:\"|\Z)"
    r"|`[^`]*(?:`|\Z)|\$(?P<tag>[A-Za-z_]\w*)?\$.*?(?:\$(?P=tag)\$|\Z)",
    re.S,
)


def attach(scope: FileScope) -> None:
    """Fill ``scope.comments``; give each statement its leading comments.

    A comment on its own line before a statement (and outside any) leads it;
    one on its own line inside a statement is about the next line of code; one
    after code is about its own line.
    """
    statements = scope.statements
    spans = [(s.start, s.start + len(s.text)) for s in statements]
    starts = [span[0] for span in spans]
    for offset, line, lines, own_line in _scan(scope):
        i = bisect.bisect_right(starts, offset)  # statements starting before it
        inside = i > 0 and offset < spans[i - 1][1]
        if own_line and not inside and i < len(statements):
            comment = Comment(offset, line, lines, own_line, statement=i)
            statements[i].leading.append(comment)
        elif own_line:
            target = scope.next_code_line(line + len(lines) - 1)
            comment = Comment(offset, line, lines, own_line, target_line=target)
        else:
            comment = Comment(offset, line, lines, own_line, target_line=line)
        scope.comments.append(comment)


def _scan(scope: FileScope) -> list[tuple[int, int, tuple[str, ...], bool]]:
    text = scope.text
    found = []
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
        lines = tuple(body.splitlines() or [""])
        found.append((start, scope.line_of(start), lines, not text[line_start:start].strip()))
    return found
