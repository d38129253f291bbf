"""The figure of ``rewa reproduce sparsity``: accuracy against compression per requested sparsity."""

from __future__ import annotations

from pathlib import Path

from ...plotting._pyplot import pyplot

__all__ = ["save_target_sparsity_figure"]


def save_target_sparsity_figure(results, path) -> Path:
    """Test accuracy against compression, one point per requested sparsity, saved as PNG.

    ``results``: the :class:`rewa.paper.digits.DigitsResult` list of
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
