"""Book-keeping for optimizers whose parameters hold ``x = power_map(y, K)`` for a latent ``y``.

The latent lives in ``self.state[p]["y"]``, in float32 (float64 for float64 weights), and
is never recomputed from the weights, except at the coordinates where something outside the
optimizer changed them (noticed through the parameter's version counter or its storage, see
:func:`stamp`, or after loading a state dict) and when the group's ``K`` changed. This class does only that
book-keeping; the update math is in ``_functional``.
"""

from __future__ import annotations

import functools
import itertools
import math
import operator
import warnings
from numbers import Real
from typing import NamedTuple

import torch
from torch import Tensor

from .._math import latent_from_weight, power_map
from . import _fused
from ._checked import CheckedOptimizer, caller_stacklevel, has_values, max_abs, to_host_any

# Written next to the latent after every update; stripped from ``state_dict()`` because a
# version counter means nothing in another process.
_VERSION_KEY = "param_version"

# Host-side bounds of |y| and the guarded state after the last step, with the stamp of the
# tensors they describe; like the version, stripped from ``state_dict()``.
BOUNDS_KEY = "update_bounds"
ROUNDING_SLACK = 1 + 2.0**-20

# Hyperparameters a saved group may lack (they choose a code path, not the math).
_OPTIONAL_KEYS = ("fused",)

# A tensor whose share of exact zeros is at least this warns (the zero saddle).
ZERO_SHARE_WARNING = 0.5


class ZeroSaddleWarning(UserWarning):
    """Weights at exactly 0 that ReWA cannot move (the zero saddle of Example 3.2).

    With ``M > 0`` or ``eps > 0`` the factor ``|y|^M |y|^(K-1)/(|y|^(K-1) + eps)`` is 0 at
    ``y = 0``, so a weight that starts at exactly 0 keeps a zero step for ever.
    """


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
    large = sum(n for n in (p.numel() for p in params) if n >= _fused.FUSED_MIN_NUMEL)
    return (
        large >= FUSED_AUTO_MIN_NUMEL
        and all(type(p) in (Tensor, torch.nn.Parameter) and p.device.type == "cpu" for p in params)
        and _fused.fused_available()
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
    big, small = _fused.split_for_fused(params)
    if not big or default_foreach(None, params):
        return [], [], everything
    return [], big, small


class _Carried(NamedTuple):
    """Bounds of ``|y|`` and of the guarded state after a group's step, kept in the state of each
    of its parameters (one shared object), with what they describe: the parameters, the state
    entries the step left (the objects themselves) and the version counter of every tensor
    among them. While all of these are as the step left them, nothing has written to the
    group's weights or state since, so the bounds hold and the state needs no new check."""

    y_bound: float
    others: list[float]
    grad_max: float  # the largest |g| of that step
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
    carried: _Carried | None


class _GuardContext(NamedTuple):
    """What ``_guard_stats`` hands to ``_guard_needed``: the group's states, the carried bounds
    (``None`` if measured) and which statistics were measured for each tensor."""

    states: list[dict | None]
    carried: _Carried | None
    measured: list[tuple[bool, bool, int]]


class LatentOptimizer(CheckedOptimizer):
    """Keeps the latent ``y`` of every parameter in ``self.state`` and in sync with it.

    Subclasses name the state tensors that live in the latent's dtype (``_latent_state_keys``),
    define ``_check_group`` and call :meth:`_collect`, :meth:`_latents` and
    :meth:`_mark_written` from ``step``.
    """

    _latent_state_keys: tuple[str, ...] = ("y",)

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
                self._resync(p, state, K)
            latents.append(state["y"])
        if created and K != 1 and (group["M"] != 0 or group["eps"] != 0):
            self._warn_zero_saddle(group, created)
        return latents

    @staticmethod
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

    def _in_sync(self, p: Tensor) -> bool:
        """The latent exists and the weights are what this optimizer last wrote."""
        return _in_sync(p, self.state.get(p))

    def _mark_in_sync(self, p: Tensor) -> None:
        self.state[p][_VERSION_KEY] = stamp(p)

    # -- checks before a step ---------------------------------------------------------------

    def _check_state(self, group: dict, params: list[Tensor]) -> _Checked:
        """Check the state of each parameter, unless the group's state is exactly what its last
        step left (then it was checked and written by this optimizer, nearly always)."""
        get = self.state.get
        states = [get(p) for p in params]
        carried = _unchanged_since_step(group, params, states)
        if carried is None:
            for p, state in zip(params, states):
                if state:
                    _check_param_state(state, p, self._latent_state_keys, where="")
        return _Checked(states, carried)

    def _guard_keys(self, group: dict) -> tuple[str, ...]:
        """Keys of the state tensors (besides ``y``) whose largest magnitude the update bound needs."""
        return ()

    def _guard_stats(self, group: dict, params: list[Tensor], checked: object) -> tuple[list[Tensor], object]:
        """``aminmax`` of the latents and guarded state, unless the last step's bounds still hold.

        Where nothing has written to the group's latents, state or weights since its last step,
        the bounds that step left hold and no reduction is needed (nearly always).
        """
        assert isinstance(checked, _Checked)  # what _check_state returned
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

    def _fold_stats(
        self, group: dict, measured: list[tuple[bool, bool, int]], stats: list[float]
    ) -> tuple[float, list[float]]:
        """The largest ``|y|`` and guarded entries, from the measured ``stats``."""
        y_max, others = 0.0, []  # type: tuple[float, list[float]]
        k = 0
        for has_latent, rederive, count in measured:
            if has_latent:
                y_max, k = _larger(y_max, max_abs(stats[k : k + 2])), k + 2
            if rederive:
                y_max, k = _larger(y_max, _root(max_abs(stats[k : k + 2]), group["K"])), k + 2
            others = _larger_each(others, [max_abs(stats[k + 2 * j : k + 2 * j + 2]) for j in range(count)])
            k += 2 * count
        return y_max, others

    def _guard_needed(
        self, group: dict, params: list[Tensor], grad_max: float, stats: list[float], context: object
    ) -> tuple[bool, object]:
        assert isinstance(context, _GuardContext)  # what _guard_stats returned
        states, carried, measured = context
        if carried is not None:
            y_max, others = carried.y_bound, carried.others
        else:
            y_max, others = self._fold_stats(group, measured, stats)
        needed, bound = self._bound_after_step(group, params, states, y_max, grad_max, others)
        if needed and carried is not None:
            # Carried bounds only grow from step to step; measure before paying for copies.
            exact: list[Tensor] = []
            measured = [self._exact_stats(group, p, state, exact) for p, state in zip(params, states) if has_values(p)]
            y_max, others = self._fold_stats(group, measured, to_host_any(exact))
            needed, bound = self._bound_after_step(group, params, states, y_max, grad_max, others)
        return needed, None if bound is None else (*bound, grad_max)

    def _bound_after_step(
        self,
        group: dict,
        params: list[Tensor],
        states: list[dict | None],
        y_max: float,
        grad_max: float,
        others: list[float],
    ) -> tuple[bool, tuple[float, list[float]] | None]:
        """Whether the update may overflow, and (if not) the bounds of ``|y|`` and of the
        ``_guard_keys`` tensors after the step. One bound serves the whole group: the largest ``|g|``,
        ``|y|`` and guarded entries over its tensors bound each of them, so the cost in Python
        is per group, not per tensor."""
        return self._bound_within(group, self._overflow_limits(group, params), states, y_max, grad_max, others)

    def _overflow_limits(self, group: dict, params: list[Tensor]) -> tuple[float, float]:
        """What an update of ``params`` must stay below to be safe: every intermediate latent
        value, and ``|y|`` after the step (whose ``K``-th power is the weight); a factor 4 below
        overflow covers the rounding of every operation."""
        latent_limit = weight_limit = math.inf
        for dtype in {p.dtype for p in params}:
            dtype_latent_limit, dtype_weight_limit = _limits(dtype)
            latent_limit, weight_limit = min(latent_limit, dtype_latent_limit), min(weight_limit, dtype_weight_limit)
        return latent_limit / 4, _root(weight_limit / 4, group["K"])

    def _bound_within(
        self,
        group: dict,
        limits: tuple[float, float],
        states: list[dict | None],
        y_max: float,
        grad_max: float,
        others: list[float],
    ) -> tuple[bool, tuple[float, list[float]] | None]:
        """:meth:`_bound_after_step` with the group's :meth:`_overflow_limits` given."""
        latent_limit, y_limit = limits
        y_bound, others_after = self._update_bound(
            group, [s for s in states if s], y_max=y_max, grad_max=grad_max, others=others, limit=latent_limit
        )
        safe = y_bound < y_limit
        return not safe, ((y_bound, others_after) if safe else None)

    def _update_bound(
        self, group: dict, states: list[dict], *, y_max: float, grad_max: float, others: list[float], limit: float
    ) -> tuple[float, list[float]]:
        """Upper bounds of ``|y|`` after this step (``inf`` if an intermediate may exceed
        ``limit``) and of each ``_guard_keys`` tensor after it, from the largest ``|y|``,
        ``|g|`` and ``|t|`` for ``_guard_keys`` tensors before it over the tensors whose ``states``
        are given."""
        return math.inf, []

    # -- bounds carried from one step to the next --------------------------------------------

    def _carry_bounds(self, group: dict, params: list[Tensor], carry: object) -> None:
        get = self.state.get
        states = [get(p) for p in params]
        if carry is None or not all(state and "y" in state for state in states):
            for state in states:
                if state:
                    state.pop(BOUNDS_KEY, None)
            return
        assert isinstance(carry, tuple)  # what _bound_after_step found, and the largest |g|
        self._record_bounds(group, params, states, carry)  # type: ignore[arg-type]

    def _record_bounds(self, group: dict, params: list[Tensor], states: list[dict], carry: tuple) -> _Carried:
        """Keep ``carry`` (the bounds of ``|y|`` and the guarded state after the step, and its
        largest ``|g|``) in the state of each of ``params`` (``states``: theirs, each with a
        latent), as one record with what it describes; return the record."""
        keys = (*self._latent_state_keys, "step", "K")
        entries = entries_of(states, keys)
        tensors = (*params, *[e for e in entries if isinstance(e, Tensor)])
        # widened a little: the bounds hold in exact arithmetic, the steps round
        carried = _Carried(
            carry[0] * ROUNDING_SLACK,
            [b * ROUNDING_SLACK for b in carry[1]],
            carry[2],
            group["K"],
            tuple(params),
            keys,
            entries,
            tensors,
            stamps(tensors),
        )
        for state in states:
            state[BOUNDS_KEY] = carried
        return carried

    def _overflow_hint(self, group: dict, p: Tensor) -> str:
        K = group["K"]
        limit = _root(min(torch.finfo(p.dtype).max, torch.finfo(latent_dtype(p)).max), K)
        return (
            f"With K={K:g} a {p.dtype} weight overflows once |y| > {limit:.4g} "
            "(the largest finite value to the power 1/K). "
        )

    @staticmethod
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

    @staticmethod
    def _weights_before_zero_lr_step(lr: float, params: list[Tensor]) -> list[Tensor] | None:
        """A step at ``lr = 0`` must leave the weights bitwise as they were: a copy of them to
        put back after it (``None`` for any other ``lr``).

        It leaves ``y`` unchanged, but ``power_map(latent_from_weight(x))`` is ``x`` only up to
        rounding, so rewriting ``x`` from a latent just derived from it would move it (by up to
        6.7e-7 relative for K = 9). ``torch.distributed.checkpoint`` creates optimizer state by
        such a step. Only at lr 0: one copy of the group's weights for that step; no host sync.
        """
        return [p.detach().clone() for p in params] if lr == 0 else None

    @staticmethod
    def _put_back(params: list[Tensor], saved: list[Tensor] | None) -> None:
        for p, x in zip(params, saved or []):
            p.copy_(x)

    def _mark_written(self, params: list[Tensor], states: list[dict]) -> None:
        for p, state in zip(params, states):
            state["step"] += 1
            state[_VERSION_KEY] = stamp(p)

    # -- checkpoints ---------------------------------------------------------------------

    def state_dict(self) -> dict:
        sd = super().state_dict()
        sd["state"] = {
            key: {k: v for k, v in value.items() if k not in (_VERSION_KEY, BOUNDS_KEY)}
            for key, value in sd["state"].items()
        }
        return sd

    def load_state_dict(self, state_dict: dict) -> None:
        """As torch's, after checking everything: nothing is written unless all of it fits.

        Every saved group must have every hyperparameter of this optimizer with an allowed
        value; every latent and buffer must be a floating tensor of its parameter's shape.
        """
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
                self._check_flags(candidate)
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
            _check_param_state(saved, p, self._latent_state_keys, where=f" (loaded, parameter id {saved_id!r})")


@functools.lru_cache(maxsize=16)
def _limits(dtype: torch.dtype) -> tuple[float, float]:
    """The largest finite latent and weight for weights of ``dtype``."""
    latent_limit = torch.finfo(torch.float64 if dtype == torch.float64 else torch.float32).max
    return latent_limit, min(torch.finfo(dtype).max, latent_limit)


def _in_sync(p: Tensor, state: dict | None) -> bool:
    """The latent exists and the weights are what the optimizer last wrote."""
    return state is not None and "y" in state and state.get(_VERSION_KEY) == stamp(p)


def _latent_current(group: dict, p: Tensor, state: dict | None) -> bool:
    """In sync, and derived with the group's ``K``."""
    return _in_sync(p, state) and state.get("K") == group["K"]  # type: ignore[union-attr]


def _larger(a: float, b: float) -> float:
    """``max(a, b)`` where nan counts as larger than everything (so it is never dropped)."""
    return math.inf if a != a or b != b else (a if a >= b else b)


def _unchanged_since_step(group: dict, params: list[Tensor], states: list[dict | None]) -> _Carried | None:
    """The bounds the group's last step left, if it is still as that step left it
    (:func:`untouched`) and ``K`` is the same; else ``None``."""
    first = states[0] if states else None
    carried = first.get(BOUNDS_KEY) if first else None
    if carried is None or carried.K != group["K"] or not untouched(carried, params, states):
        return None
    return carried


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


def _larger_each(a: list[float], b: list[float]) -> list[float]:
    """Entry-wise :func:`_larger`; the longer list's extra entries are kept."""
    return [_larger(x, y) for x, y in zip(a, b)] + (a[len(b) :] if len(a) > len(b) else b[len(a) :])


def _root(value: float, K: float) -> float:
    """``value^(1/K)`` for ``value >= 0``; nan stays nan, inf stays inf."""
    return value ** (1.0 / K) if value == value else math.nan


def _check_param_state(state: dict, p: Tensor, tensor_keys: tuple[str, ...], where: str) -> None:
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
