"""Measure, threshold, prune and fine-tune sparse models.

ReWA drives unused weights towards zero without making them exactly zero (small MLPs end with
them between about 1e-6 and 1e-2), so its compression is realised by thresholding: zero every
weight with ``|w| <= t``. This module measures sparsity at a threshold, sweeps thresholds on a
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

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from numbers import Real

import torch
from torch import Tensor, nn
from torch.nn.utils import prune as torch_prune

from . import _check as check
from .param_groups import split_parameters

__all__ = [
    "TensorSparsity",
    "SparsityReport",
    "SweepPoint",
    "SweepResult",
    "FixedMask",
    "sparsity_report",
    "threshold_sweep",
    "prune",
    "attach_masks",
    "make_masks_permanent",
]


# -- which tensors ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Entry:
    """One trainable tensor: its public name, owning module and attribute, and whether counted."""

    name: str
    module: nn.Module
    attr: str
    param: nn.Parameter  # the trainable tensor (``weight_orig`` under torch pruning)
    counted: bool

    @property
    def torch_pruned(self) -> bool:
        """Pruned with torch.nn.utils.prune: ``<attr>_orig`` trains, ``<attr>_mask`` masks it."""
        return hasattr(self.module, self.attr + "_mask") and hasattr(self.module, self.attr + "_orig")

    def effective(self) -> Tensor:
        """The tensor the forward pass uses (``weight_orig * weight_mask`` under torch pruning)."""
        if self.torch_pruned:
            return getattr(self.module, self.attr + "_orig") * getattr(self.module, self.attr + "_mask")
        return self.param


def _entries(model: nn.Module, include_bias_and_norm: bool) -> list[_Entry]:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    sparse, dense = split_parameters(model, include_bias_and_norm=include_bias_and_norm)
    counted = {id(p) for _, p in sparse}
    entries = []
    for full_name, p in sparse + dense:
        module_name, _, attr = full_name.rpartition(".")
        module = model.get_submodule(module_name) if module_name else model
        if attr.endswith("_orig") and hasattr(module, attr[: -len("_orig")] + "_mask"):
            attr = attr[: -len("_orig")]  # torch.nn.utils.prune: report the effective tensor
            full_name = f"{module_name}.{attr}" if module_name else attr
        entries.append(_Entry(full_name, module, attr, p, id(p) in counted))
    order = {id(p): i for i, (_, p) in enumerate(model.named_parameters())}
    entries.sort(key=lambda e: order.get(id(e.param), 0))
    return entries


def _counted(model: nn.Module, include_bias_and_norm: bool) -> list[_Entry]:
    entries = [e for e in _entries(model, include_bias_and_norm) if e.counted]
    if not entries:
        raise ValueError(
            f"{type(model).__name__} has no weight tensors to sparsify (trainable tensors with "
            "two or more dimensions outside normalization layers); pass "
            "include_bias_and_norm=True to count biases and normalization parameters"
        )
    return entries


def _refuse_parametrized(model: nn.Module, what: str) -> None:
    """Counting factors (``original0, ...``) instead of the weight they compute would be wrong."""
    from torch.nn.utils import parametrize

    names = [name for name, module in model.named_modules()
             if not isinstance(module, parametrize.ParametrizationList) and parametrize.is_parametrized(module)]
    if names:
        shown = ", ".join(repr(n or type(model).__name__) for n in names[:3]) + (", ..." if len(names) > 3 else "")
        raise ValueError(
            f"{what} counts plain weights, but module(s) {shown} still carry a parametrization "
            "(their parameters are factors, not the weights the forward pass uses); call "
            "rewa.reparam.collapse(model) first (or torch.nn.utils.parametrize.remove_parametrizations)"
        )


def _check_threshold(threshold) -> float:
    check.at_least("threshold", threshold, 0)
    return float(threshold)


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
        return [
            {**asdict(t), "sparsity": t.sparsity, "compression": t.compression}
            for t in self.tensors
        ]

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
            rows.append((
                t.name, "x".join(map(str, t.shape)) or "scalar", str(t.numel), str(t.nonzeros),
                f"{100 * t.sparsity:.2f}%", f"{t.compression:.2f}x", "yes" if t.counted else "no",
            ))
        rows.append((
            "total (counted)", "", str(self.total), str(self.nonzeros),
            f"{100 * self.sparsity:.2f}%", f"{self.compression:.2f}x", "",
        ))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = [f"nonzero means |w| > {self.threshold:g}"]
        for i, row in enumerate(rows):
            lines.append("  ".join(c.ljust(w) if j == 0 else c.rjust(w) for j, (c, w) in enumerate(zip(row, widths))))
            if i == 0 or i == len(rows) - 2:
                lines.append("  ".join("-" * w for w in widths))
        return "\n".join(lines)


@torch.no_grad()
def sparsity_report(
    model: nn.Module, threshold: float = 0.0, *, include_bias_and_norm: bool = False
) -> SparsityReport:
    """Count, per tensor and in total, the weights with ``|w| > threshold``.

    For each trainable tensor ``w``: ``numel``, ``nonzeros = #{i : |w_i| > threshold}``,
    ``sparsity = 1 - nonzeros/numel`` and ``compression = numel/nonzeros``. Totals (and the
    model's compression ratio, the paper's metric) sum over the counted tensors: every weight
    tensor, final classifier included; biases and normalization parameters are listed with
    ``counted=False`` unless ``include_bias_and_norm=True``. One host sync for the whole model.

    Raises ``ValueError`` for ``threshold < 0``, a model without weight tensors, or a model that
    still carries a parametrization (``torch.nn.utils.parametrize``, e.g. after
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
    threshold = _check_threshold(threshold)
    _refuse_parametrized(model, "sparsity_report")
    entries = _entries(model, include_bias_and_norm)
    if not any(e.counted for e in entries):
        _counted(model, include_bias_and_norm)  # raises the explanatory error
    counts = [(e.effective().abs() > threshold).sum() for e in entries]
    values = torch.stack([c.cpu() for c in counts]).tolist() if counts else []
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
            lines.append(
                f"{p.threshold:>10.3g}  {p.compression:>11.2f}x  {100 * p.sparsity:>8.2f}%  {p.metric:>10.4g}"
            )
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
    thresholds: Iterable[float],
    *,
    include_bias_and_norm: bool = False,
    metric_name: str = "accuracy",
) -> SweepResult:
    """Evaluate the model with the weights ``|w| <= t`` zeroed, for each threshold ``t``.

    Works on one deep copy of ``model``: for each threshold the copy's counted weights are reset
    to the original values, those with ``|w| <= t`` are set to zero, ``evaluate(copy)`` is called
    and its number is recorded with the compression ratio ``total / #{|w| > t}``. The user's
    model is never modified. All thresholds are checked (``>= 0``, finite) before any work.
    A model that still carries a parametrization is refused, as by :func:`sparsity_report`.

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
    thresholds = [_check_threshold(t) for t in thresholds]
    if not callable(evaluate):
        raise TypeError(f"evaluate must be callable (model -> number), got {type(evaluate).__name__}")
    _refuse_parametrized(model, "threshold_sweep")
    _counted(model, include_bias_and_norm)
    work = copy.deepcopy(model)
    entries = _counted(work, include_bias_and_norm)
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
        result.points.append(SweepPoint(
            threshold=t, metric=metric, compression=report.compression,
            sparsity=report.sparsity, nonzeros=report.nonzeros, total=report.total,
        ))
    return result


# -- prune -----------------------------------------------------------------------------------


def _kept_by_magnitude(magnitudes: Tensor, n_prune: int) -> Tensor:
    """Boolean mask keeping all but the ``n_prune`` smallest entries (the rule of torch's L1 pruning)."""
    keep = torch.ones_like(magnitudes, dtype=torch.bool)
    if n_prune > 0:
        smallest = torch.topk(magnitudes.reshape(-1), k=n_prune, largest=False).indices
        keep.view(-1)[smallest] = False
    return keep


@torch.no_grad()
def prune(
    model: nn.Module,
    *,
    threshold: float | None = None,
    sparsity: float | None = None,
    scope: str = "global",
    include_bias_and_norm: bool = False,
    apply: bool = False,
) -> dict[str, Tensor]:
    """Pruning masks (1 keep, 0 prune) for the counted weights, by threshold or by sparsity.

    * ``threshold=t``: keep ``|w| > t`` (the same rule as :func:`sparsity_report`).
    * ``sparsity=s`` with ``scope="layer"``: in each tensor prune the ``round(s * numel)``
      smallest ``|w|``; with ``scope="global"``: prune the ``round(s * total)`` smallest over all
      counted tensors together. These are the rules of ``torch.nn.utils.prune.l1_unstructured``
      and ``global_unstructured(..., pruning_method=L1Unstructured)``, and the masks equal theirs
      (ties between equal magnitudes may be broken differently).

    Masks are keyed by tensor name and have the tensor's dtype and device, like torch's
    ``weight_mask`` buffers, so they can be attached with :func:`attach_masks`
    (``torch.nn.utils.prune.custom_from_mask``). With ``apply=True`` the pruned weights are set
    to ``+0.0`` in place; otherwise the model is not modified.

    Example:
        >>> import torch
        >>> from rewa.sparsity import prune
        >>> layer = torch.nn.Linear(2, 2, bias=False)
        >>> with torch.no_grad():
        ...     _ = layer.weight.copy_(torch.tensor([[0.1, -2.0], [0.3, 4.0]]))
        >>> prune(layer, sparsity=0.5)["weight"].tolist()
        [[0.0, 1.0], [0.0, 1.0]]
    """
    if (threshold is None) == (sparsity is None):
        raise ValueError(
            f"give exactly one of threshold= and sparsity=, got threshold={threshold!r}, sparsity={sparsity!r}"
        )
    if scope not in ("global", "layer"):
        raise ValueError(f"scope={scope!r} must be 'global' or 'layer'")
    entries = _counted(model, include_bias_and_norm)
    magnitudes = [e.effective().detach().abs() for e in entries]
    if threshold is not None:
        t = _check_threshold(threshold)
        keeps = [m > t for m in magnitudes]
    else:
        check.in_half_open("sparsity", sparsity, 0, 1)
        if scope == "layer":
            keeps = [_kept_by_magnitude(m, round(sparsity * m.numel())) for m in magnitudes]
        else:
            flat = torch.cat([m.reshape(-1).to(torch.float64) for m in magnitudes])
            keep_flat = _kept_by_magnitude(flat, round(sparsity * flat.numel()))
            keeps = [k.view_as(m) for k, m in zip(keep_flat.split([m.numel() for m in magnitudes]), magnitudes)]
    masks = {e.name: keep.to(e.param.dtype) for e, keep in zip(entries, keeps)}
    if apply:
        for e, keep in zip(entries, keeps):
            e.param.masked_fill_(~keep, 0.0)
    return masks


def _resolve(model: nn.Module, masks: Mapping[str, Tensor]) -> list[tuple[_Entry, Tensor]]:
    by_name = {e.name: e for e in _entries(model, include_bias_and_norm=True)}
    unknown = sorted(set(masks) - set(by_name))
    if unknown:
        raise KeyError(f"masks name tensors the model does not have: {unknown}; it has {sorted(by_name)}")
    pairs = []
    for name, mask in masks.items():
        e = by_name[name]
        if tuple(mask.shape) != tuple(e.param.shape):
            raise ValueError(f"mask for {name!r} has shape {tuple(mask.shape)}, the tensor {tuple(e.param.shape)}")
        pairs.append((e, mask))
    return pairs


def attach_masks(model: nn.Module, masks: Mapping[str, Tensor]) -> nn.Module:
    """Attach masks as :mod:`torch.nn.utils.prune` forward pre-hooks (``custom_from_mask``).

    Each module gets ``<name>_orig`` (the trainable tensor) and ``<name>_mask`` and computes
    ``<name> = <name>_orig * <name>_mask`` before every forward. :func:`make_masks_permanent`
    (``torch.nn.utils.prune.remove``) bakes the product in. Returns ``model``.

    Example:
        >>> import torch
        >>> from rewa.sparsity import attach_masks, make_masks_permanent, prune
        >>> layer = torch.nn.Linear(4, 4)
        >>> _ = attach_masks(layer, prune(layer, sparsity=0.75))
        >>> int((layer.weight == 0).sum())
        12
        >>> _ = make_masks_permanent(layer)
        >>> sorted(n for n, _ in layer.named_parameters())
        ['bias', 'weight']
    """
    for e, mask in _resolve(model, masks):
        torch_prune.custom_from_mask(e.module, e.attr, mask.to(device=e.param.device))
    return model


def make_masks_permanent(model: nn.Module) -> nn.Module:
    """``torch.nn.utils.prune.remove`` on every pruned tensor of ``model``; returns ``model``."""
    for module in model.modules():
        for hook in list(module._forward_pre_hooks.values()):
            if isinstance(hook, torch_prune.BasePruningMethod):
                torch_prune.remove(module, hook._tensor_name)
    return model


# -- fine-tune with a fixed mask -------------------------------------------------------------


class FixedMask:
    """Keep pruned weights at exactly zero while fine-tuning, with any optimizer.

    Two mechanisms, both outside the optimizer:

    * a gradient hook on each masked parameter returns ``grad * mask`` (a new tensor: the
      gradient arriving in ``p.grad`` is already masked; nothing is edited in place), so the
      loss never pushes a pruned weight;
    * after every ``optimizer.step()`` (a step post-hook, :meth:`attach`; or call :meth:`apply`
      yourself) the pruned entries of the parameter *and of every optimizer state tensor of the
      parameter's shape* are set to zero: momentum buffers, Adam moments, and ReWA's latent
      ``y``, which is therefore held at zero and never resurrected. Zeroing the state stops
      momentum accumulated before pruning from moving a pruned weight.

    After :meth:`apply` the parameter changed in place, so ReWA's next step compares the weights
    with its latent (version counter): pruned entries are already ``y = 0``, kept entries keep
    their latent exactly. No host synchronisation.

    Example:
        >>> import torch
        >>> from rewa.optim.rewa import ReWA
        >>> from rewa.sparsity import FixedMask, prune
        >>> model = torch.nn.Linear(8, 1)
        >>> masks = prune(model, sparsity=0.5, apply=True)
        >>> opt = ReWA(model.parameters(), lr=0.1, K=9, M=2, weight_decay=1e-3)
        >>> fixed = FixedMask(model, masks).attach(opt)
        >>> for _ in range(3):
        ...     opt.zero_grad()
        ...     model(torch.randn(4, 8)).pow(2).mean().backward()
        ...     opt.step()
        >>> int((model.weight == 0).sum())
        4
        >>> fixed.remove()
    """

    def __init__(self, model: nn.Module, masks: Mapping[str, Tensor]):
        pairs = _resolve(model, masks)
        if not pairs:
            raise ValueError("masks is empty: nothing to hold fixed")
        self._params: list[Tensor] = []
        self._keeps: list[Tensor] = []
        for e, mask in pairs:
            keep = (mask != 0).to(e.param.device)
            self._params.append(e.param)
            self._keeps.append(keep)
        self._handles = [
            p.register_hook(self._masking_hook(keep)) for p, keep in zip(self._params, self._keeps)
        ]
        self.apply()

    @staticmethod
    def _masking_hook(keep: Tensor):
        def hook(grad: Tensor) -> Tensor:
            return grad.masked_fill(~keep, 0.0)

        return hook

    @torch.no_grad()
    def apply(self, optimizer: torch.optim.Optimizer | None = None) -> None:
        """Zero the pruned entries of the parameters (and of ``optimizer``'s state for them)."""
        for p, keep in zip(self._params, self._keeps):
            p.masked_fill_(~keep, 0.0)
            if optimizer is not None and p in optimizer.state:
                for key, value in optimizer.state[p].items():
                    if key != "step" and isinstance(value, Tensor) and value.shape == p.shape:
                        value.masked_fill_(~keep, 0.0)

    def attach(self, optimizer: torch.optim.Optimizer) -> "FixedMask":
        """Call :meth:`apply` after every ``optimizer.step()``; returns ``self``."""
        self.apply(optimizer)
        self._handles.append(optimizer.register_step_post_hook(lambda opt, args, kwargs: self.apply(opt)))
        return self

    def remove(self) -> None:
        """Remove the gradient and step hooks (the weights stay as they are)."""
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def __enter__(self) -> "FixedMask":
        return self

    def __exit__(self, *exc) -> None:
        self.remove()
