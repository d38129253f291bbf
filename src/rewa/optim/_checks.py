"""The all-or-nothing step's checks, as plain functions the base class calls.

A step runs in two phases. First everything is checked and nothing is written: every group's
hyperparameters, every gradient's shape and dtype, the optimizer state (:func:`check_param_state`)
and, for groups with ``check_finite=True``, that every gradient is finite. Then the groups are
updated. For ``check_finite`` groups a step either completes with finite state and weights or
raises ``FloatingPointError`` and leaves every tensor as it was, in every group:

* Each optimizer states a cheap upper bound of what its update can produce from a few per-tensor
  maxima (its ``*_bound`` function); the maxima of all tensors go to the host in one transfer per
  device (:func:`to_host_any`), together with the gradient check. When the bound is far from
  overflow (nearly always), the group is updated in place, with no further cost.
* Otherwise the group's tensors are copied first (:func:`snapshot`), the update runs, and its
  results are checked; if anything is not finite every guarded group is restored
  (:func:`restore`) and ``FloatingPointError`` is raised.

What the guarantee assumes. Where nothing has written to a group since its last step, the
bounds that step left are reused instead of measuring again, and "nothing has written" is read
from each tensor's version counter and storage (:func:`stamp`, :func:`untouched`). Every
in-place write through the tensor or a view of it moves the version counter; rebinding its
storage (``t.data = other``) moves the storage, and both are noticed (the state is then
measured again, and weights changed this way re-derive their latents). Writes *in place*
through ``t.data`` (``p.data.mul_(2)``) or through ``t.numpy()`` change neither, and detecting
them would mean reading every tensor at every step: after such a write to the optimizer state,
the next step may write non-finite weights (or, for a write to the weights, overwrite it from
the latent). The step after that finds the non-finite weights (through their gradients) and
raises ``FloatingPointError`` saying so. Write to parameters and state in place through the
tensors themselves (``with torch.no_grad(): p.mul_(2)``), never through ``.data`` or ``.numpy()``.

The version counter is torch's ``Tensor._version``: it has no public name, and it is what
``torch.autograd`` itself uses to notice in-place writes. Parameters on the ``meta`` device have
no values: they are skipped by the finite checks.
"""

from __future__ import annotations

import functools
import itertools
import math
import operator
import os
import sys
from collections.abc import Sequence
from numbers import Real
from types import FrameType

import torch
from torch import Tensor

from .. import _check as check

_BOOL_FLAGS = ("nesterov", "check_finite", "decoupled_weight_decay", "proximal")


# Flags that may also be None ("let the optimizer choose").
_OPTIONAL_BOOL_FLAGS = ("foreach", "fused")


def check_flags(group: dict) -> None:
    """``TypeError`` naming a flag of ``group`` that is not a bool (or ``None`` where allowed)."""
    for name in _BOOL_FLAGS:
        if name in group:
            check.boolean(name, group[name])
    for name in _OPTIONAL_BOOL_FLAGS:
        if name in group:
            check.boolean(name, group[name], allow_none=True)


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


def gradients(group: dict, group_index: int, owner: str) -> tuple[list[Tensor], list[Tensor]]:
    """The parameters of ``group`` that have a gradient, and their gradients, after checking
    that each gradient is dense, floating point and of its parameter's shape and device."""
    params, grads = [], []
    for index, p in enumerate(group["params"]):
        g = p.grad
        if g is None:
            continue
        if g.is_sparse:
            raise TypeError(f"{owner} does not support sparse gradients")
        if g.shape != p.shape or not g.is_floating_point() or g.device != p.device:
            raise ValueError(
                f"the gradient of parameter {index} of param group {group_index} has shape "
                f"{tuple(g.shape)}, dtype {g.dtype}, device {g.device}; it must have the "
                f"parameter's shape {tuple(p.shape)} and device {p.device}, floating point"
            )
        params.append(p)
        grads.append(g)
    return params, grads


def snapshot(state: dict, params: list[Tensor], in_sync) -> list:
    """Copies of ``params`` and of their optimizer state, to :func:`restore` after a failed step
    (``in_sync(p)``: whether the latent of ``p`` matched its weights)."""
    saved = []
    for p in params:
        entries = state.get(p)
        copy = None if entries is None else {k: (v.clone() if isinstance(v, Tensor) else v) for k, v in entries.items()}
        saved.append((p, p.detach().clone(), copy, in_sync(p)))
    return saved


def restore(state: dict, saved: list, mark_in_sync) -> None:
    """Put back what :func:`snapshot` copied, into the same tensor objects (others may hold them)."""
    for p, weights, entries, in_sync in saved:
        p.copy_(weights)
        if entries is None:
            state.pop(p, None)
            continue
        current = state[p]
        for key in list(current):
            if key not in entries:
                del current[key]
        for key, value in entries.items():
            old = current.get(key)
            if isinstance(value, Tensor) and isinstance(old, Tensor) and old.shape == value.shape:
                old.copy_(value)
            else:
                current[key] = value
        if in_sync:
            mark_in_sync(p)


def nonfinite(t: Tensor) -> bool:
    """Whether a floating tensor with values holds a nan or an inf (one host sync)."""
    return has_values(t) and t.is_floating_point() and not bool(t.isfinite().all())


@functools.lru_cache(maxsize=16)
def dtype_limits(dtype: torch.dtype) -> tuple[float, float]:
    """The largest finite latent and weight for weights of ``dtype``."""
    latent_limit = torch.finfo(torch.float64 if dtype == torch.float64 else torch.float32).max
    return latent_limit, min(torch.finfo(dtype).max, latent_limit)


def larger(a: float, b: float) -> float:
    """``max(a, b)`` where nan counts as larger than everything (so it is never dropped)."""
    return math.inf if a != a or b != b else (a if a >= b else b)


def larger_each(a: list[float], b: list[float]) -> list[float]:
    """Entry-wise :func:`larger`; the longer list's extra entries are kept."""
    return [larger(x, y) for x, y in zip(a, b)] + (a[len(b) :] if len(a) > len(b) else b[len(a) :])


def root(value: float, K: float) -> float:
    """``value^(1/K)`` for ``value >= 0``; nan stays nan, inf stays inf."""
    return value ** (1.0 / K) if value == value else math.nan


VERSION_OF = operator.attrgetter("_version")

_DATA_PTR = Tensor.data_ptr


def stamp(t: Tensor) -> tuple[int, int]:
    """What tells that ``t`` was written: its version counter (every in-place write through
    ``t`` or a view of it), and where its storage is (``t.data = other`` rebinds it without a
    new version). Writes through ``t.data`` or ``t.numpy()`` in place change neither."""
    return t._version, t.data_ptr()


def stamps(tensors) -> list[int]:
    """:func:`stamp` of each tensor, flattened: the version counters, then the storages (in C:
    this runs at every step)."""
    return [*map(VERSION_OF, tensors), *map(_DATA_PTR, tensors)]


def entries_of(states: list[dict], keys: tuple[str, ...]) -> tuple:
    """``state.get(key)`` for each state and key, in that order (in C when every key is present:
    this runs at every step)."""
    if len(keys) > 1:  # (one key: itemgetter returns the value, not a tuple)
        try:
            return tuple(itertools.chain.from_iterable(map(operator.itemgetter(*keys), states)))
        except KeyError:
            pass
    return tuple([state.get(key) for state in states for key in keys])


def untouched(record, params: list[Tensor], states: list[dict | None]) -> bool:
    """Whether ``params``, their ``states``' entries under ``record.keys`` and every tensor among
    them are as a step left them: ``record`` (a bounds record, a one-kernel plan) holds that
    step's ``params`` and ``entries`` (compared by identity), and the ``tensors`` it wrote with
    their ``versions`` then (no write since)."""
    return (
        len(record.params) == len(params)
        and all(map(operator.is_, params, record.params))
        and all(states)
        and all(map(operator.is_, entries_of(states, record.keys), record.entries))  # type: ignore[arg-type]
        and stamps(record.tensors) == record.versions
    )


def check_param_state(state: dict, p: Tensor, tensor_keys: tuple[str, ...], where: str) -> None:
    """``ValueError`` naming the parameter and both shapes, or the key and the type."""

    def described() -> str:  # only for messages: the checks run every step
        return f"parameter of shape {tuple(p.shape)}{where}"

    if state and "y" not in state:
        raise ValueError(f"the state of the {described()} has {sorted(map(str, state))} but no latent 'y'")
    for key in tensor_keys:
        if key not in state:
            continue
        value = state[key]
        if not isinstance(value, Tensor) or not value.is_floating_point():
            dtype = f" of dtype {value.dtype}" if isinstance(value, Tensor) else ""
            raise ValueError(
                f"state {key!r} of the {described()} must be a floating-point tensor, got {type(value).__name__}{dtype}"
            )
        if value.shape != p.shape:
            raise ValueError(
                f"state {key!r} of the {described()} has shape {tuple(value.shape)}; "
                f"it must be the parameter's shape {tuple(p.shape)}"
            )
    step = state.get("step")
    if step is not None and not (type(step) is int and step >= 0):  # plain ints need no more
        if isinstance(step, Tensor) and step.numel() == 1:
            step = step.item()
        if isinstance(step, bool) or not isinstance(step, Real) or not float(step).is_integer() or step < 0:
            raise ValueError(f"state 'step' of the {described()} must be a non-negative integer, got {state['step']!r}")
    K = state.get("K") if "y" in state else 1
    if not ((type(K) is int or type(K) is float) and 1 <= K < math.inf):
        if isinstance(K, bool) or not isinstance(K, Real) or not math.isfinite(K) or K < 1:
            raise ValueError(f"state 'K' of the {described()} must be a real number >= 1, got {K!r}")


def power_bound(base: float, exponent: float) -> float:
    """``base ** exponent`` for ``base >= 0``, ``inf`` instead of OverflowError."""
    try:
        return base**exponent
    except OverflowError:
        return math.inf
