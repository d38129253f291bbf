"""Figures 1 and 2 of the paper from :class:`rewa.paper.synthetic.FigureResult`.

Each function takes results and returns a matplotlib ``Figure``; matplotlib is imported
inside, with the Agg backend. Weight decays are Algorithm 1's ``lambda``
(``y <- (1 - eta_t lambda) y``); the appendix's per-step ``kappa`` is ``lambda * eta_0``, so
its ``5e-5`` at ``eta_0 = 2e-4`` is ``lambda = 0.25`` (each figure says so).

Example:
    >>> from rewa.paper.synthetic import SyntheticConfig, run_figure
    >>> from rewa.paper.plotting.synthetic import plot_figure1
    >>> config = SyntheticConfig(d=100, n_train=50, n_test=100, epochs=5, lr=2e-3)
    >>> fig = plot_figure1(run_figure(1, "quick", seeds=(0,), config=config, progress=False))
    >>> len(fig.axes)  # the heat map and its color bar
    2
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...plotting._pyplot import pyplot

__all__ = ["plot_figure1", "plot_figure2", "plot_w0_by_seed", "save_figures", "UNITS_NOTE"]

UNITS_NOTE = r"$\lambda$ in Algorithm 1 units ($\lambda=\kappa/\eta_0$; appendix $\kappa$=5e-5 $\to\lambda$=0.25)"


def plot_figure1(result):
    """Mean test MSE over seeds on the (K, M) grid; white where ``M > K - 1`` (not run)."""
    plt = pyplot()
    summary = {(row["K"], row["M"]): row for row in result.sweep.summary()}
    # the grid's axes are the values run: every K has M = 0, every M is run at the largest K
    k_values = sorted({K for K, _ in summary})
    m_values = sorted({M for _, M in summary})
    grid = np.full((len(k_values), len(m_values)), np.nan)
    for i, K in enumerate(k_values):
        for j, M in enumerate(m_values):
            if (K, M) in summary:
                grid[i, j] = summary[(K, M)]["test_mse_mean"]
    fig, ax = plt.subplots(figsize=(6.2, 4.8))
    bayes = result.sweep.config.noise**2
    finite = grid[np.isfinite(grid)]
    high = max(float(finite.max()) if finite.size else bayes, bayes * 1.01)
    image = ax.imshow(np.ma.masked_invalid(grid), cmap="RdBu_r", vmin=bayes, vmax=high, origin="lower")
    for i in range(grid.shape[0]):
        for j in range(grid.shape[1]):
            if np.isfinite(grid[i, j]):
                ax.text(j, i, f"{grid[i, j]:.2f}", ha="center", va="center", fontsize=7)
    ax.set_xticks(range(len(m_values)), [str(m) for m in m_values])
    ax.set_yticks(range(len(k_values)), [str(k) for k in k_values])
    ax.set_xlabel("M")
    ax.set_ylabel("K")
    fig.colorbar(image, ax=ax, label=f"test MSE (mean of {len(result.sweep.seeds)} seeds; Bayes {bayes:g})")
    c = result.sweep.config
    lam = {row["weight_decay"] for row in summary.values()}
    ax.set_title(
        f"Figure 1: test loss, d={c.d}, n={c.n_train}, {c.epochs} epochs, "
        f"$\\lambda$={', '.join(f'{v:g}' for v in sorted(lam))}\n{UNITS_NOTE}",
        fontsize=8,
    )
    fig.tight_layout()
    return fig


def _sparsity_curve(ax, runs, label):
    thresholds = list(runs[0].below)  # as the sweep measured them
    values = np.array([[r.below[t] for t in thresholds] for r in runs])
    mse = np.array([r.test_mse for r in runs])
    ax.errorbar(
        thresholds,
        values.mean(0),
        yerr=values.std(0),
        marker="o",
        ms=3,
        capsize=2,
        label=f"{label} (test MSE {mse.mean():.3f})",
    )


def plot_figure2(result):
    """Panels (a)-(d): fraction of ``|w_j|`` below each threshold, mean +- std over seeds.

    The legend gives each method's mean test MSE.
    """
    plt = pyplot()
    titles = {
        "a": "(a) algorithms",
        "b": "(b) reparameterization K",
        "c": "(c) adaptive lr M (K=9)",
        "d": "(d) weight decay (K=9, M=5)",
    }
    fig, axes = plt.subplots(2, 2, figsize=(11, 8), sharey=True)
    for ax, (name, methods) in zip(axes.flat, result.panels.items()):
        for method in methods:
            _sparsity_curve(ax, result.sweep.for_method(method), method.label)
        if name == "a" and result.lasso:
            _sparsity_curve(ax, result.lasso, result.lasso[0].method.label)
        ax.set_xscale("log")
        ax.set_title(titles.get(name, name))
        ax.set_xlabel("threshold")
        ax.legend(fontsize=6.5)
        ax.grid(alpha=0.3)
    for ax in axes[:, 0]:
        ax.set_ylabel("sparsity (fraction of |w| < threshold)")
    c = result.sweep.config
    fig.suptitle(
        f"Figure 2: d={c.d}, n={c.n_train}, {c.epochs} epochs, lr {c.lr:g} cosine, "
        f"{len(result.sweep.seeds)} seeds; {UNITS_NOTE}",
        fontsize=9,
    )
    fig.tight_layout()
    return fig


def plot_w0_by_seed(sweep, initial_w0: dict[int, float] | None = None):
    """The learned true coefficient ``w_0`` of every run, one marker per seed, per method.

    With ``initial_w0`` (seed -> starting value) the markers are filled when the start had
    the right sign and hollow when it had the wrong one (the zero saddle of Example 3.2).
    """
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 0.5 + 0.45 * len(sweep.methods)))
    for row, method in enumerate(sweep.methods):
        for run in sweep.for_method(method):
            wrong = initial_w0 is not None and initial_w0.get(run.seed, 1.0) < 0
            ax.plot(run.w0, row, "o", mfc="none" if wrong else "C0", mec="C0")
    ax.set_yticks(range(len(sweep.methods)), [m.label for m in sweep.methods], fontsize=7)
    ax.axvline(1, color="gray", ls=":", lw=0.8)
    ax.set_xlabel("learned w_0 (truth 1); hollow: the run started with w_0 < 0")
    fig.tight_layout()
    return fig


def save_figures(result, out_dir: str | Path) -> list[Path]:
    """Write the figure of ``result`` as PNG into ``out_dir``; returns the paths."""
    plt = pyplot()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    fig = plot_figure1(result) if result.figure == 1 else plot_figure2(result)
    path = out / f"figure{result.figure}_{result.scale}.png"
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return [path]
