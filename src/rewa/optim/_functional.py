"""The ReWA updates as keyword-only functions over lists of tensors.

Each update has a single-tensor loop and a multi-tensor (``torch._foreach_*``) twin;
:func:`rewa_sgd` and :func:`rewa_adamw` choose between them in one place. The optimizer
classes keep the books (state, groups, steps) and call these functions; the element-wise math
(power map, gradient scale, heavy ball) is :mod:`rewa._math`, and the paper-literal reference
the tests hold these against is :mod:`rewa.optim.reference`.
"""

from __future__ import annotations

import math
from numbers import Real

import torch
from torch import Tensor

from .._math import (
    Number,
    gradient_scale,
    heavy_ball,
    is_zero,
    normal_floor,
    power_map,
    rewa_direction,
    rewa_update_,
    squarings,
)

__all__ = ["rewa_sgd", "rewa_adamw", "rewa_sgd_bound", "rewa_adamw_bound"]


def _scratch(param: Tensor, y: Tensor) -> Tensor | None:
    """The weight tensor, as working memory for a step that rewrites it at the end anyway.

    Saves the per-step allocations (and on CPUs the page faults) of temporaries; only when
    the weights have the latent's dtype, so no intermediate is rounded.
    """
    return param if param.dtype == y.dtype else None


def _write_weights(param: Tensor, y: Tensor, K: Number) -> None:
    if _scratch(param, y) is not None:
        power_map(y, K, out=param)
    else:
        param.copy_(power_map(y, K))


# ----------------------------------------------------------------------------------------
# ReWA on SGD (Algorithm 1 / Equation 3, with optional heavy-ball momentum)
# ----------------------------------------------------------------------------------------


def rewa_sgd(
    params: list[Tensor],
    grads: list[Tensor],
    latents: list[Tensor],
    momentum_buffers: list[Tensor | None],
    *,
    lr: float,
    K: float,
    M: float,
    eps: float,
    weight_decay: float,
    momentum: float,
    dampening: float,
    nesterov: bool,
    decoupled_weight_decay: bool = False,
    foreach: bool = False,
) -> None:
    """One ReWA-SGD step, in place on ``latents``, ``params`` and ``momentum_buffers``.

    With ``d`` the scaled gradient, by default (as ``torch.optim.SGD`` and the paper's code) the
    decay enters the direction: ``d' = d + weight_decay*y``; ``v = d'`` or its momentum
    (torch SGD semantics: ``b <- momentum*b + (1 - dampening)*d'``, ``b = d'`` on the first
    step, ``v = d' + momentum*b`` with Nesterov); ``y <- y - lr*v``. With
    ``decoupled_weight_decay=True`` the momentum acts on ``d`` alone and
    ``y <- (1 - lr*weight_decay) * y - lr*v``. Without momentum the two are the same update
    (Equation 3) up to rounding. Then ``params <- power_map(y)``. New momentum buffers are
    written into ``momentum_buffers`` where it held ``None``.
    """
    impl = _multi_tensor_rewa_sgd if foreach else _single_tensor_rewa_sgd
    impl(
        params,
        grads,
        latents,
        momentum_buffers,
        lr=lr,
        K=K,
        M=M,
        eps=eps,
        weight_decay=weight_decay,
        momentum=momentum,
        dampening=dampening,
        nesterov=nesterov,
        decoupled_weight_decay=decoupled_weight_decay,
    )


def _with_coupled_decay(step: Tensor, grad: Tensor, y: Tensor, weight_decay: float, scratch: Tensor | None) -> Tensor:
    """``step + weight_decay * y`` (torch SGD's ``grad.add(param, alpha=weight_decay)``).

    In place when ``step`` is working memory; ``grad`` (which ``step`` may be) is never written.
    """
    if step is not grad:
        return step.add_(y, alpha=weight_decay)
    if scratch is not None:
        return torch.add(grad, y, alpha=weight_decay, out=scratch)
    return grad.add(y, alpha=weight_decay)


def _single_tensor_rewa_sgd(
    params,
    grads,
    latents,
    momentum_buffers,
    *,
    lr,
    K,
    M,
    eps,
    weight_decay,
    momentum,
    dampening,
    nesterov,
    decoupled_weight_decay,
):
    coupled = weight_decay != 0 and not decoupled_weight_decay
    for i, (param, grad, y) in enumerate(zip(params, grads, latents)):
        scratch = _scratch(param, y)
        buf = momentum_buffers[i]
        if buf is not None and not nesterov and not coupled:
            # b <- momentum*b + (1 - dampening) * scale * g, the scaling folded into the update (kept
            # here too: unfolding it changes the last bit of every trajectory with momentum)
            grad = grad.to(y.dtype)
            buf.mul_(momentum)
            if is_zero(M) and is_zero(eps):
                buf.add_(grad, alpha=1 - dampening)
            else:
                buf.addcmul_(gradient_scale(y, K=K, M=M, eps=eps, out=scratch), grad, value=1 - dampening)
            step = buf
        else:
            step = rewa_direction(y, grad, K=K, M=M, eps=eps, out=scratch)
            if coupled:
                step = _with_coupled_decay(step, grad, y, weight_decay, scratch)
            step = heavy_ball(step, momentum_buffers, i, momentum=momentum, dampening=dampening, nesterov=nesterov)
        rewa_update_(y, step, lr=lr, weight_decay=0.0 if coupled else weight_decay)
        _write_weights(param, y, K)


def _multi_tensor_abs_pow(latents, exponent, flush_exponent=None, out=None):
    """``abs_pow`` over a list, with the same operations (so the same bits) per tensor."""
    if is_zero(exponent):  # |y|^0 = 1 (K = 1 with eps > 0)
        if out is None:
            return [torch.ones_like(y) for y in latents]
        torch._foreach_zero_(out)
        torch._foreach_add_(out, 1.0)
        return out
    k = squarings(exponent)
    # On CPUs the foreach kernels are per-tensor loops, and an out= write saves the copy pass.
    per_tensor_out = out is not None and out[0].device.type == "cpu"
    if k is None:
        if out is None:
            out = torch._foreach_abs(latents)
        elif per_tensor_out:
            for o, y in zip(out, latents):
                torch.abs(y, out=o)
        else:
            torch._foreach_copy_(out, latents)
            torch._foreach_abs_(out)
        if exponent > 0:
            for t in out:
                torch.nn.functional.threshold_(t, normal_floor(t.dtype, flush_exponent or exponent), 0.0)
        torch._foreach_pow_(out, exponent)
        return out
    if out is None:
        out = torch._foreach_mul(latents, latents)
    elif per_tensor_out:
        for o, y in zip(out, latents):
            torch.mul(y, y, out=o)
    else:
        torch._foreach_copy_(out, latents)
        torch._foreach_mul_(out, latents)
    for t in out:
        torch.nn.functional.threshold_(t, normal_floor(t.dtype, flush_exponent or exponent) ** 2, 0.0)
    for _ in range(k - 1):
        torch._foreach_mul_(out, out)
    return out


def _multi_tensor_scratch(params, latents):
    """``params`` as working memory when every one has its latent's dtype (see ``_scratch``)."""
    return params if all(p.dtype == y.dtype for p, y in zip(params, latents)) else None


def _multi_tensor_gradient_scales(latents, *, K, M, eps, out=None):
    """``gradient_scale`` over a list; ``None`` when the factor is identically 1."""
    if is_zero(M) and is_zero(eps):
        return None
    if is_zero(eps):
        return _multi_tensor_abs_pow(latents, M, out=out)
    ratio = _multi_tensor_abs_pow(latents, K - 1, out=out)
    torch._foreach_reciprocal_(ratio)
    torch._foreach_mul_(ratio, eps)
    torch._foreach_add_(ratio, 1)
    torch._foreach_reciprocal_(ratio)
    if isinstance(M, Real) and M == 2:  # as _times_abs_pow_
        torch._foreach_mul_(ratio, latents)
        torch._foreach_mul_(ratio, latents)
    elif not is_zero(M):
        torch._foreach_mul_(ratio, _multi_tensor_abs_pow(latents, M))
    return ratio


def _multi_tensor_directions(latents, grads, *, K, M, eps, out=None):
    grads = [g if g.dtype == y.dtype else g.to(y.dtype) for g, y in zip(grads, latents)]
    scales = _multi_tensor_gradient_scales(latents, K=K, M=M, eps=eps, out=out)
    if scales is None:
        return grads
    torch._foreach_mul_(scales, grads)
    return scales


def _multi_tensor_write_weights(params, latents, K):
    scratch = _multi_tensor_scratch(params, latents)
    if K == 1:
        torch._foreach_copy_(params, latents)
        return
    weights = _multi_tensor_abs_pow(latents, K - 1, flush_exponent=K, out=scratch)
    torch._foreach_mul_(weights, latents)
    if scratch is None:
        torch._foreach_copy_(params, weights)


def _multi_tensor_rewa_sgd(
    params,
    grads,
    latents,
    momentum_buffers,
    *,
    lr,
    K,
    M,
    eps,
    weight_decay,
    momentum,
    dampening,
    nesterov,
    decoupled_weight_decay,
):
    if not params:
        return
    coupled = weight_decay != 0 and not decoupled_weight_decay
    old = [i for i, b in enumerate(momentum_buffers) if b is not None] if momentum != 0 else []
    if old and not nesterov and not coupled and len(old) == len(params):
        # Steady state of heavy-ball momentum: fold the scaling into the buffer update
        # (b <- momentum*b + (1 - dampening) * scale * g), one pass fewer.
        grads = [g if g.dtype == y.dtype else g.to(y.dtype) for g, y in zip(grads, latents)]
        scales = _multi_tensor_gradient_scales(latents, K=K, M=M, eps=eps, out=_multi_tensor_scratch(params, latents))
        torch._foreach_mul_(momentum_buffers, momentum)
        if scales is None:
            torch._foreach_add_(momentum_buffers, grads, alpha=1 - dampening)
        else:
            torch._foreach_addcmul_(momentum_buffers, scales, grads, 1 - dampening)
        steps = momentum_buffers
    else:
        scratch = _multi_tensor_scratch(params, latents)
        steps = _multi_tensor_directions(latents, grads, K=K, M=M, eps=eps, out=scratch)
        if coupled:  # d' = d + weight_decay*y, as torch's foreach SGD; gradients are only read
            if any(s is g for s, g in zip(steps, grads)):
                steps = torch._foreach_add(steps, latents, alpha=weight_decay)
            else:
                torch._foreach_add_(steps, latents, alpha=weight_decay)
        if momentum != 0:
            if old:
                bufs = [momentum_buffers[i] for i in old]
                torch._foreach_mul_(bufs, momentum)
                torch._foreach_add_(bufs, [steps[i] for i in old], alpha=1 - dampening)
            for i, b in enumerate(momentum_buffers):
                if b is None:
                    momentum_buffers[i] = steps[i].clone()
            if nesterov:
                steps = torch._foreach_add(steps, momentum_buffers, alpha=momentum)
            else:
                steps = momentum_buffers
    if weight_decay != 0 and not coupled:
        torch._foreach_mul_(latents, 1 - lr * weight_decay)
    torch._foreach_add_(latents, steps, alpha=-lr)
    _multi_tensor_write_weights(params, latents, K)


# ----------------------------------------------------------------------------------------
# ReWA on AdamW (Algorithm 2)
# ----------------------------------------------------------------------------------------


def rewa_adamw(
    params: list[Tensor],
    grads: list[Tensor],
    latents: list[Tensor],
    exp_avgs: list[Tensor],
    exp_avg_sqs: list[Tensor],
    steps: list[int],
    *,
    lr: float,
    beta1: float,
    beta2: float,
    adam_eps: float,
    K: float,
    M: float,
    eps: float,
    weight_decay: float,
    foreach: bool = False,
) -> None:
    """One ReWA-AdamW step. ``steps`` holds each tensor's step number *after* this step.

    The scaled gradient ``d`` replaces the gradient in AdamW (torch ``AdamW`` order of
    operations): ``y <- (1 - lr*wd) y``; ``m <- beta1 m + (1-beta1) d``;
    ``v <- beta2 v + (1-beta2) d^2``; ``y <- y - lr/(1-beta1^t) * m / (sqrt(v/(1-beta2^t)) + adam_eps)``;
    then ``params <- power_map(y)``.
    """
    impl = _multi_tensor_rewa_adamw if foreach else _single_tensor_rewa_adamw
    impl(
        params,
        grads,
        latents,
        exp_avgs,
        exp_avg_sqs,
        steps,
        lr=lr,
        beta1=beta1,
        beta2=beta2,
        adam_eps=adam_eps,
        K=K,
        M=M,
        eps=eps,
        weight_decay=weight_decay,
    )


def _single_tensor_rewa_adamw(
    params, grads, latents, exp_avgs, exp_avg_sqs, steps, *, lr, beta1, beta2, adam_eps, K, M, eps, weight_decay
):
    for param, grad, y, exp_avg, exp_avg_sq, step in zip(params, grads, latents, exp_avgs, exp_avg_sqs, steps):
        scratch = _scratch(param, y)
        d = rewa_direction(y, grad, K=K, M=M, eps=eps, out=scratch)
        if weight_decay != 0:
            y.mul_(1 - lr * weight_decay)
        exp_avg.lerp_(d, 1 - beta1)
        exp_avg_sq.mul_(beta2).addcmul_(d, d, value=1 - beta2)
        bias_correction1 = 1 - beta1**step
        bias_correction2_sqrt = (1 - beta2**step) ** 0.5
        denom = torch.sqrt(exp_avg_sq, out=scratch).div_(bias_correction2_sqrt).add_(adam_eps)
        y.addcdiv_(exp_avg, denom, value=-lr / bias_correction1)
        _write_weights(param, y, K)


def _multi_tensor_rewa_adamw(
    params, grads, latents, exp_avgs, exp_avg_sqs, steps, *, lr, beta1, beta2, adam_eps, K, M, eps, weight_decay
):
    if not params:
        return
    scratch = _multi_tensor_scratch(params, latents)
    ds = _multi_tensor_directions(latents, grads, K=K, M=M, eps=eps, out=scratch)
    if weight_decay != 0:
        torch._foreach_mul_(latents, 1 - lr * weight_decay)
    torch._foreach_lerp_(exp_avgs, ds, 1 - beta1)
    torch._foreach_mul_(exp_avg_sqs, beta2)
    torch._foreach_addcmul_(exp_avg_sqs, ds, ds, 1 - beta2)
    step_sizes = [-lr / (1 - beta1**s) for s in steps]
    bias_correction2_sqrt = [(1 - beta2**s) ** 0.5 for s in steps]
    if scratch is None:
        denom = torch._foreach_sqrt(exp_avg_sqs)
    elif scratch[0].device.type == "cpu":
        denom = [torch.sqrt(v, out=o) for v, o in zip(exp_avg_sqs, scratch)]
    else:
        denom = scratch
        torch._foreach_copy_(denom, exp_avg_sqs)
        torch._foreach_sqrt_(denom)
    torch._foreach_div_(denom, bias_correction2_sqrt)
    torch._foreach_add_(denom, adam_eps)
    torch._foreach_addcdiv_(latents, exp_avgs, denom, step_sizes)
    _multi_tensor_write_weights(params, latents, K)


# ----------------------------------------------------------------------------------------
# Upper bounds of one step, for the finite-step guarantee (see ``_checked``)
# ----------------------------------------------------------------------------------------


def _power_bound(base: float, exponent: float) -> float:
    """``base ** exponent`` for ``base >= 0``, ``inf`` instead of OverflowError."""
    try:
        return base**exponent
    except OverflowError:
        return math.inf


def rewa_sgd_bound(
    *,
    y_max: float,
    grad_max: float,
    buffer_max: float | None,
    lr: float,
    K: float,
    M: float,
    weight_decay: float,
    momentum: float,
    dampening: float,
    nesterov: bool,
    decoupled_weight_decay: bool,
    limit: float,
) -> tuple[float, float | None]:
    """Upper bounds of ``|y|`` and of the momentum buffer after one :func:`rewa_sgd` step, from
    the largest ``|y|``, ``|g|`` and buffer entry (``None``: no buffer yet); the buffer's bound
    is ``None`` without momentum, and the ``|y|`` bound ``inf`` when an intermediate value may
    exceed ``limit``. In exact arithmetic, with ``|y|^(K-1)/(|y|^(K-1) + eps) <= 1``:
    ``|d| <= max|y|^M max|g| (+ lambda max|y|)``, ``|b'| <= mu max|b| + (1 - tau)|d|``,
    ``|v| <= |b'|`` (``|d| + mu |b'|`` with Nesterov), ``|y'| <= c max|y| + lr |v|`` with
    ``c = 1`` (or ``|1 - lr lambda|`` decoupled). ``K`` is unused: the caller bounds ``|y'|^K``.
    """
    scale = _power_bound(y_max, M) if M else 1.0
    coupled = not decoupled_weight_decay
    d = scale * grad_max + (weight_decay * y_max if coupled else 0.0)
    v, b = d, None
    if momentum != 0:
        b = d if buffer_max is None else momentum * buffer_max + (1 - dampening) * d
        v = d + momentum * b if nesterov else b
        if not b < limit:
            return math.inf, b
    if not (scale < limit and d < limit and v < limit):
        return math.inf, b
    shrink = 1.0 if coupled else abs(1 - lr * weight_decay)
    return shrink * y_max + lr * v, b


def rewa_adamw_bound(
    *,
    y_max: float,
    grad_max: float,
    step: int,
    lr: float,
    beta1: float,
    beta2: float,
    M: float,
    weight_decay: float,
    limit: float,
) -> float:
    """An upper bound of ``|y|`` after one :func:`rewa_adamw` step (``step``: its number).

    Adam's direction is bounded by Cauchy-Schwarz over the history of ``d``:
    ``|m_t| / sqrt(v_t) <= (1 - beta1)/sqrt(1 - beta2) * sqrt(sum_{k<t} (beta1^2/beta2)^k)``,
    times the bias corrections ``sqrt(1 - beta2^t)/(1 - beta1^t)``; so
    ``|y'| <= |1 - lr lambda| max|y| + lr C_t``. This assumes the moments were built with the
    current betas (as this optimizer builds them); ``inf`` when ``d^2`` may exceed ``limit``.
    """
    d = (_power_bound(y_max, M) if M else 1.0) * grad_max
    if not d * d < limit or beta2 == 0:
        return math.inf
    ratio = beta1 * beta1 / beta2
    terms = step if ratio == 1 else (1 - _power_bound(ratio, step)) / (1 - ratio)
    direction = (1 - beta1) / math.sqrt(1 - beta2) * math.sqrt(terms) * math.sqrt(1 - beta2**step) / (1 - beta1**step)
    return abs(1 - lr * weight_decay) * y_max + lr * direction
