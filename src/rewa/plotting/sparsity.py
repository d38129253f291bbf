"""Accuracy against compression ratio (the paper's Figure 3 kind of plot), from sweep results."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from ..sparsity import SweepResult
from ._pyplot import pyplot

__all__ = ["plot_accuracy_vs_compression", "save_target_sparsity_figure"]


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


def save_target_sparsity_figure(results, path) -> Path:
    """Test accuracy against compression, one point per requested sparsity, saved as PNG.

    ``results``: the :class:`rewa.experiments.digits.DigitsResult` list of
    ``rewa reproduce sparsity``. Two markers per run: the trained model as is, and after
    pruning at the threshold; each point is labelled with its requested sparsity.
    """
    plt = pyplot()

    if not results:
        raise ValueError("results is empty: nothing to plot")
    fig, ax = plt.subplots(figsize=(5, 3.5))
    compression = [r.compression for r in results]
    ax.plot(compression, [r.test_accuracy for r in results], "o", label="trained")
    ax.plot(compression, [r.pruned_test_accuracy for r in results], "x", label="pruned at the threshold")
    for r in results:
        ax.annotate(
            f"target {r.config.target_sparsity:.0%}",
            (r.compression, r.test_accuracy),
            textcoords="offset points",
            xytext=(4, 4),
            fontsize=8,
        )
    ax.set_xscale("log")
    ax.set_xlabel("compression ratio (weights / nonzero weights)")
    ax.set_ylabel("test accuracy")
    ax.set_title("digits MLP, target-sparsity controller")
    ax.legend()
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path
