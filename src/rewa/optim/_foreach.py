"""The multi-tensor (``torch._foreach_*``) pieces the ReWA updates share: the power ``|y|^a``,
the gradient scale and the weights ``power_map(y)`` over lists of tensors, with the same
operations per tensor as :mod:`rewa._math` (so the same bits as the single-tensor loop)."""

from __future__ import annotations

from numbers import Real

import torch

from .._math import is_zero, normal_floor, squarings


def abs_pow(latents, exponent, flush_exponent=None, out=None):
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


def weights_as_scratch(params, latents):
    """``params`` as working memory when every one has its latent's dtype (see :func:`rewa._math.weights_scratch`)."""
    return params if all(p.dtype == y.dtype for p, y in zip(params, latents)) else None


def gradient_scales(latents, *, K, M, eps, out=None):
    """``gradient_scale`` over a list; ``None`` when the factor is identically 1."""
    if is_zero(M) and is_zero(eps):
        return None
    if is_zero(eps):
        return abs_pow(latents, M, out=out)
    ratio = abs_pow(latents, K - 1, out=out)
    torch._foreach_reciprocal_(ratio)
    torch._foreach_mul_(ratio, eps)
    torch._foreach_add_(ratio, 1)
    torch._foreach_reciprocal_(ratio)
    if isinstance(M, Real) and M == 2:  # as _times_abs_pow_
        torch._foreach_mul_(ratio, latents)
        torch._foreach_mul_(ratio, latents)
    elif not is_zero(M):
        torch._foreach_mul_(ratio, abs_pow(latents, M))
    return ratio


def directions(latents, grads, *, K, M, eps, out=None):
    grads = [g if g.dtype == y.dtype else g.to(y.dtype) for g, y in zip(grads, latents)]
    scales = gradient_scales(latents, K=K, M=M, eps=eps, out=out)
    if scales is None:
        return grads
    torch._foreach_mul_(scales, grads)
    return scales


def write_weights(params, latents, K):
    scratch = weights_as_scratch(params, latents)
    if K == 1:
        torch._foreach_copy_(params, latents)
        return
    weights = abs_pow(latents, K - 1, flush_exponent=K, out=scratch)
    torch._foreach_mul_(weights, latents)
    if scratch is None:
        torch._foreach_copy_(params, weights)
