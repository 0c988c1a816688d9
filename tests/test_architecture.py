"""The shape of the code: no import cycles (counting imports inside functions and under
``TYPE_CHECKING``), ``bot/`` never imports ``handlers/`` or ``jobs/``, and modules stay small."""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("bot", "handlers", "jobs")


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def _imported(node: ast.AST, module: str, path: Path, modules: Mapping[str, Path]) -> Iterator[str]:
    """The project modules one import statement loads (``from pkg import sub`` loads ``pkg.sub``)."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom):
        if node.level:
            package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
            base = ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else []))
        else:
            base = node.module or ""
        submodules = [f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in modules]
        names = submodules if len(submodules) == len(node.names) else [base, *submodules]
    else:
        return
    for name in names:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        if name and name != module:
            yield name


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):  # every import, anywhere
            graph[name].update(_imported(node, name, path, modules))
    return graph


def cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_module_imports_another_that_imports_it_back() -> None:
    assert cycles(import_graph()) == []


def test_the_checker_sees_cycles_through_function_local_and_type_only_imports() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    source = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from bot.core import Core\ndef f():\n    import bot.demo\n"
    tree = ast.parse(source)
    modules = _modules()
    loaded = {m for node in ast.walk(tree) for m in _imported(node, "bot.x", ROOT / "bot/x.py", modules)}
    assert loaded == {"bot.core", "bot.demo"}


def test_bot_imports_neither_handlers_nor_jobs() -> None:
    graph = import_graph()
    leaks = {
        module: sorted(t for t in targets if t.startswith(("handlers", "jobs")))
        for module, targets in graph.items()
        if module.startswith("bot")
    }
    assert {module: targets for module, targets in leaks.items() if targets} == {}


MAX_LINES = 400


def test_no_module_is_longer_than_one_sitting() -> None:
    """A module a newcomer can read in one go: over MAX_LINES, split it by concern."""
    long = {
        name: lines
        for name, path in _modules().items()
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert long == {}
