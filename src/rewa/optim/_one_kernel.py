"""The one-kernel checked step of small fused ReWA-SGD models, and the plan that repeats it.

A checked step on the general path (:mod:`._checked`) collects and checks every group, reduces
each gradient, sends the maxima to the host and then runs each group's update. For a fused model
of at most ``FUSED_MAX_TENSORS`` tensors in steady state, :meth:`OneKernelLatentOptimizer._checked_fused_step`
takes the whole step as one compiled kernel instead
(:func:`rewa.optim._fused.checked_rewa_sgd_kernel`): it reduces the gradients and writes the
updates only if they are finite and within a limit the carried overflow bounds prove safe, so a
refused step writes nothing and the general path then measures, raises or steps.

Such a step leaves a plan (:class:`StepPlan`): what it relied on (the groups, their
hyperparameters but ``lr``, the gradients' layout) and what it left (every state entry by
identity, every tensor's version counter, each group's bounds and gradient limit). The next
step follows the plan (:meth:`OneKernelLatentOptimizer._repeat_step`) after checking, in a few
passes over the parameters, that all of it still holds; anything else, including a step the
plan does not take, drops it. While a plan serves it holds the carried bounds in place of the
states' records, so the general path measures again after it.
"""

from __future__ import annotations

import math
import operator
from typing import NamedTuple

import torch
from torch import Tensor

from . import _fused
from ._checked import has_values, plain_values
from ._latent import BOUNDS_KEY, ROUNDING_SLACK, LatentOptimizer, default_fused, entries_of, stamps, untouched

# Where the one-kernel checked step keeps its plan for the next step: a cache next to the
# optimizer's books (not in ``state`` or the param groups, not saved), valid only while every
# state entry and tensor it names is as its last step left it.
_PLAN_KEY = "_one_kernel_plan"
_NO_LAYOUT = (None, None, None)


class StepPlan:
    """What a one-kernel checked step relied on and left, for
    :meth:`OneKernelLatentOptimizer._repeat_step`; each step that follows it brings it up to date."""

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
        # tensors' version counters, per group the bounds (Bounds) and the gradient limit with
        # what it was proven for (GradLimit), and the kernel's numbers from those limits
        self.entries: tuple = ()
        self.versions: list[int] = []
        self.bounds: tuple = ()
        self.limits: tuple = ()
        self.numbers: Tensor | None = None
        self.overflow: tuple = ()  # per group, its _overflow_limits (fixed by the dtypes and K)


class Bounds(NamedTuple):
    """Bounds of ``|y|`` and of the guarded state after a group's step, and its largest ``|g|``."""

    y_bound: float
    others: list[float]
    grad_max: float


class GradLimit(NamedTuple):
    """A ``max|g|`` the overflow bound proves safe for a step at ``lr`` from latents with
    ``|y| <= y_bound`` and guarded state within ``others``."""

    grad_max: float
    lr: float
    y_bound: float
    others: list[float]


class OneKernelLatentOptimizer(LatentOptimizer):
    """A latent optimizer whose update is :func:`rewa.optim._functional.rewa_sgd` (``ReWA``),
    with the one-kernel checked step and its plan (see the module docstring). Subclasses give
    the update's keyword arguments of a group (``_update_arguments``)."""

    def _update_arguments(self, group: dict) -> dict:
        """The keyword arguments of :func:`rewa.optim._fused.fused_rewa_sgd` from a param group."""
        raise NotImplementedError

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
                    self._update_arguments(group),
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
            plan = StepPlan(
                groups=tuple(groups),
                values=tuple(values),
                grad_layouts=tuple((g.shape, g.dtype, g.device) for g in grads),
                kernel=kernel,
                params=tuple(params),
                keys=first.keys,
                tensors=tuple(t for _, _, _, carried in parts for t in carried.tensors),
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

    def _run_checked_kernel(
        self, plan: StepPlan | None, kernel: _fused.CheckedKernel, parts, overflow, grads
    ) -> bool | None:
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
        for (group, params, states, carried), group_overflow, grad_max in zip(parts, overflow, maxima):
            self._mark_written(params, states)
            _, bound = self._bound_within(group, group_overflow, states, carried.y_bound, grad_max, carried.others)
            if plan is None and bound is not None:
                self._record_bounds(group, params, states, (*bound, grad_max))
                continue
            if records:  # nothing carried (the next step measures), or the plan holds the bounds
                for state in states:
                    state.pop(BOUNDS_KEY, None)
            if bound is not None:
                bounds.append(Bounds(bound[0] * ROUNDING_SLACK, [b * ROUNDING_SLACK for b in bound[1]], grad_max))
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
