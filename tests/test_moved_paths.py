"""The paper's reproduction moved to rewa.paper; its earlier import paths keep working, each
name with a DeprecationWarning that names the new path."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import rewa

SRC = Path(__file__).resolve().parents[1] / "src"

MOVED = [
    # old module, name, new module
    ("rewa.theory", "lp_exponent", "rewa.implicit"),
    ("rewa.theory", "sparsity_configuration", "rewa.implicit"),
    ("rewa.theory", "implicit_regularizer", "rewa.implicit"),
    ("rewa.theory", "stagnation_radius_plain", "rewa.paper.formulas"),
    ("rewa.theory", "constrained_solution", "rewa.paper.formulas"),
    ("rewa.experiments", "run_recovery", "rewa.paper"),
    ("rewa.experiments", "run_theory", "rewa.paper"),
    ("rewa.experiments", "run_figure", "rewa.paper"),
    ("rewa.experiments", "run_target_sparsity_demo", "rewa.paper"),
    ("rewa.experiments", "SparseRegression", "rewa.paper"),
    ("rewa.experiments", "decay_from_appendix", "rewa.paper"),
    ("rewa.experiments.theory", "TheoryConfig", "rewa.paper.theory"),
    ("rewa.experiments.theory", "check_example_3_2", "rewa.paper.theory"),
    ("rewa.experiments.synthetic", "run_sweep", "rewa.paper.synthetic"),
    ("rewa.experiments.synthetic", "SyntheticConfig", "rewa.paper.synthetic"),
    ("rewa.experiments.digits", "DigitsConfig", "rewa.paper.digits"),
    ("rewa.experiments.digits", "run_digits", "rewa.paper.digits"),
    ("rewa.experiments.recovery", "RecoveryConfig", "rewa.paper.recovery"),
    ("rewa.plotting.synthetic", "plot_figure1", "rewa.paper.plotting.synthetic"),
    ("rewa.plotting.theory", "plot_example_3_2", "rewa.paper.plotting.theory"),
    ("rewa.plotting.sparsity", "save_target_sparsity_figure", "rewa.paper.plotting.sparsity"),
]


@pytest.mark.parametrize("old, name, new", MOVED, ids=lambda v: v if isinstance(v, str) else None)
def test_an_old_path_forwards_with_a_warning_naming_the_new_one(old, name, new):
    module = importlib.import_module(old)
    with pytest.warns(DeprecationWarning, match=rf"{old}\.{name} is deprecated: it moved to {new}\.{name}") as record:
        value = getattr(module, name)
    assert value is getattr(importlib.import_module(new), name)
    assert record[0].filename == __file__  # the warning points at the line that used the old path


def test_from_import_of_an_old_path_warns_at_the_caller():
    with pytest.warns(DeprecationWarning, match="rewa.paper.synthetic.run_sweep") as record:
        from rewa.experiments.synthetic import run_sweep
    from rewa.paper.synthetic import run_sweep as new

    assert run_sweep is new and record[0].filename == __file__


def test_star_import_of_an_old_path_gives_the_new_names():
    namespace: dict = {}
    with pytest.warns(DeprecationWarning, match="rewa.experiments.theory"):
        exec("from rewa.experiments.theory import *", namespace)
    assert namespace["run_theory"] is importlib.import_module("rewa.paper.theory").run_theory


def test_rewa_theory_after_import_rewa():
    with pytest.warns(DeprecationWarning, match="rewa.implicit.lp_exponent"):
        assert rewa.theory.lp_exponent(9, 4) == pytest.approx(2 / 3)


@pytest.mark.parametrize(
    "old, name",
    [("rewa.theory", "no_such_name"), ("rewa.experiments", "no_such_name"), ("rewa.plotting.sparsity", "plot_x")],
)
def test_an_unknown_name_is_still_an_attribute_error(old, name):
    module = importlib.import_module(old)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # and it warns about nothing
        with pytest.raises(AttributeError, match=name):
            getattr(module, name)


def test_the_library_paths_that_stayed_do_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        from rewa.experiments.data import load_dataset  # noqa: F401
        from rewa.experiments.models import make_model  # noqa: F401
        from rewa.plotting.sparsity import plot_accuracy_vs_compression  # noqa: F401
        from rewa.plotting.training import plot_training_curves  # noqa: F401


@pytest.mark.slow  # a fresh interpreter
def test_import_rewa_neither_warns_nor_loads_the_paper():
    code = (
        "import warnings, sys\nwarnings.simplefilter('error')\nimport rewa, rewa.cli, rewa.training\n"
        "print(sorted(m for m in sys.modules if m.startswith('rewa.paper')))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(SRC) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "[]"
