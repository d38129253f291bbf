"""Figures of training runs: curves per epoch, and accuracy against compression (one or many runs)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from ._pyplot import pyplot

__all__ = ["plot_training_curves", "plot_compression_curves", "save_run_figures"]


def plot_training_curves(metrics: Sequence[Mapping], *, title: str | None = None):
    """Loss, accuracies, sparsity at each standard threshold, and lr, against the epoch.

    Example:
        >>> from rewa.plotting.training import plot_training_curves
        >>> rows = [{"epoch": e, "loss": 1 / e, "train_accuracy": 0.5, "val_accuracy": 0.5, "test_accuracy": None,
        ...          "sparsity": {"0.001": 0.1 * e}, "lr": 0.1} for e in (1, 2)]
        >>> len(plot_training_curves(rows).axes)
        4
    """
    plt = pyplot()
    fig, axes = plt.subplots(1, 4, figsize=(15, 3.3))
    epochs = [m["epoch"] for m in metrics]
    axes[0].plot(epochs, [m["loss"] for m in metrics])
    axes[0].set_ylabel("training loss")
    axes[0].set_yscale("log")
    for key in ("train_accuracy", "val_accuracy", "test_accuracy"):
        values = [m.get(key) for m in metrics]
        if any(v is not None for v in values):
            axes[1].plot(epochs, [math.nan if v is None else v for v in values], label=key.split("_")[0])
    axes[1].set_ylabel("accuracy")
    axes[1].legend()
    thresholds = list(metrics[0].get("sparsity", {})) if metrics else []
    for t in thresholds:
        axes[2].plot(epochs, [m["sparsity"][t] for m in metrics], label=f"|w| <= {t}")
    axes[2].set_ylabel("sparsity")
    if thresholds:
        axes[2].legend(fontsize=7)
    axes[3].plot(epochs, [m["lr"] for m in metrics])
    axes[3].set_ylabel("learning rate")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.grid(True, alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_compression_curves(
    runs: Mapping[str, Sequence[Mapping]],
    *,
    split: str = "test",
    title: str | None = None,
    reference: float | None = None,
):
    """Accuracy on ``split`` against compression ratio (log axis), one line per run's sweep.

    ``runs``: label -> sweep rows (``sweep.json``: ``compression``, ``val_accuracy``,
    ``test_accuracy``). ``reference``: a dense accuracy drawn as a horizontal line.

    Example:
        >>> from rewa.plotting.training import plot_compression_curves
        >>> sweep = [{"compression": 1.0, "test_accuracy": 0.9}, {"compression": 20.0, "test_accuracy": 0.8}]
        >>> plot_compression_curves({"a": sweep}).axes[0].get_xscale()
        'log'
    """
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    key = f"{split}_accuracy"
    for label, sweep in runs.items():
        points = sorted(
            (r["compression"], r[key]) for r in sweep if r.get("compression") is not None and r.get(key) is not None
        )
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", markersize=3, label=label)
    if reference is not None:
        ax.axhline(reference, color="gray", linestyle="--", linewidth=1, label="dense reference")
    ax.set_xscale("log")
    ax.set_xlabel("compression ratio (weights / nonzero weights)")
    ax.set_ylabel(f"{split} accuracy")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def save_run_figures(metrics, sweep, run_dir, *, title: str | None = None) -> list[Path]:
    """``training_curves.png`` and ``accuracy_vs_compression.png`` in ``run_dir``."""
    plt = pyplot()
    run_dir = Path(run_dir)
    written = []
    if metrics:
        fig = plot_training_curves(metrics, title=title)
        fig.savefig(run_dir / "training_curves.png", dpi=110)
        plt.close(fig)
        written.append(run_dir / "training_curves.png")
    split = "test" if any(r.get("test_accuracy") is not None for r in sweep) else "val"
    fig = plot_compression_curves({title or run_dir.name: sweep}, split=split, title=title)
    fig.savefig(run_dir / "accuracy_vs_compression.png", dpi=110)
    plt.close(fig)
    written.append(run_dir / "accuracy_vs_compression.png")
    return written
