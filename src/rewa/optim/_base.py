"""The one base class of this library's optimizers: checked groups, all-or-nothing steps and,
for reparameterized optimizers, the latent ``y`` with ``x = power_map(y, K)``.

:class:`SparseOptimizer` keeps the books; each optimizer's file holds its update (the math) and
tells the base what it needs through a few hooks: ``_check_group`` (raise naming a bad value),
``_step_group`` (update one group), and for the finite-step guarantee ``_update_bound`` (a
cheap upper bound of what one step can produce) with ``_guard_keys``. The checks themselves are
plain functions in :mod:`._checks`, whose docstring states the guarantee and what it assumes.

The latent lives in ``self.state[p]["y"]``, in float32 (float64 for float64 weights), and is
never recomputed from the weights, except at the coordinates where something outside the
optimizer changed them (noticed through the parameter's version counter or its storage, see
:func:`._checks.stamp`, or after loading a state dict) and when the group's ``K`` changed.
Optimizers without a latent (pWD, penalized SGD) set ``_latent_state_keys = ()``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor
from torch.optim import Optimizer

from .._math import latent_from_weight, power_map
from . import _compile
from ._checks import (
    TORCH_DUPLICATE_WARNING,
    caller_stacklevel,
    check_flags,
    check_param_state,
    dtype_limits,
    entries_of,
    gradients,
    has_values,
    larger,
    larger_each,
    max_abs,
    nonfinite,
    plain_values,
    refuse_repeated_parameters,
    restore,
    root,
    snapshot,
    stamp,
    stamps,
    to_host_any,
    untouched,
)

# Written next to the latent after every update; stripped from ``state_dict()`` because a
# version counter means nothing in another process.
_VERSION_KEY = "param_version"

# Host-side bounds of |y| and the guarded state after the last step, with the stamp of the
# tensors they describe; like the version, stripped from ``state_dict()``.
BOUNDS_KEY = "update_bounds"
ROUNDING_SLACK = 1 + 2.0**-20

# Hyperparameters a saved group may lack (they choose a code path, not the math).
_OPTIONAL_KEYS = ("fused",)


def latent_dtype(param: Tensor) -> torch.dtype:
    """float64 for float64 weights, float32 for everything else (bf16, fp16, fp32)."""
    return torch.float64 if param.dtype == torch.float64 else torch.float32


def default_foreach(foreach: bool | None, params: list[Tensor]) -> bool:
    """The one place that chooses the multi-tensor path: explicit choice, else on CUDA."""
    if foreach is not None:
        return bool(foreach)
    return all(p.device.type == "cuda" for p in params)


# ``fused=None`` compiles a CPU group once its tensors of ``FUSED_MIN_NUMEL`` or more elements
# hold this many elements: on the ResNet-18 set (11M) a fused step saves 20-30 ms against the
# loop (``rewa bench``), so the one-off compilation (about 30-45 s on this 2-core CPU) is repaid
# within a few thousand steps; on an MLP of 0.27M weights (0.75 ms saved per step, 5 s to
# compile) after about 7,000 steps, more than short runs take.
FUSED_AUTO_MIN_NUMEL = 1 << 20


def default_fused(fused: bool | None, foreach: bool | None, params: list[Tensor]) -> bool:
    """The one place that chooses the compiled path.

    ``True``/``False`` as given. ``None``: compiled on CPU when the group's large tensors hold
    at least ``FUSED_AUTO_MIN_NUMEL`` elements and inductor is available, else not;
    also not when ``foreach`` was given (``False`` asks for the loop, ``True`` for the
    multi-tensor path), and not on other devices, where it has not
    been measured (there the foreach path, as torch's optimizers choose, is the default).
    """
    if fused and foreach:
        raise ValueError(f"fused={fused} and foreach={foreach} cannot both be True; pick one")
    if fused is not None:
        return bool(fused)
    if foreach is not None or not params:
        return False
    large = sum(n for n in (p.numel() for p in params) if n >= _compile.FUSED_MIN_NUMEL)
    return (
        large >= FUSED_AUTO_MIN_NUMEL
        and all(type(p) in (Tensor, torch.nn.Parameter) and p.device.type == "cpu" for p in params)
        and _compile.fused_available()
    )


def step_paths(group: dict, params: list[Tensor]) -> tuple[list[int], list[int], list[int]]:
    """The one place that sends each tensor of a group to a code path: indices of the
    tensors for the compiled kernels, the single-tensor loop and the foreach path.

    ``fused`` (see :func:`default_fused`): every tensor compiled (those the kernels cannot take
    fall back to the loop).
    ``foreach=True``/``False``: every tensor foreach / loop. ``foreach=None``: foreach on CUDA;
    on other devices the large tensors (``FUSED_MIN_NUMEL`` elements or more) take the loop,
    which runs all of one tensor's operations while it is in cache, and the small ones the
    foreach path, which saves per-tensor Python and dispatch (they give the same bits).
    """
    foreach = group["foreach"]
    everything = list(range(len(params)))
    if default_fused(group["fused"], foreach, params):
        return everything, [], []
    if foreach is not None:
        return ([], [], everything) if foreach else ([], everything, [])
    big, small = _compile.split_for_fused(params)
    if not big or default_foreach(None, params):
        return [], [], everything
    return [], big, small


# A tensor whose share of exact zeros is at least this warns (the zero saddle).
ZERO_SHARE_WARNING = 0.5


class ZeroSaddleWarning(UserWarning):
    """Weights at exactly 0 that ReWA cannot move (the zero saddle of Example 3.2).

    With ``M > 0`` or ``eps > 0`` the factor ``|y|^M |y|^(K-1)/(|y|^(K-1) + eps)`` is 0 at
    ``y = 0``, so a weight that starts at exactly 0 keeps a zero step for ever.
    """


def pick(values: list, indices: list[int]) -> list:
    return [values[i] for i in indices]


def put(values: list, indices: list[int], new: list) -> None:
    for i, value in zip(indices, new):
        values[i] = value


class Bounds(NamedTuple):
    """Bounds of ``|y|`` and of the guarded state after a group's step, and its largest ``|g|``."""

    y_bound: float
    others: list[float]
    grad_max: float


class Carried(NamedTuple):
    """A group's :class:`Bounds`, kept in the state of each of its parameters (one shared
    object), with what they describe: the parameters, the state entries the step left (the
    objects themselves) and the version counter of every tensor among them. While all of these
    are as the step left them, nothing has written to the group's weights or state since, so the
    bounds hold and the state needs no new check (:func:`._checks.untouched`)."""

    bounds: Bounds
    K: float
    params: tuple[Tensor, ...]
    keys: tuple[str, ...]
    entries: tuple[object, ...]
    tensors: tuple[Tensor, ...]
    versions: list[int]


class _Checked(NamedTuple):
    """What ``_check_state`` hands to ``_guard_stats``: the group's states and, if nothing was
    written to them since the group's last step, that step's bounds."""

    states: list[dict | None]
    carried: Carried | None


class _GuardContext(NamedTuple):
    """What ``_guard_stats`` hands to ``_guard_needed``: the group's states, the carried bounds
    (``None`` if measured) and which statistics were measured for each tensor."""

    states: list[dict | None]
    carried: Carried | None
    measured: list[tuple[bool, bool, int]]


class SparseOptimizer(Optimizer):
    """Checks each group when it is added and before every step; steps are all-or-nothing; a
    reparameterized optimizer's latent ``y`` is kept in ``self.state`` and in sync with it.

    Subclasses define ``_check_group`` (raise ``ValueError`` naming the bad value) and
    ``_step_group`` (the update of one group's parameters that have gradients). A
    reparameterized one names the state tensors in the latent's dtype (``_latent_state_keys``),
    calls :meth:`_latents` and :meth:`_mark_written` from ``_step_group``, and states the
    overflow bound of its update (``_update_bound``, with ``_guard_keys``).
    """

    _latent_state_keys: tuple[str, ...] = ()

    # -- groups ----------------------------------------------------------------------------

    def add_param_group(self, param_group: dict) -> None:
        """As torch's, but a parameter listed twice is refused (torch only warns), and a group
        that fails a check is removed again before the error."""
        count = len(self.param_groups)
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=TORCH_DUPLICATE_WARNING)
                super().add_param_group(param_group)
            group = self.param_groups[-1]
            refuse_repeated_parameters(group["params"], count, type(self).__name__)
            for p in group["params"]:
                if not p.is_floating_point():
                    raise TypeError(
                        f"{type(self).__name__} needs real floating-point parameters, got one of dtype {p.dtype}"
                    )
            check_flags(group)
            self._check_group(group)
        except BaseException:
            del self.param_groups[count:]
            raise

    def _check_group(self, group: dict) -> None:
        """Raise ``ValueError`` naming any bad hyperparameter of ``group``."""
        raise NotImplementedError

    def _step_group(self, group: dict, params: list[Tensor], grads: list[Tensor]) -> None:
        """Update ``params`` (those of ``group`` with a gradient) in place."""
        raise NotImplementedError

    # -- the step --------------------------------------------------------------------------

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None):
        """Take one step; ``closure`` re-evaluates the model and returns the loss."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        repeated = self._repeat_step()
        if repeated:
            return loss
        work = self._collect()
        # after a refused repeat the kernel has seen these gradients: measure them exactly
        if repeated is False or not self._checked_fused_step(work):
            guarded, bounds = self._finite_checks(work)
            self._apply(work, guarded, bounds)
        return loss

    def _checked_fused_step(self, work) -> bool:
        """Take the whole step as one compiled kernel that checks before it writes, if this
        optimizer has one and the step qualifies; ``False`` (nothing written) otherwise."""
        return False

    def _repeat_step(self) -> bool | None:
        """Take the step as the last one was taken, if nothing it relied on changed since (a
        subclass's steady-state shortcut around ``_collect``): ``True`` when done; ``None`` when
        it does not apply; ``False`` when its kernel refused these gradients (nothing written;
        the general path then measures them)."""
        return None

    def _collect(self) -> list[tuple[dict, list[Tensor], list[Tensor], object]]:
        """Each group with its parameters that have gradients, after checking everything.

        Hyperparameters are checked again if they changed since their last check (a scheduler
        may have changed them), then every gradient's layout and the state, all before any
        state is created or changed.
        """
        work: list[tuple[dict, list[Tensor], list[Tensor], object]] = []
        checked = self.__dict__.setdefault("_checked_values", {})
        for group_index, group in enumerate(self.param_groups):
            values = plain_values(group)
            seen = checked.get(id(group))
            if values is None or seen is None or seen[0] is not group or seen[1] != values:
                check_flags(group)
                self._check_group(group)
                if values is not None:
                    # the checks may fill in defaults (``fused``): remember the group as checked
                    checked[id(group)] = (group, plain_values(group))
            params, grads = gradients(group, group_index, type(self).__name__)
            if params:
                work.append((group, params, grads, self._check_state(group, params)))
        return work

    def _finite_checks(self, work) -> tuple[set[int], dict[int, object]]:
        """Raise if a gradient of a ``check_finite`` group is nan or inf; return the indices
        (into ``work``) of the groups whose update bound is not far from overflow, and per
        group what ``_guard_needed`` found for ``_carry_bounds``.

        The minimum and maximum of each gradient (nan and +-inf show up in them) and the
        latent statistics (``_guard_stats``) go to the host in one transfer per device; the
        search for the culprit runs only when something is wrong.
        """
        pending: list[tuple[int, int, int, object]] = []  # (work index, #gradient values, #stats, context)
        values: list[Tensor] = []
        for i, (group, params, grads, checked) in enumerate(work):
            if not group.get("check_finite", False):
                continue
            start = len(values)
            for g in grads:
                if has_values(g):
                    values += torch.aminmax(g)
            stats, context = self._guard_stats(group, params, checked)
            pending.append((i, len(values) - start, len(stats), context))
            values += stats
        if not values:
            return set(), {}
        host = to_host_any(values)
        guarded: set[int] = set()
        carry: dict[int, object] = {}
        at = 0
        for i, gradient_count, stat_count, context in pending:
            group, params, _, _ = work[i]
            extremes, at = host[at : at + gradient_count], at + gradient_count
            stat_values, at = host[at : at + stat_count], at + stat_count
            if not gradient_count:
                continue  # no gradient holds values (meta or empty tensors)
            if not all(map(math.isfinite, extremes)):
                self._raise_nonfinite_gradient(work)
            grad_max = max(-min(extremes), max(extremes))
            needed, carry[i] = self._guard_needed(group, params, grad_max, stat_values, context)
            if needed:
                guarded.add(i)
        return guarded, carry

    def _raise_nonfinite_gradient(self, work) -> None:
        """Name the first parameter (of a ``check_finite`` group) whose gradient is not finite."""
        for group, params, grads, _ in work:
            if not group.get("check_finite", False):
                continue
            for p, g in zip(params, grads):
                if nonfinite(g):
                    group_index, index = self._position(group, p)
                    if nonfinite(p):
                        raise FloatingPointError(
                            f"the weights of parameter {index} of param group {group_index} (shape "
                            f"{tuple(p.shape)}) are already nan or inf, and so is their gradient; nothing "
                            "was updated. A checked step never writes them: something wrote them, or the "
                            "optimizer's state, outside the checks (e.g. through .data or .numpy(), which "
                            "the version counter does not see). Load the last good checkpoint."
                        )
                    raise FloatingPointError(
                        f"non-finite gradient (nan or inf) in parameter {index} of param group "
                        f"{group_index}, shape {tuple(p.shape)}; nothing was updated. Skip this "
                        "step (torch.amp.GradScaler does), lower the learning rate, or pass "
                        "check_finite=False to take the step anyway."
                    )
        raise FloatingPointError("non-finite gradient (nan or inf); nothing was updated")

    def _position(self, group: dict, p: Tensor | None = None) -> tuple[int, int | None]:
        """Indices of ``group`` among the param groups and of ``p`` among its parameters, for messages."""
        group_index = next(i for i, g in enumerate(self.param_groups) if g is group)
        index = None if p is None else next(i for i, q in enumerate(group["params"]) if q is p)
        return group_index, index

    def _apply(self, work, guarded: set[int], bounds: dict[int, object]) -> None:
        """Guarded groups first, each on a copy-backed in-place step that is checked; if one
        fails, all are restored and the error raised. Then the groups proven safe."""
        snapshots = []
        group_index = None
        try:
            for i in sorted(guarded):
                group, params, grads, _ = work[i]
                group_index, _ = self._position(group)
                snapshots.append(snapshot(self.state, params, self._in_sync))
                self._step_group(group, params, grads)
                self._raise_if_nonfinite_result(group, params)
                self._carry_bounds(group, params, bounds.get(i))
        except BaseException as error:
            for saved in reversed(snapshots):
                restore(self.state, saved, self._mark_in_sync)
            if isinstance(error, RuntimeError) and "overflow" in str(error):
                # torch refuses a scalar (lr * something) that overflows the tensor's dtype
                raise FloatingPointError(
                    f"this step overflows in param group {group_index} ({error}); nothing was updated. "
                    "Lower the learning rate, or pass check_finite=False to take the step anyway."
                ) from error
            raise
        for i, (group, params, grads, _) in enumerate(work):
            if i not in guarded:
                self._step_group(group, params, grads)
                self._carry_bounds(group, params, bounds.get(i))

    def _raise_if_nonfinite_result(self, group: dict, params: list[Tensor]) -> None:
        for p in params:
            tensors = {"weights": p, **{k: v for k, v in self.state.get(p, {}).items() if isinstance(v, Tensor)}}
            for name, t in tensors.items():
                if nonfinite(t):
                    group_index, index = self._position(group, p)
                    raise FloatingPointError(
                        f"this step would make the {name} of parameter {index} of param group "
                        f"{group_index} (shape {tuple(p.shape)}) non-finite with finite gradients; "
                        f"nothing was updated. {self._overflow_hint(group, p)}Lower the learning "
                        "rate, or pass check_finite=False to take the step anyway."
                    )

    def _overflow_hint(self, group: dict, p: Tensor) -> str:
        if not self._latent_state_keys:
            return ""
        K = group["K"]
        limit = root(min(torch.finfo(p.dtype).max, torch.finfo(latent_dtype(p)).max), K)
        return (
            f"With K={K:g} a {p.dtype} weight overflows once |y| > {limit:.4g} "
            "(the largest finite value to the power 1/K). "
        )

    # -- the latent ------------------------------------------------------------------------

    def _latents(self, group: dict, params: list[Tensor], states: list[dict]) -> list[Tensor]:
        """The latent of each parameter (``states``: theirs): created on first use, re-derived
        if ``x`` changed."""
        K = group["K"]
        latents = []
        created = []
        for p, state in zip(params, states):
            if "y" not in state:
                state["step"] = 0
                state["K"] = K
                state["y"] = latent_from_weight(p, K, latent_dtype(p))
                created.append(p)
            elif state.get(_VERSION_KEY) != stamp(p) or state["K"] != K:
                _resync(p, state, K)
            latents.append(state["y"])
        if created and K != 1 and (group["M"] != 0 or group["eps"] != 0):
            _warn_zero_saddle(group, created)
        return latents

    def _in_sync(self, p: Tensor) -> bool:
        """The latent exists and the weights are what this optimizer last wrote."""
        return _in_sync(p, self.state.get(p))

    def _mark_in_sync(self, p: Tensor) -> None:
        if self._latent_state_keys:
            self.state[p][_VERSION_KEY] = stamp(p)

    def _mark_written(self, params: list[Tensor], states: list[dict]) -> None:
        for p, state in zip(params, states):
            state["step"] += 1
            state[_VERSION_KEY] = stamp(p)

    # -- the overflow bound of a step --------------------------------------------------------

    def _check_state(self, group: dict, params: list[Tensor]) -> _Checked | None:
        """Check the state of each parameter, unless the group's state is exactly what its last
        step left (then it was checked and written by this optimizer, nearly always)."""
        if not self._latent_state_keys:
            return None
        get = self.state.get
        states = [get(p) for p in params]
        carried = _unchanged_since_step(group, params, states)
        if carried is None:
            for p, state in zip(params, states):
                if state:
                    check_param_state(state, p, self._latent_state_keys, where="")
        return _Checked(states, carried)

    def _guard_keys(self, group: dict) -> tuple[str, ...]:
        """Keys of the state tensors (besides ``y``) whose largest magnitude the update bound needs."""
        return ()

    def _update_bound(
        self, group: dict, states: list[dict], *, y_max: float, grad_max: float, others: list[float], limit: float
    ) -> tuple[float, list[float]]:
        """Upper bounds of ``|y|`` after this step (``inf`` if an intermediate may exceed
        ``limit``) and of each ``_guard_keys`` tensor after it, from the largest ``|y|``,
        ``|g|`` and ``|t|`` for ``_guard_keys`` tensors before it over the tensors whose ``states``
        are given."""
        return math.inf, []

    def _guard_stats(self, group: dict, params: list[Tensor], checked: object) -> tuple[list[Tensor], object]:
        """``aminmax`` of the latents and guarded state, unless the last step's bounds still hold
        (nearly always: nothing has written to the group since its last step). None without a latent."""
        if not isinstance(checked, _Checked):
            return [], None
        states, carried = checked
        stats: list[Tensor] = []
        measured = []
        if carried is None:
            measured = [self._exact_stats(group, p, s, stats) for p, s in zip(params, states) if has_values(p)]
        return stats, _GuardContext(states, carried, measured)

    def _exact_stats(self, group: dict, p: Tensor, state: dict | None, out: list[Tensor]) -> tuple[bool, bool, int]:
        """Append to ``out`` the ``aminmax`` of the latent, of the weights if the latent will be
        (re-)derived from them, and of each ``_guard_keys`` tensor; return which were taken."""
        has_latent = state is not None and "y" in state
        if has_latent:
            out += torch.aminmax(state["y"])  # type: ignore[index]
        rederive = not _latent_current(group, p, state)
        if rederive:
            out += torch.aminmax(p)
        guarded = [t for t in (state.get(key) for key in self._guard_keys(group)) if t is not None] if state else []
        for t in guarded:
            out += torch.aminmax(t)
        return has_latent, rederive, len(guarded)

    def _guard_needed(
        self, group: dict, params: list[Tensor], grad_max: float, stats: list[float], context: object
    ) -> tuple[bool, object]:
        """Whether the update of ``group`` may produce a non-finite value, from the largest
        ``|g|`` and the values of ``_guard_stats``, and what the step leaves for ``_carry_bounds``."""
        if not isinstance(context, _GuardContext):
            return False, None
        states, carried, measured = context
        if carried is not None:
            y_max, others = carried.bounds.y_bound, carried.bounds.others
        else:
            y_max, others = _fold_stats(group, measured, stats)
        limits = self._overflow_limits(group, params)
        needed, bound = self._bound_within(group, limits, states, y_max, grad_max, others)
        if needed and carried is not None:
            # Carried bounds only grow from step to step; measure before paying for copies.
            exact: list[Tensor] = []
            measured = [self._exact_stats(group, p, state, exact) for p, state in zip(params, states) if has_values(p)]
            y_max, others = _fold_stats(group, measured, to_host_any(exact))
            needed, bound = self._bound_within(group, limits, states, y_max, grad_max, others)
        return needed, None if bound is None else Bounds(*bound, grad_max)

    def _overflow_limits(self, group: dict, params: list[Tensor]) -> tuple[float, float]:
        """What an update of ``params`` must stay below to be safe: every intermediate latent
        value, and ``|y|`` after the step (whose ``K``-th power is the weight); a factor 4 below
        overflow covers the rounding of every operation."""
        latent_limit = weight_limit = math.inf
        for dtype in {p.dtype for p in params}:
            dtype_latent_limit, dtype_weight_limit = dtype_limits(dtype)
            latent_limit, weight_limit = min(latent_limit, dtype_latent_limit), min(weight_limit, dtype_weight_limit)
        return latent_limit / 4, root(weight_limit / 4, group["K"])

    def _bound_within(
        self,
        group: dict,
        limits: tuple[float, float],
        states: list[dict | None],
        y_max: float,
        grad_max: float,
        others: list[float],
    ) -> tuple[bool, tuple[float, list[float]] | None]:
        """Whether the update may overflow, and (if not) the bounds of ``|y|`` and of the
        ``_guard_keys`` tensors after the step, within the group's :meth:`_overflow_limits`. One
        bound serves the whole group: the largest ``|g|``, ``|y|`` and guarded entries over its
        tensors bound each of them, so the cost in Python is per group, not per tensor."""
        latent_limit, y_limit = limits
        y_bound, others_after = self._update_bound(
            group, [s for s in states if s], y_max=y_max, grad_max=grad_max, others=others, limit=latent_limit
        )
        safe = y_bound < y_limit
        return not safe, ((y_bound, others_after) if safe else None)

    # -- bounds carried from one step to the next --------------------------------------------

    def _carry_bounds(self, group: dict, params: list[Tensor], carry: object) -> None:
        """After ``group``'s step: keep what ``_guard_needed`` learned for the next step."""
        if not self._latent_state_keys:
            return
        get = self.state.get
        states = [get(p) for p in params]
        if carry is None or not all(state and "y" in state for state in states):
            for state in states:
                if state:
                    state.pop(BOUNDS_KEY, None)
            return
        assert isinstance(carry, Bounds)
        self._record_bounds(group, params, states, carry)  # type: ignore[arg-type]

    def _record_bounds(self, group: dict, params: list[Tensor], states: list[dict], bounds: Bounds) -> Carried:
        """Keep ``bounds`` in the state of each of ``params`` (``states``: theirs, each with a
        latent), as one record with what it describes; return the record."""
        keys = (*self._latent_state_keys, "step", "K")
        entries = entries_of(states, keys)
        tensors = (*params, *[e for e in entries if isinstance(e, Tensor)])
        carried = Carried(widened(bounds), group["K"], tuple(params), keys, entries, tensors, stamps(tensors))
        for state in states:
            state[BOUNDS_KEY] = carried
        return carried

    # -- checkpoints ---------------------------------------------------------------------

    def state_dict(self) -> dict:
        sd = super().state_dict()
        if self._latent_state_keys:
            sd["state"] = {
                key: {k: v for k, v in value.items() if k not in (_VERSION_KEY, BOUNDS_KEY)}
                for key, value in sd["state"].items()
            }
        return sd

    def load_state_dict(self, state_dict: dict) -> None:
        """As torch's; a reparameterized optimizer first checks everything, so nothing is
        written unless all of it fits: every saved group must have every hyperparameter with an
        allowed value; every latent and buffer must be a floating tensor of its parameter's shape."""
        if not self._latent_state_keys:
            super().load_state_dict(state_dict)
            return
        self._check_loadable(state_dict)
        super().load_state_dict(state_dict)
        # torch casts floating state to each parameter's dtype; the latent and its buffers
        # must stay in float32 (or float64), so take them again from the saved tensors.
        saved_to_param: dict[object, Tensor] = {}
        for saved_group, group in zip(state_dict["param_groups"], self.param_groups):
            saved_to_param.update(zip(saved_group["params"], group["params"]))
        for saved_id, saved in state_dict["state"].items():
            p = saved_to_param.get(saved_id)
            if p is None:
                continue
            state = self.state[p]
            state.pop(_VERSION_KEY, None)
            state.pop(BOUNDS_KEY, None)
            for key in self._latent_state_keys:
                if isinstance(saved.get(key), Tensor):
                    state[key] = saved[key].to(device=p.device, dtype=latent_dtype(p), copy=True)

    def _check_loadable(self, state_dict) -> None:
        name = type(self).__name__
        if not isinstance(state_dict, dict) or not {"state", "param_groups"} <= state_dict.keys():
            raise ValueError(
                f"{name}.load_state_dict needs a dict with 'state' and 'param_groups', "
                f"got {type(state_dict).__name__}"
                + (f" with keys {sorted(map(str, state_dict))}" if isinstance(state_dict, dict) else "")
            )
        saved_groups, saved_state = state_dict["param_groups"], state_dict["state"]
        if not isinstance(saved_groups, list) or not isinstance(saved_state, dict):
            raise ValueError(f"{name}.load_state_dict: 'param_groups' must be a list and 'state' a dict")
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(
                f"loaded state dict has {len(saved_groups)} parameter groups, this {name} has {len(self.param_groups)}"
            )
        saved_to_param: dict[object, Tensor] = {}
        for index, (saved, group) in enumerate(zip(saved_groups, self.param_groups)):
            if not isinstance(saved, dict) or not isinstance(saved.get("params"), list):
                raise ValueError(f"param group {index} of the loaded state dict has no 'params' list")
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(
                    f"param group {index} of the loaded state dict has {len(saved['params'])} "
                    f"parameters, this {name}'s has {len(group['params'])}"
                )
            # ``fused`` only picks a code path: checkpoints from before it existed load as None
            missing = [key for key in self.defaults if key not in saved and key not in _OPTIONAL_KEYS]
            if missing:
                hint = ""
                if "decoupled_weight_decay" in missing:
                    hint = (
                        " (a checkpoint from before decoupled_weight_decay existed had the decoupled "
                        "meaning: set saved_group['decoupled_weight_decay'] = True to resume it)"
                    )
                raise ValueError(
                    f"param group {index} of the loaded state dict lacks {', '.join(missing)}: "
                    f"not a {name} state dict{hint}"
                )
            candidate = {**saved, "params": group["params"]}
            try:
                check_flags(candidate)
                self._check_group(candidate)
            except (TypeError, ValueError) as error:
                raise ValueError(f"param group {index} of the loaded state dict: {error}") from None
            saved_to_param.update(zip(saved["params"], group["params"]))
        for saved_id, saved in saved_state.items():
            p = saved_to_param.get(saved_id)
            if p is None:
                raise ValueError(
                    f"the loaded state dict has state for parameter id {saved_id!r}, which no param group lists"
                )
            if not isinstance(saved, dict):
                raise ValueError(f"the state of parameter id {saved_id!r} must be a dict, got {type(saved).__name__}")
            check_param_state(saved, p, self._latent_state_keys, where=f" (loaded, parameter id {saved_id!r})")


def widened(bounds: Bounds) -> Bounds:
    """``bounds`` widened a little: they hold in exact arithmetic, the steps round."""
    return Bounds(bounds.y_bound * ROUNDING_SLACK, [b * ROUNDING_SLACK for b in bounds.others], bounds.grad_max)


def _fold_stats(group: dict, measured: list[tuple[bool, bool, int]], stats: list[float]) -> tuple[float, list[float]]:
    """The largest ``|y|`` and guarded entries, from the measured ``stats``."""
    y_max, others = 0.0, []  # type: tuple[float, list[float]]
    k = 0
    for has_latent, rederive, count in measured:
        if has_latent:
            y_max, k = larger(y_max, max_abs(stats[k : k + 2])), k + 2
        if rederive:
            y_max, k = larger(y_max, root(max_abs(stats[k : k + 2]), group["K"])), k + 2
        others = larger_each(others, [max_abs(stats[k + 2 * j : k + 2 * j + 2]) for j in range(count)])
        k += 2 * count
    return y_max, others


def _warn_zero_saddle(group: dict, params: list[Tensor]) -> None:
    """When latents are created: tensors that are all or mostly exact zeros."""
    stuck = []
    for p in params:
        if p.device.type == "meta" or p.numel() == 0:
            continue
        share = float((p == 0).sum()) / p.numel()
        if share >= ZERO_SHARE_WARNING:
            stuck.append(f"shape {tuple(p.shape)}: {share:.0%} zeros")
    if stuck:
        warnings.warn(
            f"{len(stuck)} sparsified tensor(s) start with exact zeros ({'; '.join(stuck[:5])}"
            f"{'; ...' if len(stuck) > 5 else ''}); with M={group['M']:g}, eps={group['eps']:g} a "
            "weight at exactly 0 never moves (the zero saddle, Example 3.2). Initialize them "
            "away from 0, or put them in a group with K=1 or M=0, eps=0.",
            ZeroSaddleWarning,
            stacklevel=caller_stacklevel(),
        )


def _resync(p: Tensor, state: dict, K: float) -> None:
    """Take in weights changed outside the optimizer, coordinate by coordinate.

    Where the weight still equals ``power_map(y)`` the latent is kept exactly (so a weight
    that underflowed to 0 keeps its ``y``); elsewhere ``y`` is re-derived from the new
    weight. A new ``K`` re-derives every coordinate. No host synchronisation.
    """
    y = state["y"]
    if state["K"] != K:
        y.copy_(latent_from_weight(p, K, y.dtype))
        state["K"] = K
        return
    unchanged = p == power_map(y, K).to(p.dtype)
    y.copy_(torch.where(unchanged, y, latent_from_weight(p, K, y.dtype)))


def weights_before_zero_lr_step(lr: float, params: list[Tensor]) -> list[Tensor] | None:
    """A step at ``lr = 0`` must leave the weights bitwise as they were: a copy of them to
    put back after it (``None`` for any other ``lr``).

    It leaves ``y`` unchanged, but ``power_map(latent_from_weight(x))`` is ``x`` only up to
    rounding, so rewriting ``x`` from a latent just derived from it would move it (by up to
    6.7e-7 relative for K = 9). ``torch.distributed.checkpoint`` creates optimizer state by
    such a step. Only at lr 0: one copy of the group's weights for that step; no host sync.
    """
    return [p.detach().clone() for p in params] if lr == 0 else None


def put_back(params: list[Tensor], saved: list[Tensor] | None) -> None:
    for p, x in zip(params, saved or []):
        p.copy_(x)


def _in_sync(p: Tensor, state: dict | None) -> bool:
    """The latent exists and the weights are what the optimizer last wrote."""
    return state is not None and "y" in state and state.get(_VERSION_KEY) == stamp(p)


def _latent_current(group: dict, p: Tensor, state: dict | None) -> bool:
    """In sync, and derived with the group's ``K``."""
    return _in_sync(p, state) and state.get("K") == group["K"]  # type: ignore[union-attr]


def _unchanged_since_step(group: dict, params: list[Tensor], states: list[dict | None]) -> Carried | None:
    """The bounds the group's last step left, if it is still as that step left it
    (:func:`untouched`) and ``K`` is the same; else ``None``."""
    first = states[0] if states else None
    carried = first.get(BOUNDS_KEY) if first else None
    if carried is None or carried.K != group["K"] or not untouched(carried, params, states):
        return None
    return carried
