"""Book-keeping every optimizer of this library shares: checked groups, all-or-nothing steps.

A step runs in two phases. First everything is checked and nothing is written: every group's
hyperparameters, every gradient's shape and dtype, the optimizer state (``_check_state``)
and, for groups with ``check_finite=True``, that every gradient is finite. Then the groups are
updated. For ``check_finite`` groups a step either completes with finite state and weights or
raises ``FloatingPointError`` and leaves every tensor as it was, in every group:

* Each subclass states a cheap upper bound of what the update can produce from a few per-tensor
  maxima (``_guard_stats``, ``_guard_needed``); the maxima of all tensors go to the host in one
  transfer per device, together with the gradient check. When the bound is far from overflow
  (nearly always), the group is updated in place, with no further cost.
* Otherwise the group's tensors are copied first, the update runs, and its results are
  checked; if anything is not finite every guarded group is restored from its copies and
  ``FloatingPointError`` is raised.

What the guarantee assumes. The cheap bound of a step comes from what the optimizer knows
of its state: where nothing has written to a group since its last step, the bounds that step
left are reused instead of measuring again, and "nothing has written" is read from each
tensor's version counter and storage (``untouched`` in ``_latent``). Every in-place write
through the tensor or a view of it moves the version counter; rebinding its storage
(``t.data = other``) moves the storage, and both are noticed (the state is then measured
again, and weights changed this way re-derive their latents). Writes *in place* through
``t.data`` (``p.data.mul_(2)``, ``state["y"].data.fill_(...)``) or through ``t.numpy()``
change neither, and detecting them would mean reading every tensor at every step: after such
a write to the optimizer state, the next step may write non-finite weights (or, for a
write to the weights, overwrite it from the latent). The step after that finds the non-finite
weights (through their gradients) and raises ``FloatingPointError`` saying so. Write to
parameters and state in place through the tensors themselves (``with torch.no_grad():
p.mul_(2)``), never through ``.data`` or ``.numpy()``.

A fused step path plugs in by overriding ``_step_group`` (the compiled kernels of ``_fused``
run inside it), so the checks, the copies and the restore above apply to fused steps alike.
Parameters on the ``meta`` device have no values: they are skipped by the finite checks.
"""

from __future__ import annotations

import math
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from types import FrameType

import torch
from torch import Tensor
from torch.optim import Optimizer

from .. import _check as check

_BOOL_FLAGS = ("nesterov", "check_finite", "decoupled_weight_decay", "proximal")
# Flags that may also be None ("let the optimizer choose").
_OPTIONAL_BOOL_FLAGS = ("foreach", "fused")


_LIBRARY_DIRS = (
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep,
    os.path.dirname(os.path.abspath(torch.__file__)) + os.sep,
)


def caller_stacklevel() -> int:
    """The ``stacklevel`` that makes a warning, issued by the function calling this one, point
    at the first frame outside this library and torch (the user's ``opt.step()`` line)."""
    frame: FrameType | None = sys._getframe(1)
    level = 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_LIBRARY_DIRS):
        frame, level = frame.f_back, level + 1
    return level


def has_values(t: Tensor) -> bool:
    return not t.is_meta and t.numel() > 0


def max_abs(extremes: Sequence[float]) -> float:
    """``max |t|`` from ``(min t, max t)``; nan stays nan."""
    low, high = extremes
    if math.isnan(low) or math.isnan(high):
        return math.nan
    return max(-low, high)


def _global(value: Tensor) -> Tensor:
    """A reduction of a sharded (DTensor) tensor as a plain tensor holding the value over all
    shards, so every rank takes the same decision; plain tensors pass through."""
    full_tensor = getattr(value, "full_tensor", None)
    return full_tensor() if full_tensor is not None else value


def to_host(values: list[Tensor]) -> list[float]:
    """0-dim tensors of one device as Python floats, in order, with one transfer: stacked into
    one tensor (values of several dtypes first widened to float64, float32 on mps)."""
    if not all(type(v) is Tensor for v in values):
        values = [_global(v) for v in values]
    dtype = values[0].dtype
    if all(v.dtype == dtype for v in values):
        return torch.stack(values).tolist()  # floats hold every float32/16 value exactly
    wide = torch.float32 if values[0].device.type == "mps" else torch.float64
    return torch.stack([v.to(wide) for v in values]).tolist()


def to_host_any(values: list[Tensor]) -> list[float]:
    """0-dim tensors, possibly on several devices, as Python floats in order: one
    :func:`to_host` transfer per device."""
    if not values:
        return []
    device = values[0].device
    if all(v.device == device for v in values):
        return to_host(values)
    by_device: dict[torch.device, list[Tensor]] = {}
    for v in values:
        by_device.setdefault(v.device, []).append(v)
    per_device = {d: iter(to_host(vs)) for d, vs in by_device.items()}
    return [next(per_device[v.device]) for v in values]


# torch only warns about this (a parameter listed twice in a group); refused here instead
TORCH_DUPLICATE_WARNING = "optimizer contains a parameter group with duplicate parameters"


def refuse_repeated_parameters(params: Sequence[Tensor], group_index: int, owner: str) -> None:
    """``ValueError`` naming the group and both positions of a parameter it lists twice: the
    optimizer would update it twice per step (and a latent optimizer keep one latent for both)."""
    seen: dict[int, int] = {}
    for position, p in enumerate(params):
        first = seen.setdefault(id(p), position)
        if first != position:
            raise ValueError(
                f"param group {group_index} lists the same parameter (shape {tuple(p.shape)}) at positions "
                f"{first} and {position}; {owner} would update it twice per step. List each parameter once."
            )


_PLAIN_TYPES = (bool, int, float, str, type(None))


def plain_values(group: dict, skip: str | None = None) -> tuple | None:
    """The group's hyperparameters (but ``skip``) with their types, to tell whether they changed
    since they were checked; ``None`` when one is not a plain number, string, flag or tuple of
    them (a tensor learning rate, say), which is then checked at every step."""
    values = []
    for key, value in group.items():
        if key == "params" or key == skip:
            continue
        kind = type(value)
        if kind not in _PLAIN_TYPES and not (kind is tuple and all(type(v) in _PLAIN_TYPES for v in value)):
            return None
        values.append((key, kind, value))
    return tuple(values)


class CheckedOptimizer(Optimizer):
    """Checks each group when it is added and before every step; steps are all-or-nothing.

    Subclasses define ``_check_group`` (raise ``ValueError`` naming the bad value) and
    ``_step_group`` (the update of one group's parameters that have gradients). Optional hooks:
    ``_check_state`` (state tensors fit their parameters), ``_guard_stats`` and
    ``_guard_needed`` (the overflow bound of the update, see the module docstring).
    """

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
            self._check_flags(group)
            self._check_group(group)
        except BaseException:
            del self.param_groups[count:]
            raise

    @staticmethod
    def _check_flags(group: dict) -> None:
        for name in _BOOL_FLAGS:
            if name in group:
                check.boolean(name, group[name])
        for name in _OPTIONAL_BOOL_FLAGS:
            if name in group:
                check.boolean(name, group[name], allow_none=True)

    def _check_group(self, group: dict) -> None:
        """Raise ``ValueError`` naming any bad hyperparameter of ``group``."""
        raise NotImplementedError

    def _check_state(self, group: dict, params: list[Tensor]) -> object:
        """Raise ``ValueError`` if the state of ``params`` does not fit them (default: no state).

        What it returns is handed to ``_guard_stats`` (what the check learned about the state)."""
        return None

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
        work = []
        checked = self.__dict__.setdefault("_checked_values", {})
        for group_index, group in enumerate(self.param_groups):
            values = plain_values(group)
            seen = checked.get(id(group))
            if values is None or seen is None or seen[0] is not group or seen[1] != values:
                self._check_flags(group)
                self._check_group(group)
                if values is not None:
                    # the checks may fill in defaults (``fused``): remember the group as checked
                    checked[id(group)] = (group, plain_values(group))
            params, grads = [], []
            for index, p in enumerate(group["params"]):
                g = p.grad
                if g is None:
                    continue
                if g.is_sparse:
                    raise TypeError(f"{type(self).__name__} does not support sparse gradients")
                if g.shape != p.shape or not g.is_floating_point() or g.device != p.device:
                    raise ValueError(
                        f"the gradient of parameter {index} of param group {group_index} has shape "
                        f"{tuple(g.shape)}, dtype {g.dtype}, device {g.device}; it must have the "
                        f"parameter's shape {tuple(p.shape)} and device {p.device}, floating point"
                    )
                params.append(p)
                grads.append(g)
            if params:
                work.append((group, params, grads, self._check_state(group, params)))
        return work

    def _finite_checks(self, work) -> tuple[set[int], dict[int, object]]:
        """Raise if a gradient of a ``check_finite`` group is nan or inf; return the indices
        (into ``work``) of the groups whose update bound is not far from overflow, and per
        group what ``_guard_needed`` found for ``_carry_bounds``.

        The minimum and maximum of each gradient (nan and +-inf show up in them) and the
        subclass's statistics (``_guard_stats``) go to the host in one transfer per device;
        the search for the culprit runs only when something is wrong.
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
                if has_values(g) and not bool(g.isfinite().all()):
                    group_index, index = self._position(group, p)
                    if not bool(p.isfinite().all()):
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

    def _guard_stats(self, group: dict, params: list[Tensor], checked: object) -> tuple[list[Tensor], object]:
        """0-dim tensors, in ``(min, max)`` pairs, that the update bound of ``group`` needs
        besides the gradients, and whatever ``_guard_needed`` should get back with their values
        (``checked``: what ``_check_state`` returned this step)."""
        return [], None

    def _guard_needed(
        self, group: dict, params: list[Tensor], grad_max: float, stats: list[float], context: object
    ) -> tuple[bool, object]:
        """Whether the update of ``group`` may produce a non-finite value, from the largest
        ``|g|`` over its gradients and the values of ``_guard_stats``, and what the step
        leaves for ``_carry_bounds``."""
        return False, None

    def _carry_bounds(self, group: dict, params: list[Tensor], carry: object) -> None:
        """After ``group``'s step: keep what ``_guard_needed`` learned for the next step (a
        subclass may then leave those tensors out of ``_guard_stats``)."""

    def _apply(self, work, guarded: set[int], bounds: dict[int, object]) -> None:
        """Guarded groups first, each on a copy-backed in-place step that is checked; if one
        fails, all are restored and the error raised. Then the groups proven safe."""
        snapshots = []
        group_index = None
        try:
            for i in sorted(guarded):
                group, params, grads, _ = work[i]
                group_index, _ = self._position(group)
                snapshots.append(self._snapshot(params))
                self._step_group(group, params, grads)
                self._raise_if_nonfinite_result(group, params)
                self._carry_bounds(group, params, bounds.get(i))
        except BaseException as error:
            for snapshot in reversed(snapshots):
                self._restore(snapshot)
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

    # -- copies for the guarded path -------------------------------------------------------

    def _snapshot(self, params: list[Tensor]) -> list:
        saved = []
        for p in params:
            state = self.state.get(p)
            copy = None if state is None else {k: (v.clone() if isinstance(v, Tensor) else v) for k, v in state.items()}
            saved.append((p, p.detach().clone(), copy, self._in_sync(p)))
        return saved

    def _in_sync(self, p: Tensor) -> bool:
        return False

    def _mark_in_sync(self, p: Tensor) -> None:
        pass

    def _restore(self, snapshot: list) -> None:
        for p, weights, state, in_sync in snapshot:
            p.copy_(weights)
            if state is None:
                self.state.pop(p, None)
                continue
            current = self.state[p]
            for key in list(current):
                if key not in state:
                    del current[key]
            for key, value in state.items():
                old = current.get(key)
                if isinstance(value, Tensor) and isinstance(old, Tensor) and old.shape == value.shape:
                    old.copy_(value)  # keep the tensor objects others may hold
                else:
                    current[key] = value
            if in_sync:
                self._mark_in_sync(p)

    def _raise_if_nonfinite_result(self, group: dict, params: list[Tensor]) -> None:
        for p in params:
            tensors = {"weights": p, **{k: v for k, v in self.state.get(p, {}).items() if isinstance(v, Tensor)}}
            for name, t in tensors.items():
                if has_values(t) and t.is_floating_point() and not bool(t.isfinite().all()):
                    group_index, index = self._position(group, p)
                    raise FloatingPointError(
                        f"this step would make the {name} of parameter {index} of param group "
                        f"{group_index} (shape {tuple(p.shape)}) non-finite with finite gradients; "
                        f"nothing was updated. {self._overflow_hint(group, p)}Lower the learning "
                        "rate, or pass check_finite=False to take the step anyway."
                    )

    def _overflow_hint(self, group: dict, p: Tensor) -> str:
        return ""
