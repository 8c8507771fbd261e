"""Package shape: no import cycles inside ``segloss_core``, no public function shadowing
a submodule, and the callable modules behind ``sc.metrics(...)`` / ``sc.landscape(...)``."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import types
from pathlib import Path

import numpy as np

import segloss_core as sc

ROOT = Path(sc.__file__).parent


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """``segloss_core`` modules that ``path`` imports, at module level or inside functions."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            if base.startswith("segloss_core"):
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    out.add(full if (ROOT.parent / Path(*full.split("."))).with_suffix(".py").exists() else base)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("segloss_core"))
    return out - {name}


#: Cycles still to be removed (each a set of modules); anything else fails.
KNOWN_CYCLES: list[set[str]] = []


def _cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v] & graph.keys():
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(comp)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles():
    """Not even through imports inside functions (registry <-> losses, _tensors <-> limits and
    registry <-> engine were such cycles): the modules form layers."""
    graph = {_module_name(p): _imports(p) for p in ROOT.rglob("*.py")}
    graph.pop("segloss_core")  # the package's __init__ re-exports from every layer
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [{"a", "b"}]  # the check itself works
    assert [c for c in _cycles(graph) if c not in KNOWN_CYCLES] == []


#: The README's Layout drawing of ``segloss_core``, top row first: a module imports only from its own
#: row or the rows below (the known cycle's lazy import aside).
LAYERS = [
    {"cli", "__main__", "plots"},
    {"playground", "gradients", "landscape", "bias", "agreement", "optimise", "claims", "dataset"},
    {"engine", "conventions"},
    {"registry", "losses"},
    {"presets", "perturb"},
    {"spec"},
    {"io", "case", "stats", "distance", "metrics"},
    {"_tensors", "limits"},
]


def test_imports_follow_the_readme_layers():
    def top(module: str) -> str:
        return module.split(".")[1]

    row = {m: i for i, layer in enumerate(LAYERS) for m in layer}
    modules = {_module_name(p): _imports(p) for p in ROOT.rglob("*.py") if p.parent != ROOT or p.stem != "__init__"}
    assert {top(m) for m in modules} == set(row), "a module missing from LAYERS (and the README's drawing)"
    known = {(top(a), top(b)) for cycle in KNOWN_CYCLES for a in cycle for b in cycle if a != b}
    upward = sorted({(top(m), top(d)) for m, deps in modules.items() for d in deps
                     if d != "segloss_core" and row[top(d)] < row[top(m)]} - known)
    assert upward == [], f"imports that point up the README's drawing: {upward}"
    readme = (ROOT.parent / "README.md").read_text(encoding="utf-8")
    assert "a module imports only from its own row or the rows below" in " ".join(readme.split())


def test_no_attribute_shadows_a_submodule():
    for info in pkgutil.iter_modules(sc.__path__):
        if info.name == "__main__":
            continue
        module = importlib.import_module(f"segloss_core.{info.name}")
        assert getattr(sc, info.name) is module, info.name
        assert isinstance(getattr(sc, info.name), types.ModuleType)


def test_callable_modules_keep_the_public_calls():
    import segloss_core.landscape as landscape_module
    import segloss_core.metrics as metrics_module

    gt = np.zeros((8, 8), int)
    gt[2:5, 2:5] = 1
    assert sc.metrics(gt, gt) == metrics_module.segmentation_metrics(gt, gt)
    assert sc.metrics(gt, gt, spacing=(2.0, 1.0))[1]["dice"] == 1.0
    assert sc.landscape is landscape_module and callable(sc.landscape)
    assert hasattr(sc.metrics, "confusion_counts") and hasattr(sc.landscape, "LandscapeResult")


def test_no_function_over_100_lines():
    long = []
    for path in ROOT.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > 100:
                    long.append(f"{_module_name(path)}.{node.name}: {n} lines")
    assert long == []
