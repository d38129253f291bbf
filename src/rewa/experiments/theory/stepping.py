"""Steps through the shipped optimizer code, for the claim checks."""

from __future__ import annotations

import warnings

import torch

from ..._math import power_map
from ...optim import rewa_sgd
from ...optim.rewa import ReWA, SparsityConfigWarning


def quiet_rewa(*args, **kwargs) -> ReWA:
    # Settings such as M = 0, eps = 0 (plain GD on y) are the point of some checks.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SparsityConfigWarning)
        return ReWA(*args, **kwargs)


def step_once(y: torch.Tensor, grad: torch.Tensor, *, lr, K, M, eps, weight_decay) -> torch.Tensor:
    """One ReWA-SGD step through the shipped functional; returns the new latent."""
    y = y.clone()
    x = power_map(y, K)
    rewa_sgd(
        [x],
        [grad],
        [y],
        [None],
        lr=lr,
        K=K,
        M=M,
        eps=eps,
        weight_decay=weight_decay,
        momentum=0.0,
        dampening=0.0,
        nesterov=False,
    )
    return y
