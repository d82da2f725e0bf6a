"""Lists the import cycles inside kl_schedules/, imports inside functions included.

Reads every module of the package with ``ast`` (nothing is imported) and draws an edge
A -> B for each import in A of a kl_schedules module B: ``import kl_schedules.x``,
``from kl_schedules.x import y`` (to ``kl_schedules.x.y`` when that is a module, else to
``kl_schedules.x``) and relative imports. Imports under ``if TYPE_CHECKING:`` never run
and are left out. A package's ``__init__`` is reached only by importing the package
itself (``from kl_schedules import x`` where ``x`` is not a module), not implicitly as the
parent of a submodule. Prints the edge counts and every cycle (strongly connected
component of more than one module, or a module importing itself); exits 1 if any.

Usage: python .ci/import_cycles.py [package_dir]   (default: kl_schedules)
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path


def module_names(root: Path) -> dict[str, Path]:
    package = root.name
    names = {}
    for path in sorted(root.rglob("*.py")):
        parts = [package, *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join(parts)] = path
    return names


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports(tree: ast.Module) -> list[tuple[ast.AST, bool]]:
    """(import node, inside a function) for every import that can run."""
    found: list[tuple[ast.AST, bool]] = []

    def walk(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for other in child.orelse:
                    walk(other, in_function)
                continue
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                found.append((child, in_function))
            inner = in_function or isinstance(
                child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)
            )
            walk(child, inner)

    walk(tree, False)
    return found


def targets(node: ast.AST, module: str, is_package: bool, known: set[str]) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names if alias.name in known]
    assert isinstance(node, ast.ImportFrom)
    base = node.module or ""
    if node.level:
        anchor = module.split(".") if is_package else module.split(".")[:-1]
        anchor = anchor[: len(anchor) - (node.level - 1)]
        base = ".".join([*anchor, base] if base else anchor)
    result = []
    for alias in node.names:
        child = f"{base}.{alias.name}"
        if child in known:
            result.append(child)
        elif base in known:
            result.append(base)
    return result


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            components.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return components


def main(root: Path) -> int:
    names = module_names(root)
    known = set(names)
    graph: dict[str, set[str]] = {name: set() for name in names}
    module_level = in_functions = 0
    for name, path in names.items():
        tree = ast.parse(path.read_text(), str(path))
        for node, in_function in imports(tree):
            found = list(dict.fromkeys(targets(node, name, path.name == "__init__.py", known)))
            if found and in_function:
                in_functions += 1
                print(f"function-level: {name} (line {node.lineno}) -> {', '.join(found)}")
            elif found:
                module_level += 1
            graph[name].update(found)
    cycles = [c for c in strongly_connected(graph) if len(c) > 1 or c[0] in graph[c[0]]]
    print(
        f"{len(names)} modules; imports of package modules: {module_level} at module level, "
        f"{in_functions} inside functions; {sum(map(len, graph.values()))} edges"
    )
    for cycle in cycles:
        print("cycle:", " <-> ".join(cycle))
    print(f"{len(cycles)} import cycles")
    return 1 if cycles else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else "kl_schedules")))
