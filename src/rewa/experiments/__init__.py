"""Experiments as library functions: a config in, results out."""

from .recovery import RecoveryConfig, RecoveryResult, make_regression, run_recovery

__all__ = ["RecoveryConfig", "RecoveryResult", "make_regression", "run_recovery"]
