"""The recommended setup for training a network sparse with ReWA, as plain torch objects.

:func:`recipe` returns the optimizer, the learning-rate scheduler and the gradient clip that
``rewa train --method rewa`` trains with, for any ``nn.Module`` and any training loop::

    r = rewa.recipe(model, epochs=30, steps_per_epoch=len(loader))
    for epoch in range(30):
        for x, y in loader:
            r.optimizer.zero_grad()
            loss_fn(model(x), y).backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), r.clip_grad_norm)
            r.optimizer.step()
        r.scheduler.step()  # r.scheduler_per == "epoch"

This module is the one home of the recipe's values: ReWA on SGD with ``lr = 0.2``,
``momentum = 0.9``, ``K = 9``, ``M = 2``, ``eps = 0`` (``p = 1 + (1 - M)/K = 8/9``), decoupled
weight decay, a cosine schedule without warm-up, the gradient norm clipped at 1, biases and
normalization layers dense (:func:`rewa.param_groups`), and a weight decay of
``lambda = 0.01`` per step, the same at every run length (``lambda`` is the strength of the
regularizer in the objective ``f + lambda R``, so a longer run solves the same problem, only
further). ``rewa train`` takes its ReWA defaults from here.

Where it differs from ``rewa.ReWA()``'s defaults (``lr = 1e-3``, no momentum, no decay, decay
coupled into the momentum buffer), and why: the class defaults are the paper's Algorithm 1 as
written (one setting for every problem, the decay ``lambda y`` part of the step as in
``torch.optim.SGD`` and the paper's code); the recipe is a tuned setting for training networks,
whose decay is decoupled (``y <- (1 - lr lambda) y``), the form the recipe was measured with.

How it was chosen (docs/networks.md, "One ReWA setting across settings"): a few fixed settings,
written down before the runs, were run on four networks with 5 seeds and scored by mean
validation accuracy over compressions and pruning columns; ``lambda = 0.01`` fixed scored
above the earlier budget ``min(0.01, 0.5 / sum_t lr_t)``, which lowered ``lambda`` as runs got
longer. No single ``lambda`` suits every network: it is the hyperparameter to tune first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import torch
from torch import nn

from . import _check as check
from .optim.registry import create_optimizer

__all__ = [
    "OPTIMIZER_DEFAULTS",
    "GRAD_CLIP_NORM",
    "MAX_WEIGHT_DECAY",
    "WEIGHT_DECAY",
    "Recipe",
    "budget_weight_decay",
    "cosine_lr_sum",
    "recipe",
]

# ReWA's hyperparameters in the recipe, and its weight decay.
OPTIMIZER_DEFAULTS = MappingProxyType(dict(lr=0.2, momentum=0.9, K=9, M=2, eps=0.0, decoupled_weight_decay=True))
# Without clipping ReWA diverges at the learning rates SGD trains with.
GRAD_CLIP_NORM = 1.0
# lambda per step, fixed at every run length (chosen by benchmarks/recipe_check.py on validation).
WEIGHT_DECAY = 1e-2
# The largest weight decay an opt-in decay budget may set: the strength of the regularizer must
# not grow as a run gets shorter (a 2-epoch run with lambda = budget / sum lr would get 10x the
# 30-epoch lambda and every weight would die).
MAX_WEIGHT_DECAY = WEIGHT_DECAY


def budget_weight_decay(decay_budget: float, lr_sum: float, *, max_weight_decay: float | None = None) -> float:
    """The weight decay of a run whose learning rates sum to ``lr_sum``:
    ``min(max_weight_decay, decay_budget / lr_sum)``.

    Long runs get the decay whose total shrink ``lambda * sum_t lr_t`` is ``decay_budget``, so one
    budget fits any dataset size and length; short runs get ``max_weight_decay``
    (default :data:`MAX_WEIGHT_DECAY`), a fixed regularization strength, and end less sparse
    instead of optimizing a more regularized objective.

    Example:
        >>> from rewa.recipe import budget_weight_decay
        >>> budget_weight_decay(0.5, 100.0), budget_weight_decay(0.5, 5.0)
        (0.005, 0.01)
    """
    if not (isinstance(decay_budget, (int, float)) and 0 <= decay_budget < math.inf):
        raise ValueError(f"decay_budget={decay_budget!r} must be a finite number >= 0")
    if not (isinstance(lr_sum, (int, float)) and 0 < lr_sum < math.inf):
        raise ValueError(f"lr_sum={lr_sum!r} must be a finite number > 0 (the sum of the run's learning rates)")
    cap = MAX_WEIGHT_DECAY if max_weight_decay is None else max_weight_decay
    check.at_least("max_weight_decay", cap, 0)
    return min(float(cap), decay_budget / lr_sum)


def _cosine(t: int, total: int) -> float:
    # the same expression as rewa train's cosine schedule without warm-up
    return 0.5 * (1 + math.cos(math.pi * t / max(total, 1e-12)))


def cosine_lr_sum(lr: float, epochs: int, steps_per_epoch: int, scheduler_per: str = "epoch") -> float:
    """``sum_t lr_t`` of the recipe's cosine schedule over ``epochs * steps_per_epoch`` steps.

    Example:
        >>> from rewa.recipe import cosine_lr_sum
        >>> cosine_lr_sum(0.2, 2, 10)  # epoch 0 at 0.2, epoch 1 at 0.1
        3.0
    """
    check.one_of("scheduler_per", scheduler_per, ("epoch", "step"))
    if scheduler_per == "epoch":
        return lr * sum(_cosine(e, epochs) * steps_per_epoch for e in range(epochs))
    total = epochs * steps_per_epoch
    return lr * sum(_cosine(t, total) for t in range(total))


@dataclass(frozen=True)
class Recipe:
    """What :func:`recipe` returns: plain torch objects for any training loop.

    Call ``scheduler.step()`` once per epoch (``scheduler_per == "epoch"``) or after every
    optimizer step (``"step"``), and clip with
    ``torch.nn.utils.clip_grad_norm_(model.parameters(), clip_grad_norm)`` before each step.
    ``weight_decay`` is the decay of the sparsified group.
    """

    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scheduler_per: str
    clip_grad_norm: float
    weight_decay: float

    def lightning(self) -> dict:
        """The return value of a LightningModule's ``configure_optimizers``: the optimizer and
        the scheduler with the matching ``interval``."""
        return {
            "optimizer": self.optimizer,
            "lr_scheduler": {"scheduler": self.scheduler, "interval": self.scheduler_per},
        }


def recipe(
    model: nn.Module,
    *,
    epochs: int,
    steps_per_epoch: int,
    weight_decay: float | None = None,
    decay_budget: float | None = None,
    clip_grad_norm: float = GRAD_CLIP_NORM,
    scheduler_per: str = "epoch",
    **hyperparameters: Any,
) -> Recipe:
    """The recommended ReWA setup for ``model``, trained ``epochs`` epochs of ``steps_per_epoch``
    optimizer steps (the module docstring lists the values and the loop).

    Args:
        model: the network; its weights are sparsified, its biases and normalization
            parameters form a dense group (plain SGD with momentum, no decay).
        epochs, steps_per_epoch: the length of the run (they set the cosine schedule).
        weight_decay: the decay ``lambda`` of the sparsified weights, per step; ``None``
            (default): :data:`WEIGHT_DECAY` (0.01), or the budget's when ``decay_budget`` is given.
        decay_budget: opt in to a weight decay set from the run's length,
            ``min(0.01, decay_budget / sum_t lr_t)`` (:func:`budget_weight_decay`): one total
            shrink for every length, at the price of a ``lambda`` (an objective) that changes
            with it. ``None`` (default): off.
        clip_grad_norm: the gradient-norm clip the loop should apply (0: none).
        scheduler_per: ``"epoch"`` (rewa train's default) or ``"step"`` (a cosine over every
            step, for loops that step the scheduler with the optimizer, as the HF Trainer).
        **hyperparameters: any other hyperparameter of :class:`rewa.ReWA` (``lr``, ``K``,
            ``M``, ``momentum``, ``foreach``, ...), replacing :data:`OPTIMIZER_DEFAULTS`.

    Example:
        >>> import torch, rewa
        >>> model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
        >>> r = rewa.recipe(model, epochs=30, steps_per_epoch=20)
        >>> [(g["lr"], g["K"], round(g["weight_decay"], 5)) for g in r.optimizer.param_groups]
        [(0.2, 9, 0.01), (0.2, 1, 0.0)]
        >>> r.scheduler_per, r.clip_grad_norm
        ('epoch', 1.0)
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"recipe needs the nn.Module (it builds the dense group), got {type(model).__name__}")
    check.integer("epochs", epochs)
    check.integer("steps_per_epoch", steps_per_epoch)
    check.one_of("scheduler_per", scheduler_per, ("epoch", "step"))
    if not (isinstance(clip_grad_norm, (int, float)) and 0 <= clip_grad_norm < math.inf):
        raise ValueError(f"clip_grad_norm={clip_grad_norm!r} must be a finite number >= 0 (0: off)")
    hp = {**OPTIMIZER_DEFAULTS, **hyperparameters}
    if decay_budget is not None:
        if weight_decay is not None:
            raise ValueError(
                f"decay_budget={decay_budget!r} and weight_decay={weight_decay!r}: give only one "
                "(decay_budget sets the weight decay)"
            )
        lr_total = cosine_lr_sum(hp["lr"], epochs, steps_per_epoch, scheduler_per)
        weight_decay = budget_weight_decay(decay_budget, lr_total)
    elif weight_decay is None:
        weight_decay = WEIGHT_DECAY
    hp["weight_decay"] = weight_decay
    optimizer = create_optimizer("rewa", model, **hp)
    total = epochs if scheduler_per == "epoch" else epochs * steps_per_epoch
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda t: _cosine(t, total))
    return Recipe(optimizer, scheduler, scheduler_per, float(clip_grad_norm), float(weight_decay))
