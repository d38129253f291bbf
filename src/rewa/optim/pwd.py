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
from .._math import Number, adam_bias_corrections, add_quotient_, add_scaled_
from . import _compile
from ._base import SparseOptimizer

__all__ = ["PWDSGD", "PWDAdamW", "pwd_shrink_factor", "pwd_sgd", "pwd_adamw"]


def pwd_shrink_factor(w: Tensor, *, lr: Number | Tensor, lambda_p: Number | Tensor, p: float) -> Tensor:
    """``1 / (1 + lr * lambda_p * |w|^(p-2))``, element-wise, in ``w``'s dtype; in [0, 1].

    Exactly 1 where ``lr * lambda_p = 0`` (no ``0 * inf``). ``lr`` and ``lambda_p`` may be
    0-dim tensors (compiled kernels)."""
    decay = lr * lambda_p
    if isinstance(decay, Tensor):
        factor = torch.reciprocal(_compiled_abs_pow_negative(w.abs(), p - 2).mul_(decay).add_(1))
        return torch.where(decay == 0, 1.0, factor)
    if decay == 0:
        return torch.ones_like(w)
    return torch.reciprocal(w.abs().pow(p - 2).mul_(decay).add_(1))


def _compiled_abs_pow_negative(a: Tensor, exponent: float) -> Tensor:
    """``a^exponent`` for ``a >= 0`` in a compiled kernel: the exponents of p = 1 and p = 0.5
    without a transcendental ``pow``, which made the compiled pWD step compute-bound on CPU.
    (Eagerly ``pow`` is one pass over memory and faster than these.)"""
    if exponent == -1:
        return torch.reciprocal(a)
    if exponent == -1.5:
        return torch.reciprocal(a * a.sqrt())
    return a.pow(exponent)


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
    fused: bool = False,
) -> None:
    """One pWD-SGD step in place: ``w <- (w - lr * v) / (1 + lr lambda_p |w|^(p-2))``, ``v``
    the gradient or its torch-SGD momentum direction. ``fused=True``: through compiled kernels
    (the tensors they cannot take run the loop). Both compute :func:`_pwd_sgd_tensor`."""
    hyper = dict(lr=lr, lambda_p=lambda_p, p=p, momentum=momentum, dampening=dampening, nesterov=nesterov)
    done = _fused_pwd_sgd(params, grads, momentum_buffers, **hyper) if fused else 0
    if done < len(params):
        rest = momentum_buffers[done:]
        _single_tensor_pwd_sgd(params[done:], grads[done:], rest, **hyper)
        momentum_buffers[done:] = rest


def _pwd_sgd_tensor(
    w: Tensor,
    g: Tensor,
    buf: Tensor | None,
    *,
    lr: Number | Tensor,
    lambda_p: Number | Tensor,
    p: float,
    momentum: float,
    buffer_coefficients: tuple[Number | Tensor, Number | Tensor],
    nesterov: bool,
) -> Tensor | None:
    """One tensor's pWD-SGD step in place on ``w`` and ``buf``: the ground truth that the loop
    runs and the compiled kernels trace. Returns the momentum buffer (``b = g`` when ``buf`` is
    ``None``); ``buffer_coefficients`` ``(beta, alpha)`` make ``b <- beta*b + alpha*g``."""
    shrink = pwd_shrink_factor(w, lr=lr, lambda_p=lambda_p, p=p)  # from w before the step
    g = g.to(w.dtype)
    v = g
    if momentum != 0:
        if buf is None:
            buf = g.clone()
        else:
            beta, alpha = buffer_coefficients
            add_scaled_(buf.mul_(beta), g, alpha)
        v = g.add(buf, alpha=momentum) if nesterov else buf
    add_scaled_(w, v, -lr).mul_(shrink)
    return buf


def _single_tensor_pwd_sgd(params, grads, momentum_buffers, *, lr, lambda_p, p, momentum, dampening, nesterov):
    for i, (w, g) in enumerate(zip(params, grads)):
        momentum_buffers[i] = _pwd_sgd_tensor(
            w,
            g,
            momentum_buffers[i],
            lr=lr,
            lambda_p=lambda_p,
            p=p,
            momentum=momentum,
            buffer_coefficients=(momentum, 1 - dampening),
            nesterov=nesterov,
        )


def _fused_pwd_sgd(params, grads, momentum_buffers, *, lr, lambda_p, p, momentum, dampening, nesterov) -> int:
    """:func:`_pwd_sgd_tensor` through compiled kernels; returns how many leading tensors were updated."""
    config = dict(p=p, momentum=momentum, nesterov=bool(nesterov))
    shared = [float(lr), float(lambda_p)]
    if momentum == 0:
        items = list(zip(params, grads))
        return _compile.run("pWD-SGD", _compiled_sgd_without_momentum, config, items, [[]] * len(items), shared)
    items, coefficients, created = _compile.with_buffers(params, grads, [], momentum_buffers, momentum, dampening)
    done = _compile.run("pWD-SGD", _compiled_sgd_with_momentum, config, items, coefficients, shared)
    _compile.drop_unused_buffers(momentum_buffers, created, done)
    return done


def _compiled_sgd_with_momentum(w, g, buf, beta, alpha, lr, lambda_p, **config):
    _pwd_sgd_tensor(w, g, buf, lr=lr, lambda_p=lambda_p, buffer_coefficients=(beta, alpha), **config)


def _compiled_sgd_without_momentum(w, g, lr, lambda_p, **config):
    _pwd_sgd_tensor(w, g, None, lr=lr, lambda_p=lambda_p, buffer_coefficients=(0.0, 1.0), **config)


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
    fused: bool = False,
) -> None:
    """One pWD-AdamW step in place. ``steps`` holds each tensor's step number after this step.

    ``m <- beta1 m + (1-beta1) g``; ``v <- beta2 v + (1-beta2) g^2``;
    ``w <- (w - lr m_hat / (sqrt(v_hat) + eps)) / (1 + lr lambda_p |w|^(p-2))``. ``fused=True``:
    through compiled kernels. Both compute :func:`_pwd_adamw_tensor`.
    """
    lists = (params, grads, exp_avgs, exp_avg_sqs, steps)
    hyper = dict(lr=lr, beta1=beta1, beta2=beta2, eps=eps, lambda_p=lambda_p, p=p)
    done = _fused_pwd_adamw(*lists, **hyper) if fused else 0
    for w, g, m, v, t in zip(*(values[done:] for values in lists)):
        step_size, bias_correction2_sqrt = adam_bias_corrections(t, lr, beta1, beta2)
        _pwd_adamw_tensor(
            w,
            g,
            m,
            v,
            lr=lr,
            lambda_p=lambda_p,
            step_size=step_size,
            bias_correction2_sqrt=bias_correction2_sqrt,
            p=p,
            beta1=beta1,
            beta2=beta2,
            eps=eps,
        )


def _pwd_adamw_tensor(
    w: Tensor,
    g: Tensor,
    m: Tensor,
    v: Tensor,
    *,
    lr: Number | Tensor,
    lambda_p: Number | Tensor,
    step_size: Number | Tensor,
    bias_correction2_sqrt: Number | Tensor,
    p: float,
    beta1: float,
    beta2: float,
    eps: float,
) -> None:
    """One tensor's pWD-AdamW step in place (``step_size = lr / (1 - beta1^t)``,
    ``bias_correction2_sqrt = sqrt(1 - beta2^t)``): the ground truth of the loop and the kernels."""
    shrink = pwd_shrink_factor(w, lr=lr, lambda_p=lambda_p, p=p)
    g = g.to(w.dtype)
    m.lerp_(g, 1 - beta1)
    v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
    denom = (v.sqrt() / bias_correction2_sqrt).add_(eps)
    add_quotient_(w, m, denom, -step_size)
    w.mul_(shrink)


def _fused_pwd_adamw(params, grads, exp_avgs, exp_avg_sqs, steps, *, lr, beta1, beta2, eps, lambda_p, p) -> int:
    """:func:`_pwd_adamw_tensor` through compiled kernels; returns how many leading tensors were updated."""
    config = dict(p=p, beta1=beta1, beta2=beta2, eps=eps)
    items = list(zip(params, grads, exp_avgs, exp_avg_sqs))
    coefficients = _compile.adam_coefficients(steps, lr, beta1, beta2)
    return _compile.run("pWD-AdamW", _compiled_adamw, config, items, coefficients, [float(lr), float(lambda_p)])


def _compiled_adamw(w, g, m, v, step_size, bias_correction2_sqrt, lr, lambda_p, **config):
    _pwd_adamw_tensor(
        w,
        g,
        m,
        v,
        lr=lr,
        lambda_p=lambda_p,
        step_size=step_size,
        bias_correction2_sqrt=bias_correction2_sqrt,
        **config,
    )


def _check_pwd(group: dict) -> None:
    check.at_least("lr", group["lr"], 0)
    check.at_least("lambda_p", group["lambda_p"], 0)
    check.above("p", group["p"], 0)


class PWDSGD(SparseOptimizer):
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
        pwd_sgd(params, grads, buffers, **hyper, fused=bool(group.get("fused")))
        for state, buf in zip(states, buffers):
            state["step"] = state.get("step", 0) + 1
            if buf is not None:
                state["momentum_buffer"] = buf


class PWDAdamW(SparseOptimizer):
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
        pwd_adamw(params, grads, exp_avgs, exp_avg_sqs, steps, **hyper, fused=bool(group.get("fused")))
        for state in states:
            state["step"] += 1
