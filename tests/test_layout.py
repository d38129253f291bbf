"""The floor plan of the package: every import inside ``src/rewa`` runs down the layer order.

Each module belongs to the longest entry of ``LAYERS`` that prefixes its dotted name; it may
import modules of its own entry or of an entry listed before it, never one listed after.
The README's "Layout" section describes the same order.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

# Bottom first. One entry per job; a package entry covers its modules unless a longer entry
# (e.g. rewa.optim.registry) places one of them higher.
LAYERS = [
    # the math and the argument checks: import nothing of rewa
    "rewa._version", "rewa._check", "rewa._math", "rewa._json",
    # formulas: penalties, then the paper's closed forms (Proposition 3.4, R(x), radii)
    "rewa.penalties", "rewa.theory",
    # which tensors are sparsified; parametrizations of the weights
    "rewa.param_groups", "rewa.reparam",
    # optimizers (fast paths and the paper-literal reference), then the table of methods
    "rewa.optim", "rewa.optim.registry",
    # measuring and masking sparsity, steering it, saving it; scikit-learn estimators
    "rewa.sparsity", "rewa.controller", "rewa.export", "rewa.linear_model",
    # the recommended training setup as torch objects
    "rewa.recipe",
    # figures: results in (plain records), figures out
    "rewa.plotting",
    # experiments: config in, results out (datasets, models, presets and the run's config too)
    "rewa.experiments",
    # the training layer: plan, loop, run files, signals, processes, data checks
    "rewa.training",
    # its earlier import path
    "rewa.experiments.train",
    # the paper's experiments
    "rewa.paper",
    # public namespaces
    "rewa.functional", "rewa",
    # the command line
    "rewa._cli_options", "rewa.paper.cifar10", "rewa.cli_bench", "rewa.cli_train", "rewa.cli", "rewa.__main__",
]  # fmt: skip

# Finer order inside packages whose modules build on each other.
SUBLAYERS = {
    "rewa.training": ["rewa.training.config", "rewa.training.files", "rewa.training.interrupts", "rewa.training.distributed",
                      "rewa.training.data_checks", "rewa.training.plan", "rewa.training.batches",
                      "rewa.training.schedules", "rewa.training.records", "rewa.training.run_dir",
                      "rewa.training.loop", "rewa.training"],
    "rewa.sparsity": ["rewa.sparsity.selection", "rewa.sparsity.measure", "rewa.sparsity.masks", "rewa.sparsity"],
    "rewa.linear_model": ["rewa.linear_model.datafits", "rewa.linear_model.solver", "rewa.linear_model.estimators",
                          "rewa.linear_model"],
    "rewa.plotting": ["rewa.plotting._pyplot", "rewa.plotting.sparsity", "rewa.plotting.synthetic",
                      "rewa.plotting.theory", "rewa.plotting.training", "rewa.plotting"],
    "rewa.experiments": [
        "rewa.experiments._progress", "rewa.experiments.transforms", "rewa.experiments.data", "rewa.experiments.models",
        "rewa.experiments.outcome", "rewa.experiments.presets", "rewa.experiments.problem", "rewa.experiments.recovery",
        "rewa.experiments.synthetic.config", "rewa.experiments.synthetic.data",
        "rewa.experiments.synthetic.checkpoints", "rewa.experiments.synthetic.engine",
        "rewa.experiments.synthetic.lasso", "rewa.experiments.synthetic.figures", "rewa.experiments.synthetic",
        "rewa.experiments.digits",
        "rewa.experiments.theory.records", "rewa.experiments.theory.stepping",
        "rewa.experiments.theory.lemma_3_1", "rewa.experiments.theory.example_3_2",
        "rewa.experiments.theory.theorem_3_3", "rewa.experiments.theory.theorem_3_7",
        "rewa.experiments.theory.example_3_8", "rewa.experiments.theory.theorem_3_10",
        "rewa.experiments.theory.example_3_12", "rewa.experiments.theory.runner", "rewa.experiments.theory",
        "rewa.experiments",
    ],
}  # fmt: skip


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def _imports(path: Path) -> set[str]:
    """The ``rewa`` modules ``path`` imports (``from pkg import name`` counts as ``pkg.name``
    when that is a module, else as ``pkg``); imports inside functions count too."""
    module = _module_name(path)
    package = module if _is_package(path) else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "rewa")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "rewa":
                continue
            for alias in node.names:
                candidate = f"{target}.{alias.name}"
                found.add(candidate if candidate in MODULES else target)
    return found - {module}


PATHS = sorted((SRC / "rewa").rglob("*.py"))
MODULES = {_module_name(p) for p in PATHS}


def _rank(module: str) -> tuple[int, int]:
    def longest(entries):
        # the root entry "rewa" is the package's __init__ only, not everything under it
        matches = [i for i, e in enumerate(entries) if module == e or (e != "rewa" and module.startswith(e + "."))]
        return max(matches, key=lambda i: len(entries[i])) if matches else None

    layer = longest(LAYERS)
    assert layer is not None, f"{module} is in no layer of tests/test_layout.py: add it to LAYERS"
    inner = SUBLAYERS.get(LAYERS[layer])
    sub = longest(inner) if inner else 0
    assert sub is not None, f"{module} is in no sublayer of {LAYERS[layer]}: add it to SUBLAYERS"
    return layer, sub


@pytest.mark.parametrize("path", PATHS, ids=lambda p: _module_name(p))
def test_imports_run_down_the_layers(path):
    module = _module_name(path)
    upward = sorted(target for target in _imports(path) if _rank(target) > _rank(module))
    assert not upward, f"{module} imports from a higher layer: {', '.join(upward)}"


def test_no_module_imports_a_module_that_imports_it_back():
    graph = {_module_name(p): _imports(p) for p in PATHS}
    pairs = sorted(
        {tuple(sorted((a, b))) for a, targets in graph.items() for b in targets if a in graph.get(b, ()) and a != b}
    )
    assert not pairs, f"modules that import each other: {pairs}"


def test_no_module_imports_private_names_of_another():
    """``from .sparsity import _helper`` ties a module to another's insides; private modules
    (``from . import _check``) are fine, they are the package's own."""
    found = []
    for path in PATHS:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("rewa")):
                module = _module_name(path)
                package = module if _is_package(path) else module.rpartition(".")[0]
                base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
                target = ".".join(base + ([node.module] if node.module else []))
                found += [
                    f"{module}: {target}.{a.name}"
                    for a in node.names
                    if a.name.startswith("_") and not a.name.startswith("__") and f"{target}.{a.name}" not in MODULES
                ]
    assert not found, "private names imported across modules: " + "; ".join(found)
