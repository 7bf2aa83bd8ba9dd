"""The modules of seglab.models import one another one way only (no import circle)."""
import ast
import subprocess
import sys
from pathlib import Path

import seglab.models

ROOT = Path(seglab.models.__file__).parent


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT.parent.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def import_graph() -> dict[str, set[str]]:
    """Every import statement (top-level or inside functions) between modules of seglab.models."""
    modules = {_module_name(p): p for p in ROOT.rglob("*.py")}
    graph = {m: set() for m in modules}
    for mod, path in modules.items():
        package = mod if path.name == "__init__.py" else mod.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                    base = f"{base}.{node.module}" if node.module else base
                else:
                    base = node.module or ""
                # "from . import hf" names a module; "from .x import f" names module x
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            for t in targets:
                if t in modules and t != mod and not mod.startswith(t + "."):  # a parent package is not an edge
                    graph[mod].add(t)
    return graph


def find_cycle(graph):
    state, stack = {}, []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for m in sorted(graph[n]):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state and (c := visit(m)):
                return c
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state and (c := visit(n)):
            return c
    return None


def test_models_import_graph_has_no_cycle():
    graph = import_graph()
    assert "seglab.models.state_dicts" in graph["seglab.models.registry"]  # the graph sees real edges
    assert "seglab.models.hf" in graph["seglab.models.state_dicts"]
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_find_cycle_sees_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_modules_import_in_every_order():
    names = ["hf", "registry", "segformer", "weights", "state_dicts", "catalog"]
    code = f"""
import importlib, itertools, sys
import torch
for order in itertools.permutations({names!r}, 4):
    for k in [k for k in sys.modules if k == 'seglab' or k.startswith('seglab.')]:
        del sys.modules[k]
    for n in order:
        importlib.import_module('seglab.models.' + n)
    import seglab.models
    assert len(seglab.models.list_models()) > 5
print('ok')
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]
