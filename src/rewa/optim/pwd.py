r"""pWD, decoupled p-norm weight decay (Outmezguine & Levi), on SGD and on AdamW.

One step of the base optimizer proposes ``w - a * s`` (``s`` its step direction: the gradient
or its momentum for SGD, Adam's normalised moment for AdamW; ``a`` the learning rate), and pWD
shrinks it:

.. math::

    w \leftarrow \frac{w - a\,s}{1 + a \lambda_p |w|^{p-2}}

with ``|w|`` the weight *before* the step. To first order in ``a`` this is a gradient step on
``L(w) + (lambda_p / p) ||w||_p^p`` (the derivative of ``|w|^p / p`` is ``|w|^(p-2) w``): pWD's
``lambda_p`` weighs ``||w||_p^p / p``, not ``||w||_p^p``. For ``p < 2`` the factor is computed as
``1 / (1 + a lambda_p |w|^(p-2))`` in the weight's dtype: at ``w = 0`` or a denormal ``w``,
``|w|^(p-2)`` is ``inf`` (or huge) and the factor is exactly 0, never NaN. With
``a lambda_p = 0`` the factor is 1 (no ``0 * inf``).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor

from .. import _check as check
from .._math import heavy_ball
from ._checked import CheckedOptimizer
from ._fused import fused_pwd_adamw, fused_pwd_sgd

__all__ = ["PWDSGD", "PWDAdamW", "pwd_shrink_factor", "pwd_sgd", "pwd_adamw"]


def pwd_shrink_factor(w: Tensor, *, lr: float, lambda_p: float, p: float) -> Tensor:
    """``1 / (1 + lr * lambda_p * |w|^(p-2))``, element-wise, in ``w``'s dtype; in [0, 1]."""
    if lr * lambda_p == 0:
        return torch.ones_like(w)
    return torch.reciprocal(w.abs().pow(p - 2).mul_(lr * lambda_p).add_(1))


def pwd_sgd(
    params: list[Tensor],
    grads: list[Tensor],
    momentum_buffers: list[Tensor | None],
    *,
    lr: float,
    lambda_p: float,
    p: float,
    momentum: float,
    dampening: float,
    nesterov: bool,
) -> None:
    """One pWD-SGD step in place: ``w <- (w - lr * v) / (1 + lr lambda_p |w|^(p-2))``, ``v``
    the gradient or its momentum direction (:func:`heavy_ball`)."""
    for i, (w, g) in enumerate(zip(params, grads)):
        shrink = pwd_shrink_factor(w, lr=lr, lambda_p=lambda_p, p=p)
        v = heavy_ball(g, momentum_buffers, i, momentum=momentum, dampening=dampening, nesterov=nesterov)
        w.add_(v, alpha=-lr).mul_(shrink)


def pwd_adamw(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    exp_avg_sqs: list[Tensor],
    steps: list[int],
    *,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    lambda_p: float,
    p: float,
) -> None:
    """One pWD-AdamW step in place. ``steps`` holds each tensor's step number after this step.

    ``m <- beta1 m + (1-beta1) g``; ``v <- beta2 v + (1-beta2) g^2``;
    ``w <- (w - lr m_hat / (sqrt(v_hat) + eps)) / (1 + lr lambda_p |w|^(p-2))``.
    """
    for w, g, m, v, t in zip(params, grads, exp_avgs, exp_avg_sqs, steps):
        shrink = pwd_shrink_factor(w, lr=lr, lambda_p=lambda_p, p=p)
        m.lerp_(g, 1 - beta1)
        v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
        denom = (v.sqrt() / (1 - beta2**t) ** 0.5).add_(eps)
        w.addcdiv_(m, denom, value=-lr / (1 - beta1**t)).mul_(shrink)


def _check_pwd(group: dict) -> None:
    check.at_least("lr", group["lr"], 0)
    check.at_least("lambda_p", group["lambda_p"], 0)
    check.above("p", group["p"], 0)


class PWDSGD(CheckedOptimizer):
    r"""SGD with pWD, decoupled p-norm weight decay.

    .. math::

        v_t = g_t \text{ (or its torch-SGD momentum)}, \qquad
        w_{t+1} = \frac{w_t - \eta v_t}{1 + \eta \lambda_p |w_t|^{p-2}}

    For ``p < 2`` small weights are driven to exactly 0 (the factor is 0 at ``w = 0``); ``p = 2``
    is SGD with decoupled decay ``w (1 + eta lambda_p)^-1``.

    Args:
        params: parameters or param groups; every hyperparameter may differ per group.
        lr: ``eta`` (``>= 0``). lambda_p: ``lambda_p >= 0``. p: the norm's exponent, ``p > 0``.
        momentum, dampening, nesterov: as in ``torch.optim.SGD``, on the gradient.
        fused: compiled kernels (see :class:`rewa.ReWA`); ``None``/``False``: the loop.

    Notes on departures from the paper:
        * ``|w|^(p-2)`` uses the weight before the step (``s`` refreshed every step, the pWD
          paper's solid curve in Figure 1), not after.
        * Momentum is an addition; the paper pairs pWD with Adam (see :class:`PWDAdamW`).

    Reference:
        Outmezguine & Levi, "Decoupled Weight Decay for Any p Norm" (pWD update).

    Example:
        >>> import torch
        >>> from rewa.optim.pwd import PWDSGD
        >>> w = torch.nn.Parameter(torch.tensor([0.0, 1e-3, 1.0]))
        >>> opt = PWDSGD([w], lr=0.1, lambda_p=0.5, p=0.5)
        >>> w.grad = torch.tensor([-1.0, 0.0, 0.0])
        >>> opt.step()
        >>> w.detach()
        tensor([0.0000e+00, 6.3206e-07, 9.5238e-01])
    """

    def __init__(
        self,
        params: Iterable,
        lr: float = 1e-3,
        lambda_p: float = 1e-4,
        p: float = 0.5,
        momentum: float = 0.0,
        dampening: float = 0.0,
        nesterov: bool = False,
        *,
        fused: bool | None = None,
    ):
        defaults = dict(
            lr=lr, lambda_p=lambda_p, p=p, momentum=momentum, dampening=dampening, nesterov=nesterov, fused=fused
        )
        super().__init__(params, defaults)

    def _check_group(self, group: dict) -> None:
        _check_pwd(group)
        check.check_momentum(group)

    def _step_group(self, group: dict, params: list[Tensor], grads: list[Tensor]) -> None:
        states = [self.state[p] for p in params]
        buffers = [s.get("momentum_buffer") for s in states]
        hyper = dict(
            lr=group["lr"],
            lambda_p=group["lambda_p"],
            p=group["p"],
            momentum=group["momentum"],
            dampening=group["dampening"],
            nesterov=group["nesterov"],
        )
        done = fused_pwd_sgd(params, grads, buffers, **hyper) if group.get("fused") else 0
        if done < len(params):
            rest = buffers[done:]
            pwd_sgd(params[done:], grads[done:], rest, **hyper)
            buffers[done:] = rest
        for state, buf in zip(states, buffers):
            state["step"] = state.get("step", 0) + 1
            if buf is not None:
                state["momentum_buffer"] = buf


class PWDAdamW(CheckedOptimizer):
    r"""Adam with pWD in place of AdamW's decoupled l2 decay.

    .. math::

        m_t &= \beta_1 m_{t-1} + (1-\beta_1) g_t, \qquad v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2 \\
        w_{t+1} &= \frac{w_t - \eta\, \hat m_t / (\sqrt{\hat v_t} + \epsilon)}{1 + \eta \lambda_p |w_t|^{p-2}}

    with ``m_hat = m/(1-beta1^t)``, ``v_hat = v/(1-beta2^t)``. ``p = 2`` is AdamW up to first
    order in ``eta lambda_p``.

    Args:
        params: parameters or param groups. lr: ``eta >= 0``. betas: ``(beta1, beta2)``, each in
        ``[0, 1)``. eps: Adam's constant, ``>= 0``. lambda_p: ``>= 0``. p: ``> 0``.
        fused: compiled kernels (see :class:`rewa.ReWA`); ``None``/``False``: the loop.

    Notes on departures from the paper:
        * ``|w|^(p-2)`` uses the weight before the step, refreshed every step.

    Reference:
        Outmezguine & Levi, "Decoupled Weight Decay for Any p Norm" (pWD with Adam).

    Example:
        >>> import torch
        >>> from rewa.optim.pwd import PWDAdamW
        >>> model = torch.nn.Linear(8, 1)
        >>> opt = PWDAdamW(model.parameters(), lr=1e-2, lambda_p=1e-3, p=0.5)
        >>> torch.nn.functional.mse_loss(model(torch.randn(4, 8)), torch.zeros(4, 1)).backward()
        >>> opt.step()
        >>> opt.state[model.weight]["step"]
        1
    """

    def __init__(
        self,
        params: Iterable,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        lambda_p: float = 1e-4,
        p: float = 0.5,
        *,
        fused: bool | None = None,
    ):
        defaults = dict(lr=lr, betas=betas, eps=eps, lambda_p=lambda_p, p=p, fused=fused)
        super().__init__(params, defaults)

    def _check_group(self, group: dict) -> None:
        _check_pwd(group)
        check.check_betas(group["betas"])
        check.at_least("eps", group["eps"], 0)

    def _step_group(self, group: dict, params: list[Tensor], grads: list[Tensor]) -> None:
        states = [self.state[p] for p in params]
        for state, p in zip(states, params):
            if "step" not in state:
                state["step"] = 0
                state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        beta1, beta2 = group["betas"]
        exp_avgs, exp_avg_sqs = [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states]
        steps = [s["step"] + 1 for s in states]
        hyper = dict(
            lr=group["lr"], beta1=beta1, beta2=beta2, eps=group["eps"], lambda_p=group["lambda_p"], p=group["p"]
        )
        done = fused_pwd_adamw(params, grads, exp_avgs, exp_avg_sqs, steps, **hyper) if group.get("fused") else 0
        if done < len(params):
            pwd_adamw(params[done:], grads[done:], exp_avgs[done:], exp_avg_sqs[done:], steps[done:], **hyper)
        for state in states:
            state["step"] += 1
