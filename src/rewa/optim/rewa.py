"""ReWA with SGD as the base optimizer (paper, Algorithm 1 and Equation 3)."""

from __future__ import annotations

import warnings
from collections.abc import Iterable

from torch import Tensor

from .. import _check as check
from ..implicit import sparsity_problem
from . import _fused
from ._checked import caller_stacklevel
from ._functional import rewa_sgd, rewa_sgd_bound
from ._fused import fused_rewa_sgd
from ._latent import default_fused, step_paths
from ._one_kernel import OneKernelLatentOptimizer

__all__ = ["ReWA", "SparsityConfigWarning"]


class SparsityConfigWarning(UserWarning):
    """A ReWA setting that, by the paper's Proposition 3.4, does not induce l_p (p < 1) sparsity."""


def warn_unless_sparse(param_groups: list[dict]) -> None:
    """One :class:`SparsityConfigWarning` naming every group setting (K, M, eps) that cannot
    induce sparsity, pointing at the user's line."""
    problems = {sparsity_problem(g["K"], g["M"], g["eps"]) for g in param_groups}
    messages = sorted(problem for problem in problems if problem is not None)
    if messages:
        warnings.warn("; ".join(messages), SparsityConfigWarning, stacklevel=caller_stacklevel())


class ReWA(OneKernelLatentOptimizer):
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
            and one call per up to 32 tensors, see :mod:`rewa.optim._fused`), with the group's
            ``decoupled_weight_decay``. The first step pays the compilation (about 5 s for an
            MLP, 45 s for ResNet-18 on this 2-core CPU; reported in
            ``rewa.optim._fused.compile_seconds``); ``lr`` and ``weight_decay`` enter as data,
            so schedulers do not recompile. If compilation is unavailable it warns once
            (``FusedFallbackWarning``) and uses the loop. ``None`` (default): fused for CPU
            groups whose tensors of 2**15 or more elements hold at least 2**20 elements in all
            (where the compilation pays for itself within a few hundred steps) unless ``foreach``
            is given; not otherwise (on GPUs the foreach path, unmeasured here). ``True`` pays
            on small models too in long runs (an MLP epoch: 0.95-1.05x SGD's against 1.3x eager).
            Not together with ``foreach=True``. Fused steps are as all-or-nothing as the others
            (``check_finite``); a fused model of at most 32 tensors in steady state steps through
            one kernel that also checks its gradients before it writes, and each step after
            such a step checks only what could have changed since (see
            :mod:`rewa.optim._one_kernel`).
        check_finite: a step either completes with finite latents and weights or raises
            ``FloatingPointError`` and changes nothing (see :class:`rewa.optim._checked.CheckedOptimizer`).
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

    def _update_arguments(self, group: dict) -> dict:
        return _hyperparameters(group)

    def _step_group(self, group: dict, params: list[Tensor], grads: list[Tensor]) -> None:
        states = [self.state[p] for p in params]
        latents = self._latents(group, params, states)
        buffers = [state.get("momentum_buffer") for state in states]
        hyper = _hyperparameters(group)
        saved = self._weights_before_zero_lr_step(group["lr"], params)
        fused, loop, multi = step_paths(group, params)
        if fused:
            bufs = _fused.pick(buffers, fused)
            done = fused_rewa_sgd(
                _fused.pick(params, fused), _fused.pick(grads, fused), _fused.pick(latents, fused), bufs, **hyper
            )
            _fused.put(buffers, fused, bufs)
            loop = fused[done:] + loop  # not compiled here: the loop takes them
        for indices, foreach in ((loop, False), (multi, True)):
            if len(indices) == len(params):
                rewa_sgd(params, grads, latents, buffers, **hyper, foreach=foreach)
            elif indices:
                bufs = _fused.pick(buffers, indices)
                rewa_sgd(
                    _fused.pick(params, indices),
                    _fused.pick(grads, indices),
                    _fused.pick(latents, indices),
                    bufs,
                    **hyper,
                    foreach=foreach,
                )
                _fused.put(buffers, indices, bufs)
        self._put_back(params, saved)
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
