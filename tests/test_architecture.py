"""The layout DESIGN.md promises, checked from the source (docs/architecture.md):

* dependencies point one way: crm, playbooks -> automation -> delivery -> accounts; csplatform is shared;
* no import cycle between the project's modules, hidden in a function or not;
* a function-local import of a project module says why on its line (a comment);
* no module of an app over about 500 lines, migrations aside.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
APPS = ("csplatform", "accounts", "delivery", "automation", "playbooks", "crm")
# What each app may import (besides itself). csplatform is the shared base: tenancy needs the Tenant model,
# and its URLconf, settings and celery app wire every app together.
ALLOWED = {
    "accounts": {"csplatform"},
    "delivery": {"accounts", "csplatform"},
    "automation": {"delivery", "accounts", "csplatform"},
    "playbooks": {"automation", "delivery", "accounts", "csplatform"},
    "crm": {"automation", "delivery", "accounts", "csplatform"},
}
WIRING = {"csplatform.urls", "csplatform.settings", "csplatform.settings_test", "csplatform.celery",
          "csplatform.wsgi", "csplatform.asgi"}
MAX_LINES = 520


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _sources():
    for app in APPS:
        for path in sorted((ROOT / app).rglob("*.py")):
            if "migrations" not in path.parts:
                yield path


def _resolve(module: str, is_package: bool, node: ast.ImportFrom | ast.Import) -> list[str]:
    """The project modules an import statement names (``from . import x`` may name submodules)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = module.split(".") if is_package else module.split(".")[:-1]
    if node.level:
        base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    return [target] + [f"{target}.{alias.name}" for alias in node.names]


def _imports():
    """(module, imported module, line, function-local?, source line) for every import of a project module."""
    known = {_module_name(path) for path in _sources()}
    for path in _sources():
        module, text = _module_name(path), path.read_text()
        lines = text.splitlines()
        tree = ast.parse(text)
        local = {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
                 for n in ast.walk(f) if isinstance(n, (ast.Import, ast.ImportFrom))}
        type_only = {id(n) for i in ast.walk(tree) if isinstance(i, ast.If) and "TYPE_CHECKING" in ast.unparse(i.test)
                     for n in ast.walk(i) if isinstance(n, (ast.Import, ast.ImportFrom))}
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Import, ast.ImportFrom)) or id(node) in type_only:
                continue
            for name in _resolve(module, path.name == "__init__.py", node):
                if name in known:
                    yield module, name, node.lineno, id(node) in local, lines[node.lineno - 1]


def _app(module: str) -> str:
    return module.split(".")[0]


def test_dependencies_point_one_way():
    wrong = sorted({f"{module}:{line} imports {target}" for module, target, line, _, _ in _imports()
                    if _app(module) in ALLOWED and _app(target) != _app(module)
                    and _app(target) not in ALLOWED[_app(module)]})
    assert wrong == []


def test_no_import_cycles():
    graph: dict[str, set[str]] = {}
    for module, target, _, _, _ in _imports():
        if target != module and module not in WIRING:
            graph.setdefault(module, set()).add(target)
    cycles, index, low, stack, on_stack, counter = [], {}, {}, [], set(), [0]

    def visit(node):  # Tarjan's strongly connected components
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                item = stack.pop()
                on_stack.discard(item)
                component.append(item)
                if item == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in list(graph):
        if node not in index:
            visit(node)
    # A package importing its own submodules (``from . import x`` in __init__) is how packages register them.
    cycles = [c for c in cycles if not all(m.startswith(c[0] + ".") or m == c[0] for m in c)]
    assert cycles == []


def test_function_local_imports_say_why():
    silent = sorted({f"{module}:{line}" for module, target, line, local, source in _imports()
                     if local and "#" not in source})
    assert silent == []


@pytest.mark.parametrize("path", list(_sources()), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_god_files(path):
    assert len(path.read_text().splitlines()) <= MAX_LINES
