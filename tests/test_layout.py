"""The floor plan of the package: every import inside ``src/rewa`` runs down the layer order.

Each module belongs to the longest entry of ``LAYERS`` that prefixes its dotted name; it may
import modules of its own entry or of an entry listed before it, never one listed after.
docs/architecture.md ("The floors") describes the same order. The paper's reproduction, rewa.paper, sits
above the library: no module outside it imports it (PAPER_IMPORTS names the exceptions).
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

# Bottom first. One entry per job; a package entry covers its modules unless a longer entry
# (e.g. rewa.optim.registry) places one of them higher.
LAYERS = [
    # the math and the argument checks: import nothing of rewa
    "rewa._version", "rewa._check", "rewa._math", "rewa._json", "rewa._moved",
    # formulas: penalties, then ReWA's implicit regularizer (p, Proposition 3.4, R(x));
    # rewa.theory is its earlier path (forwards to rewa.implicit and rewa.paper.formulas)
    "rewa.penalties", "rewa.implicit", "rewa.theory",
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
    # public namespaces
    "rewa.functional", "rewa",
    # the command line's shared options
    "rewa._cli_options",
    # the paper's reproduction and its commands: built on the library, never imported by it
    # (see PAPER_IMPORTS below for the two command-line modules that reach it)
    "rewa.paper",
    # the command line
    "rewa.cli_bench", "rewa.cli_train", "rewa.cli_generate", "rewa.cli", "rewa.__main__",
]  # fmt: skip

# Finer order inside packages whose modules build on each other.
SUBLAYERS = {
    "rewa.training": ["rewa.training.config", "rewa.training.files", "rewa.training.interrupts", "rewa.training.distributed",
                      "rewa.training.data_checks", "rewa.training.plan", "rewa.training.batches",
                      "rewa.training.schedules", "rewa.training.records", "rewa.training.run_dir",
                      "rewa.training.loop", "rewa.training.generate", "rewa.training"],
    "rewa.sparsity": ["rewa.sparsity.selection", "rewa.sparsity.measure", "rewa.sparsity.masks", "rewa.sparsity"],
    "rewa.linear_model": ["rewa.linear_model.datafits", "rewa.linear_model.solver", "rewa.linear_model.estimators",
                          "rewa.linear_model"],
    "rewa.plotting": ["rewa.plotting._pyplot", "rewa.plotting.sparsity", "rewa.plotting.synthetic",
                      "rewa.plotting.theory", "rewa.plotting.training", "rewa.plotting"],
    "rewa.experiments": [
        "rewa.experiments._progress", "rewa.experiments.transforms", "rewa.experiments.text", "rewa.experiments.data", "rewa.experiments.gpt",
        "rewa.experiments.models",
        "rewa.experiments.outcome", "rewa.experiments.presets",
        # earlier paths of the paper's modules (forward to rewa.paper)
        "rewa.experiments.recovery", "rewa.experiments.synthetic", "rewa.experiments.digits",
        "rewa.experiments.theory", "rewa.experiments",
    ],
    "rewa.paper": [
        "rewa.paper.problem", "rewa.paper.formulas",
        "rewa.paper.plotting.sparsity", "rewa.paper.plotting.synthetic", "rewa.paper.plotting.theory",
        "rewa.paper.plotting",
        "rewa.paper.recovery",
        "rewa.paper.synthetic.config", "rewa.paper.synthetic.data",
        "rewa.paper.synthetic.checkpoints", "rewa.paper.synthetic.engine",
        "rewa.paper.synthetic.lasso", "rewa.paper.synthetic.figures", "rewa.paper.synthetic",
        "rewa.paper.digits",
        "rewa.paper.theory.records", "rewa.paper.theory.stepping",
        "rewa.paper.theory.lemma_3_1", "rewa.paper.theory.example_3_2",
        "rewa.paper.theory.theorem_3_3", "rewa.paper.theory.theorem_3_7",
        "rewa.paper.theory.example_3_8", "rewa.paper.theory.theorem_3_10",
        "rewa.paper.theory.example_3_12", "rewa.paper.theory.runner", "rewa.paper.theory",
        "rewa.paper.cifar10", "rewa.paper.cli", "rewa.paper",
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


# ---- the library never imports the paper's reproduction (rewa.paper) ----

# The only modules outside rewa.paper that may import it, each inside a function only, so that
# importing them loads nothing of the paper:
PAPER_IMPORTS = {
    "rewa.cli": "build_parser adds the paper's commands, demo and reproduce (rewa.paper.cli)",
    "rewa.cli_bench": "bench's Table 2 times the paper's synthetic problem (rewa.paper.synthetic)",
}
# Earlier import paths of moved modules: they name their new rewa.paper module as a string for
# rewa._moved.forward (imported on first use of a moved name, with a DeprecationWarning).
FORWARDERS = {
    "rewa.theory", "rewa.experiments", "rewa.experiments.theory", "rewa.experiments.synthetic",
    "rewa.experiments.digits", "rewa.experiments.recovery", "rewa.plotting.synthetic",
    "rewa.plotting.theory", "rewa.plotting.sparsity",
}  # fmt: skip
_PAPER_PATH = re.compile(r"rewa\.paper(\.\w+)*")


def _in_paper(module: str) -> bool:
    return module == "rewa.paper" or module.startswith("rewa.paper.")


def _paper_reaches(module: str, source: str, is_package: bool = False) -> list[str]:
    """How ``module`` (source text ``source``) reaches rewa.paper against the rules above:
    an import (anywhere in a module not in PAPER_IMPORTS; at module level in one that is) or a
    module path in a string (outside FORWARDERS), e.g. for importlib.import_module."""
    package = module if is_package else module.rpartition(".")[0]
    tree = ast.parse(source)
    in_function = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        for inner in ast.walk(node)
    }
    found = []
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            targets = [target] + [f"{target}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and _PAPER_PATH.fullmatch(node.value):
            if module not in FORWARDERS:
                found.append(f"line {node.lineno}: names {node.value!r}")
            continue
        if any(_in_paper(t) for t in targets):
            allowed = module in PAPER_IMPORTS and id(node) in in_function
            if not allowed:
                where = "inside a function" if id(node) in in_function else "at module level"
                found.append(f"line {node.lineno}: imports {', '.join(t for t in targets if _in_paper(t))} {where}")
    return found


def test_the_library_never_imports_the_paper():
    found = [
        f"{_module_name(p)} {reach}"
        for p in PATHS
        if not _in_paper(_module_name(p))
        for reach in _paper_reaches(_module_name(p), p.read_text(), _is_package(p))
    ]
    assert not found, "library modules that reach rewa.paper: " + "; ".join(found)


@pytest.mark.parametrize(
    "module, source",
    [
        ("rewa.training.loop", "from ..paper import formulas\n"),
        ("rewa.training.loop", "def f():\n    from ..paper.digits import run_digits\n"),
        ("rewa.recipe", "import rewa.paper.theory\n"),
        ("rewa.recipe", "import importlib\nm = importlib.import_module('rewa.paper.digits')\n"),
        ("rewa.cli", "from .paper.cli import add_commands\n"),  # allowed in a function only
        ("rewa.experiments", "from ..paper import run_recovery\n"),  # a forwarder may not import
    ],
)
def test_a_planted_import_of_the_paper_is_caught(module, source):
    assert _paper_reaches(module, source, is_package=module == "rewa.experiments")


def test_the_allowed_reaches_are_allowed():
    assert not _paper_reaches("rewa.cli", "def build_parser():\n    from .paper.cli import add_commands\n")
    assert not _paper_reaches("rewa.theory", "__getattr__ = forward(__name__, ('rewa.paper.formulas',))\n")


def test_the_paper_lives_in_rewa_paper_and_old_paths_only_forward():
    for new in ("rewa.paper.theory", "rewa.paper.synthetic", "rewa.paper.digits", "rewa.paper.recovery",
                "rewa.paper.formulas", "rewa.paper.plotting.theory", "rewa.paper.plotting.synthetic",
                "rewa.paper.cli"):  # fmt: skip
        assert new in MODULES, f"{new} is missing"
    for path in PATHS:
        module = _module_name(path)
        if module in FORWARDERS:
            assert "_moved.forward(" in path.read_text(), f"{module} is listed as a forwarder but does not forward"
            assert not _in_paper(module)


@pytest.mark.slow  # a fresh interpreter imports every library module
def test_importing_the_library_loads_nothing_of_the_paper():
    """Every module outside rewa.paper (forwarders included: they import on first use) is
    imported in a fresh interpreter; none may pull in rewa.paper."""
    library = sorted(m for m in MODULES if not _in_paper(m) and m != "rewa.__main__")
    code = (
        "import importlib, sys\n"
        f"for m in {library!r}: importlib.import_module(m)\n"
        "print(sorted(m for m in sys.modules if m == 'rewa.paper' or m.startswith('rewa.paper.')))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(SRC) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "[]", f"importing the library loaded {out.stdout.strip()}"
