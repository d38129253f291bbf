"""Experiments as library functions: a config in, results out."""

from .digits import DigitsConfig, DigitsResult, run_digits, run_target_sparsity_demo
from .recovery import RecoveryConfig, RecoveryResult, make_regression, run_recovery
from .theory import TheoryConfig, run_theory

__all__ = ["DigitsConfig", "DigitsResult", "run_digits", "run_target_sparsity_demo", "RecoveryConfig", "RecoveryResult", "TheoryConfig", "make_regression", "run_recovery", "run_theory"]
