"""The import layering gpuctl holds to, read from the source (every import: top level, in functions, and
under TYPE_CHECKING), so that a cycle or a forbidden import fails here before it ships:

- no import cycles between gpuctl's modules (a submodule importing its own package is not one);
- providers never import the deploy machinery or the CLI;
- nothing below the CLI (gpuctl/cli/, the App context object, ``python -m gpuctl``) imports click,
  rich or questionary.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "gpuctl"
CLI_LAYER = ("gpuctl.cli", "gpuctl.app", "gpuctl.__main__")
UI_LIBRARIES = ("click", "rich", "questionary")


def module_names() -> dict[str, Path]:
    names = {}
    for path in ROOT.rglob("*.py"):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


MODULES = module_names()


def imports(module: str) -> Iterator[tuple[str, int]]:
    """(imported name, line) for every import statement of ``module``; ``from X import Y`` gives X and X.Y."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from ((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            yield base, node.lineno
            yield from ((f"{base}.{alias.name}", node.lineno) for alias in node.names)


def internal(name: str) -> str | None:
    """The gpuctl module ``name`` refers to (a name inside a module refers to that module)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {module: set() for module in MODULES}
    for module in MODULES:
        for name, _ in imports(module):
            target = internal(name)
            # importing one's own package (or a parent) is how submodules work, not a cycle
            if target and target != module and not module.startswith(target + "."):
                edges[module].add(target)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in edges[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycles() -> None:
    assert cycles(graph()) == []


def test_providers_never_import_deploy_or_the_cli() -> None:
    bad = [f"{module}:{line} imports {name}" for module in MODULES if module.startswith("gpuctl.providers")
           for name, line in imports(module) if name.startswith(("gpuctl.deploy", "gpuctl.cli"))]
    assert bad == []


def test_nothing_below_the_cli_imports_click_rich_or_questionary() -> None:
    bad = [f"{module}:{line} imports {name}" for module in MODULES
           if not module.startswith(CLI_LAYER)
           for name, line in imports(module) if name.split(".")[0] in UI_LIBRARIES]
    assert bad == []


@pytest.mark.parametrize(("edges", "expected"), [
    ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, [["a", "b", "c"]]),
    ({"a": {"b"}, "b": set()}, []),
])
def test_the_cycle_finder_finds_cycles(edges: dict[str, set[str]], expected: list[list[str]]) -> None:
    assert cycles(edges) == expected


def test_the_checks_see_lazy_and_type_checking_imports(tmp_path: Path) -> None:
    source = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import rich\ndef f():\n    from .x import y\n"
    MODULES["gpuctl.fake_probe"] = tmp_path / "fake_probe.py"
    MODULES["gpuctl.fake_probe"].write_text(source)
    try:
        assert {name for name, _ in imports("gpuctl.fake_probe")} >= {"rich", "gpuctl.x", "gpuctl.x.y"}
    finally:
        del MODULES["gpuctl.fake_probe"]
