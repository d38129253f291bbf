"""The sparse regression problem of the paper's Section 4.1 (Appendix D.1), described once.

``t = X beta* + noise`` with ``X ~ N(0, I_d)``, ``beta* = e_1`` (one nonzero, value 1) and
Gaussian label noise; a linear model without intercept is fit on the mean squared error. The
short recovery run (:mod:`.recovery`) and the batched sweep (:mod:`.synthetic`) both extend
:class:`SparseRegression` with their training settings.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .. import _check as check

__all__ = ["SparseRegression", "make_regression"]


@dataclass(frozen=True)
class SparseRegression:
    """The data: ``d`` features (one true, ``d - 1`` noise), sample counts, label noise."""

    d: int = 10_000
    n_train: int = 2_000
    n_test: int = 2_000
    noise: float = 1.0

    def __post_init__(self):
        for name in ("d", "n_train", "n_test"):
            check.integer(name, getattr(self, name))
        if self.d < 2:
            raise ValueError(f"d={self.d} must be >= 2 (one signal coordinate and noise coordinates)")
        check.at_least("noise", self.noise, 0)


def make_regression(d: int, n: int, noise: float, generator: torch.Generator, dtype=torch.float32):
    """``(X, t)`` with ``X ~ N(0, I_d)`` (``n x d``) and ``t = X[:, 0] + noise * N(0, 1)``."""
    X = torch.randn(n, d, generator=generator, dtype=dtype)
    y = X[:, 0] + noise * torch.randn(n, generator=generator, dtype=dtype)
    return X, y
