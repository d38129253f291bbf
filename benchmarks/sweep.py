"""Time the batched sweep engine on the paper's Figures 1 and 2, and compare it side by side
with running the same configurations one at a time with the ``ReWA`` optimizer.

Three parts (each optional):

* ``--compare-steps N``: both ways on the paper's data for the first ``N`` steps (one
  ``ReWA`` + ``nn.Linear`` + autograd run per (method, seed), data generated once per seed
  and not timed), ``--repeats`` times; prints min and median and their ratios.
* ``--epochs E``: the whole sweep of the figure for ``E`` epochs (800 = paper scale), timed;
  with ``E < 800`` it also prints the extrapolation ``time/E * 800`` (marked as such).
* ``--out DIR``: also write CSV/JSON/PNG of the run into ``DIR`` (checkpointing there, so an
  interrupted run resumes), plus, for Figure 2, the (9, 5) run over ``--study-seeds`` seeds.

    python benchmarks/sweep.py --figure 1 --compare-steps 20 --epochs 3
    python benchmarks/sweep.py --figure 2 --epochs 800 --out results/synthetic
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from rewa.paper.synthetic import (
    Method,
    SyntheticConfig,
    figure1_methods,
    figure2_panels,
    initial_w0,
    make_problem,
    run_figure,
    run_one_at_a_time,
    run_sweep,
)


def figure_methods(figure: int) -> list[Method]:
    if figure == 1:
        return figure1_methods()
    return list(dict.fromkeys(m for panel in figure2_panels().values() for m in panel))


def compare(figure: int, seeds, steps: int, repeats: int, scale: str) -> None:
    methods = figure_methods(figure)
    config = SyntheticConfig.scale(scale)
    steps_per_epoch = config.steps_per_epoch
    if steps > steps_per_epoch:
        raise SystemExit(f"--compare-steps {steps} must be <= one epoch ({steps_per_epoch} steps)")
    problems = {s: make_problem(s, config) for s in seeds}
    # The batched engine runs whole epochs: a 1-epoch config with n_train cut to `steps` batches
    # would change the data, so instead time a 1-epoch sweep and scale it to `steps` steps.
    one_epoch = SyntheticConfig.scale(scale, epochs=1)
    batched, single = [], []
    for _ in range(repeats):
        result = run_sweep(methods, seeds, one_epoch, progress=False)
        batched.append(result.seconds * steps / steps_per_epoch)
        start = time.perf_counter()
        for method in methods:
            for seed in seeds:
                run_one_at_a_time(method, seed, one_epoch, steps=steps, problem=problems[seed])
        single.append(time.perf_counter() - start)
    runs = len(methods) * len(seeds)
    print(
        f"Side by side, Figure {figure} ({len(methods)} methods x {len(seeds)} seeds = {runs} runs), "
        f"d={config.d}, n={config.n_train}, batch {config.batch_size}, first {steps} steps, {repeats} repeats:"
    )
    print(
        f"  batched engine (1 epoch = {steps_per_epoch} steps, scaled to {steps}): "
        f"min {min(batched):.2f} s, median {statistics.median(batched):.2f} s"
    )
    print(
        f"  one at a time (ReWA optimizer):          min {min(single):.2f} s, median {statistics.median(single):.2f} s"
    )
    print(
        f"  ratio one-at-a-time / batched: {min(single) / min(batched):.1f}x (min), "
        f"{statistics.median(single) / statistics.median(batched):.1f}x (median)"
    )
    per_step_single = statistics.median(single) / steps
    print(
        f"  extrapolated to 800 epochs one at a time: {per_step_single * steps_per_epoch * 800 / 60:.0f} min "
        f"(median per step x {steps_per_epoch * 800} steps; an extrapolation)"
    )


def full(figure: int, seeds, epochs: int, scale: str, out: str | None, study_seeds: int) -> None:
    config = SyntheticConfig.scale(scale, epochs=epochs)
    result = run_figure(figure, scale, seeds=seeds, out_dir=out, config=config, progress=True)
    sweep = result.sweep
    runs = len(sweep.methods) * len(sweep.seeds)
    trained = max(epochs - sweep.resumed_from_epoch, 1)
    note = (
        f"{sweep.seconds / epochs:.2f} s per epoch"
        if not sweep.resumed_from_epoch
        else f"resumed from epoch {sweep.resumed_from_epoch}; time includes the checkpointed part"
    )
    print(
        f"Figure {figure}: {len(sweep.methods)} methods x {len(sweep.seeds)} seeds = {runs} runs, "
        f"d={config.d}, n={config.n_train}, {epochs} epochs: {sweep.seconds:.1f} s ({note})"
    )
    if epochs < 800:
        per_epoch = sweep.seconds / trained
        print(f"  extrapolated to 800 epochs: {per_epoch * 800 / 60:.1f} min (per-epoch time x 800; an extrapolation)")
    for row in result.summary():
        print(
            f"  {row['label']:<34} w0 {row['w0_mean']:+.3f} +- {row['w0_std']:.3f}  test MSE "
            f"{row['test_mse_mean']:.3f} +- {row['test_mse_std']:.3f}  sparsity@1e-6 "
            f"{row['sparsity@1e-06_mean']:.4f}  @1e-3 {row['sparsity@0.001_mean']:.4f}"
        )
    if out is not None:
        from rewa.paper.plotting.synthetic import plot_w0_by_seed, save_figures

        for path in save_figures(result, out):
            print(f"  wrote {path}")
        if figure == 2 and study_seeds:
            study(config, study_seeds, out, plot_w0_by_seed)


def study(config, n_seeds: int, out: str, plot) -> None:
    """Figure 2(a)'s ReWA (9, 5) over many seeds: which runs lose the true coefficient."""
    seeds = tuple(range(n_seeds))
    methods = [Method(K=9, M=5), Method(K=9, M=2), Method(K=9, M=0)]
    sweep = run_sweep(methods, seeds, config, progress=True)
    starts = {s: initial_w0(s, config) for s in seeds}
    print(f"  Across {n_seeds} seeds (lambda = 0.25): learned w0 per seed, sign of the start in brackets")
    for method in methods:
        cells = " ".join(f"{r.w0:+.2f}[{'+' if starts[r.seed] > 0 else '-'}]" for r in sweep.for_method(method))
        lost = sum(abs(r.w0) < 0.5 for r in sweep.for_method(method))
        print(f"    {method.label:<26} {cells}   lost: {lost}/{n_seeds}")
    fig = plot(sweep, starts)
    path = f"{out}/figure2a_w0_by_seed_{n_seeds}seeds.png"
    fig.savefig(path, dpi=130)
    print(f"  wrote {path}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--figure", type=int, choices=(1, 2), default=1)
    parser.add_argument("--scale", choices=("paper", "quick"), default="paper")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--compare-steps", type=int, default=0, help="side-by-side run length (0: skip)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=0, help="full sweep length (0: skip; 800: paper)")
    parser.add_argument("--out", default=None)
    parser.add_argument("--study-seeds", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    seeds = tuple(range(args.seeds))
    print(f"torch {torch.__version__}, {args.threads} threads, float32, cpu")
    if args.compare_steps:
        compare(args.figure, seeds, args.compare_steps, args.repeats, args.scale)
    if args.epochs:
        full(args.figure, seeds, args.epochs, args.scale, args.out, args.study_seeds)


if __name__ == "__main__":
    main()
