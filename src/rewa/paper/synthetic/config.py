"""The settings and results of a sweep: one method (K, M, eps, decay, l1), the shared data and
schedule, one run's measurements, all runs."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from ... import _check as check
from ..problem import SparseRegression

THRESHOLDS = (1e-7, 5e-7, 1e-6, 5e-6, 1e-5, 5e-5, 1e-4, 5e-4, 1e-3)
PAPER_LR = 2e-4
PAPER_DECAY = 0.25  # kappa = 5e-5 of Appendix D.1 in Algorithm 1's units: 5e-5 / 2e-4


def decay_from_appendix(kappa: float, lr: float = PAPER_LR) -> float:
    """Algorithm 1's ``lambda`` for a per-step shrink ``kappa`` quoted by Appendix D.1.

    The paper's code shrinks ``y <- (1 - kappa * eta_t / eta_0) y``; Algorithm 1 writes
    ``(1 - lambda * eta_t) y``; so ``lambda = kappa / eta_0``.

    Example:
        >>> decay_from_appendix(5e-5)
        0.25
    """
    check.at_least("kappa", kappa, 0)
    check.above("lr", lr, 0)
    return round(kappa / lr, 12)


@dataclass(frozen=True)
class Method:
    """One configuration of the update: ReWA's ``K, M, eps``, decay ``lambda``, l1 strength.

    ``weight_decay`` is ``lambda`` in Algorithm 1's units (see the module notes); ``l1`` adds
    ``l1 * sign(x)`` to the gradient (SGD-l1 when ``K = 1, M = 0, weight_decay = 0``).
    """

    K: float = 9
    M: float = 5
    eps: float = 0.0
    weight_decay: float = PAPER_DECAY
    l1: float = 0.0
    label: str = ""

    def __post_init__(self):
        check.check_reparameterization(self.K, self.M, self.eps)
        check.at_least("weight_decay", self.weight_decay, 0)
        check.at_least("l1", self.l1, 0)
        if not self.label:
            object.__setattr__(self, "label", self.default_label())

    def default_label(self) -> str:
        if self.K == 1 and self.M == 0 and self.l1 > 0 and self.weight_decay == 0:
            return f"SGD-l1 (mu={self.l1:g})"
        text = f"ReWA K={self.K:g} M={self.M:g}"
        if self.eps:
            text += f" eps={self.eps:g}"
        text += f" lambda={self.weight_decay:g}"
        if self.l1:
            text += f" l1={self.l1:g}"
        return text


@dataclass(frozen=True)
class SyntheticConfig(SparseRegression):
    """The data and the training schedule shared by every run of a sweep (defaults: paper scale)."""

    batch_size: int = 25
    epochs: int = 800
    lr: float = PAPER_LR
    cosine: bool = True
    dtype: str = "float32"
    device: str = "cpu"

    def __post_init__(self):
        super().__post_init__()
        check.integer("batch_size", self.batch_size)
        check.at_most("batch_size", self.batch_size, self.n_train, "n_train")
        check.integer("epochs", self.epochs)
        check.above("lr", self.lr, 0)
        check.one_of("dtype", self.dtype, ("float32", "float64"))

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(self.n_train / self.batch_size)

    @property
    def torch_dtype(self) -> torch.dtype:
        return getattr(torch, self.dtype)

    @classmethod
    def scale(cls, name: str, **overrides) -> SyntheticConfig:
        """``"paper"``: Appendix D.1. ``"quick"``: d = 1,000, n = 200, 800 epochs at lr 2e-3.

        ``quick`` keeps the batch size and the integral of the learning rate over training
        (``eta_0 T / 2`` = 6.4, so the decay acts as much as at paper scale) on a 10x smaller
        problem; it runs in seconds.
        """
        if name == "paper":
            return cls(**overrides)
        if name == "quick":
            return cls(**{**dict(d=1_000, n_train=200, n_test=1_000, epochs=800, lr=2e-3), **overrides})
        raise ValueError(f"scale={name!r} must be 'paper' or 'quick'")


@dataclass
class RunResult:
    """The measurements of one (method, seed) run."""

    method: Method
    seed: int
    w0: float  # learned coefficient of the true feature (truth 1)
    max_other: float  # largest |w_j| over the d - 1 null coordinates
    test_mse: float  # on n_test fresh samples (Bayes: noise^2)
    oracle_test_mse: float  # least squares on the true support alone, same test set
    below: dict[float, float] = field(default_factory=dict)  # threshold -> fraction of |w_j| < threshold

    def to_row(self) -> dict:
        row = {
            "label": self.method.label,
            **{k: v for k, v in asdict(self.method).items() if k != "label"},
            "seed": self.seed,
            "w0": self.w0,
            "max_other": self.max_other,
            "test_mse": self.test_mse,
            "oracle_test_mse": self.oracle_test_mse,
        }
        row.update({f"sparsity@{t:g}": s for t, s in self.below.items()})
        return row


@dataclass
class SyntheticSweepResult:
    """All runs of a sweep, in the order (method, seed) they were requested."""

    config: SyntheticConfig
    methods: tuple[Method, ...]
    seeds: tuple[int, ...]
    runs: list[RunResult]
    seconds: float
    resumed_from_epoch: int = 0

    def for_method(self, method: Method) -> list[RunResult]:
        return [r for r in self.runs if r.method == method]

    def summary(self) -> list[dict]:
        """Mean and std over seeds per method (std with ``ddof = 0``, as ``numpy.std``)."""
        rows = []
        for method in self.methods:
            runs = self.for_method(method)
            row = {
                "label": method.label,
                **{k: v for k, v in asdict(method).items() if k != "label"},
                "seeds": len(runs),
            }
            for key in ("w0", "test_mse", "max_other"):
                values = np.array([getattr(r, key) for r in runs])
                row[f"{key}_mean"], row[f"{key}_std"] = float(values.mean()), float(values.std())
            for t in THRESHOLDS:
                values = np.array([r.below[t] for r in runs])
                row[f"sparsity@{t:g}_mean"], row[f"sparsity@{t:g}_std"] = float(values.mean()), float(values.std())
            rows.append(row)
        return rows
