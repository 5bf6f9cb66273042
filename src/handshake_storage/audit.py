"""The import-boundary audit (pillar 1): only backend adapters import drivers.

Walks the package's own source with :mod:`ast`, so an import hidden in a
function body or behind ``importlib`` by a literal name is found too.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

#: Top-level modules that talk to a database directly.
DRIVERS = frozenset(
    {"sqlite3", "psycopg", "psycopg2", "psycopg_pool", "asyncpg", "aiosqlite", "sqlalchemy"}
)

PACKAGE_ROOT = Path(__file__).resolve().parent
ALLOWED = (PACKAGE_ROOT / "backends",)


@dataclass(frozen=True)
class Violation:
    path: Path
    line: int
    module: str

    def __str__(self) -> str:
        return (
            f"{self.path}:{self.line}: imports driver {self.module!r} outside "
            "handshake_storage/backends/"
        )


def audit_imports(
    root: Path = PACKAGE_ROOT, allowed: tuple[Path, ...] = ALLOWED
) -> list[Violation]:
    """Every driver import under ``root`` that is not inside an ``allowed`` folder."""
    violations = []
    for path in sorted(root.rglob("*.py")):
        if any(path.is_relative_to(folder) for folder in allowed):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            for module, line in _imported(node):
                if module.split(".")[0] in DRIVERS:
                    violations.append(Violation(path, line, module))
    return violations


def _imported(node: ast.AST) -> list[tuple[str, int]]:
    if isinstance(node, ast.Import):
        return [(alias.name, node.lineno) for alias in node.names]
    if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
        return [(node.module, node.lineno)]
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute | ast.Name)
        and (getattr(node.func, "attr", None) or getattr(node.func, "id", None))
        in ("import_module", "__import__")
        and node.args
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
    ):
        return [(node.args[0].value, node.lineno)]
    return []
