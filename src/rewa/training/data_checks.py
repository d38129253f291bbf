"""Checks of a run's data before any training step: labels, splits, and features against the model.

A label of 50 in two-class data would otherwise build a 51-class model and train it silently;
a feature tensor of the wrong shape would fail deep inside the first forward pass.

Labels are class indices, one per sample (1-D), or one per position of a sequence (2-D
``(samples, T)``: a language model's next tokens), as ``per_position`` says; a model then gives
``(samples, C)`` or ``(samples, T, C)`` logits, and a per-position task takes integer token
ids as inputs.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["labels_of", "check_labels", "check_not_empty", "check_features", "check_readable", "is_per_position"]


def labels_of(dataset) -> Tensor:
    """All labels of a split as a tensor (without decoding inputs where the dataset lists them)."""
    if isinstance(dataset, torch.utils.data.Subset):
        return labels_of(dataset.dataset)[torch.as_tensor(list(dataset.indices), dtype=torch.long)]
    y = getattr(dataset, "y", None)
    if isinstance(y, Tensor):
        return y
    if isinstance(dataset, torch.utils.data.TensorDataset):
        return dataset.tensors[1]
    targets = getattr(dataset, "targets", None)
    if targets is None and isinstance(getattr(dataset, "samples", None), list):
        targets = [label for _, label in dataset.samples]
    if targets is None:
        targets = [dataset[i][1] for i in range(len(dataset))]
    if isinstance(targets, Tensor):
        return targets
    try:
        return torch.as_tensor([int(t) if not isinstance(t, Tensor) else t.item() for t in targets])
    except (TypeError, ValueError, RuntimeError) as error:
        raise ValueError(f"labels must be integers, got {type(targets[0]).__name__} ({error})") from None


def check_not_empty(split: str, dataset) -> None:
    if dataset is not None and len(dataset) == 0:
        raise ValueError(f"{split} is empty: it must hold at least one sample")


def _integer_labels(split: str, labels: Tensor, per_position: bool = False) -> None:
    if labels.dtype == torch.bool or labels.dtype.is_floating_point or labels.dtype.is_complex:
        raise ValueError(f"{split} labels must have an integer dtype, got {labels.dtype}")
    if per_position:
        if labels.dim() != 2:
            raise ValueError(
                f"{split} labels must be 2-D (samples, positions): one class index per position, "
                f"got shape {tuple(labels.shape)}"
            )
    elif labels.dim() != 1:
        raise ValueError(f"{split} labels must be 1-D (one class index per sample), got shape {tuple(labels.shape)}")


def is_per_position(labels: Tensor, inputs: Tensor) -> bool:
    """Whether a split is a per-position task (a language model's): integer token inputs
    ``(N, T)`` and labels of the same shape. Anything else is a per-sample task, whose labels
    must then be 1-D."""
    integer = not (inputs.dtype.is_floating_point or inputs.dtype.is_complex or inputs.dtype == torch.bool)
    return labels.dim() == 2 and integer and inputs.dim() == 2 and tuple(inputs.shape[1:]) == tuple(labels.shape[1:])


def check_labels(
    train: Tensor, others: dict[str, Tensor | None], num_classes: int | None, *, per_position: bool = False
) -> int:
    """The number of classes of a run, after checking every split's labels.

    ``num_classes`` (from the config or the dataset) bounds the labels; without it, the classes
    are ``0..max(train)`` and each must have a training example, so a stray label is refused
    rather than turned into empty classes. ``per_position``: labels are ``(samples, T)``, the
    same ``T`` in every split.

    Example:
        >>> import torch
        >>> from rewa.training.data_checks import check_labels
        >>> check_labels(torch.tensor([0, 1, 1, 0]), {"test_data": torch.tensor([1, 0])}, None)
        2
        >>> check_labels(torch.tensor([0, 1, 50]), {}, None)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: train labels run from 0 to 50, but 48 of those 51 classes have no training example ...
    """
    _integer_labels("train", train, per_position)
    if len(train) == 0:
        raise ValueError("train is empty: it must hold at least one sample")
    low, high = int(train.min()), int(train.max())
    if low < 0:
        raise ValueError(f"train labels must be >= 0 (class indices), got {low}")
    if num_classes is None:
        counts = torch.bincount(train.long().flatten().cpu(), minlength=high + 1)
        empty = (counts == 0).nonzero().flatten().tolist()
        if empty:
            raise ValueError(
                f"train labels run from 0 to {high}, but {len(empty)} of those {high + 1} classes have no "
                f"training example (e.g. {empty[0]}); a stray label? Set num_classes={high + 1} if that many "
                "classes are meant"
            )
        num_classes = high + 1
    elif high >= num_classes:
        raise ValueError(f"train labels must be in [0, num_classes) = [0, {num_classes}), got {high}")
    for split, labels in others.items():
        if labels is None:
            continue
        _integer_labels(split, labels, per_position)
        if len(labels) == 0:
            raise ValueError(f"{split} is empty: it must hold at least one sample")
        if per_position and labels.shape[1] != train.shape[1]:
            raise ValueError(
                f"{split} labels have {labels.shape[1]} positions per sample, the training labels {train.shape[1]}"
            )
        lo, hi = int(labels.min()), int(labels.max())
        if lo < 0 or hi >= num_classes:
            bad = lo if lo < 0 else hi
            raise ValueError(
                f"{split} labels must be in [0, {num_classes}) (the classes of the training data), got {bad}"
            )
    return num_classes


@torch.no_grad()
def check_features(
    model: nn.Module,
    x: Tensor,
    num_classes: int,
    *,
    input_shape: tuple,
    split: str = "train",
    positions: int | None = None,
) -> None:
    """One forward pass of a couple of samples in eval mode: the features fit the model and it
    gives one logit per class (per position: ``positions``, for per-position labels; the inputs
    are then integer token ids). Leaves the model's mode, parameters and buffers unchanged."""
    if positions is not None:
        if x.dtype.is_floating_point or x.dtype == torch.bool or x.dtype.is_complex:
            raise ValueError(f"{split} inputs of a per-position task must be integer token ids, got {x.dtype}")
    elif not x.dtype.is_floating_point:
        raise ValueError(
            f"{split} features must be floating point (after scaling), got {x.dtype} of shape {tuple(x.shape[1:])}"
        )
    was_training = model.training
    model.eval()
    try:
        out = model(x)
    except RuntimeError as error:
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ValueError(
            f"{split} features of shape {tuple(x.shape[1:])} ({x.dtype}) do not fit the model "
            f"{type(model).__name__} built for input shape {tuple(input_shape)}: {first}"
        ) from None
    finally:
        model.train(was_training)
    want = (len(x), num_classes) if positions is None else (len(x), positions, num_classes)
    if not isinstance(out, Tensor) or tuple(out.shape) != want:
        shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        what = "one logit per class" if positions is None else f"one logit per class at each of {positions} positions"
        raise ValueError(f"the model gives outputs of shape {shape} for {len(x)} samples; it must give {want}: {what}")


def check_readable(split: str, dataset, *, num_workers: int = 0, batch_size: int = 64) -> None:
    """Read every sample of a dataset that decodes from disk once, so a corrupt file is found
    before the first training epoch (names the sample's file where the dataset lists them)."""
    loader = torch.utils.data.DataLoader(
        _Indexed(dataset), batch_size=batch_size, num_workers=num_workers, collate_fn=_first_failure
    )
    for failure in loader:
        if failure is not None:
            raise ValueError(f"{split}: {failure}; fix or remove it before training")


class _Indexed(torch.utils.data.Dataset):
    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int):
        try:
            self.dataset[i]
        except (OSError, ValueError, RuntimeError, SyntaxError) as error:  # what Pillow raises on a bad image
            samples = getattr(self.dataset, "samples", None)
            name = repr(samples[i][0]) if isinstance(samples, list) else f"sample {i}"
            return f"{name} cannot be read ({type(error).__name__}: {error})"
        return None


def _first_failure(items):
    return next((item for item in items if item is not None), None)
