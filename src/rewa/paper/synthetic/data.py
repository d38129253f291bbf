"""Each seed's data, test set, batch order and learning rate, from the seed alone (so a resumed
sweep replays them)."""

from __future__ import annotations

import math

import torch

from ..problem import make_regression
from .config import SyntheticConfig

_TEST_STREAM, _ORDER_STREAM = 1_000_003, 2_000_029  # offsets that separate a seed's random streams


def make_problem(seed: int, config: SyntheticConfig) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(X, target, w_init)`` of one seed on the CPU, in ``config.dtype``.

    ``X ~ N(0, I_d)`` (``n_train x d``), ``target = X[:, 0] + noise * N(0, 1)``, and
    ``w_init ~ U(-1/sqrt(d), 1/sqrt(d))``, all from ``torch.Generator().manual_seed(seed)``.
    """
    gen = torch.Generator().manual_seed(seed)
    X, target = make_regression(config.d, config.n_train, config.noise, gen, dtype=config.torch_dtype)
    bound = 1 / math.sqrt(config.d)
    w_init = torch.empty(config.d, dtype=config.torch_dtype).uniform_(-bound, bound, generator=gen)
    return X, target, w_init


def initial_w0(seed: int, config: SyntheticConfig) -> float:
    """The starting value of the true coefficient ``w_0`` for ``seed`` (its sign matters when
    ``M > 0``: a wrong-sign start has to cross the zero saddle of Example 3.2)."""
    return float(make_problem(seed, config)[2][0])


def test_batches(seed: int, config: SyntheticConfig, rows: int = 500):
    """The fresh test set of a seed, in chunks of ``rows`` samples (never held whole)."""
    gen = torch.Generator().manual_seed(seed + _TEST_STREAM)
    left = config.n_test
    while left > 0:
        n = min(rows, left)
        yield make_regression(config.d, n, config.noise, gen, dtype=config.torch_dtype)
        left -= n


def epoch_order(seed: int, epoch: int, n: int) -> torch.Tensor:
    """The sample order of one epoch, from ``(seed, epoch)`` alone, so a resumed sweep replays it."""
    gen = torch.Generator().manual_seed((seed + _ORDER_STREAM) * 100_003 + epoch)
    return torch.randperm(n, generator=gen)


def cosine_lr(step: int, total: int, lr: float, cosine: bool = True) -> float:
    """``eta_t = lr (1 + cos(pi t / T)) / 2`` (or ``lr`` when ``cosine`` is False)."""
    return lr * (1 + math.cos(math.pi * step / total)) / 2 if cosine else lr
