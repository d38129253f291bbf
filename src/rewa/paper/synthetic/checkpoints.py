"""Sweep checkpoints: the latents after an epoch, keyed by everything that fixes the trajectory."""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import torch

from ... import _json
from .config import Method, SyntheticConfig


def sweep_key(config: SyntheticConfig, methods: Sequence[Method], seeds: Sequence[int]) -> str:
    """A fingerprint of everything that determines a sweep's trajectory (not the device)."""
    payload = _json.dumps(
        {
            "config": {k: v for k, v in asdict(config).items() if k != "device"},
            "methods": [asdict(m) for m in methods],
            "seeds": list(seeds),
        },
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def save_checkpoint(path: Path, key: str, epoch: int, y: torch.Tensor, seconds: float) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save({"key": key, "epoch": epoch, "y": y.detach().cpu(), "seconds": seconds}, tmp)
    os.replace(tmp, path)  # atomic: an interrupt never leaves half a checkpoint


class CheckpointWarning(UserWarning):
    """A sweep checkpoint that cannot be used (corrupt, foreign, or of another sweep's shape)."""


def load_checkpoint(
    path: Path, key: str, shape: tuple[int, ...] | None = None, epochs: int | None = None
) -> dict | None:
    """The saved state of this sweep, or None. A file that is not a usable checkpoint of
    this sweep is reported with a :class:`CheckpointWarning` and ignored (the sweep starts
    over and the next save replaces it); a checkpoint of another sweep is ignored silently."""
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(state, dict) or not {"key", "epoch", "y", "seconds"} <= state.keys():
            raise ValueError("not a rewa sweep checkpoint (needs key, epoch, y, seconds)")
        if state["key"] != key:
            return None
        epoch, y = state["epoch"], state["y"]
        last = epochs if epochs is not None else epoch
        if isinstance(epoch, bool) or not isinstance(epoch, int) or not 0 <= epoch <= last:
            raise ValueError(f"epoch {epoch!r} is not an integer in [0, {epochs}]")
        wrong_shape = shape is not None and tuple(getattr(y, "shape", ())) != shape
        if not isinstance(y, torch.Tensor) or not y.is_floating_point() or wrong_shape:
            described = getattr(y, "shape", type(y).__name__)
            raise ValueError(f"latents {described!s} are not a floating tensor of shape {shape}")
        if not isinstance(state["seconds"], (int, float)):
            raise ValueError(f"seconds {state['seconds']!r} is not a number")
    except Exception as error:  # any unreadable file: report it, never fail every rerun
        warnings.warn(
            f"ignoring sweep checkpoint {str(path)!r}: {type(error).__name__}: {error}; "
            "starting from epoch 0 (the next save replaces it)",
            CheckpointWarning,
            stacklevel=3,
        )
        return None
    return state
