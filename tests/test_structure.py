"""The package's structure holds: no import cycle, the façade is complete,
and backend differences stay inside backends/."""

from __future__ import annotations

import ast
from pathlib import Path

import handshake_storage

SRC = Path(handshake_storage.__file__).parent
MODULES = {
    ".".join(p.relative_to(SRC.parent).with_suffix("").parts).removesuffix(".__init__"): p
    for p in SRC.rglob("*.py")
}


def _imports(name: str, path: Path) -> set[str]:
    """Every project module ``name`` imports, at any level (a function-level
    import is a dependency too), except under ``if TYPE_CHECKING``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped = {
        id(node)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
        for node in ast.walk(block)
    }
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.ImportFrom):
            base = package
            for _ in range(node.level - 1):
                base = base.rsplit(".", 1)[0]
            if node.level:
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            for alias in node.names:
                candidate = f"{module}.{alias.name}"
                found.add(candidate if candidate in MODULES else module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {m for m in found if m in MODULES and m != name}


def test_no_import_cycle_in_the_package() -> None:
    graph = {name: _imports(name, path) for name, path in MODULES.items()}
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                cycles.append([*stack[stack.index(dep) :], dep])
            elif dep not in state:
                visit(dep, [*stack, dep])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    # the package's __init__ re-exports everything; cycles through it are not layering
    real = [c for c in cycles if "handshake_storage" not in c]
    assert not real, real


def test_nothing_outside_the_facade_reads_the_adapter_of_a_database() -> None:
    offenders = []
    for name, path in MODULES.items():
        if name == "handshake_storage.database" or ".backends" in name:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Attribute)
                and node.attr == "_adapter"
                and not (isinstance(node.value, ast.Name) and node.value.id == "self")
            ):
                offenders.append(f"{name}:{node.lineno}")
    assert not offenders, offenders


def test_no_backend_specific_branch_outside_backends() -> None:
    """Code outside backends/ never asks which backend it runs on. The URL
    parser (which scheme is which backend) and the linter (which parses each
    file as both SQL dialects) name dialects by their nature."""
    offenders = []
    for name, path in MODULES.items():
        if ".backends" in name or name in ("handshake_storage.url", "handshake_storage.lint"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Compare):
                values = [node.left, *node.comparators]
                names = {v.value for v in values if isinstance(v, ast.Constant)}
                if names & {"sqlite", "postgresql", "postgres"}:
                    offenders.append(f"{name}:{node.lineno}: {ast.unparse(node)}")
    assert not offenders, offenders
