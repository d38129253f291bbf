"""Batches of a split (in-memory tensors cut by index, or a DataLoader) and accuracy on a split."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from ..experiments.data import TensorData, as_float, augment_batch
from ..experiments.transforms import random_resized_crop
from .config import TrainConfig
from .distributed import Processes

__all__ = ["Batches", "accuracy", "first_inputs", "input_shape", "loss_and_accuracy"]


class Batches:
    """Batches of one split: in-memory tensors (cut by index) or a DataLoader."""

    def __init__(self, data, *, device, dist: Processes, c: TrainConfig, augment: bool, train: bool):
        self.data, self.device, self.dist, self.c, self.augment, self.train = data, device, dist, c, augment, train
        self.in_memory = isinstance(data, TensorData)
        if self.in_memory:
            self.data = data.to(device)
        elif train:
            if c.batch_size % dist.world:
                raise ValueError(
                    f"batch_size={c.batch_size} must be divisible by the number of processes "
                    f"{dist.world} for datasets read through a DataLoader"
                )
            self.sampler: torch.utils.data.DistributedSampler = torch.utils.data.DistributedSampler(
                data, num_replicas=dist.world, rank=dist.rank, shuffle=True, seed=c.seed, drop_last=True
            )
            self.loader = torch.utils.data.DataLoader(
                data,
                batch_size=c.batch_size // dist.world,
                sampler=self.sampler,
                num_workers=c.num_workers,
                pin_memory=device.type == "cuda",
                drop_last=True,
                persistent_workers=False,
            )

    def steps_per_epoch(self) -> int:
        if self.in_memory:
            n = len(self.data) // self.c.batch_size + (len(self.data) % self.c.batch_size >= self.dist.world)
        else:
            n = len(self.loader)
        return min(n, self.c.max_steps_per_epoch) if self.c.max_steps_per_epoch else n

    def epoch(self, epoch: int):
        """Yields ``(x, y, global_batch_size)``; the order depends only on ``(seed, epoch)``."""
        steps = self.steps_per_epoch()
        if not self.in_memory:
            self.sampler.set_epoch(epoch)
            for i, (x, y) in enumerate(self.loader):
                if i >= steps:
                    return
                yield x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True), None
            return
        order_gen = torch.Generator().manual_seed(self.c.seed * 1_000_003 + epoch)
        order = torch.randperm(len(self.data), generator=order_gen).to(self.device)
        aug_gen = None
        if self.augment:
            aug_gen = torch.Generator(device=self.device)
            aug_gen.manual_seed((self.c.seed * 1_000_003 + epoch) * 1009 + self.dist.rank + 1)
        for batch in order.split(self.c.batch_size)[:steps]:
            mine = batch.tensor_split(self.dist.world)[self.dist.rank]
            if self.data.size is not None:  # the ImageNet pipeline (imagenet_view)
                if aug_gen is None:
                    x, y = self.data.batch(mine)
                else:
                    x = as_float(self.data.x[mine], self.data.mean, self.data.std)
                    x, y = random_resized_crop(x, self.data.size, aug_gen), self.data.y[mine]
                yield x, y, len(batch)
                continue
            x = self.data.x[mine]
            if aug_gen is not None:
                x = augment_batch(x, aug_gen)
            yield as_float(x, self.data.mean, self.data.std), self.data.y[mine], len(batch)


def _eval_batches(data, c: TrainConfig) -> Iterable:
    if isinstance(data, TensorData):
        return (data.batch(idx) for idx in torch.arange(len(data), device=data.x.device).split(c.eval_batch_size))
    return torch.utils.data.DataLoader(data, batch_size=c.eval_batch_size, num_workers=c.num_workers)


@torch.no_grad()
def accuracy(model: nn.Module, data, c: TrainConfig, device, autocast) -> float:
    """The fraction of labels predicted (per sample, or per position for ``(N, T)`` labels)."""
    return loss_and_accuracy(model, data, c, device, autocast, with_loss=False)[1]


@torch.no_grad()
def loss_and_accuracy(model: nn.Module, data, c: TrainConfig, device, autocast, *, with_loss: bool = True):
    """``(mean cross-entropy per label, accuracy)`` on a split in one pass (loss ``None`` unless
    ``with_loss``); one host sync at the end."""
    model.eval()
    correct = torch.zeros((), dtype=torch.int64, device=device)
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    total = 0
    for x, y in _eval_batches(data, c):
        x, y = x.to(device), y.to(device)
        if c.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast():
            logits = model(x)
        correct += (logits.argmax(-1) == y).sum()
        if with_loss:
            loss_sum += nn.functional.cross_entropy(logits.float().flatten(0, -2), y.flatten(), reduction="sum")
        total += y.numel()
    return (float(loss_sum) / total if with_loss else None), float(correct) / total


def input_shape(part) -> tuple:
    if isinstance(part, TensorData):
        return part.input_shape
    return tuple(torch.as_tensor(part[0][0]).shape)


def first_inputs(part) -> torch.Tensor:
    """A couple of samples' inputs, as the model sees them (for the checks before training)."""
    if isinstance(part, TensorData):
        return part.batch(torch.arange(min(2, len(part))))[0]
    return torch.stack([torch.as_tensor(part[i][0]) for i in range(min(2, len(part)))])
