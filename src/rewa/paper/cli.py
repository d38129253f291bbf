"""The paper's commands: ``rewa demo`` and ``rewa reproduce theory|synthetic|sparsity|cifar10``.

:func:`add_commands` adds them to the ``rewa`` parser (:func:`rewa.cli.build_parser` calls it);
each command calls a function of :mod:`rewa.paper`, prints a summary and saves its results.
"""

from __future__ import annotations

import argparse
from dataclasses import fields
from pathlib import Path

from .. import _json
from .._cli_options import add_common_options, output_directory, require_packages, show_progress
from .cifar10 import add_command as add_cifar10_command
from .digits import DigitsConfig, run_target_sparsity_demo
from .recovery import RecoveryConfig, run_recovery
from .theory import TheoryConfig, run_theory, summary_table, write_theory_results

_RECOVERY_HELP = {
    "d": "number of features (one true feature, d - 1 pure noise)",
    "n_train": "training samples",
    "n_test": "test samples",
    "noise": "standard deviation of the label noise",
    "K": "reparameterization power, >= 1",
    "M": "adaptive learning-rate power, in [0, K-1]",
    "eps": "the paper's epsilon, >= 0",
    "lr": "initial learning rate",
    "weight_decay": "weight decay of the latent (lambda)",
    "momentum": "SGD momentum, in [0, 1)",
    "batch_size": "mini-batch size",
    "epochs": "training epochs",
    "cosine": "cosine learning-rate schedule (--no-cosine: constant)",
    "warmup_epochs": "first epochs with M = 0 (lets wrong-sign starts cross zero)",
    "seed": "random seed",
}


def _add_config_options(parser: argparse.ArgumentParser, config_type, helps: dict[str, str]) -> None:
    for f in fields(config_type):
        flag = f"--{f.name.replace('_', '-')}"
        text = f"{helps[f.name]} (default: %(default)s)"
        if f.type == "bool":
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=f.default, help=text)
        else:
            parser.add_argument(flag, type={"int": int, "float": float}[f.type], default=f.default, help=text)


def _demo(args: argparse.Namespace) -> int:
    config = RecoveryConfig(**{f.name: getattr(args, f.name) for f in fields(RecoveryConfig)})
    result = run_recovery(config)
    if args.json:
        print(_json.dumps(result.to_dict(), indent=2))
        return 0
    c = config
    print(f"Sparse recovery: y = x_1 + {c.noise:g}*noise, d = {c.d} features, {c.n_train} training samples")
    print(
        f"ReWA(K={c.K:g}, M={c.M:g}, eps={c.eps:g}, weight_decay={c.weight_decay:g}, "
        f"lr={c.lr:g} {'cosine' if c.cosine else 'constant'}), "
        f"batch {c.batch_size}, {c.epochs} epochs (first {c.warmup_epochs} with M=0): {result.seconds:.2f} s"
    )
    print(f"  true coefficient w_0 = {result.w0:.4f} (truth 1)")
    print(f"  largest other |w_j|  = {result.max_other:.3g}")
    for threshold, count in result.above.items():
        print(f"  weights with |w| > {threshold:<6g}: {count:>5} of {c.d}  (sparsity {1 - count / c.d:.4%})")
    print(f"  support recovered: {'yes' if result.support_recovered else 'no'}")
    print(f"  test MSE {result.test_mse:.4f}; least squares on the true support alone: {result.oracle_test_mse:.4f}")
    return 0 if result.support_recovered else 1


def _write_json(record, out: Path, name: str) -> Path:
    target = out / name
    tmp = target.with_suffix(".json.tmp")
    tmp.write_text(_json.dumps(record, indent=2))
    tmp.replace(target)
    return target


def _reproduce_sparsity(args: argparse.Namespace) -> int:
    if args.figures:
        require_packages("matplotlib")
    out = output_directory(args.out)
    base = DigitsConfig(epochs=args.epochs, seed=args.seed)
    results = run_target_sparsity_demo(tuple(args.targets), base, progress=show_progress())
    print(
        f"Target sparsity on digits (MLP 64-300-100-10, ReWA-AdamW K={base.K:g} M={base.M:g}, "
        f"{base.epochs} epochs, controller once per epoch, threshold {base.threshold:g}, seed {base.seed})"
    )
    print("| requested | reached | test accuracy | after pruning at the threshold | final weight decay | seconds |")
    print("| --- | --- | --- | --- | --- | --- |")
    met = True
    for target, r in zip(args.targets, results):
        met &= abs(r.sparsity - target) <= 0.01
        print(
            f"| {target:.0%} | {r.sparsity:.2%} | {r.test_accuracy:.2%} | {r.pruned_test_accuracy:.2%} "
            f"| {r.final_weight_decay:.3g} | {r.seconds:.1f} |"
        )
    path = _write_json([r.to_dict() for r in results], out, "target_sparsity.json")
    written = [path]
    if args.figures:
        from .plotting.sparsity import save_target_sparsity_figure

        written.append(save_target_sparsity_figure(results, out / "target_sparsity.png"))
    print(f"every target met within 1 point: {'yes' if met else 'no'}; results in {', '.join(str(p) for p in written)}")
    return 0 if met else 1


def _reproduce_synthetic(args: argparse.Namespace) -> int:
    require_packages("matplotlib")
    output_directory(args.out)
    from .plotting.synthetic import save_figures
    from .synthetic import run_figure

    result = run_figure(
        args.figure, args.scale, seeds=tuple(range(args.seeds)), out_dir=args.out, progress=show_progress()
    )
    written = save_figures(result, args.out)
    for row in result.summary():
        print(
            f"{row['label']:<34} w0 {row['w0_mean']:+.3f} +- {row['w0_std']:.3f}  test MSE "
            f"{row['test_mse_mean']:.3f} +- {row['test_mse_std']:.3f}  "
            f"sparsity@1e-6 {row['sparsity@1e-06_mean']:.4f}"
        )
    print(
        f"Figure {args.figure} ({args.scale} scale): {result.sweep.seconds:.1f} s; CSV, JSON and "
        f"{len(written)} figure(s) in {args.out}. Weight decay in Algorithm 1 units: lambda = kappa/eta_0 "
        "(the appendix's per-step 5e-5 at lr 2e-4 is lambda = 0.25)."
    )
    return 0


def _reproduce_theory(args: argparse.Namespace) -> int:
    if args.figures:
        require_packages("matplotlib")
    output_directory(args.out)
    results = run_theory(TheoryConfig(quick=args.quick, seed=args.seed), progress=show_progress())
    written = write_theory_results(results, args.out, figures=args.figures)
    print(summary_table(results))
    print(f"{len(results.records)} claims in {results.seconds:.1f} s; {len(written)} files in {args.out}")
    return 0 if results.passed else 1


def add_commands(commands) -> None:
    """Add ``demo`` and ``reproduce`` (with its targets) to the ``rewa`` subcommands."""
    demo = commands.add_parser("demo", help="recover a 1-sparse signal from generated data in seconds")
    _add_config_options(demo, RecoveryConfig, _RECOVERY_HELP)
    demo.add_argument(
        "--json",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="print the result as JSON (default: a text summary)",
    )
    add_common_options(demo)
    demo.set_defaults(run=_demo)
    reproduce = commands.add_parser("reproduce", help="reproduce the paper's claims and results")
    targets = reproduce.add_subparsers(dest="target", required=True)

    theory = targets.add_parser("theory", help="check the Section 3 claims (docs/theory.md) numerically")
    theory.add_argument(
        "--quick",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="short runs, under 20 s (default: full runs)",
    )
    theory.add_argument("--out", default="results/theory", help="output directory (default: %(default)s)")
    theory.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    theory.add_argument(
        "--figures",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="write PNG figures besides the JSON (needs the plot extra; default: yes)",
    )
    add_common_options(theory)
    theory.set_defaults(run=_reproduce_theory)

    synthetic = targets.add_parser("synthetic", help="Figures 1 and 2 (Section 4.1, Appendix D.1)")
    synthetic.add_argument(
        "--figure", type=int, choices=(1, 2), default=1, help="which figure of the paper (default: %(default)s)"
    )
    synthetic.add_argument(
        "--scale",
        choices=("quick", "paper"),
        default="quick",
        help="quick: seconds; paper: d = 10,000, 800 epochs (10-30 min on 2 CPU cores)",
    )
    synthetic.add_argument("--seeds", type=int, default=3, help="number of seeds (default: %(default)s)")
    synthetic.add_argument(
        "--out",
        default="results/synthetic",
        help="output directory; a rerun resumes from its checkpoint (default: %(default)s)",
    )
    add_common_options(synthetic)
    synthetic.set_defaults(run=_reproduce_synthetic)

    sparsity = targets.add_parser("sparsity", help="hit requested sparsities on digits with the controller")
    sparsity.add_argument(
        "--targets",
        type=float,
        nargs="+",
        default=[0.5, 0.9, 0.99],
        help="requested sparsities, each in [0, 1) (default: 0.5 0.9 0.99)",
    )
    sparsity.add_argument(
        "--epochs", type=int, default=DigitsConfig.epochs, help="training epochs per target (default: %(default)s)"
    )
    sparsity.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    sparsity.add_argument("--out", default="results/sparsity", help="output directory (default: %(default)s)")
    sparsity.add_argument(
        "--figures",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="write target_sparsity.png, accuracy against compression per target (needs the plot extra; default: yes)",
    )
    add_common_options(sparsity)
    sparsity.set_defaults(run=_reproduce_sparsity)
    add_cifar10_command(targets)
