"""Sparse signal recovery on generated data: the short version of the paper's Section 4.1.

The problem of :mod:`.problem` (``beta* = e_1``), trained with ReWA-SGD through the optimizer
class, one run at a time.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field

import torch

from .. import _check as check
from ..optim import ReWA
from .problem import SparseRegression, make_regression

__all__ = ["RecoveryConfig", "RecoveryResult", "make_regression", "run_recovery"]

THRESHOLDS = (1e-7, 1e-6, 1e-5, 1e-4, 1e-3)


@dataclass(frozen=True)
class RecoveryConfig(SparseRegression):
    """Settings of one recovery run (defaults: the ``rewa demo`` run, a few seconds on a CPU)."""

    d: int = 2000
    n_train: int = 500
    n_test: int = 1000
    noise: float = 0.5
    K: float = 9
    M: float = 4
    eps: float = 0.0
    lr: float = 0.05
    weight_decay: float = 0.05
    momentum: float = 0.0
    batch_size: int = 25
    epochs: int = 60
    cosine: bool = True
    warmup_epochs: int = 3  # epochs with M = 0 first: lets wrong-sign starts cross zero
    seed: int = 0

    def __post_init__(self):
        super().__post_init__()
        for name in ("batch_size", "epochs"):
            check.integer(name, getattr(self, name))
        check.integer("warmup_epochs", self.warmup_epochs, 0, self.epochs)


@dataclass
class RecoveryResult:
    config: RecoveryConfig
    w0: float  # the learned coefficient of the true feature (truth: 1)
    max_other: float  # largest |w_j| over the d - 1 null coordinates
    above: dict[float, int] = field(default_factory=dict)  # threshold -> number of |w_j| > threshold
    support_recovered: bool = False  # the true coordinate is the largest and > 10x every other
    test_mse: float = math.nan
    oracle_test_mse: float = math.nan  # least squares on the true support alone
    seconds: float = math.nan

    def to_dict(self) -> dict:
        out = asdict(self)
        out["above"] = {f"{t:g}": n for t, n in self.above.items()}
        return out


def run_recovery(config: RecoveryConfig = RecoveryConfig()) -> RecoveryResult:
    """Train a linear model with ReWA on one sparse-recovery problem and measure the result."""
    gen = torch.Generator().manual_seed(config.seed)
    X, y = make_regression(config.d, config.n_train, config.noise, gen)
    X_test, y_test = make_regression(config.d, config.n_test, config.noise, gen)

    model = torch.nn.Linear(config.d, 1, bias=False)
    with torch.no_grad():  # Kaiming-uniform, as nn.Linear, but from this run's generator
        bound = 1 / math.sqrt(config.d)
        model.weight.uniform_(-bound, bound, generator=gen)
    opt = ReWA(
        model.parameters(),
        lr=config.lr,
        K=config.K,
        M=config.M,
        eps=config.eps,
        weight_decay=config.weight_decay,
        momentum=config.momentum,
    )
    steps_per_epoch = math.ceil(config.n_train / config.batch_size)
    total = steps_per_epoch * config.epochs
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total) if config.cosine else None

    start = time.perf_counter()
    for epoch in range(config.epochs):
        for group in opt.param_groups:
            group["M"] = 0 if epoch < config.warmup_epochs else config.M
        order = torch.randperm(config.n_train, generator=gen)
        for batch in order.split(config.batch_size):
            opt.zero_grad(set_to_none=True)
            loss = 0.5 * (model(X[batch]).squeeze(1) - y[batch]).pow(2).mean()
            loss.backward()
            opt.step()
            if schedule is not None:
                schedule.step()
    seconds = time.perf_counter() - start

    w = model.weight.detach().squeeze(0)
    others = w[1:].abs()
    w0 = float(w[0])
    max_other = float(others.max())
    with torch.no_grad():
        test_mse = float((X_test @ w - y_test).pow(2).mean())
        coef = float(X[:, 0] @ y / (X[:, 0] @ X[:, 0]))
        oracle = float((coef * X_test[:, 0] - y_test).pow(2).mean())
    return RecoveryResult(
        config=config,
        w0=w0,
        max_other=max_other,
        above={t: int((w.abs() > t).sum()) for t in THRESHOLDS},
        support_recovered=abs(w0) > 10 * max_other,
        test_mse=test_mse,
        oracle_test_mse=oracle,
        seconds=seconds,
    )
