"""No import circles in router/: every import is walked, those inside functions included
(importing a submodule counts as importing its package's __init__ too, as Python does).
Only `if TYPE_CHECKING:` imports are left out: they never run."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "router"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def _type_checking_only(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def imports_of(path: Path) -> set[str]:
    """The router modules `path` imports at run time, wherever the import statement is."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if _type_checking_only(node):
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)  # `from router import api`
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text()))
    me = module_name(path) if path.is_relative_to(ROOT) else ""
    edges = set()
    for name in found:
        first = True
        while name.startswith("router."):
            # A submodule's package runs first, unless the importer is inside that package (then
            # the package is already running: it is how a package gathers its submodules).
            if name in MODULES and (first or not me.startswith(name + ".")):
                edges.add(name)
            name, first = name.rpartition(".")[0], False
    return edges - {me}


def cycles() -> list[list[str]]:
    graph = {name: sorted(imports_of(path)) for name, path in MODULES.items()}
    found, state, stack = [], {}, []

    def walk(node: str) -> None:
        state[node] = "open"
        stack.append(node)
        for nxt in graph[node]:
            if state.get(nxt) == "open":
                found.append([*stack[stack.index(nxt):], nxt])
            elif nxt not in state:
                walk(nxt)
        stack.pop()
        state[node] = "done"

    for name in sorted(graph):
        if name not in state:
            walk(name)
    return found


def test_the_walk_sees_imports_inside_functions_and_skips_type_checking(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from router.app import create_app\n"
                      "def f():\n    from router.providers.openai import KIND\n")
    assert imports_of(module) == {"router.providers.openai", "router.providers"}


def test_no_import_circles():
    circles = cycles()
    assert circles == [], "import circles:\n" + "\n".join(" -> ".join(c) for c in circles)
