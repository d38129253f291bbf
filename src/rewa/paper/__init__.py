"""The paper's reproduction: its Section 3 checks, the Section 4.1 synthetic regression
(Figures 1 and 2), the sparse recovery of ``rewa demo``, the target-sparsity runs on digits,
their figures and the ``rewa demo`` / ``rewa reproduce`` commands.

The library never imports this package (``tests/test_layout.py`` enforces it); it builds on
the library's public modules like any user code. Each function takes a config and returns
results:

* :mod:`rewa.paper.theory`: one module per Section 3 claim (:func:`run_theory` runs them all);
  the closed forms they check are :mod:`rewa.paper.formulas`.
* :mod:`rewa.paper.synthetic`: the Appendix D.1 problem, :func:`run_sweep`, :func:`run_figure`.
* :mod:`rewa.paper.recovery`: :func:`run_recovery`, the problem of ``rewa demo``.
* :mod:`rewa.paper.digits`: :func:`run_digits`, :func:`run_target_sparsity_demo`.
* :mod:`rewa.paper.plotting`: their figures; :mod:`rewa.paper.cli`: the commands.
"""

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
