"""Pruning masks in the format of :mod:`torch.nn.utils.prune` (:func:`prune`,
:func:`attach_masks`, :func:`make_masks_permanent`), and :class:`FixedMask`, which keeps masked
weights at exactly zero while fine-tuning with any optimizer."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn
from torch.nn.utils import prune as torch_prune

from .. import _check as check
from .selection import SparsifiedTensor, counted_tensors, sparsified_tensors

__all__ = ["FixedMask", "attach_masks", "lamp_scores", "make_masks_permanent", "prune"]


# -- prune -----------------------------------------------------------------------------------


def _kept_by_magnitude(magnitudes: Tensor, n_prune: int) -> Tensor:
    """Boolean mask keeping all but the ``n_prune`` smallest entries (the rule of torch's L1 pruning)."""
    keep = torch.ones_like(magnitudes, dtype=torch.bool)
    if n_prune > 0:
        smallest = torch.topk(magnitudes.reshape(-1), k=n_prune, largest=False).indices
        keep.view(-1)[smallest] = False
    return keep


def lamp_scores(weights: Tensor) -> Tensor:
    """LAMP scores of one tensor (Lee et al. 2021): ``w_i^2 / sum_{j >= i} w_j^2``, entries
    sorted by ascending ``w^2``. The largest entry scores 1; comparable across layers, so one
    global cut on them gives each layer its own magnitude threshold."""
    squares = weights.detach().reshape(-1).to(torch.float64).square()
    order = torch.argsort(squares, stable=True)
    ascending = squares[order]
    tail = ascending.flip(0).cumsum(0).flip(0)  # sum of the entries at and after each position
    # an all-zero tail (0 / 0) scores 0: those entries are zeros and go first
    scores_sorted = torch.where(tail > 0, ascending / tail.clamp_min(torch.finfo(torch.float64).tiny), 0.0)
    scores = torch.empty_like(scores_sorted)
    scores[order] = scores_sorted
    return scores.view_as(weights)


@torch.no_grad()
def prune(
    model: nn.Module,
    *,
    threshold: float | None = None,
    sparsity: float | None = None,
    scope: str = "global",
    score: str = "magnitude",
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
    * ``score="lamp"`` (with ``sparsity=``): rank by LAMP scores (:func:`lamp_scores`, Lee et
      al. 2021) instead of ``|w|``. Within a tensor the order is that of ``|w|``; globally the
      cut adapts per layer and never empties a layer below 1 - its largest entry scores 1.
      With ``scope="layer"`` it equals magnitude pruning.

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
    if score not in ("magnitude", "lamp"):
        raise ValueError(f"score={score!r} must be 'magnitude' or 'lamp'")
    if score == "lamp" and threshold is not None:
        raise ValueError("score='lamp' ranks weights for sparsity=; a threshold= applies to |w| (score='magnitude')")
    entries = counted_tensors(model, include_bias_and_norm)
    magnitudes = [e.effective().detach().abs() for e in entries]
    if score == "lamp":
        magnitudes = [lamp_scores(m) for m in magnitudes]
    if threshold is not None:
        t = float(check.at_least("threshold", threshold, 0))
        keeps = [m > t for m in magnitudes]
    else:
        assert sparsity is not None  # exactly one of the two was given (checked above)
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


def _resolve(model: nn.Module, masks: Mapping[str, Tensor]) -> list[tuple[SparsifiedTensor, Tensor]]:
    by_name = {e.name: e for e in sparsified_tensors(model, include_bias_and_norm=True)}
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
        self._handles = [p.register_hook(self._masking_hook(keep)) for p, keep in zip(self._params, self._keeps)]
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

    def attach(self, optimizer: torch.optim.Optimizer) -> FixedMask:
        """Call :meth:`apply` after every ``optimizer.step()``; returns ``self``."""
        self.apply(optimizer)
        self._handles.append(optimizer.register_step_post_hook(lambda opt, args, kwargs: self.apply(opt)))
        return self

    def remove(self) -> None:
        """Remove the gradient and step hooks (the weights stay as they are)."""
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def __enter__(self) -> FixedMask:
        return self

    def __exit__(self, *exc) -> None:
        self.remove()
