"""The training layer's datasets, models and presets (:mod:`rewa.experiments.data`,
:mod:`rewa.experiments.models`, :mod:`rewa.experiments.presets`).

The paper's reproduction that used to live here is :mod:`rewa.paper`; its names still resolve
from this package with a ``DeprecationWarning``.
"""

from __future__ import annotations

from .. import _moved

__getattr__ = _moved.forward(
    __name__,
    ("rewa.paper",),
    names=(
        "DigitsConfig", "DigitsResult", "FigureResult", "Method", "RecoveryConfig", "RecoveryResult",
        "SparseRegression", "SyntheticConfig", "TheoryConfig", "decay_from_appendix", "make_regression",
        "run_digits", "run_figure", "run_recovery", "run_sweep", "run_target_sparsity_demo", "run_theory",
    ),
)  # fmt: skip
