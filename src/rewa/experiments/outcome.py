"""The end-of-run check of :func:`rewa.experiments.train.train`: a run that did not learn, or
whose sparsified weights all fell under the threshold, says so instead of finishing silently."""

from __future__ import annotations

import warnings

import torch
from torch import nn

from ..param_groups import split_parameters

__all__ = ["UntrainedWarning", "near_chance", "warn_if_untrained"]


class UntrainedWarning(UserWarning):
    """A finished run whose accuracy is near chance or whose every sparsified weight is zero."""


def near_chance(accuracy: float, num_classes: int) -> bool:
    """Whether ``accuracy`` is within a tenth of the way from chance (``1/num_classes``) to 1.

    Example:
        >>> from rewa.experiments.outcome import near_chance
        >>> near_chance(0.102, 10), near_chance(0.5, 10), near_chance(0.54, 2)
        (True, False, True)
    """
    chance = 1.0 / max(num_classes, 1)
    return accuracy <= chance + 0.1 * (1.0 - chance)


def warn_if_untrained(summary: dict, model: nn.Module, *, num_classes: int, threshold: float) -> list[str]:
    """Warn (:class:`UntrainedWarning`) when the run's last accuracy (test, else validation,
    else training, from ``summary``) is near chance, or when every sparsified weight of
    ``model`` (its plain weights) has ``|w| <= threshold``; returns the messages.

    Example:
        >>> import torch, warnings
        >>> from rewa.experiments.outcome import warn_if_untrained
        >>> model = torch.nn.Linear(4, 3)
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     messages = warn_if_untrained({"test_accuracy": 0.34}, model, num_classes=3, threshold=1e-3)
        >>> messages[0][:64]
        'the run ended at test accuracy 34.0%, near chance (33.3% for 3 c'
        >>> caught[0].category.__name__
        'UntrainedWarning'
    """
    messages = []
    split, accuracy = next(
        ((s, summary[f"{s}_accuracy"]) for s in ("test", "val", "train") if summary.get(f"{s}_accuracy") is not None),
        (None, None),
    )
    if accuracy is not None and near_chance(accuracy, num_classes):
        messages.append(
            f"the run ended at {split} accuracy {100 * accuracy:.1f}%, near chance "
            f"({100 / num_classes:.1f}% for {num_classes} classes): the network did not learn (a "
            "regularization too strong for the run, e.g. weight_decay or strength, or a learning "
            "rate too large, are the usual causes)"
        )
    weights = [p for _, p in split_parameters(model)[0]]
    if weights:
        # one host sync for all tensors
        largest = torch.stack([w.detach().abs().max().float() for w in weights]).max()
        if float(largest) <= threshold:
            messages.append(
                f"every sparsified weight ended at |w| <= {threshold:g} (the largest: {float(largest):.3g}): "
                "the network is empty at that threshold; weaken the regularization"
            )
    for message in messages:
        warnings.warn(message, UntrainedWarning, stacklevel=5)  # the caller of rewa.train (via _finish, _train)
    return messages
