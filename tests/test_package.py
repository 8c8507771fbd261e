"""Package shape: no import cycles inside ``segloss_core``, no public function shadowing
a submodule, and the callable modules behind ``sc.metrics(...)`` / ``sc.landscape(...)``."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import sys
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
    assert _cycles(graph) == []


#: The packages, top first: a package imports only from itself and the packages below it.
PACKAGES = ["__main__", "cli", "plots", "analyses", "data", "core"]
#: Packages whose modules have rows of their own in :data:`LAYERS`.
SPLIT = {"analyses", "data", "core"}

#: The README's Layout drawing of ``segloss_core``, top row first: a module imports only from its own
#: row or the rows below.
LAYERS = [
    {"cli", "__main__"},
    {"plots"},
    {f"analyses.{m}" for m in ("playground", "gradients", "landscape", "bias", "agreement", "optimise", "claims",
                               "dataset")},
    {"data.presets"},
    {"data.files", "data.perturb"},
    {"data.case"},
    {"core.engine", "core.conventions"},
    {"core.registry", "core.losses"},
    {"core.spec"},
    {"core.stats", "core.distance", "core.metrics"},
    {"core._tensors", "core.limits"},
]


def _unit(module: str) -> str:
    """``segloss_core.core.losses.region`` -> ``core.losses``; ``segloss_core.plots.bias`` -> ``plots``."""
    parts = module.split(".")[1:]
    return ".".join(parts[:2]) if parts[0] in SPLIT else parts[0]


def _modules() -> dict[str, set[str]]:
    return {_module_name(p): _imports(p) - {"segloss_core"} for p in ROOT.rglob("*.py")
            if p.parent not in (ROOT, *(ROOT / s for s in SPLIT)) or p.stem != "__init__"}


def test_imports_follow_the_readme_layers():
    row = {m: i for i, layer in enumerate(LAYERS) for m in layer}
    modules = _modules()
    assert {_unit(m) for m in modules} == set(row), "a module missing from LAYERS (and the README's drawing)"
    upward = sorted({(_unit(m), _unit(d)) for m, deps in modules.items() for d in deps
                     if d not in ("segloss_core", *(f"segloss_core.{s}" for s in SPLIT)) and row[_unit(d)] < row[_unit(m)]})
    assert upward == [], f"imports that point up the README's drawing: {upward}"
    readme = (ROOT.parent / "README.md").read_text(encoding="utf-8")
    assert "a module imports only from its own row or the rows below" in " ".join(readme.split())


def test_packages_import_only_downwards():
    level = {p: i for i, p in enumerate(PACKAGES)}
    up = sorted({(m, d) for m, deps in _modules().items() for d in deps
                 if level[d.split(".")[1]] < level[m.split(".")[1]]})
    assert up == [], f"a package importing from one above it: {up}"
    assert [p for p in PACKAGES if p != "__main__"] == [
        line.split()[0].rstrip("/") for line in _readme_packages()], "the README's package list and PACKAGES differ"


def _readme_packages() -> list[str]:
    """The package lines of the README's Layout drawing (``  cli ...``, ``  plots/ ...``, ...)."""
    readme = (ROOT.parent / "README.md").read_text(encoding="utf-8")
    drawing = readme.split("## Layout", 1)[1].split("```")[1]
    names = {"cli", "plots/", "analyses/", "data/", "core/"}
    return [line.strip() for line in drawing.splitlines() if line.strip().split(" ")[0] in names]


def test_no_attribute_shadows_a_submodule():
    """``sc.<name>`` is never a function where a module of that name exists (``sc.metrics`` and
    ``sc.landscape`` are the modules themselves, made callable)."""
    for info in pkgutil.walk_packages(sc.__path__, "segloss_core."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        parent, leaf = info.name.rsplit(".", 1)
        owners = {sys.modules[parent]} | ({sc} if info.name.split(".")[1] in SPLIT else set())
        for owner in owners:
            if hasattr(owner, leaf):
                assert getattr(owner, leaf) is module, f"{owner.__name__}.{leaf} shadows {info.name}"


def test_callable_modules_keep_the_public_calls():
    import segloss_core.analyses.landscape as landscape_module
    import segloss_core.core.metrics as metrics_module

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
