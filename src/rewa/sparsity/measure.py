"""Measuring sparsity: counts at a threshold (:func:`sparsity_report`) and a sweep of thresholds
on a copy of the model (:func:`threshold_sweep`, the paper's accuracy-vs-compression curve).

Compression ratio (paper, Section 4, after Tanaka et al. 2020): number of counted weights divided
by the number of counted weights with ``|w| > threshold``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from numbers import Real

import torch
from torch import Tensor, nn

from .. import _check as check
from .selection import counted_tensors, refuse_parametrized, sparsified_tensors

__all__ = [
    "PAPER_THRESHOLDS",
    "SWEEP_THRESHOLDS",
    "SparsityReport",
    "SweepPoint",
    "SweepResult",
    "TensorSparsity",
    "sparsity_report",
    "threshold_sweep",
]

# This library's sweep (``rewa train``'s default): 0 (no pruning), then 1e-7 to 0.1.
SWEEP_THRESHOLDS = (0.0, 1e-7, 1e-6, 1e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 2e-2, 3e-2, 5e-2, 7e-2, 1e-1)
# The paper code's CIFAR-10 evaluation: one global absolute threshold over every convolution and
# classifier weight (normalization parameters not counted, nothing fine-tuned). Listed in its
# scripts as 1e-8, 1e-5, 2e-5, 3e-5, 5e-5, 1e-4, 2e-4, 5e-4, 1e-3, ..., 0.5; the elided part is
# taken to continue the 1-2-5 steps of 1e-4 .. 1e-3.
PAPER_THRESHOLDS = (
    1e-8,
    1e-5,
    2e-5,
    3e-5,
    5e-5,
    1e-4,
    2e-4,
    5e-4,
    1e-3,
    2e-3,
    5e-3,
    1e-2,
    2e-2,
    5e-2,
    0.1,
    0.2,
    0.5,
)
_NAMED_THRESHOLDS = {"paper": PAPER_THRESHOLDS, "default": SWEEP_THRESHOLDS}


# -- measure -------------------------------------------------------------------------------


@dataclass(frozen=True)
class TensorSparsity:
    """Counts for one tensor: ``nonzeros`` is the number of entries with ``|w| > threshold``."""

    name: str
    shape: tuple[int, ...]
    numel: int
    nonzeros: int
    counted: bool  # included in the totals (a weight), or only listed (bias, norm)

    @property
    def sparsity(self) -> float:
        return 1.0 - self.nonzeros / self.numel if self.numel else 0.0

    @property
    def compression(self) -> float:
        return self.numel / self.nonzeros if self.nonzeros else math.inf


@dataclass(frozen=True)
class SparsityReport:
    """Per-tensor and total counts at one threshold; totals cover the counted tensors only."""

    threshold: float
    tensors: tuple[TensorSparsity, ...]

    @property
    def total(self) -> int:
        return sum(t.numel for t in self.tensors if t.counted)

    @property
    def nonzeros(self) -> int:
        return sum(t.nonzeros for t in self.tensors if t.counted)

    @property
    def sparsity(self) -> float:
        return 1.0 - self.nonzeros / self.total

    @property
    def compression(self) -> float:
        """``total / nonzeros``; ``inf`` when every counted weight is at or below the threshold."""
        return self.total / self.nonzeros if self.nonzeros else math.inf

    @property
    def counted_names(self) -> list[str]:
        return [t.name for t in self.tensors if t.counted]

    def to_records(self) -> list[dict]:
        """One dict per tensor (for ``pandas.DataFrame(report.to_records())``)."""
        return [{**asdict(t), "sparsity": t.sparsity, "compression": t.compression} for t in self.tensors]

    def to_dict(self) -> dict:
        return {
            "threshold": self.threshold,
            "total": self.total,
            "nonzeros": self.nonzeros,
            "sparsity": self.sparsity,
            "compression": self.compression,
            "tensors": self.to_records(),
        }

    def __str__(self) -> str:
        rows = [("tensor", "shape", "weights", "nonzeros", "sparsity", "compression", "counted")]
        for t in self.tensors:
            rows.append(
                (
                    t.name,
                    "x".join(map(str, t.shape)) or "scalar",
                    str(t.numel),
                    str(t.nonzeros),
                    f"{100 * t.sparsity:.2f}%",
                    f"{t.compression:.2f}x",
                    "yes" if t.counted else "no",
                )
            )
        rows.append(
            (
                "total (counted)",
                "",
                str(self.total),
                str(self.nonzeros),
                f"{100 * self.sparsity:.2f}%",
                f"{self.compression:.2f}x",
                "",
            )
        )
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = [f"nonzero means |w| > {self.threshold:g}"]
        for i, row in enumerate(rows):
            lines.append("  ".join(c.ljust(w) if j == 0 else c.rjust(w) for j, (c, w) in enumerate(zip(row, widths))))
            if i == 0 or i == len(rows) - 2:
                lines.append("  ".join("-" * w for w in widths))
        return "\n".join(lines)


@torch.no_grad()
def sparsity_report(model: nn.Module, threshold: float = 0.0, *, include_bias_and_norm: bool = False) -> SparsityReport:
    """Count, per tensor and in total, the weights with ``|w| > threshold``.

    For each trainable tensor ``w``: ``numel``, ``nonzeros = #{i : |w_i| > threshold}``,
    ``sparsity = 1 - nonzeros/numel`` and ``compression = numel/nonzeros``. Totals (and the
    model's compression ratio, the paper's metric) sum over the counted tensors: every weight
    tensor, final classifier included; biases and normalization parameters are listed with
    ``counted=False`` unless ``include_bias_and_norm=True``. One host sync for the whole model.

    Raises ``ValueError`` for ``threshold < 0``, a model without weight tensors, a tensor with
    nan or inf entries (named, with their counts: sparsity is not defined for them), or a model
    that still carries a parametrization (``torch.nn.utils.parametrize``, e.g. after
    ``create_optimizer("hadamard", ...)``): call :func:`rewa.reparam.collapse` first.

    Reference: the compression ratio of the ReWA paper (ICML 2026), Section 4.

    Example:
        >>> import torch
        >>> from rewa.sparsity import sparsity_report
        >>> layer = torch.nn.Linear(4, 2)
        >>> with torch.no_grad():
        ...     _ = layer.weight.copy_(torch.tensor([[0.0, 1e-4, 2.0, 0.0], [3.0, 0.0, 0.0, 0.0]]))
        >>> report = sparsity_report(layer, threshold=1e-3)
        >>> report.total, report.nonzeros, report.compression
        (8, 2, 4.0)
    """
    threshold = float(check.at_least("threshold", threshold, 0))
    refuse_parametrized(model, "sparsity_report")
    entries = sparsified_tensors(model, include_bias_and_norm)
    if not any(e.counted for e in entries):
        counted_tensors(model, include_bias_and_norm)  # raises the explanatory error
    counts = []
    for e in entries:  # per tensor: entries above the threshold, nan entries, +-inf entries
        w = e.effective()
        counts += [(w.abs() > threshold).sum(), w.isnan().sum(), w.isinf().sum()]
    flat = torch.stack([c.cpu() for c in counts]).tolist() if counts else []
    values = flat[0::3]
    for e, nans, infs in zip(entries, flat[1::3], flat[2::3]):
        if nans or infs:
            raise ValueError(
                f"tensor {e.name!r} (shape {tuple(e.param.shape)}) has {nans} nan and {infs} inf "
                "entries: sparsity is not defined for non-finite weights (the training diverged, "
                "or something wrote them)"
            )
    return SparsityReport(
        threshold=threshold,
        tensors=tuple(
            TensorSparsity(e.name, tuple(e.param.shape), e.param.numel(), int(n), e.counted)
            for e, n in zip(entries, values)
        ),
    )


# -- sweep -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SweepPoint:
    threshold: float
    metric: float  # what ``evaluate`` returned for the thresholded copy
    compression: float
    sparsity: float
    nonzeros: int
    total: int


@dataclass
class SweepResult:
    """The accuracy-vs-compression curve: one point per threshold, in the order given."""

    points: list[SweepPoint] = field(default_factory=list)
    metric_name: str = "accuracy"

    def to_records(self) -> list[dict]:
        return [asdict(p) for p in self.points]

    def __str__(self) -> str:
        lines = [f"{'threshold':>10}  {'compression':>12}  {'sparsity':>9}  {self.metric_name:>10}"]
        for p in self.points:
            lines.append(f"{p.threshold:>10.3g}  {p.compression:>11.2f}x  {100 * p.sparsity:>8.2f}%  {p.metric:>10.4g}")
        return "\n".join(lines)


def _as_metric(value, threshold: float) -> float:
    if isinstance(value, Tensor) and value.numel() == 1:
        return float(value.item())
    if isinstance(value, Real) and not isinstance(value, bool):
        return float(value)
    raise TypeError(
        f"evaluate(model) must return a real number (or a one-element tensor), got "
        f"{type(value).__name__} at threshold {threshold:g}"
    )


def threshold_sweep(
    model: nn.Module,
    evaluate: Callable[[nn.Module], float],
    thresholds: Iterable[float] | str,
    *,
    include_bias_and_norm: bool = False,
    metric_name: str = "accuracy",
) -> SweepResult:
    """Evaluate the model with the weights ``|w| <= t`` zeroed, for each threshold ``t``.

    Works on one deep copy of ``model``: for each threshold the copy's counted weights are reset
    to the original values, those with ``|w| <= t`` are set to zero, ``evaluate(copy)`` is called
    and its number is recorded with the compression ratio ``total / #{|w| > t}``. The user's
    model is never modified. All thresholds are checked (``>= 0``, finite) before any work.
    A model that still carries a parametrization, or with nan or inf weights, is refused, as
    by :func:`sparsity_report`.

    ``thresholds`` may name a list: ``"paper"`` (:data:`PAPER_THRESHOLDS`, the paper code's
    CIFAR-10 evaluation: absolute thresholds from 1e-8 to 0.5 over the convolution and
    classifier weights; with the default ``include_bias_and_norm=False`` the normalization
    parameters are neither zeroed nor counted, as there) or ``"default"``
    (:data:`SWEEP_THRESHOLDS`, this library's, from 0 to 0.1).

    Reference: the evaluation protocol of the ReWA paper (ICML 2026), Appendix D (after Spred,
    Liu & Wang 2023): predetermined thresholds, then accuracy and compression ratio.

    Example:
        >>> import torch
        >>> from rewa.sparsity import threshold_sweep
        >>> layer = torch.nn.Linear(3, 1, bias=False)
        >>> with torch.no_grad():
        ...     _ = layer.weight.copy_(torch.tensor([[1e-5, 1e-2, 1.0]]))
        >>> x = torch.ones(1, 3)
        >>> result = threshold_sweep(layer, lambda m: m(x), [0.0, 1e-4, 0.1])
        >>> [p.compression for p in result.points]
        [1.0, 1.5, 3.0]
    """
    if isinstance(thresholds, str):
        if thresholds not in _NAMED_THRESHOLDS:
            names = ", ".join(map(repr, _NAMED_THRESHOLDS))
            raise ValueError(f"thresholds={thresholds!r} must be a list of numbers or one of {names}")
        thresholds = _NAMED_THRESHOLDS[thresholds]
    thresholds = [float(check.at_least("threshold", t, 0)) for t in thresholds]
    if not callable(evaluate):
        raise TypeError(f"evaluate must be callable (model -> number), got {type(evaluate).__name__}")
    refuse_parametrized(model, "threshold_sweep")
    counted_tensors(model, include_bias_and_norm)
    # zeroing |w| <= t would turn nan weights into zeros: refuse them on the original
    sparsity_report(model, 0.0, include_bias_and_norm=include_bias_and_norm)
    work = copy.deepcopy(model)
    entries = counted_tensors(work, include_bias_and_norm)
    with torch.no_grad():
        originals = [e.param.detach().clone() for e in entries]
    result = SweepResult(metric_name=metric_name)
    for t in thresholds:
        with torch.no_grad():
            for e, original in zip(entries, originals):
                # Torch-pruned tensors: zero the trainable tensor where the effective one is small.
                keep = e.effective().abs() > t if e.torch_pruned else original.abs() > t
                e.param.copy_(torch.where(keep, original, torch.zeros_like(original)))
        report = sparsity_report(work, t, include_bias_and_norm=include_bias_and_norm)
        metric = _as_metric(evaluate(work), t)
        result.points.append(
            SweepPoint(
                threshold=t,
                metric=metric,
                compression=report.compression,
                sparsity=report.sparsity,
                nonzeros=report.nonzeros,
                total=report.total,
            )
        )
    return result
