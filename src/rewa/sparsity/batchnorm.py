"""Re-estimate batch-norm running statistics, e.g. after pruning changed what each layer sees."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn

__all__ = ["recalibrate_batchnorm"]


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, batches: Iterable) -> nn.Module:
    """Recompute the running mean and variance of every batch-norm layer of ``model``.

    The statistics are reset and re-estimated as the plain average over ``batches`` (each an
    input tensor, or a tuple/list whose first item is the input; momentum ``None``), in train
    mode and without gradients. Afterwards every module's ``training`` flag and every batch-norm
    layer's ``momentum`` are as they were; parameters are not touched. A model without
    batch-norm layers (with running statistics) is returned unchanged. Returns ``model``.

    Raises ``ValueError`` if ``batches`` is empty (the statistics are then left as they were).

    Example:
        >>> import torch
        >>> from rewa.sparsity import recalibrate_batchnorm
        >>> model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4)).eval()
        >>> data = [torch.randn(16, 3) + 5 for _ in range(4)]
        >>> _ = recalibrate_batchnorm(model, data)
        >>> model.training, bool(model[1].running_mean.abs().sum() > 0)
        (False, True)
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    iterator = iter(batches)
    first = next(iterator, None)
    if first is None:
        raise ValueError("batches is empty: no data to re-estimate the batch-norm statistics from")
    if not norms:
        return model
    modes = {m: m.training for m in model.modules()}
    momenta = [m.momentum for m in norms]
    try:
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the batches
        model.train()
        batch = first
        while batch is not None:
            x: Tensor = batch[0] if isinstance(batch, (tuple, list)) else batch
            model(x)
            batch = next(iterator, None)
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
        for module, mode in modes.items():
            module.training = mode
    return model
