"""Book-keeping for optimizers whose parameters hold ``x = power_map(y, K)`` for a latent ``y``.

The latent lives in ``self.state[p]["y"]``, in float32 (float64 for float64 weights), and
is never recomputed from the weights, except at the coordinates where something outside the
optimizer changed them in place (noticed through the parameter's version counter, or after
loading a state dict) and when the group's ``K`` changed. This class does only that book-keeping; the update math is in ``_functional``.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import Tensor

from ._checked import CheckedOptimizer
from ._functional import latent_from_weight, power_map

# Written next to the latent after every update; stripped from ``state_dict()`` because a
# version counter means nothing in another process.
_VERSION_KEY = "param_version"


def latent_dtype(param: Tensor) -> torch.dtype:
    """float64 for float64 weights, float32 for everything else (bf16, fp16, fp32)."""
    return torch.float64 if param.dtype == torch.float64 else torch.float32


def default_foreach(foreach: bool | None, params: list[Tensor]) -> bool:
    """The one place that chooses the multi-tensor path: explicit choice, else on CUDA."""
    if foreach is not None:
        return bool(foreach)
    return all(p.device.type == "cuda" for p in params)


def default_fused(fused: bool | None, foreach: bool | None, params: list[Tensor]) -> bool:
    """The one place that chooses the compiled path: only when asked for.

    ``None`` means no: compiling costs seconds to a minute on the first step (measured on
    CPU, see ``rewa bench``), more than short runs, tests and examples gain from it.
    """
    if fused and foreach:
        raise ValueError(f"fused={fused} and foreach={foreach} cannot both be True; pick one")
    return bool(fused)


class LatentOptimizer(CheckedOptimizer):
    """Keeps the latent ``y`` of every parameter in ``self.state`` and in sync with it.

    Subclasses name the state tensors that live in the latent's dtype (``_latent_state_keys``),
    define ``_check_group`` and call :meth:`_collect`, :meth:`_latents` and
    :meth:`_mark_written` from ``step``.
    """

    _latent_state_keys: tuple[str, ...] = ("y",)

    def _latents(self, group: dict, params: list[Tensor]) -> list[Tensor]:
        """The latent of each parameter: created on first use, re-derived if ``x`` changed."""
        K = group["K"]
        latents = []
        for p in params:
            state = self.state[p]
            if "y" not in state:
                state["step"] = 0
                state["K"] = K
                state["y"] = latent_from_weight(p, K, latent_dtype(p))
            elif state.get(_VERSION_KEY) != p._version or state["K"] != K:
                self._resync(p, state, K)
            latents.append(state["y"])
        return latents

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

    @contextmanager
    def _weights_kept_at_zero_lr(self, lr: float, params: list[Tensor]):
        """A step at ``lr = 0`` leaves the weights bitwise as they were.

        It leaves ``y`` unchanged, but ``power_map(latent_from_weight(x))`` is ``x`` only up to
        rounding, so rewriting ``x`` from a latent just derived from it would move it (by up to
        6.7e-7 relative for K = 9). ``torch.distributed.checkpoint`` creates optimizer state by
        such a step. Only at lr 0: one copy of the group's weights for that step; no host sync.
        """
        saved = [p.detach().clone() for p in params] if lr == 0 else []
        yield
        for p, x in zip(params, saved):
            p.copy_(x)

    def _mark_written(self, params: list[Tensor]) -> None:
        for p in params:
            state = self.state[p]
            state["step"] += 1
            state[_VERSION_KEY] = p._version

    # -- checkpoints ---------------------------------------------------------------------

    def state_dict(self) -> dict:
        sd = super().state_dict()
        sd["state"] = {
            key: {k: v for k, v in value.items() if k != _VERSION_KEY}
            for key, value in sd["state"].items()
        }
        return sd

    def load_state_dict(self, state_dict: dict) -> None:
        super().load_state_dict(state_dict)
        # torch casts floating state to each parameter's dtype; the latent and its buffers
        # must stay in float32 (or float64), so take them again from the saved tensors.
        saved_to_param = {}
        for saved_group, group in zip(state_dict["param_groups"], self.param_groups):
            saved_to_param.update(zip(saved_group["params"], group["params"]))
        for saved_id, saved in state_dict["state"].items():
            p = saved_to_param.get(saved_id)
            if p is None:
                continue
            state = self.state[p]
            state.pop(_VERSION_KEY, None)
            for key in self._latent_state_keys:
                if isinstance(saved.get(key), Tensor):
                    state[key] = saved[key].to(device=p.device, dtype=latent_dtype(p), copy=True)
