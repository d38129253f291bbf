"""The element-wise math of ReWA, shared by the optimizers, the reparameterizations, the
estimators and the sweep engine.

The bottom of the package (it imports nothing of ``rewa``); the public names are re-exported by
:mod:`rewa.functional`. Notation (paper, Algorithm 1 and Equation 3): the weights are
``x = sign(y)|y|^K``; ``g`` is the gradient of the loss with respect to ``x``. The scaled
gradient is

    d = |y|^M * |y|^(K-1) / (|y|^(K-1) + eps) * g

written with absolute values so any real ``M`` keeps the sign of ``g`` (Remark C.3). The
ratio ``|y|^(K-1) / (|y|^(K-1) + eps)`` is computed as ``1 / (1 + eps / |y|^(K-1))``: it is
exactly 1 when ``eps = 0`` (the limit at ``y = 0``), 0 at ``y = 0`` when ``eps > 0``, and 1
when ``|y|^(K-1)`` overflows, so it is never NaN.
"""

from __future__ import annotations

import functools
from numbers import Real

import torch
from torch import Tensor

__all__ = [
    "abs_pow",
    "latent_from_weight",
    "power_map",
    "gradient_scale",
    "rewa_direction",
    "rewa_update",
    "rewa_update_",
    "heavy_ball",
]

Number = float | int


def _is_real(value: object) -> bool:
    """``isinstance(value, Real)``, with plain floats and ints answered first (every step asks)."""
    kind = type(value)
    return kind is float or kind is int or isinstance(value, Real)


def is_zero(value: Number | Tensor) -> bool:
    return _is_real(value) and bool(value == 0)


def squarings(exponent: Number | Tensor) -> int | None:
    """``k`` when ``exponent == 2**k`` (k >= 1): then ``|y|^exponent`` is ``k`` squarings of ``y``.

    Repeated squaring costs a multiply per squaring instead of a transcendental ``pow``; it
    covers the paper's settings (K - 1 = 8 or 2, M = 2 or 4).
    """
    if _is_real(exponent) and exponent >= 2 and float(exponent).is_integer():
        k = int(exponent).bit_length() - 1
        if 2**k == exponent:
            return k
    return None


@functools.lru_cache(maxsize=256)
def normal_floor(dtype: torch.dtype, exponent: float) -> float:
    """The smallest ``|y|`` whose ``|y|^exponent`` is a normal number of ``dtype``."""
    return torch.finfo(dtype).tiny ** (1.0 / exponent)


def abs_pow(
    y: Tensor, exponent: Number | Tensor, *, flush_exponent: float | None = None, out: Tensor | None = None
) -> Tensor:
    """``|y|^exponent``, with results below the smallest normal number set to 0.

    Subnormal numbers are up to ~100x slower on CPUs, and with K = 9 most unused weights of a
    sparse model would be subnormal; they carry no information a weight needs (below ~1e-38 in
    float32), and the latent ``y`` keeps the exact value. With ``flush_exponent`` the result
    is 0 where ``|y|^flush_exponent`` would be subnormal (``power_map`` flushes by ``|y|^K``).
    ``pow(0, 0) = 1``. Written into ``out`` (same dtype as ``y``) when given, else a new tensor.
    """
    if isinstance(exponent, Tensor):
        result = y.abs().pow(exponent)
        result.masked_fill_(result < torch.finfo(y.dtype).tiny, 0.0)
        return result if out is None else out.copy_(result)
    if is_zero(exponent):  # |y|^0 = 1 everywhere (K = 1 with eps > 0 asks for |y|^(K-1))
        return torch.ones_like(y) if out is None else out.fill_(1.0)
    floor = normal_floor(y.dtype, flush_exponent or exponent)
    k = squarings(exponent)
    if k is None:
        out = torch.abs(y, out=out)
        if exponent > 0:
            torch.nn.functional.threshold_(out, floor, 0.0)  # type: ignore[attr-defined]
        return out.pow_(exponent)
    out = torch.mul(y, y, out=out)
    torch.nn.functional.threshold_(out, floor**2, 0.0)  # type: ignore[attr-defined]
    # Squaring in place aliases the factor autograd would save (PowerPropagation's forward
    # differentiates through this); the optimizers run without autograd and keep it in place.
    in_place = not (torch.is_grad_enabled() and y.requires_grad)
    for _ in range(k - 1):
        out = out.mul_(out) if in_place else out * out
    return out


def power_map(y: Tensor, K: Number | Tensor, *, out: Tensor | None = None) -> Tensor:
    """The weights of a latent: ``x = sign(y)|y|^K``, computed as ``y * |y|^(K-1)``.

    Weights that would be subnormal are written as 0 (see :func:`abs_pow`). Written into
    ``out`` (same dtype as ``y``) when given.
    """
    if _is_real(K) and K == 1:
        return y.clone() if out is None else out.copy_(y)
    if isinstance(K, Tensor):
        x = abs_pow(y, K - 1).mul_(y)
        x.masked_fill_(x.abs() < torch.finfo(y.dtype).tiny, 0.0)
        return x if out is None else out.copy_(x)
    return abs_pow(y, K - 1, flush_exponent=K, out=out).mul_(y)


def latent_from_weight(x: Tensor, K: Number | Tensor, dtype: torch.dtype | None = None) -> Tensor:
    """The latent of a weight: ``y = sign(x)|x|^(1/K)`` (Algorithm 1, line 1), in ``dtype``."""
    x = x.detach().to(dtype=dtype or x.dtype, copy=True)
    if _is_real(K) and K == 1:
        return x
    return x.abs().pow_(1.0 / K).mul_(x.sign())


def gradient_scale(
    y: Tensor, *, K: Number | Tensor, M: Number | Tensor, eps: Number | Tensor, out: Tensor | None = None
) -> Tensor:
    """The per-coordinate factor ``|y|^M * |y|^(K-1) / (|y|^(K-1) + eps)``.

    ``K``, ``M`` and ``eps`` may be tensors that broadcast against ``y`` (the batched sweep
    engine stacks configurations along a leading dimension). Written into ``out`` when given.
    """
    if is_zero(M) and is_zero(eps):
        return torch.ones_like(y) if out is None else out.fill_(1.0)
    if is_zero(eps):
        return abs_pow(y, M, out=out)
    ratio = abs_pow(y, K - 1, out=out).reciprocal_().mul_(eps).add_(1).reciprocal_()
    if isinstance(eps, Tensor):
        if out is None:
            ratio = torch.where(eps == 0, torch.ones_like(ratio), ratio)
        else:
            ratio = ratio.masked_fill_(eps == 0, 1.0)
    return ratio if is_zero(M) else _times_abs_pow_(ratio, y, M)


def _times_abs_pow_(out: Tensor, y: Tensor, M: Number | Tensor) -> Tensor:
    """``out *= |y|^M``; for ``M = 2`` as two products with ``y`` (no temporary tensor)."""
    if _is_real(M) and M == 2:
        return out.mul_(y).mul_(y)
    return out.mul_(abs_pow(y, M))


def rewa_direction(
    y: Tensor, grad: Tensor, *, K: Number | Tensor, M: Number | Tensor, eps: Number | Tensor, out: Tensor | None = None
) -> Tensor:
    """``d = gradient_scale(y) * grad`` in the dtype of ``y``; ``grad`` is never modified.

    When the factor is identically 1 (``M = 0`` and ``eps = 0``) the result may be ``grad``
    itself (or its cast): callers only read it. Otherwise written into ``out`` when given.
    """
    grad = grad.to(y.dtype)
    if is_zero(M) and is_zero(eps):
        return grad
    return gradient_scale(y, K=K, M=M, eps=eps, out=out).mul_(grad)


# ----------------------------------------------------------------------------------------
# Algorithm 1, line 3, and heavy-ball momentum
# ----------------------------------------------------------------------------------------


def rewa_update_(y: Tensor, d: Tensor, *, lr: float, weight_decay: Number | Tensor) -> Tensor:
    """Algorithm 1, line 3, in place: ``y <- (1 - lr*weight_decay) y - lr*d``; returns ``y``.

    ``weight_decay`` may be a tensor that broadcasts against ``y`` (one decay per sweep row).
    """
    if not is_zero(weight_decay):
        y.mul_(1 - lr * weight_decay)
    return y.add_(d, alpha=-lr)


def rewa_update(y: Tensor, d: Tensor, *, lr: float, weight_decay: Number | Tensor) -> Tensor:
    """Algorithm 1, line 3, into a new tensor (``y`` is kept): for line searches that may reject
    the step. Its roundings can differ from :func:`rewa_update_` in the last bit."""
    return y - lr * d if is_zero(weight_decay) else y * (1 - lr * weight_decay) - lr * d


def heavy_ball(
    d: Tensor, buffers: list[Tensor | None], i: int, *, momentum: float, dampening: float, nesterov: bool
) -> Tensor:
    """torch-SGD momentum on ``d``: ``b <- mu b + (1 - tau) d`` (``b = d`` first), returns the
    direction (``d + mu b`` with Nesterov, else ``b``). Writes a new buffer into ``buffers[i]``."""
    if momentum == 0:
        return d
    buf = buffers[i]
    if buf is None:
        buf = d.clone()
        buffers[i] = buf
    else:
        buf.mul_(momentum).add_(d, alpha=1 - dampening)
    return d.add(buf, alpha=momentum) if nesterov else buf


# ----------------------------------------------------------------------------------------
# Pieces of the optimizers' per-tensor updates. Their numbers (lr, weight decay, momentum
# coefficients) are Python floats in the eager loop and 0-dim tensors when the same update is
# traced into a compiled kernel (where numbers enter as data, so schedulers do not recompile).
# ----------------------------------------------------------------------------------------


def add_scaled_(t: Tensor, other: Tensor, alpha: Number | Tensor) -> Tensor:
    """``t += alpha * other`` in place: torch's ``add_(other, alpha=alpha)`` (the operation of
    ``torch.optim.SGD``) for a number, a product then a sum for a 0-dim tensor."""
    if isinstance(alpha, Tensor):
        return t.add_(other * alpha)
    return t.add_(other, alpha=alpha)


def add_product_(t: Tensor, a: Tensor, b: Tensor, alpha: Number | Tensor) -> Tensor:
    """``t += alpha * a * b`` in place: ``addcmul_`` for a number, products then a sum for a 0-dim tensor."""
    if isinstance(alpha, Tensor):
        return t.add_(a * b * alpha)
    return t.addcmul_(a, b, value=alpha)


def add_quotient_(t: Tensor, a: Tensor, b: Tensor, alpha: Number | Tensor) -> Tensor:
    """``t += alpha * a / b`` in place: ``addcdiv_`` for a number, a quotient, a product and a
    sum for a 0-dim tensor."""
    if isinstance(alpha, Tensor):
        return t.add_(a / b * alpha)
    return t.addcdiv_(a, b, value=alpha)


def adam_bias_corrections(step: int, lr: float, beta1: float, beta2: float) -> tuple[float, float]:
    """Adam's step size ``lr / (1 - beta1^t)`` and ``sqrt(1 - beta2^t)`` for the step number ``t``."""
    return lr / (1 - beta1**step), (1 - beta2**step) ** 0.5


def weights_scratch(param: Tensor, y: Tensor) -> Tensor | None:
    """The weight tensor, as working memory for a step that rewrites it at the end anyway.

    Saves the per-step allocations (and on CPUs the page faults) of temporaries; only when
    the weights have the latent's dtype, so no intermediate is rounded.
    """
    return param if param.dtype == y.dtype else None


def write_weights(param: Tensor, y: Tensor, K: Number, *, scratch: Tensor | None) -> None:
    """``param <- power_map(y)``, computed in ``param`` itself when it is the step's ``scratch``."""
    if scratch is param:
        power_map(y, K, out=param)
    else:
        param.copy_(power_map(y, K))
