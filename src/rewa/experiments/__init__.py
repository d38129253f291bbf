"""Experiments as library functions: a config in, results out."""

from .digits import DigitsConfig, DigitsResult, run_digits, run_target_sparsity_demo
from .problem import SparseRegression, make_regression
from .recovery import RecoveryConfig, RecoveryResult, run_recovery
from .synthetic import FigureResult, Method, SyntheticConfig, decay_from_appendix, run_figure, run_sweep
from .theory import TheoryConfig, run_theory

__all__ = [
    "DigitsConfig",
    "DigitsResult",
    "FigureResult",
    "Method",
    "RecoveryConfig",
    "RecoveryResult",
    "SparseRegression",
    "SyntheticConfig",
    "TheoryConfig",
    "decay_from_appendix",
    "make_regression",
    "run_digits",
    "run_figure",
    "run_recovery",
    "run_sweep",
    "run_target_sparsity_demo",
    "run_theory",
]
