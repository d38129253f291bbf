"""Accuracy against compression ratio (the paper's Figure 3 kind of plot), from sweep results."""

from __future__ import annotations

from collections.abc import Mapping

from .. import _moved
from ..sparsity import SweepResult
from ._pyplot import pyplot

__all__ = ["plot_accuracy_vs_compression"]


def plot_accuracy_vs_compression(
    results: SweepResult | Mapping[str, SweepResult], *, ax=None, title: str | None = None
):
    """Draw each sweep's metric against its compression ratio on a log compression axis.

    ``results`` is one :class:`rewa.sparsity.SweepResult` or a mapping label -> result (one line
    each). Points with infinite compression (every weight pruned) are left out. matplotlib is
    imported here, with the Agg backend when no backend was chosen yet; returns the figure.

    Reference: accuracy vs compression ratio, ReWA paper (ICML 2026), Section 4 and Figure 3.

    Example:
        >>> import torch
        >>> from rewa.sparsity import threshold_sweep
        >>> from rewa.plotting.sparsity import plot_accuracy_vs_compression
        >>> layer = torch.nn.Linear(8, 1)
        >>> sweep = threshold_sweep(layer, lambda m: 1.0, [0.0, 0.1, 0.2])
        >>> fig = plot_accuracy_vs_compression(sweep)
        >>> fig.axes[0].get_xscale()
        'log'
    """
    plt = pyplot()

    series = {"": results} if isinstance(results, SweepResult) else dict(results)
    if not series:
        raise ValueError("results is empty: nothing to plot")
    if ax is None:
        fig, ax = plt.subplots(figsize=(5, 3.5))
    else:
        fig = ax.figure
    metric_name = "metric"
    for label, result in series.items():
        if not isinstance(result, SweepResult):
            raise TypeError(f"results[{label!r}] must be a SweepResult, got {type(result).__name__}")
        metric_name = result.metric_name
        points = sorted((p for p in result.points if p.compression != float("inf")), key=lambda p: p.compression)
        ax.plot([p.compression for p in points], [p.metric for p in points], marker="o", label=label or None)
    ax.set_xscale("log")
    ax.set_xlabel("compression ratio (weights / nonzero weights)")
    ax.set_ylabel(metric_name)
    if title:
        ax.set_title(title)
    if any(series):
        ax.legend()
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    return fig


# the figure of `rewa reproduce sparsity` moved with the paper's reproduction
__getattr__ = _moved.forward(__name__, ("rewa.paper.plotting.sparsity",), names=("save_target_sparsity_figure",))
