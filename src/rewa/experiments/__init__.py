"""Experiments as library functions: a config in, results out."""

from .recovery import RecoveryConfig, RecoveryResult, make_regression, run_recovery
from .theory import TheoryConfig, run_theory

__all__ = ["RecoveryConfig", "RecoveryResult", "TheoryConfig", "make_regression", "run_recovery", "run_theory"]
