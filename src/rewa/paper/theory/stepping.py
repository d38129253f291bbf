"""Steps through the shipped optimizer code, for the claim checks."""

from __future__ import annotations

import warnings

import torch

from ..._math import power_map
from ...optim.rewa import ReWA, SparsityConfigWarning, rewa_sgd


def quiet_rewa(*args, **kwargs) -> ReWA:
    # Settings such as M = 0, eps = 0 (plain GD on y) are the point of some checks.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SparsityConfigWarning)
        return ReWA(*args, **kwargs)


def step_(x: torch.Tensor, y: torch.Tensor, grad: torch.Tensor, *, lr, K, M, eps, weight_decay) -> None:
    """One ReWA-SGD step without momentum through the shipped functional, in place on the
    weights ``x`` and the latent ``y``."""
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


def step_once(y: torch.Tensor, grad: torch.Tensor, *, lr, K, M, eps, weight_decay) -> torch.Tensor:
    """One ReWA-SGD step through the shipped functional; returns the new latent."""
    y = y.clone()
    step_(power_map(y, K), y, grad, lr=lr, K=K, M=M, eps=eps, weight_decay=weight_decay)
    return y
