"""ReWA with SGD as the base optimizer (paper, Algorithm 1 and Equation 3)."""

from __future__ import annotations

import math
import operator
import warnings
from collections.abc import Iterable
from typing import NamedTuple

import torch
from torch import Tensor

from .. import _check as check
from ..theory import sparsity_problem
from . import _fused
from ._checked import caller_stacklevel, has_values, plain_values
from ._functional import rewa_sgd, rewa_sgd_bound
from ._fused import fused_rewa_sgd
from ._latent import (
    BOUNDS_KEY,
    ROUNDING_SLACK,
    VERSION_OF,
    LatentOptimizer,
    default_fused,
    entries_of,
    step_paths,
)

__all__ = ["ReWA", "SparsityConfigWarning"]


# Where the one-kernel checked step keeps its plan for the next step: a cache next to the
# optimizer's books (not in ``state`` or the param groups, not saved), valid only while every
# state entry and tensor it names is as its last step left it.
_PLAN_KEY = "_one_kernel_plan"
_NO_LAYOUT = (None, None, None)


class _StepPlan:
    """What a one-kernel checked step relied on and left, for :meth:`ReWA._repeat_step`; each
    step that follows it brings it up to date."""

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
    )

    def __init__(
        self,
        groups: tuple[dict, ...],
        values: tuple,
        grad_layouts: tuple,
        kernel: _fused.CheckedKernel,
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
        # tensors' version counters, per group the bounds (_Bounds) and the gradient limit with
        # what it was proven for (_GradLimit), and the kernel's numbers from those limits
        self.entries: tuple = ()
        self.versions: list[int] = []
        self.bounds: tuple = ()
        self.limits: tuple = ()
        self.numbers: Tensor | None = None


class _Bounds(NamedTuple):
    """Bounds of ``|y|`` and of the guarded state after a group's step, and its largest ``|g|``."""

    y_bound: float
    others: list[float]
    grad_max: float


class _GradLimit(NamedTuple):
    """A ``max|g|`` the overflow bound proves safe for a step at ``lr`` from latents with
    ``|y| <= y_bound`` and guarded state within ``others``."""

    grad_max: float
    lr: float
    y_bound: float
    others: list[float]


class SparsityConfigWarning(UserWarning):
    """A ReWA setting that, by the paper's Proposition 3.4, does not induce l_p (p < 1) sparsity."""


def warn_unless_sparse(param_groups: list[dict]) -> None:
    """One :class:`SparsityConfigWarning` naming every group setting (K, M, eps) that cannot
    induce sparsity, pointing at the user's line."""
    problems = {sparsity_problem(g["K"], g["M"], g["eps"]) for g in param_groups}
    messages = sorted(problem for problem in problems if problem is not None)
    if messages:
        warnings.warn("; ".join(messages), SparsityConfigWarning, stacklevel=caller_stacklevel())


class ReWA(LatentOptimizer):
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

    Args:
        params: parameters or param groups, as for ``torch.optim.SGD``. Every
            hyperparameter below may differ per group (see :func:`rewa.param_groups`).
        lr: learning rate ``eta_t`` (read from the group every step, so schedulers work).
        K: reparameterization power, real, ``1 <= K <= 64`` (paper: 9 for CIFAR-10, 3 for ImageNet).
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
            on small models too in long runs (an MLP epoch: 1.08x SGD's against 1.3x eager).
            Not together with ``foreach=True``. Fused steps are as all-or-nothing as the others
            (``check_finite``); a fused model of at most 32 tensors in steady state steps through
            one kernel that also checks its gradients before it writes.
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

    def _checked_fused_step(self, work) -> bool:
        """Small fused models in steady state: every group's step in one kernel that reduces the
        gradients and writes only if they are finite and within the limit the carried bounds
        allow (:func:`rewa.optim._fused.checked_rewa_sgd_kernel`), instead of per-tensor
        reductions, a transfer and per-group kernels. It applies when every group is fused,
        checked, has ``lr > 0``, existing momentum buffers and state untouched since its last
        step, with at most ``FUSED_MAX_TENSORS`` tensors in all. If the kernel finds a gradient
        out of bounds nothing was written, and the step takes the general path (which measures
        exactly, raises or steps). A step taken so leaves a plan for the next
        (:meth:`_repeat_step`), which then holds the bounds in place of the states' records."""
        specs, parts, grads = [], [], []
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
            parts.append((group, params, states, carried))
            grads += group_grads
        kernel = _fused.checked_rewa_sgd_kernel(specs) if specs else None
        if kernel is None:
            return False
        groups = [part[0] for part in parts]
        values = [plain_values(group, skip="lr") for group in groups]
        plan = None
        if all(v is not None for v in values) and all(len(ps) == len(g["params"]) for g, ps, _, _ in parts):
            first = parts[0][3]  # every group's record watches the same keys
            params = [p for _, ps, _, _ in parts for p in ps]
            plan = _StepPlan(
                groups=tuple(groups),
                values=tuple(values),
                grad_layouts=tuple((g.shape, g.dtype, g.device) for g in grads),
                kernel=kernel,
                params=tuple(params),
                keys=first.keys,
                tensors=tuple(t for _, _, _, carried in parts for t in carried.tensors),
            )
        return bool(self._run_checked_kernel(plan, kernel, parts, grads))

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
        if (
            len(params) != len(plan.params)
            or not all(map(operator.is_, params, plan.params))
            or not all(states)
            or not all(map(operator.is_, entries_of(states, plan.keys), plan.entries))  # type: ignore[arg-type]
            or list(map(VERSION_OF, plan.tensors)) != plan.versions
        ):
            return None
        parts, at = [], 0
        for group, bounds in zip(plan.groups, plan.bounds):
            count = len(group["params"])
            parts.append((group, params[at : at + count], states[at : at + count], bounds))
            at += count
        return self._run_checked_kernel(plan, plan.kernel, parts, grads)

    def _run_checked_kernel(self, plan: _StepPlan | None, kernel: _fused.CheckedKernel, parts, grads) -> bool | None:
        """Run the one-kernel checked step (``parts``: per group its parameters, states and the
        bounds carried from the last step). ``True`` when it stepped (the new bounds kept in
        ``plan`` for the next step, or without a plan in the states' records); ``None`` when no
        gradient limit is provably safe; ``False`` when the kernel refused the gradients
        (nothing written)."""
        limits = []
        known = plan.limits if plan is not None and plan.limits else [None] * len(parts)
        for (group, params, _, carried), last in zip(parts, known):
            limit = self._grad_limit(group, params, carried, last)
            if limit is None:
                return None
            limits.append(limit)
        if plan is not None and plan.numbers is not None and all(map(operator.is_, limits, known)):
            numbers = plan.numbers  # the same limits at the same lr: the same numbers
        else:
            values: list[float] = []
            for (group, _, _, _), limit in zip(parts, limits):
                values += _fused.checked_numbers(
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
        for (group, params, states, carried), grad_max in zip(parts, maxima):
            self._mark_written(params, states)
            _, bound = self._bound_after_step(group, params, states, carried.y_bound, grad_max, carried.others)
            if plan is None and bound is not None:
                self._record_bounds(group, params, states, (*bound, grad_max), previous=carried)
                continue
            if records:  # nothing carried (the next step measures), or the plan holds the bounds
                for state in states:
                    state.pop(BOUNDS_KEY, None)
            if bound is not None:
                bounds.append(_Bounds(bound[0] * ROUNDING_SLACK, [b * ROUNDING_SLACK for b in bound[1]], grad_max))
        if plan is not None and len(bounds) == len(parts):
            states = [state for _, _, group_states, _ in parts for state in group_states]
            plan.entries = entries_of(states, plan.keys)
            plan.versions = list(map(VERSION_OF, plan.tensors))
            plan.bounds, plan.limits, plan.numbers = tuple(bounds), tuple(limits), numbers
            self.__dict__[_PLAN_KEY] = plan
        return True

    def _grad_limit(self, group: dict, params: list[Tensor], carried, last: _GradLimit | None) -> _GradLimit | None:
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
            limit = self._ladder_limit(group, params, y_bound, others, carried.grad_max)
            if limit is not None:
                return _GradLimit(limit, lr, y_bound, others)
        return None

    def _ladder_limit(
        self, group: dict, params: list[Tensor], y_bound: float, others: list[float], grad_max: float
    ) -> float | None:
        """The largest of about 4096 times, 8 times and once the last step's ``max|g|`` that the
        bound proves safe for ``|y| <= y_bound`` and the buffer within ``others``, or ``None``."""
        # powers of two far above the last step's (gradients vary from batch to batch; a miss costs
        # a kernel run), so the kernel's numbers rarely change (no new tensor for them)
        _, exponent = math.frexp(grad_max)
        for limit in (math.ldexp(1.0, exponent + 12), math.ldexp(1.0, exponent + 3), grad_max):
            needed, _ = self._bound_after_step(group, params, [], y_bound, limit, others)
            if not needed:
                return limit
        return None

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
