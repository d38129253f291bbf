"""ReWA with SGD as the base optimizer (paper, Algorithm 1 and Equation 3).

The class keeps the books; :func:`rewa_sgd` does the math and chooses the implementation, as
``torch.optim.sgd`` does: :func:`_rewa_sgd_tensor` is one tensor's update, the ground truth that
:func:`_single_tensor_rewa_sgd` loops over and :func:`_fused_rewa_sgd` compiles;
:func:`_multi_tensor_rewa_sgd` is its ``torch._foreach_*`` twin. :func:`rewa_sgd_bound` bounds
one step for the finite-step guarantee.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable

import torch
from torch import Tensor

from .. import _check as check
from .._math import (
    Number,
    add_product_,
    add_scaled_,
    gradient_scale,
    is_zero,
    rewa_direction,
    weights_scratch,
    write_weights,
)
from ..implicit import sparsity_problem
from . import _compile
from . import _foreach as foreach_ops
from ._base import (
    SparseOptimizer,
    default_fused,
    pick,
    put,
    put_back,
    step_paths,
    weights_before_zero_lr_step,
)
from ._checks import caller_stacklevel, power_bound

__all__ = ["ReWA", "SparsityConfigWarning", "rewa_sgd", "rewa_sgd_bound"]


class SparsityConfigWarning(UserWarning):
    """A ReWA setting that, by the paper's Proposition 3.4, does not induce l_p (p < 1) sparsity."""


def warn_unless_sparse(param_groups: list[dict]) -> None:
    """One :class:`SparsityConfigWarning` naming every group setting (K, M, eps) that cannot
    induce sparsity, pointing at the user's line."""
    problems = {sparsity_problem(g["K"], g["M"], g["eps"]) for g in param_groups}
    messages = sorted(problem for problem in problems if problem is not None)
    if messages:
        warnings.warn("; ".join(messages), SparsityConfigWarning, stacklevel=caller_stacklevel())


class ReWA(SparseOptimizer):
    r"""ReWA: Reparameterization, Weight decay and Adaptive learning rate, on SGD.

    The model's parameters hold the weights ``x``; the optimizer holds a latent ``y`` with
    ``x = sign(y)|y|^K`` in ``state[p]["y"]``. With ``g`` the gradient of the loss with respect
    to ``x`` (what ``loss.backward()`` leaves in ``p.grad``), one step is

    .. math::

        d_t &= |y_t|^M \, \frac{|y_t|^{K-1}}{|y_t|^{K-1} + \epsilon} \, g_t + \lambda y_t \\
        b_t &= \mu b_{t-1} + (1 - \tau) d_t \quad (b_1 = d_1), \qquad
        v_t = d_t + \mu b_t \text{ (Nesterov) or } b_t \text{ (or } d_t \text{ when } \mu = 0) \\
        y_{t+1} &= y_t - \eta_t v_t \\
        x_{t+1} &= \mathrm{sign}(y_{t+1}) |y_{t+1}|^K

    The decay ``lambda y`` enters the momentum buffer, as in ``torch.optim.SGD`` and the paper's
    code, so a fixed point solves ``|y|^M ratio g + lambda y = 0`` for every momentum: the
    regularizer is Theorem 3.3's ``f + lambda R``. With ``decoupled_weight_decay=True`` the
    decay stays out of the buffer (``d_t`` without ``lambda y_t``, then
    ``y_{t+1} = (1 - eta_t lambda) y_t - eta_t v_t``); its fixed point solves
    ``|y|^M ratio g + lambda (1 - mu) y = 0`` (dampening 0), i.e. a decay ``1/(1 - mu)`` times
    weaker (8x at the paper's momentum 0.875). With ``momentum = 0`` both are Equation 3 of the
    paper (up to rounding). ReWA behaves like l_p regularization with ``p = 1 + (1 - M)/K``
    (Theorem 3.3); sparsity needs ``p < 1`` (Proposition 3.4: ``eps = 0`` and ``M > 1``, or
    ``eps > 0`` and ``M < 2``). ``K = 1, M = 0, eps = 0`` is ``torch.optim.SGD`` with the same
    ``weight_decay`` (bit for bit).

    The defaults are Algorithm 1 as written (no momentum, no decay, the decay coupled as in
    ``torch.optim.SGD``), one neutral setting for any problem. :func:`rewa.recipe` (what
    ``rewa train --method rewa`` runs) differs where networks need it: ``lr = 0.2``,
    ``momentum = 0.9``, the decay decoupled (the form whose total shrink the decay budget sets),
    a weight decay from that budget, a cosine schedule and gradient clipping at 1.

    Args:
        params: parameters or param groups, as for ``torch.optim.SGD``. Every
            hyperparameter below may differ per group (see :func:`rewa.param_groups`).
        lr: learning rate ``eta_t`` (read from the group every step, so schedulers work).
        K: reparameterization power, real, ``1 <= K <= 256`` (paper: 9 for CIFAR-10, 3 for ImageNet).
        M: adaptive learning-rate power, real, ``0 <= M <= K - 1``.
        eps: the paper's epsilon, ``>= 0``, in the denominator ``|y|^(K-1) + eps``.
        weight_decay: ``lambda >= 0``, the decay of the latent ``y``.
        momentum, dampening, nesterov: as in ``torch.optim.SGD``, acting on ``d_t``.
        decoupled_weight_decay: ``False`` (default): ``lambda y`` is part of ``d_t`` and enters
            the momentum buffer (torch SGD, the paper's code). ``True``: the decay is applied
            to ``y`` directly, outside the buffer (the default of earlier versions).
        foreach: use the multi-tensor implementation (``True``) or the single-tensor loop
            (``False``). ``None``: on CUDA the multi-tensor one; elsewhere the loop for tensors of
            2**15 elements or more and the multi-tensor one for smaller tensors, which saves
            per-tensor Python and dispatch (the two give the same bits).
        fused: run the group's update as compiled kernels (inductor; one pass over memory
            and one call per up to 32 tensors, see :mod:`rewa.optim._compile`), with the group's
            ``decoupled_weight_decay``. The first step pays the compilation (about 5 s for an
            MLP, 45 s for ResNet-18 on a 2-core CPU; reported in
            ``rewa.optim._compile.compile_seconds``); ``lr`` and ``weight_decay`` enter as data,
            so schedulers do not recompile. If compilation is unavailable it warns once
            (``FusedFallbackWarning``) and uses the loop. ``None`` (default): fused for CPU
            groups whose tensors of 2**15 or more elements hold at least 2**20 elements in all
            (where the compilation pays for itself within a few hundred steps) unless ``foreach``
            is given; not otherwise (on GPUs the foreach path, unmeasured here). ``True`` pays
            on small models too in long runs (an MLP epoch: MLPFUSED SGD's against MLPEAGER
            eager, ``benchmarks/mlp_epoch.py``). Not together with ``foreach=True``. Fused steps
            are as all-or-nothing as the others (``check_finite``).
        check_finite: a step either completes with finite latents and weights or raises
            ``FloatingPointError`` and changes nothing (see :mod:`rewa.optim._checks`).
            Costs one reduction of each gradient and one host sync per step and device (the
            bounds of ``|y|`` and the buffer carry over from the step before); ``False``
            removes every check.

    Notes on departures from the paper:
        * Powers are taken of ``|y|`` (Remark C.3), so odd or fractional ``M`` keeps the sign
          of the gradient and never produces NaN; the paper writes ``y^M`` for even ``M``.
        * The factor ``|y|^(K-1)/(|y|^(K-1) + eps)`` is computed as
          ``1/(1 + eps/|y|^(K-1))``: with ``eps = 0`` it is 1 everywhere, including its limit at
          ``y = 0``, so a coordinate at exactly zero still moves when ``M = 0``.
        * Momentum is an addition (Appendix D.2 trains with momentum 0.875 but Algorithm 1 has
          none); it acts on ``d_t`` including the decay term, as in the paper's code.
        * Other implementations that multiply the ``|y|^(K-1)`` term by ``K`` (the chain rule of
          ``y^K``) have an epsilon ``K`` times this one for the same update.
        * The latent is kept, never recomputed from ``x``: a weight that underflows to 0 in its
          dtype keeps its ``y`` and can grow back. If something else changes a parameter in
          place (``model.load_state_dict``, ``with torch.no_grad(): p.mul_(mask)``) the next
          step notices through the tensor's version counter and re-derives ``y`` from the new
          weights. Writes through ``p.data`` are invisible to that counter; avoid them.

    Reference:
        Theoretical Analysis of Sparse Optimization with Reparameterization, Weight Decay,
        and Adaptive Learning Rate (ICML 2026), Algorithm 1.

    Example:
        >>> import torch, rewa
        >>> model = torch.nn.Linear(20, 1)
        >>> opt = rewa.ReWA(rewa.param_groups(model), lr=0.05, K=9, M=2, weight_decay=0.1)
        >>> x, y = torch.randn(64, 20), torch.randn(64, 1)
        >>> for _ in range(3):
        ...     opt.zero_grad()
        ...     torch.nn.functional.mse_loss(model(x), y).backward()
        ...     opt.step()
        >>> opt.state[model.weight]["y"].dtype
        torch.float32
    """

    _latent_state_keys = ("y", "momentum_buffer")

    def __init__(
        self,
        params: Iterable,
        lr: float = 1e-3,
        K: float = 9,
        M: float = 2,
        eps: float = 0.0,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
        dampening: float = 0.0,
        nesterov: bool = False,
        *,
        decoupled_weight_decay: bool = False,
        foreach: bool | None = None,
        fused: bool | None = None,
        check_finite: bool = True,
    ):
        defaults = dict(
            lr=lr,
            K=K,
            M=M,
            eps=eps,
            weight_decay=weight_decay,
            momentum=momentum,
            dampening=dampening,
            nesterov=nesterov,
            decoupled_weight_decay=decoupled_weight_decay,
            foreach=foreach,
            fused=fused,
            check_finite=check_finite,
        )
        super().__init__(params, defaults)
        warn_unless_sparse(self.param_groups)

    def _check_group(self, group: dict) -> None:
        check.at_least("lr", group["lr"], 0)
        check.check_reparameterization(group["K"], group["M"], group["eps"])
        check.at_least("weight_decay", group["weight_decay"], 0)
        check.check_momentum(group)
        default_fused(group.setdefault("fused", None), group["foreach"], [])

    def _guard_keys(self, group: dict) -> tuple[str, ...]:
        return ("momentum_buffer",) if group["momentum"] != 0 else ()

    def _update_bound(
        self, group: dict, states: list[dict], *, y_max: float, grad_max: float, others: list[float], limit: float
    ) -> tuple[float, list[float]]:
        y_bound, buffer_bound = rewa_sgd_bound(
            y_max=y_max,
            grad_max=grad_max,
            buffer_max=others[0] if others else None,
            lr=group["lr"],
            K=group["K"],
            M=group["M"],
            weight_decay=group["weight_decay"],
            momentum=group["momentum"],
            dampening=group["dampening"],
            nesterov=group["nesterov"],
            decoupled_weight_decay=group["decoupled_weight_decay"],
            limit=limit,
        )
        return y_bound, [] if buffer_bound is None else [buffer_bound]

    def _step_group(self, group: dict, params: list[Tensor], grads: list[Tensor]) -> None:
        states = [self.state[p] for p in params]
        latents = self._latents(group, params, states)
        buffers = [state.get("momentum_buffer") for state in states]
        saved = weights_before_zero_lr_step(group["lr"], params)
        for indices, path in zip(step_paths(group, params), ("fused", "loop", "foreach")):
            if not indices:
                continue
            fused, foreach = path == "fused", path == "foreach"
            if len(indices) == len(params):
                rewa_sgd(params, grads, latents, buffers, **_hyperparameters(group), foreach=foreach, fused=fused)
                continue
            bufs = pick(buffers, indices)
            rewa_sgd(
                pick(params, indices),
                pick(grads, indices),
                pick(latents, indices),
                bufs,
                **_hyperparameters(group),
                foreach=foreach,
                fused=fused,
            )
            put(buffers, indices, bufs)
        put_back(params, saved)
        if group["momentum"] != 0:
            for state, buf in zip(states, buffers):
                state["momentum_buffer"] = buf
        self._mark_written(params, states)


def _hyperparameters(group: dict) -> dict:
    """The keyword arguments of :func:`rewa_sgd` from a param group."""
    return dict(
        lr=group["lr"],
        K=group["K"],
        M=group["M"],
        eps=group["eps"],
        weight_decay=group["weight_decay"],
        momentum=group["momentum"],
        dampening=group["dampening"],
        nesterov=group["nesterov"],
        decoupled_weight_decay=group["decoupled_weight_decay"],
    )


# ----------------------------------------------------------------------------------------
# The update, as keyword-only functions over lists of tensors
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
    fused: bool = False,
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

    ``foreach=True`` runs the multi-tensor implementation, ``fused=True`` compiled kernels (the
    tensors they cannot take, and all of them where compilation is unavailable, take the loop);
    otherwise the single-tensor loop. All three compute :func:`_rewa_sgd_tensor`.
    """
    if fused and foreach:
        raise ValueError(f"fused={fused} and foreach={foreach} cannot both be True; pick one")
    hyper = dict(
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
    if fused:
        done = _fused_rewa_sgd(params, grads, latents, momentum_buffers, **hyper)
        if done < len(params):  # not compiled here: the loop takes them
            rest = momentum_buffers[done:]
            _single_tensor_rewa_sgd(params[done:], grads[done:], latents[done:], rest, **hyper)
            momentum_buffers[done:] = rest
        return
    impl = _multi_tensor_rewa_sgd if foreach else _single_tensor_rewa_sgd
    impl(params, grads, latents, momentum_buffers, **hyper)


def _rewa_sgd_tensor(
    param: Tensor,
    grad: Tensor,
    y: Tensor,
    buf: Tensor | None,
    *,
    lr: Number | Tensor,
    weight_decay: Number | Tensor,
    K: float,
    M: float,
    eps: float,
    momentum: float,
    buffer_coefficients: tuple[Number | Tensor, Number | Tensor],
    nesterov: bool,
    decoupled_weight_decay: bool,
    scratch: Tensor | None = None,
) -> Tensor | None:
    """One tensor's ReWA-SGD step, in place on ``y``, ``param`` and ``buf``: the ground truth
    that the loop runs and the compiled kernels trace. Returns the momentum buffer (new when
    ``buf`` is ``None``: ``b = d`` on the first step, as torch SGD).

    ``buffer_coefficients`` ``(beta, alpha)`` make ``b <- beta*b + alpha*d``: ``(momentum,
    1 - dampening)``, or ``(0, 1)`` on a zero buffer (the compiled first step). ``scratch``: the
    weights as working memory (:func:`rewa._math.weights_scratch`). The numbers may be 0-dim
    tensors (compiled kernels); ``K``, ``M``, ``eps``, ``momentum`` and the flags are constants.
    """
    coupled = not decoupled_weight_decay and not is_zero(weight_decay)
    if momentum != 0 and buf is not None and not nesterov and not coupled:
        # b <- beta b + alpha * scale * g with d = scale * g never written out: one pass fewer
        beta, alpha = buffer_coefficients
        buf.mul_(beta)
        g = grad.to(y.dtype)
        if is_zero(M) and is_zero(eps):  # the scale is 1
            add_scaled_(buf, g, alpha)
        else:
            add_product_(buf, gradient_scale(y, K=K, M=M, eps=eps, out=scratch), g, alpha)
        v = buf
    else:
        d = rewa_direction(y, grad, K=K, M=M, eps=eps, out=scratch)  # |y|^M ratio g, in y's dtype
        if coupled:
            d = _plus_decay(d, grad, y, weight_decay, scratch)
        v = d
        if momentum != 0:
            if buf is None:
                buf = d.clone()  # the first step: b = d, as torch SGD
            else:
                beta, alpha = buffer_coefficients
                add_scaled_(buf.mul_(beta), d, alpha)
            v = d.add(buf, alpha=momentum) if nesterov else buf
    if decoupled_weight_decay and not is_zero(weight_decay):
        y.mul_(1 - lr * weight_decay)
    add_scaled_(y, v, -lr)
    write_weights(param, y, K, scratch=scratch)
    return buf


def _plus_decay(d: Tensor, grad: Tensor, y: Tensor, weight_decay, scratch: Tensor | None) -> Tensor:
    """``d + weight_decay * y`` (torch SGD's ``grad.add(param, alpha=weight_decay)``), in place
    unless ``d`` is the gradient itself, which is only read."""
    if d is not grad:
        return add_scaled_(d, y, weight_decay)
    if scratch is not None:
        return torch.add(grad, y, alpha=weight_decay, out=scratch)
    return add_scaled_(grad.clone(), y, weight_decay)


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
    for i, (param, grad, y) in enumerate(zip(params, grads, latents)):
        momentum_buffers[i] = _rewa_sgd_tensor(
            param,
            grad,
            y,
            momentum_buffers[i],
            lr=lr,
            weight_decay=weight_decay,
            K=K,
            M=M,
            eps=eps,
            momentum=momentum,
            buffer_coefficients=(momentum, 1 - dampening),
            nesterov=nesterov,
            decoupled_weight_decay=decoupled_weight_decay,
            scratch=weights_scratch(param, y),
        )


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
        scales = foreach_ops.gradient_scales(
            latents, K=K, M=M, eps=eps, out=foreach_ops.weights_as_scratch(params, latents)
        )
        torch._foreach_mul_(momentum_buffers, momentum)
        if scales is None:
            torch._foreach_add_(momentum_buffers, grads, alpha=1 - dampening)
        else:
            torch._foreach_addcmul_(momentum_buffers, scales, grads, 1 - dampening)
        steps = momentum_buffers
    else:
        scratch = foreach_ops.weights_as_scratch(params, latents)
        steps = foreach_ops.directions(latents, grads, K=K, M=M, eps=eps, out=scratch)
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
    foreach_ops.write_weights(params, latents, K)


def _fused_rewa_sgd(
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
) -> int:
    """:func:`_rewa_sgd_tensor` through compiled kernels (:mod:`._compile`); returns how many
    leading tensors were updated (all unless compilation is unavailable or a tensor is not
    contiguous: the caller runs the rest through the loop)."""
    config = dict(
        K=K,
        M=M,
        eps=eps,
        momentum=momentum,
        nesterov=bool(nesterov),
        decoupled_weight_decay=bool(decoupled_weight_decay),
    )
    shared = [float(lr), float(weight_decay)]
    if momentum == 0:
        items = list(zip(params, grads, latents))
        return _compile.run("ReWA", _compiled_without_momentum, config, items, [[]] * len(items), shared)
    items, coefficients, created = _compile.with_buffers(
        params, grads, [latents], momentum_buffers, momentum, dampening
    )
    done = _compile.run("ReWA", _compiled_with_momentum, config, items, coefficients, shared)
    _compile.drop_unused_buffers(momentum_buffers, created, done)
    return done


def _compiled_with_momentum(x, g, y, buf, beta, alpha, lr, weight_decay, **config):
    _rewa_sgd_tensor(x, g, y, buf, lr=lr, weight_decay=weight_decay, buffer_coefficients=(beta, alpha), **config)


def _compiled_without_momentum(x, g, y, lr, weight_decay, **config):
    _rewa_sgd_tensor(x, g, y, None, lr=lr, weight_decay=weight_decay, buffer_coefficients=(0.0, 1.0), **config)


# ----------------------------------------------------------------------------------------
# Upper bound of one step, for the finite-step guarantee (see _checks)
# ----------------------------------------------------------------------------------------


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
    scale = power_bound(y_max, M) if M else 1.0
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
