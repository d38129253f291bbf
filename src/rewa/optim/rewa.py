"""ReWA with SGD as the base optimizer (paper, Algorithm 1 and Equation 3).

The class keeps the books; :func:`rewa_sgd` does the math and chooses the implementation, as
``torch.optim.sgd`` does: :func:`_rewa_sgd_tensor` is one tensor's update, the ground truth that
:func:`_single_tensor_rewa_sgd` loops over and :func:`_fused_rewa_sgd` compiles;
:func:`_multi_tensor_rewa_sgd` is its ``torch._foreach_*`` twin. :func:`rewa_sgd_bound` bounds
one step for the finite-step guarantee. Small fused models also have a one-kernel checked step
(:meth:`ReWA._checked_fused_step`).
"""

from __future__ import annotations

import functools
import math
import operator
import warnings
from collections.abc import Callable, Iterable
from typing import NamedTuple

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
    BOUNDS_KEY,
    Bounds,
    SparseOptimizer,
    default_fused,
    pick,
    put,
    put_back,
    step_paths,
    weights_before_zero_lr_step,
    widened,
)
from ._checks import caller_stacklevel, entries_of, has_values, plain_values, power_bound, stamps, untouched

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
            on small models too in long runs (an MLP epoch: 0.96-1.12x SGD's against 1.17-1.3x eager).
            Not together with ``foreach=True``. Fused steps are as all-or-nothing as the others
            (``check_finite``); a fused model of at most 32 tensors in steady state steps through
            one kernel that also checks its gradients before it writes, and each step after
            such a step checks only what could have changed since (:meth:`ReWA._checked_fused_step`).
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
        hyper = _hyperparameters(group)
        for indices, path in zip(step_paths(group, params), ("fused", "loop", "foreach")):
            if not indices:
                continue
            fused, foreach = path == "fused", path == "foreach"
            if len(indices) == len(params):
                rewa_sgd(params, grads, latents, buffers, **hyper, foreach=foreach, fused=fused)
                continue
            bufs = pick(buffers, indices)
            rewa_sgd(
                pick(params, indices),
                pick(grads, indices),
                pick(latents, indices),
                bufs,
                **hyper,
                foreach=foreach,
                fused=fused,
            )
            put(buffers, indices, bufs)
        put_back(params, saved)
        if group["momentum"] != 0:
            for state, buf in zip(states, buffers):
                state["momentum_buffer"] = buf
        self._mark_written(params, states)

    # -- the one-kernel checked step of small fused models ------------------------------------

    def _checked_fused_step(self, work) -> bool:
        """Small fused models in steady state: every group's step in one kernel that reduces the
        gradients and writes only if they are finite and within the limit the carried bounds
        allow (:func:`checked_rewa_sgd_kernel`), instead of per-tensor
        reductions, a transfer and per-group kernels. It applies when every group is fused,
        checked, has ``lr > 0``, existing momentum buffers and state untouched since its last
        step, with at most ``FUSED_MAX_TENSORS`` tensors in all. If the kernel finds a gradient
        out of bounds nothing was written, and the step takes the general path (which measures
        exactly, raises or steps). A step taken so leaves a plan for the next
        (:meth:`_repeat_step`), which then holds the bounds in place of the states' records."""
        specs, parts, records, grads = [], [], [], []
        for group, params, group_grads, checked in work:
            carried = checked.carried
            if (
                carried is None
                or not group["check_finite"]
                or not group["lr"] > 0
                or not default_fused(group["fused"], group["foreach"], params)
                or not all(map(has_values, group_grads))
            ):
                return False
            states = checked.states
            buffers = [state.get("momentum_buffer") for state in states] if group["momentum"] != 0 else []
            if any(b is None for b in buffers):
                return False
            specs.append(
                dict(
                    _hyperparameters(group),
                    params=params,
                    grads=group_grads,
                    latents=[state["y"] for state in states],
                    buffers=buffers,
                )
            )
            parts.append((group, params, states, carried.bounds))
            records.append(carried)
            grads += group_grads
        kernel = checked_rewa_sgd_kernel(specs) if specs else None
        if kernel is None:
            return False
        groups = [part[0] for part in parts]
        values = [plain_values(group, skip="lr") for group in groups]
        plan = None
        if all(v is not None for v in values) and all(len(ps) == len(g["params"]) for g, ps, _, _ in parts):
            first = records[0]  # every group's record watches the same keys
            params = [p for _, ps, _, _ in parts for p in ps]
            plan = StepPlan(
                groups=tuple(groups),
                values=tuple(values),
                grad_layouts=tuple((g.shape, g.dtype, g.device) for g in grads),
                kernel=kernel,
                params=tuple(params),
                keys=first.keys,
                tensors=tuple(t for record in records for t in record.tensors),
            )
        overflow = tuple(self._overflow_limits(group, params) for group, params, _, _ in parts)
        if plan is not None:
            plan.overflow = overflow
        return bool(self._run_checked_kernel(plan, kernel, parts, overflow, grads))

    def _repeat_step(self) -> bool | None:
        """The one-kernel step again, if the plan the last one left still holds: the same groups,
        their hyperparameters unchanged but ``lr`` (still a number > 0), every parameter with a
        gradient laid out as then, and every state entry and tensor as that step left it (by
        identity and version counter: nothing else wrote to them since). These checks replace
        ``_collect``'s: they establish the same things for a step that is known to be like the
        last."""
        plan = self.__dict__.pop(_PLAN_KEY, None)  # kept again only by a step that follows it
        if plan is None or len(self.param_groups) != len(plan.groups):
            return None
        get, strided = self.state.get, torch.strided
        grads, states, params = [], [], []
        layouts = iter(plan.grad_layouts)
        for group, planned, values in zip(self.param_groups, plan.groups, plan.values):
            lr = group["lr"]
            if (
                group is not planned
                or not (type(lr) is float or type(lr) is int)
                or not 0 < lr < math.inf
                or plain_values(group, skip="lr") != values
            ):
                return None
            for p in group["params"]:
                g = p.grad
                shape, dtype, device = next(layouts, _NO_LAYOUT)
                if (
                    type(g) is not Tensor
                    or g.layout is not strided
                    or g.dtype is not dtype
                    or g.shape != shape
                    or g.device != device
                    or not g.is_contiguous()
                    or not p.is_contiguous()
                ):
                    return None
                grads.append(g)
                states.append(get(p))
                params.append(p)
        if not untouched(plan, params, states):
            return None
        parts, at = [], 0
        for group, bounds in zip(plan.groups, plan.bounds):
            count = len(group["params"])
            parts.append((group, params[at : at + count], states[at : at + count], bounds))
            at += count
        return self._run_checked_kernel(plan, plan.kernel, parts, plan.overflow, grads)

    def _run_checked_kernel(self, plan: StepPlan | None, kernel: CheckedKernel, parts, overflow, grads) -> bool | None:
        """Run the one-kernel checked step (``parts``: per group its parameters, states and the
        bounds carried from the last step; ``overflow``: per group its :meth:`_overflow_limits`).
        ``True`` when it stepped (the new bounds kept in ``plan`` for the next step, or without a
        plan in the states' records); ``None`` when no gradient limit is provably safe; ``False``
        when the kernel refused the gradients (nothing written)."""
        limits = []
        known = plan.limits if plan is not None and plan.limits else [None] * len(parts)
        for (group, _, _, carried), group_overflow, last in zip(parts, overflow, known):
            limit = self._grad_limit(group, group_overflow, carried, last)
            if limit is None:
                return None
            limits.append(limit)
        if plan is not None and plan.numbers is not None and all(map(operator.is_, limits, known)):
            numbers = plan.numbers  # the same limits at the same lr: the same numbers
        else:
            values: list[float] = []
            for (group, _, _, _), limit in zip(parts, limits):
                values += checked_numbers(
                    lr=group["lr"],
                    weight_decay=group["weight_decay"],
                    momentum=group["momentum"],
                    dampening=group["dampening"],
                    grad_limit=limit.grad_max,
                )
            numbers = kernel.numbers(tuple(values))
        ok, *maxima = kernel(grads, numbers)
        if not ok:
            # nothing changed, but the writes moved the version counters
            for _, params, _, _ in parts:
                for p in params:
                    self._mark_in_sync(p)
            return False
        records = plan is None or not plan.bounds  # the states hold records (none while a plan serves)
        bounds = []
        for (group, params, states, carried), group_overflow, grad_max in zip(parts, overflow, maxima):
            self._mark_written(params, states)
            _, bound = self._bound_within(group, group_overflow, states, carried.y_bound, grad_max, carried.others)
            if plan is None and bound is not None:
                self._record_bounds(group, params, states, Bounds(*bound, grad_max))
                continue
            if records:  # nothing carried (the next step measures), or the plan holds the bounds
                for state in states:
                    state.pop(BOUNDS_KEY, None)
            if bound is not None:
                bounds.append(widened(Bounds(*bound, grad_max)))
        if plan is not None and len(bounds) == len(parts):
            states = [state for _, _, group_states, _ in parts for state in group_states]
            plan.entries = entries_of(states, plan.keys)
            plan.versions = stamps(plan.tensors)
            plan.bounds, plan.limits, plan.numbers = tuple(bounds), tuple(limits), numbers
            self.__dict__[_PLAN_KEY] = plan
        return True

    def _grad_limit(
        self, group: dict, overflow: tuple[float, float], carried, last: GradLimit | None
    ) -> GradLimit | None:
        """A ``max|g|`` up to which this group's step provably cannot overflow, from the carried
        bounds (``None`` if none is provably safe).

        ``last`` (what this returned at an earlier step of the same plan) still holds if ``lr``
        is the same and ``|y|`` and the buffer are within the bounds it was proven for (the
        overflow bound grows with each of them); a new one is proven for twice the carried
        bounds, so it serves the steps after this one too, or failing that for the bounds."""
        lr = group["lr"]
        if (
            last is not None
            and last.lr == lr
            and carried.y_bound <= last.y_bound
            and all(map(operator.le, carried.others, last.others))
        ):
            return last
        for y_bound, others in (
            (2 * carried.y_bound, [2 * b for b in carried.others]),
            (carried.y_bound, carried.others),
        ):
            limit = self._ladder_limit(group, overflow, y_bound, others, carried.grad_max)
            if limit is not None:
                return GradLimit(limit, lr, y_bound, others)
        return None

    def _ladder_limit(
        self, group: dict, overflow: tuple[float, float], y_bound: float, others: list[float], grad_max: float
    ) -> float | None:
        """The largest of about 4096 times, 8 times and once the last step's ``max|g|`` that the
        bound proves safe for ``|y| <= y_bound`` and the buffer within ``others``, or ``None``."""
        # powers of two far above the last step's (gradients vary from batch to batch; a miss costs
        # a kernel run), so the kernel's numbers rarely change (no new tensor for them)
        _, exponent = math.frexp(grad_max)
        for limit in (math.ldexp(1.0, exponent + 12), math.ldexp(1.0, exponent + 3), grad_max):
            needed, _ = self._bound_within(group, overflow, [], y_bound, limit, others)
            if not needed:
                return limit
        return None


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


# ----------------------------------------------------------------------------------------
# The one-kernel checked step: several groups' steps in one kernel that checks before it writes
# ----------------------------------------------------------------------------------------

# Where the one-kernel checked step keeps its plan for the next step: a cache next to the
# optimizer's books (not in ``state`` or the param groups, not saved), valid only while every
# state entry and tensor it names is as its last step left it.
_PLAN_KEY = "_one_kernel_plan"

_NO_LAYOUT = (None, None, None)


class StepPlan:
    """What a one-kernel checked step relied on and left, for
    :meth:`ReWA._repeat_step`; each step that follows it brings it up to date."""

    __slots__ = (
        "groups",
        "values",
        "grad_layouts",
        "kernel",
        "params",
        "keys",
        "tensors",
        "entries",
        "versions",
        "bounds",
        "limits",
        "numbers",
        "overflow",
    )

    def __init__(
        self,
        groups: tuple[dict, ...],
        values: tuple,
        grad_layouts: tuple,
        kernel: CheckedKernel,
        params: tuple[Tensor, ...],
        keys: tuple[str, ...],
        tensors: tuple[Tensor, ...],
    ):
        self.groups = groups
        self.values = values  # each group's plain_values but lr
        self.grad_layouts = grad_layouts  # (shape, dtype, device) of each gradient, in order
        self.kernel = kernel
        self.params = params  # every group's parameters, in order
        self.keys = keys  # the state entries watched
        self.tensors = tensors  # the parameters and every tensor among the entries
        # what the last step left: the entries of every parameter's state (by identity), the
        # tensors' version counters, per group the bounds (Bounds) and the gradient limit with
        # what it was proven for (GradLimit), and the kernel's numbers from those limits
        self.entries: tuple = ()
        self.versions: list[int] = []
        self.bounds: tuple = ()
        self.limits: tuple = ()
        self.numbers: Tensor | None = None
        self.overflow: tuple = ()  # per group, its _overflow_limits (fixed by the dtypes and K)


class GradLimit(NamedTuple):
    """A ``max|g|`` the overflow bound proves safe for a step at ``lr`` from latents with
    ``|y| <= y_bound`` and guarded state within ``others``."""

    grad_max: float
    lr: float
    y_bound: float
    others: list[float]


class CheckedKernel(NamedTuple):
    """The compiled one-kernel checked step of some ReWA-SGD groups
    (:func:`checked_rewa_sgd_kernel`), with its arguments laid out: call it with the gradients
    (in the groups' order) and the :meth:`numbers` tensor of each group's
    :func:`checked_numbers`; it returns ``[ok, max|g| of each group]`` (one transfer to the
    host)."""

    kernel: Callable
    args: tuple  # the state tensors in place, ``None`` where gradients and numbers go
    grad_slots: tuple[int, ...]
    device: torch.device

    def numbers(self, values: tuple[float, ...]) -> Tensor:
        """The kernel's numbers (:func:`checked_numbers` of each group) as its tensor."""
        return _compile.numbers_tensor(values, self.device)

    def __call__(self, grads: list[Tensor], numbers: Tensor) -> list[float]:
        args = list(self.args)
        for slot, g in zip(self.grad_slots, grads):
            args[slot] = g
        args[-1] = numbers
        return self.kernel(*args)[0].tolist()


def checked_numbers(*, lr, weight_decay, momentum, dampening, grad_limit) -> tuple[float, ...]:
    """One group's numbers for a :class:`CheckedKernel`."""
    return (float(lr), float(weight_decay), float(momentum), 1.0 - dampening, float(grad_limit))


def checked_rewa_sgd_kernel(groups: list[dict]) -> CheckedKernel | None:
    """The steps of several ReWA-SGD groups as one compiled kernel that checks before it writes.

    Each group is a dict with ``params``, ``grads``, ``latents``, ``buffers`` (existing momentum
    buffers, or ``[]`` without momentum) and the keyword arguments of :func:`fused_rewa_sgd`.
    Called with the gradients and each group's ``grad_limit`` (a ``max|g|`` up to which the
    caller has proven the group's step safe: no overflow), the kernel first reduces every
    gradient to its largest magnitude (nan and inf propagate); it writes the updates only if every
    group's gradients are finite and within their limits, else every tensor keeps its bits.
    ``None`` when the kernel cannot be compiled here or the tensors do not fit one kernel (more
    than ``FUSED_MAX_TENSORS``, several devices, not contiguous).
    """
    items = [
        (p, g, y, *([b] if group["momentum"] != 0 else []))
        for group in groups
        for p, g, y, b in zip(
            group["params"], group["grads"], group["latents"], group["buffers"] or [None] * len(group["params"])
        )
    ]
    if not items or len(items) > _compile.FUSED_MAX_TENSORS or not _compile.fused_available():
        return None
    device = items[0][0].device
    if not all(item[0].device == device and _compile.fusable(item) for item in items):
        return None
    configs = tuple(
        (
            len(group["params"]),
            group["K"],
            group["M"],
            group["eps"],
            group["momentum"],
            bool(group["nesterov"]),
            bool(group["decoupled_weight_decay"]),
        )
        for group in groups
    )
    key = ("ReWA checked", configs)
    if key in _compile.failed:
        return None
    numbers = [
        v
        for group in groups
        for v in checked_numbers(
            lr=group["lr"],
            weight_decay=group["weight_decay"],
            momentum=group["momentum"],
            dampening=group["dampening"],
            grad_limit=0.0,
        )
    ]
    args = [t for item in items for t in item]
    args.append(_compile.numbers_tensor(tuple(numbers), device))
    # not warned if it fails: the general path's kernels warn if they fail too
    kernel = _compile.compiled(key, device, items, functools.partial(_checked_step, configs), args, warn=False)
    if kernel is None:
        return None
    arity = [len(item) for item in items]
    grad_slots = tuple(sum(arity[:i]) + 1 for i in range(len(items)))
    # the gradients are not kept: they would hold a model's worth of memory between steps
    template = [None if i in grad_slots else t for i, t in enumerate(args[:-1])] + [None]
    return CheckedKernel(kernel, tuple(template), grad_slots, device)


def _checked_step(configs: tuple, *flat: Tensor) -> tuple[Tensor]:
    """The kernel of :func:`checked_rewa_sgd_kernel` (``configs``: per group its tensor count and
    constants; the last tensor of ``flat`` holds every number)."""
    numbers = flat[-1]
    at, ok, maxima, updates = 0, None, [], []
    for index, (count, K, M, eps, momentum, nesterov, decoupled) in enumerate(configs):
        lr, wd, buf_coef, d_coef, grad_limit = (numbers[5 * index + j] for j in range(5))
        arity = 4 if momentum != 0 else 3
        group_items = [flat[at + i * arity : at + (i + 1) * arity] for i in range(count)]
        at += count * arity
        grads = [item[1] for item in group_items]
        # nan and inf propagate through the maximum and fail the comparison
        largest = torch.stack([g.abs().amax().to(torch.float64) for g in grads]).amax()
        good = largest <= grad_limit
        ok = good if ok is None else ok & good
        maxima.append(largest)
        config = dict(K=K, M=M, eps=eps, momentum=momentum, nesterov=nesterov, decoupled_weight_decay=decoupled)
        updates += [(item, lr, wd, buf_coef, d_coef, config) for item in group_items]
    assert ok is not None  # at least one group
    for item, lr, wd, buf_coef, d_coef, config in updates:
        # the update on copies, written back only where ``ok`` (the compiler drops the copies)
        x, g, y = item[:3]
        buf = item[3] if len(item) > 3 else None
        targets = [x, y] if buf is None else [x, y, buf]
        new = [t.clone() for t in targets]
        _rewa_sgd_tensor(
            new[0],
            g,
            new[1],
            None if buf is None else new[2],
            lr=lr,
            weight_decay=wd,
            buffer_coefficients=(buf_coef, d_coef),
            **config,
        )
        for t, value in zip(targets, new):
            t.copy_(torch.where(ok, value, t))
    return (torch.stack([ok.to(torch.float64), *maxima]),)
