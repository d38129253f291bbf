"""Figures of the Section 3 checks: each function takes a :class:`ClaimRecord` and returns a
matplotlib ``Figure``. matplotlib is imported inside the functions, with the Agg backend.

Example:
    >>> from rewa.paper.theory import TheoryConfig, check_example_3_2
    >>> from rewa.paper.plotting.theory import plot_example_3_2
    >>> fig = plot_example_3_2(check_example_3_2(TheoryConfig(quick=True)))
    >>> len(fig.axes)
    3
"""

from __future__ import annotations

import math

import numpy as np

from ...plotting._pyplot import pyplot

__all__ = [
    "plot_clipped_penalties",
    "plot_example_3_2",
    "plot_example_3_8",
    "plot_theorem_3_3",
    "plot_theorem_3_7_tradeoff",
    "theory_figures",
]


def _floats(values) -> np.ndarray:
    return np.array([float(v) for v in values])  # JSON may hold "inf"


def plot_example_3_2(record):
    """|y(t) - 1| of the adaptive and non-adaptive updates, with the bound, one panel per K."""
    plt = pyplot()
    runs = record.measured["runs"]
    fig, axes = plt.subplots(1, len(runs), figsize=(4 * len(runs), 3.2), sharey=True)
    for ax, run in zip(np.atleast_1d(axes), runs):
        t = np.array(run["t"])
        tiny = 1e-17  # zero errors drawn at the floor of the log axis
        ax.semilogy(t, np.maximum(run["error_adaptive"], tiny), label="ReWA, adaptive (M=0)")
        ax.semilogy(t, np.maximum(run["error_non_adaptive"], tiny), label="non-adaptive (M=K-1)")
        ax.semilogy(t, run["bound"], "k--", lw=1, label=r"bound $2(1-2\eta/(K-1))^t$")
        ax.axhline(1, color="gray", lw=0.8, ls=":")
        ax.set_title(f"K = {run['K']}")
        ax.set_xlabel("step t")
        ax.set_ylim(1e-17, 10)
    np.atleast_1d(axes)[0].set_ylabel("|y(t) - 1|")
    np.atleast_1d(axes)[0].legend(fontsize=7, loc="lower left")
    fig.suptitle("Example 3.2: from y(0) = -1 on (y^K - 1)^2")
    fig.tight_layout()
    return fig


def plot_example_3_8(record):
    """Number of nonzeros of x over time, with and without weight decay."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    d, R = record.inputs["d"], record.inputs["R"]
    for run in record.measured["runs"]:
        style = "-" if run["weight_decay"] else "--"
        label = f"K={run['K']}, " + ("with weight decay" if run["weight_decay"] else "without")
        ax.plot(run["t"], run["nonzeros"], style, label=label)
    ax.axhline(d - R, color="gray", lw=0.8, ls=":", label=f"d - R = {d - R}")
    ax.set_xscale("symlog", linthresh=10)
    ax.set_xlabel("step t")
    ax.set_ylabel("nonzeros of x (|x| > 1e-6)")
    ax.set_title(f"Example 3.8: x^T Lambda x, d = {d}, rank R = {R}")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_theorem_3_3(record):
    """||V * grad(f + lambda R)||^2 against T, with log T / sqrt T, one panel per problem."""
    plt = pyplot()
    runs = record.measured["runs"]
    problems = list(dict.fromkeys(r["problem"] for r in runs))
    fig, axes = plt.subplots(1, len(problems), figsize=(5 * len(problems), 3.5), sharey=True)
    for ax, problem in zip(np.atleast_1d(axes), problems):
        for run in (r for r in runs if r["problem"] == problem):
            label = f"K={run['K']}, M={run['M']}, eps={run['eps']:g} ({run['configuration']})"
            ax.loglog(run["checkpoints"], np.maximum(run["residual_sq"], 1e-300), label=label)
        first = next(r for r in runs if r["problem"] == problem)
        ax.loglog(first["checkpoints"], first["bound"], "k--", lw=1, label="log T / sqrt T")
        ax.set_title(problem)
        ax.set_xlabel("steps T")
    np.atleast_1d(axes)[0].set_ylabel(r"$\|V(x)\odot\nabla(f+\lambda R)(x)\|^2$")
    np.atleast_1d(axes)[0].legend(fontsize=6)
    fig.suptitle("Theorem 3.3: ReWA ends at stationary points of f + lambda R (or at 0)")
    fig.tight_layout()
    return fig


def plot_theorem_3_7_tradeoff(record):
    """Smallest E2 reachable with E1 <= sqrt(d), against p, for both clippings and each d."""
    plt = pyplot()
    rows = record.measured["rows"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, kind in zip(axes, ("constant", "l1")):
        for d in sorted({r["d"] for r in rows}):
            sel = [r for r in rows if r["kind"] == kind and r["d"] == d]
            ax.semilogy([r["p"] for r in sel], [r["smallest_e2"] for r in sel], "o-", ms=3, label=f"d = {d}")
            if kind == "constant":
                ax.axhline(d / (2 * math.e), ls=":", lw=0.8, color=ax.lines[-1].get_color())
        if kind == "l1":
            ax.axhline(1 / math.e, color="k", ls="--", lw=1, label="1/(ce), c = 1")
            ax.set_title("l1 clipping: smallest E2 with E1 <= sqrt(d)")
        else:
            ax.set_title("constant clipping (dotted: d/(2e))")
        ax.set_xlabel("p")
    axes[0].set_ylabel("E2")
    axes[1].legend(fontsize=7)
    fig.suptitle("Theorem 3.7: bounded gradients cost approximation error")
    fig.tight_layout()
    return fig


def plot_clipped_penalties(p: float = 0.5, u: float = 0.5):
    """|x|^p with its constant and l1 clipping at ``u`` (the paper's Figure 5)."""
    from ..formulas import clipped_lp_penalty, lp_penalty

    plt = pyplot()
    x = np.linspace(-2, 2, 2001)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.3), sharey=True)
    for ax, kind in zip(axes, ("constant", "l1")):
        ax.plot(x, lp_penalty(x, p), label=f"|x|^{p:g}")
        ax.plot(x, clipped_lp_penalty(x, p, u, kind), label=f"{kind} clipping at u = {u:g}")
        ax.axvline(u, color="gray", lw=0.6, ls=":")
        ax.axvline(-u, color="gray", lw=0.6, ls=":")
        ax.set_xlabel("x")
        ax.legend(fontsize=8)
    fig.suptitle("Definition 3.6: clipped l_p penalties (cf. the paper's Figure 5)")
    fig.tight_layout()
    return fig


_BY_KEY = {
    "example_3_2": {"example_3_2_trajectories": plot_example_3_2},
    "example_3_8": {"example_3_8_nonzeros": plot_example_3_8},
    "theorem_3_3": {"theorem_3_3_residual": plot_theorem_3_3},
    "theorem_3_7": {
        "theorem_3_7_tradeoff": plot_theorem_3_7_tradeoff,
        "theorem_3_7_clipping": lambda record: plot_clipped_penalties(),
    },
}


def theory_figures(results) -> dict:
    """``{name: Figure}`` for every record of ``results`` that names figures."""
    figures = {}
    for record in results.records:
        makers = _BY_KEY.get(record.key, {})
        for name in record.figures:
            figures[name] = makers[name](record)
    return figures
