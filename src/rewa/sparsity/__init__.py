"""Measure, threshold, prune and fine-tune sparse models.

ReWA drives unused weights towards zero without making them exactly zero (small MLPs end with
them between about 1e-6 and 1e-2), so its compression is realised by thresholding: zero every
weight with ``|w| <= t``. The package measures sparsity at a threshold, sweeps thresholds on a
copy of the model (the paper's accuracy-vs-compression curve), builds pruning masks in the
format of :mod:`torch.nn.utils.prune`, and keeps masked weights at exactly zero while
fine-tuning with any optimizer.

Which tensors count as weights is decided by :func:`rewa.param_groups.split_parameters`:
tensors with two or more dimensions outside normalization layers; biases and normalization
parameters are listed but not counted unless ``include_bias_and_norm=True``. A module pruned with
:mod:`torch.nn.utils.prune` (parameter ``weight_orig``, buffer ``weight_mask``) is measured through
its effective ``weight = weight_orig * weight_mask``, under the name ``weight``.

Compression ratio (paper, Section 4, after Tanaka et al. 2020): number of counted weights divided
by the number of counted weights with ``|w| > threshold``.
"""

from .batchnorm import recalibrate_batchnorm
from .masks import FixedMask, attach_masks, lamp_scores, make_masks_permanent, prune
from .measure import (
    PAPER_THRESHOLDS,
    SWEEP_THRESHOLDS,
    SparsityReport,
    SweepPoint,
    SweepResult,
    TensorSparsity,
    sparsity_report,
    threshold_sweep,
)
from .selection import SparsifiedTensor, counted_tensors, sparsified_tensors

__all__ = [
    "PAPER_THRESHOLDS",
    "SWEEP_THRESHOLDS",
    "FixedMask",
    "SparsifiedTensor",
    "SparsityReport",
    "SweepPoint",
    "SweepResult",
    "TensorSparsity",
    "attach_masks",
    "counted_tensors",
    "lamp_scores",
    "make_masks_permanent",
    "prune",
    "recalibrate_batchnorm",
    "sparsified_tensors",
    "sparsity_report",
    "threshold_sweep",
]
