"""The methods of the paper's Figures 1 and 2, running them, and writing the tables (CSV, JSON)."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from ... import _json
from .config import PAPER_DECAY, Method, RunResult, SyntheticConfig, SyntheticSweepResult
from .engine import run_sweep
from .lasso import run_lasso

FIGURE1_K = (3, 5, 7, 9, 11, 13)
FIGURE1_M = (0, 2, 4, 6, 8, 10)


def figure1_methods(weight_decay: float = PAPER_DECAY) -> list[Method]:
    """The 26 valid (K, M) of Figure 1 (``M <= K - 1``), ``eps = 0``, decay ``lambda``."""
    return [Method(K=K, M=M, weight_decay=weight_decay) for K in FIGURE1_K for M in FIGURE1_M if M <= K - 1]


def figure2_panels(weight_decay: float = PAPER_DECAY) -> dict[str, list[Method]]:
    """Panels (a)-(d) of Figure 2 (Appendix D.1), decays in Algorithm 1's units.

    (a) ReWA (9, 5) and SGD-l1 (``K = 1, M = 0``, l1 strength ``lambda``; Lasso is added by
    :func:`run_figure`); (b) (K, M) in {(9, 5), (7, 4), (5, 2), (3, 0), (1, 0)}; (c) K = 9,
    M in {0, 2, 5}; (d) K = 9, M = 5, ``lambda`` = 0.2, 0.5, 1 and 2 times the base
    (Appendix: 1e-5, 2.5e-5, 5e-5, 1e-4 per step, that is 0.05, 0.125, 0.25, 0.5).
    """
    lam = weight_decay
    return {
        "a": [Method(K=9, M=5, weight_decay=lam), Method(K=1, M=0, weight_decay=0.0, l1=lam)],
        "b": [Method(K=K, M=M, weight_decay=lam) for K, M in ((9, 5), (7, 4), (5, 2), (3, 0), (1, 0))],
        "c": [Method(K=9, M=M, weight_decay=lam) for M in (0, 2, 5)],
        "d": [Method(K=9, M=5, weight_decay=lam * f) for f in (0.2, 0.5, 1.0, 2.0)],
    }


@dataclass
class FigureResult:
    """The runs behind one figure: the sweep, and Lasso's runs for Figure 2(a)."""

    figure: int
    scale: str
    sweep: SyntheticSweepResult
    lasso: list[RunResult] = field(default_factory=list)
    panels: dict[str, list[Method]] = field(default_factory=dict)

    @property
    def runs(self) -> list[RunResult]:
        return self.sweep.runs + self.lasso

    def summary(self) -> list[dict]:
        rows = self.sweep.summary()
        if self.lasso:
            lasso_sweep = replace(self.sweep, methods=(self.lasso[0].method,), runs=self.lasso)
            rows += lasso_sweep.summary()
        return rows

    def to_dict(self) -> dict:
        return {
            "figure": self.figure,
            "scale": self.scale,
            "config": asdict(self.sweep.config),
            "seeds": list(self.sweep.seeds),
            "seconds": self.sweep.seconds,
            "resumed_from_epoch": self.sweep.resumed_from_epoch,
            "weight_decay_units": "Algorithm 1's lambda: y <- (1 - eta_t*lambda) y; "
            "lambda = kappa/eta_0 for the appendix's per-step kappa",
            "panels": {k: [m.label for m in v] for k, v in self.panels.items()},
            "summary": self.summary(),
            "runs": [r.to_row() for r in self.runs],
        }


def run_figure(
    figure: int,
    scale: str = "quick",
    *,
    seeds: Sequence[int] = (0, 1, 2),
    out_dir: str | Path | None = None,
    progress: bool = True,
    lasso: bool = True,
    config: SyntheticConfig | None = None,
) -> FigureResult:
    """Run the sweep behind Figure 1 or Figure 2 of the paper; write CSV/JSON if ``out_dir``.

    With ``out_dir`` the sweep checkpoints to ``out_dir/figure{N}_{scale}.ckpt`` and resumes
    from it when rerun. ``config`` overrides the scale's data and schedule.
    """
    if figure not in (1, 2):
        raise ValueError(f"figure={figure!r} must be 1 or 2")
    config = config or SyntheticConfig.scale(scale)
    if figure == 1:
        methods, panels = figure1_methods(), {}
    else:
        panels = figure2_panels()
        methods = list(dict.fromkeys(m for panel in panels.values() for m in panel))
    ckpt = None
    if out_dir is not None:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        ckpt = Path(out_dir) / f"figure{figure}_{scale}.ckpt"
    sweep = run_sweep(methods, seeds, config, progress=progress, checkpoint=ckpt)
    lasso_runs = run_lasso(seeds, config) if figure == 2 and lasso else []
    result = FigureResult(figure=figure, scale=scale, sweep=sweep, lasso=lasso_runs, panels=panels)
    if out_dir is not None:
        write_results(result, out_dir)
    return result


def write_results(result: FigureResult, out_dir: str | Path) -> list[Path]:
    """``figure{N}_{scale}_runs.csv`` (one row per run), ``..._summary.csv`` (mean/std over
    seeds) and ``figure{N}_{scale}.json`` (both, plus the config). Returns the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"figure{result.figure}_{result.scale}"
    written = []
    for name, rows in (
        (f"{stem}_runs.csv", [r.to_row() for r in result.runs]),
        (f"{stem}_summary.csv", result.summary()),
    ):
        path = out / name
        with path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        written.append(path)
    path = out / f"{stem}.json"
    path.write_text(_json.dumps(result.to_dict(), indent=1))
    written.append(path)
    return written
