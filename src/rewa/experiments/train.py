"""``rewa.experiments.train``: the training layer under its earlier import path.

The code lives in :mod:`rewa.training` (:func:`rewa.training.loop.train` is ``rewa.train``);
this module re-exports what callers of the earlier path use.
"""

from __future__ import annotations

from ..training.config import (
    METHOD_DEFAULTS,
    METHOD_LOOP_DEFAULTS,
    RUN_FILES,
    SHORTCUT_HYPERPARAMETERS,
    STANDARD_THRESHOLDS,
    TrainConfig,
    decay_budget,
    grad_clip_norm,
    lr_factor,
    lr_sum,
    method_options,
    parse_schedule,
    resolve_config,
)
from ..training.distributed import PeerTimeout
from ..training.files import RunFileError
from ..training.interrupts import TrainingInterrupted
from ..training.loop import TrainingDiverged, TrainResult, train
from ..training.plan import RESUME_FREE_FIELDS, RunPlan, resolve_plan
from ..training.run_dir import check_run_dir, resume_command

__all__ = [
    "TrainConfig",
    "TrainResult",
    "TrainingDiverged",
    "TrainingInterrupted",
    "PeerTimeout",
    "RunFileError",
    "RunPlan",
    "resolve_plan",
    "check_run_dir",
    "RESUME_FREE_FIELDS",
    "resume_command",
    "train",
    "resolve_config",
    "lr_factor",
    "STANDARD_THRESHOLDS",
    "METHOD_DEFAULTS",
    "METHOD_LOOP_DEFAULTS",
    "grad_clip_norm",
    "decay_budget",
    "lr_sum",
    "RUN_FILES",
    "SHORTCUT_HYPERPARAMETERS",
    "method_options",
    "parse_schedule",
]
