"""The project's import graph, read from the source (nothing is imported): which module
imports which, its cycles, and the imports that go upward (from the layers below the
pages into the UI or the page services)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("app", "queries")
# Layers that nothing below the pages may import: the UI and the page services.
UPPER = ("app.ui", "app.services")
BELOW_PAGES = (
    "app.analysis",
    "app.approvals",
    "app.audit",
    "app.autopilot",
    "app.errors",
    "app.evidence",
    "app.flags",
    "app.metrics_db",
    "app.notify",
    "app.rollout",
    "app.unleash",
    "queries",
)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {
        module_name(path): path
        for package in PACKAGES
        for path in sorted(ROOT.joinpath(package).rglob("*.py"))
        if "migrations" not in path.parts
    }


def _imported(node: ast.AST, here: str, is_package: bool) -> Iterator[str]:
    if isinstance(node, ast.Import):
        for alias in node.names:
            yield alias.name
    elif isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:
            parts = here.split(".")
            parts = parts if is_package else parts[:-1]
            parts = parts[: len(parts) - node.level + 1]
            base = ".".join([*parts, base] if base else parts)
        yield base
        for alias in node.names:
            yield f"{base}.{alias.name}"


def graph() -> dict[str, set[str]]:
    """module -> the project modules it imports (at any depth of its code)."""
    known = modules()
    edges: dict[str, set[str]] = {}
    for name, path in known.items():
        tree = ast.parse(path.read_text(), str(path))
        targets = set()
        for node in ast.walk(tree):
            for target in _imported(node, name, path.name == "__init__.py"):
                if target in known and target != name:
                    targets.add(target)
        edges[name] = targets
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in edges.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def _within(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def upward_imports(edges: dict[str, set[str]]) -> list[tuple[str, str]]:
    """(importer, imported) where a module below the pages imports the UI or a page
    service, or a page service imports the UI."""
    upward = []
    for module, targets in sorted(edges.items()):
        for target in sorted(targets):
            below = _within(module, BELOW_PAGES) and _within(target, UPPER)
            service_to_ui = _within(module, ("app.services",)) and _within(target, ("app.ui",))
            if below or service_to_ui:
                upward.append((module, target))
    return upward


def reachable(edges: dict[str, set[str]], start: str) -> set[str]:
    seen = {start}
    todo = [start]
    while todo:
        for target in edges.get(todo.pop(), ()):
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def package_of(module: str) -> str:
    """The top-level part a module belongs to: `app.rollout`, `app.runtime`, `queries`."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "app" else parts[0]


def package_graph(edges: dict[str, set[str]]) -> dict[str, set[str]]:
    packages: dict[str, set[str]] = {}
    for module, targets in edges.items():
        here = package_of(module)
        packages.setdefault(here, set()).update(
            package_of(t) for t in targets if package_of(t) != here
        )
    return packages


if __name__ == "__main__":
    g = graph()
    print("modules", len(g))
    print("cycles", len(cycles(g)))
    for c in cycles(g):
        print("  cycle:", " ".join(c))
    p = package_graph(g)
    print("package cycles", len(cycles(p)))
    for c in cycles(p):
        print("  package cycle:", " ".join(c))
    up = upward_imports(g)
    print("upward imports", len(up))
    for a, b in up:
        print(f"  {a} -> {b}")
