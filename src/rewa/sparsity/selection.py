"""Which tensors of a model are its weights: the selection every sparsity tool shares.

Weights are what :func:`rewa.param_groups.split_parameters` sparsifies (tensors with two or more
dimensions outside normalization layers); biases and normalization parameters are listed but
not counted unless ``include_bias_and_norm=True``. A module pruned with
:mod:`torch.nn.utils.prune` (parameter ``weight_orig``, buffer ``weight_mask``) is seen through its
effective ``weight = weight_orig * weight_mask``, under the name ``weight``.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from ..param_groups import split_parameters

__all__ = ["SparsifiedTensor", "counted_tensors", "refuse_parametrized", "sparsified_tensors"]


@dataclass(frozen=True)
class SparsifiedTensor:
    """One trainable tensor of a model: its public name, owning module and attribute, and whether
    it counts as a weight (the tensors sparsity is measured and pruned on)."""

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


def sparsified_tensors(model: nn.Module, include_bias_and_norm: bool) -> list[SparsifiedTensor]:
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
        entries.append(SparsifiedTensor(full_name, module, attr, p, id(p) in counted))
    order = {id(p): i for i, (_, p) in enumerate(model.named_parameters())}
    entries.sort(key=lambda e: order.get(id(e.param), 0))
    return entries


def counted_tensors(model: nn.Module, include_bias_and_norm: bool) -> list[SparsifiedTensor]:
    entries = [e for e in sparsified_tensors(model, include_bias_and_norm) if e.counted]
    if not entries:
        raise ValueError(
            f"{type(model).__name__} has no weight tensors to sparsify (trainable tensors with "
            "two or more dimensions outside normalization layers); pass "
            "include_bias_and_norm=True to count biases and normalization parameters"
        )
    return entries


def refuse_parametrized(model: nn.Module, what: str) -> None:
    """Counting factors (``original0, ...``) instead of the weight they compute would be wrong."""
    from torch.nn.utils import parametrize

    names = [
        name
        for name, module in model.named_modules()
        if not isinstance(module, parametrize.ParametrizationList) and parametrize.is_parametrized(module)
    ]
    if names:
        shown = ", ".join(repr(n or type(model).__name__) for n in names[:3]) + (", ..." if len(names) > 3 else "")
        raise ValueError(
            f"{what} counts plain weights, but module(s) {shown} still carry a parametrization "
            "(their parameters are factors, not the weights the forward pass uses); call "
            "rewa.reparam.collapse(model) first (or torch.nn.utils.parametrize.remove_parametrizations)"
        )
