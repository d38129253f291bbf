"""ReWA on networks against every peer method: accuracy vs compression, tuned on validation only.

Every run goes through :func:`rewa.experiments.train` (what ``rewa train`` runs). Per setting
(dataset x model) and method:

1. **Tuning** (seed 0): each method trains once per point of its grid; every method has the
   same number of grid points (``--grid``, the budget), and each grid lists the method's key
   hyperparameters (learning rate for the dense methods; the sparsity strength for the others,
   see ``METHODS``). Selection uses the *validation* split only (a fraction of the training
   data): dense methods by validation accuracy; sparse methods by the largest compression whose
   validation accuracy is within 1 point of tuned dense SGD's, ties (also: none reaches it)
   broken by the mean validation accuracy at compressions >= 10x.
2. **Evaluation**: the chosen configuration trains with ``--seeds`` seeds (seed 0 included).
   Each trained model is thresholded globally by magnitude (keep the ``n/c`` largest weights of
   the sparsified tensors) at each compression ``c`` of ``COMPRESSIONS`` and scored on the
   test split. The table reports, on the test split, the mean over seeds:
   the largest ``c`` whose mean accuracy is within 0.5 / 1 point of dense SGD's mean test
   accuracy, the accuracy at 10x / 50x / 100x, the fraction of exact zeros, and the training
   time per epoch relative to dense SGD (the same process, side by side).

Magnitude pruning (``magnitude-prune``) is SGD, then one-shot magnitude pruning of every layer to
the grid's sparsity (per layer: global pruning of a dense SGD network at 98% emptied whole
layers) and fine-tuning with a fixed mask at the training learning rate for the last quarter of
the epochs (the same total epochs as every other method). Penalty strengths are tuned as a
budget (see ``_BUDGETS_*``).

``--scale smoke`` checks the pipeline in seconds (it is what the tests run); ``quick`` and
``full`` are the benchmark (``--settings`` and ``--epochs`` override a scale's settings and
epochs, e.g. ``--settings digits-cnn mnist1d-cnn``). Results: ``OUT/results.json``, ``OUT/table.md`` and one
``OUT/<setting>.png`` (accuracy vs compression) per setting.

Example: ``python benchmarks/networks.py --scale quick --threads 1 --out results/networks``
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import math
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch

from rewa.experiments.data import load_dataset, split_validation
from rewa.experiments.presets import preset
from rewa.experiments.train import TrainConfig, lr_factor, train
from rewa.param_groups import split_parameters

COMPRESSIONS = (1, 2, 5, 10, 20, 30, 50, 75, 100, 150, 200, 300, 500, 1000)
RECIPE = "rewa-recipe"

# name -> (TrainConfig fields shared by the grid, grid of per-point fields). Grids are ordered so
# that the first G points are a sensible budget G (the middle of the range first).
_SGD = dict(lr=0.05, momentum=0.9)


def _recipe() -> dict:
    fields = preset(RECIPE)
    return {k: v for k, v in fields.items() if k not in ("dataset", "model", "epochs")}


# Penalty strengths are given as a *budget* B: the strength times the sum of the learning rates
# over the run, i.e. the total shrink an unused weight (or latent) receives from the penalty
# alone. ``{"budget": (field, B)}`` becomes ``field = B / sum_t lr_t`` for the run's schedule,
# dataset size and epochs, so one grid means the same on datasets with more steps per epoch.
_BUDGETS_L1 = (0.1, 0.3, 0.03, 1.0)
_BUDGETS_FACTORS = (0.03, 0.1, 0.01, 0.3)
_BUDGETS_REWA = (0.5, 1.0, 0.25, 2.0)

METHODS: dict[str, tuple[dict | None, list[dict]]] = {
    "sgd": (
        dict(method="sgd", momentum=0.9, weight_decay=1e-4),
        [dict(lr=0.05), dict(lr=0.1), dict(lr=0.02), dict(lr=0.2)],
    ),
    "adamw": (dict(method="adamw", weight_decay=1e-2), [dict(lr=1e-3), dict(lr=3e-3), dict(lr=3e-4), dict(lr=1e-2)]),
    "rewa (recipe)": (None, [dict(budget=("weight_decay", b)) for b in _BUDGETS_REWA]),
    "rewa-adamw": (
        dict(method="rewa-adamw", lr=3e-3, K=9, M=2, eps=0.0),
        [dict(budget=("weight_decay", b)) for b in _BUDGETS_REWA],
    ),
    "l1-subgradient": (dict(method="l1-subgradient", **_SGD), [dict(budget=("strength", b)) for b in _BUDGETS_L1]),
    "l1-prox": (dict(method="l1-prox", **_SGD), [dict(budget=("strength", b)) for b in _BUDGETS_L1]),
    "pwd p=1": (
        dict(method="pwd-sgd", options=(("p", 1.0),), **_SGD),
        [dict(budget=("lambda_p", b)) for b in _BUDGETS_L1],
    ),
    "pwd p=0.5": (
        dict(method="pwd-sgd", options=(("p", 0.5),), **_SGD),
        [dict(budget=("lambda_p", b)) for b in _BUDGETS_L1],
    ),
    "hadamard K=3": (
        dict(method="hadamard", options=(("K", 3),), **_SGD),
        [dict(budget=("weight_decay", b)) for b in _BUDGETS_FACTORS],
    ),
    "spred": (dict(method="spred", **_SGD), [dict(budget=("weight_decay", b)) for b in _BUDGETS_FACTORS]),
    "powerprop": (dict(method="powerprop", **_SGD), [dict(options=(("alpha", a),)) for a in (3.0, 4.0, 2.0, 5.0)]),
    "magnitude-prune": (
        dict(method="sgd", momentum=0.9, weight_decay=1e-4, lr=0.05, prune_scope="layer"),
        [dict(prune_sparsity=s) for s in (0.98, 0.99, 0.95, 0.995)],
    ),
}

SETTINGS = {
    "digits-mlp": ("digits", "mlp"),
    "digits-cnn": ("digits", "cnn"),
    "mnist1d-mlp": ("mnist1d", "mlp"),
    "mnist1d-cnn": ("mnist1d", "cnn"),
    # the small CNN with batch-norm after each convolution (its scales and shifts stay dense)
    "digits-cnn-bn": ("digits", "cnn-bn"),
    "mnist1d-cnn-bn": ("mnist1d", "cnn-bn"),
}

SCALES = {
    # epochs, grid points per method, seeds, settings, methods (None: all)
    "smoke": dict(
        epochs=1,
        grid=1,
        seeds=1,
        settings=("digits-mlp",),
        methods=("sgd", "rewa (recipe)", "l1-prox"),
        max_steps_per_epoch=3,
        timing_rounds=1,
    ),
    "quick": dict(
        epochs=30,
        grid=3,
        seeds=3,
        settings=("digits-mlp", "mnist1d-mlp"),
        methods=None,
        max_steps_per_epoch=0,
        timing_rounds=3,
    ),
    "full": dict(
        epochs=60, grid=4, seeds=3, settings=tuple(SETTINGS), methods=None, max_steps_per_epoch=0, timing_rounds=3
    ),
}


def lr_sum(fields: dict, epochs: int, n_train: int, max_steps_per_epoch: int) -> float:
    """``sum_t lr_t`` over a run: base lr x steps per epoch x the schedule's per-epoch factors.

    The same sum as :func:`rewa.experiments.train.lr_sum` (which ``decay_budget`` uses) for the
    schedules used here (set per epoch).
    """
    batch = fields.get("batch_size", 64)
    steps = math.ceil(n_train / batch)
    if max_steps_per_epoch:
        steps = min(steps, max_steps_per_epoch)
    factors = [
        lr_factor(fields.get("lr_schedule", "cosine"), e, fields.get("warmup_epochs", 0.0), epochs)
        for e in range(epochs)
    ]
    return fields["lr"] * steps * sum(factors)


def method_config(
    name: str, point: dict, *, dataset: str, model: str, epochs: int, seed: int, max_steps_per_epoch: int, n_train: int
) -> TrainConfig:
    shared, _ = METHODS[name]
    fields = dict(_recipe()) if shared is None else dict(shared)
    point = dict(point)
    budget = point.pop("budget", None)
    fields.update(point)
    if "prune_sparsity" in fields:  # the last quarter of the epochs fine-tunes with a fixed mask
        finetune = max(1, epochs // 4)
        fields.update(finetune_epochs=finetune, finetune_lr=fields["lr"])
        epochs = max(1, epochs - finetune)
    if budget is not None and "decay_budget" in fields:  # the recipe: rewa train converts it itself
        fields["decay_budget"] = budget[1]
    elif budget is not None:
        key, total_shrink = budget
        value = total_shrink / lr_sum(fields, epochs, n_train, max_steps_per_epoch)
        if key in ("weight_decay",):
            fields[key] = value
        else:
            fields["options"] = tuple(fields.get("options", ())) + ((key, value),)
    if "zero_M_epochs" in fields:
        fields["zero_M_epochs"] = min(fields["zero_M_epochs"], epochs - 1)
    return TrainConfig(
        dataset=dataset,
        model=model,
        epochs=epochs,
        seed=seed,
        out="",
        progress=False,
        figures=False,
        max_steps_per_epoch=max_steps_per_epoch,
        device="cpu",
        **fields,
    )


@torch.no_grad()
def _accuracy(model, data) -> float:
    model.eval()
    x, y = data.batch(torch.arange(len(data)))
    return float((model(x).argmax(1) == y).float().mean())


@torch.no_grad()
def compression_curve(model, val, test) -> dict:
    """Accuracy on val and test after keeping the n/c largest |w| of the sparsified tensors."""
    weights = [p for _, p in split_parameters(model)[0]]
    magnitudes = torch.cat([w.detach().abs().flatten() for w in weights]).sort(descending=True).values
    n = magnitudes.numel()
    out = {"compression": [], "val": [], "test": []}
    for c in COMPRESSIONS:
        keep = max(1, n // c)
        pruned = copy.deepcopy(model)
        if keep < n:
            cut = magnitudes[keep - 1]
            for _, p in split_parameters(pruned)[0]:
                p.mul_((p.abs() >= cut).to(p.dtype))
        out["compression"].append(c)
        out["val"].append(_accuracy(pruned, val))
        out["test"].append(_accuracy(pruned, test))
    out["exact_zero_fraction"] = float((magnitudes == 0).float().mean())
    return out


def max_compression(accuracies, reference: float, tolerance: float) -> float:
    """Largest compression whose accuracy is >= reference - tolerance (fractions; 0 if none)."""
    ok = [c for c, a in zip(COMPRESSIONS, accuracies) if a >= reference - tolerance]
    return max(ok) if ok else 0


def run_one(config: TrainConfig, val, test) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            result = train(config, train_data=_TRAIN[0], val_data=val, test_data=test)
        except (FloatingPointError, RuntimeError) as error:  # a failed run counts as diverged
            return {
                "config": config.to_dict(),
                "diverged": True,
                "error": f"{type(error).__name__}: {error}",
                "epoch_seconds": math.nan,
            }
    model = result.model
    finite = all(torch.isfinite(p).all() for p in model.parameters())
    record = {
        "config": config.to_dict(),
        "diverged": not finite,
        "epoch_seconds": statistics.mean(m["epoch_seconds"] for m in result.metrics),
        "weight_decay": result.metrics[0].get("weight_decay"),
    }  # as resolved (decay_budget)
    if finite:
        record.update(compression_curve(model, val, test))
    return record


_TRAIN: list = [None]


def _chosen(record: dict) -> dict:
    """The tuned hyperparameter's value in the optimizer's own units."""
    point, config = record["point"], record["config"]
    key = (
        point["budget"][0]
        if "budget" in point
        else next(k for k in point if k != "options")
        if any(k != "options" for k in point)
        else None
    )
    options = dict(config.get("options", []))
    if key is None:
        return {k: v for k, v in options.items() if k in dict(point.get("options", ()))}
    if key == "weight_decay":
        return {key: record["weight_decay"]}
    return {key: config[key] if key in config else options[key]}


def epoch_times(settings_runs: list[tuple[str, TrainConfig]], val, test, rounds: int = 3) -> dict[str, float]:
    """Median seconds of a training epoch per method, the methods interleaved round-robin.

    Timed side by side in one process so that the load of the machine hits every method alike;
    each timing run trains 2 epochs and the second is timed (the first creates the state).
    """
    times: dict[str, list[float]] = {name: [] for name, _ in settings_runs}
    for _ in range(rounds):
        for name, config in settings_runs:
            timing = dataclasses.replace(
                config, epochs=2, finetune_epochs=0, prune_sparsity=None, zero_M_epochs=min(config.zero_M_epochs, 1)
            )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    result = train(timing, train_data=_TRAIN[0], val_data=val, test_data=test)
                except (FloatingPointError, RuntimeError):
                    continue
            times[name].append(result.metrics[-1]["epoch_seconds"])
    return {name: statistics.median(t) if t else math.nan for name, t in times.items()}


def _mean_curve(records, split):
    return [statistics.mean(r[split][i] for r in records) for i in range(len(COMPRESSIONS))]


def run_setting(setting: str, scale: dict, methods: list[str], log) -> dict:
    dataset, model = SETTINGS[setting]
    bundle = load_dataset(dataset)
    train_part, val = split_validation(bundle.train, 0.2, 12345)
    _TRAIN[0] = train_part
    common = dict(
        dataset=dataset,
        model=model,
        epochs=scale["epochs"],
        max_steps_per_epoch=scale["max_steps_per_epoch"],
        n_train=len(train_part),
    )
    ordered = ["sgd"] + [m for m in methods if m != "sgd"]
    out = {}
    chosen_configs = []
    ref_val = None
    for name in ordered:
        grid = METHODS[name][1][: scale["grid"]]
        trials = []
        for point in grid:
            t0 = time.perf_counter()
            rec = run_one(method_config(name, point, seed=0, **common), val, test=bundle.test)
            rec["point"] = point
            trials.append(rec)
            log(
                f"  [{setting}] tune {name} {point}: "
                + (f"diverged {rec.get('error', '')}" if rec["diverged"] else f"val dense {100 * rec['val'][0]:.1f}")
                + f" ({time.perf_counter() - t0:.1f} s)"
            )
        ok = [t for t in trials if not t["diverged"]]
        if not ok:
            out[name] = {"diverged": True, "grid": [t["point"] for t in trials]}
            continue
        if name in ("sgd", "adamw"):
            best = max(ok, key=lambda t: t["val"][0])
        else:

            def score(t):  # the largest compression within 1 point, then the accuracy at high compression
                high = [a for c, a in zip(COMPRESSIONS, t["val"]) if c >= 10]
                return (max_compression(t["val"], ref_val, 0.01), statistics.mean(high))

            best = max(ok, key=score)
        if name == "sgd":
            ref_val = best["val"][0]
        runs = [best]
        for seed in range(1, scale["seeds"]):
            runs.append(run_one(method_config(name, best["point"], seed=seed, **common), val, test=bundle.test))
        diverged = sum(r["diverged"] for r in runs)
        good = [r for r in runs if not r["diverged"]]
        chosen = _chosen(best)
        out[name] = {
            "point": best["point"],
            "chosen": chosen,
            "grid": [t["point"] for t in trials],
            "diverged_seeds": diverged,
            "test_curve": _mean_curve(good, "test") if good else None,
            "val_curve": _mean_curve(good, "val") if good else None,
            "exact_zero_fraction": statistics.mean(r["exact_zero_fraction"] for r in good) if good else None,
            "epoch_seconds": statistics.mean(r["epoch_seconds"] for r in good),
            "per_seed_test": [r.get("test") for r in runs],
        }
        log(f"  [{setting}] {name}: chose {best['point']}, {diverged} of {len(runs)} seeds diverged")
        chosen_configs.append(
            (
                name,
                TrainConfig(
                    **{
                        k: tuple(tuple(x) if isinstance(x, list) else x for x in v) if isinstance(v, list) else v
                        for k, v in best["config"].items()
                    }
                ),
            )
        )
    for name, seconds in epoch_times(chosen_configs, val, bundle.test, scale["timing_rounds"]).items():
        out[name]["epoch_seconds"] = seconds
    return out


def _describe(chosen: dict):
    for key, value in chosen.items():
        yield f"{key}={value:.3g}"


def table(setting: str, results: dict) -> str:
    sgd = results["sgd"]
    ref = sgd["test_curve"][0]
    lines = [
        f"### {setting}",
        "",
        f"dense SGD test accuracy {100 * ref:.2f}% (mean of its seeds); compression = weights / nonzeros "
        "after global magnitude thresholding",
        "",
        "| method | chosen | max comp. within 0.5 pt | within 1 pt | acc @10x | @50x | @100x | exact zeros | "
        "epoch time / SGD (median, interleaved) | diverged seeds |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        if r.get("test_curve") is None:
            lines.append(f"| {name} | all diverged | | | | | | | | |")
            continue
        curve = r["test_curve"]
        at = lambda c: f"{100 * curve[COMPRESSIONS.index(c)]:.1f}"  # noqa: E731
        mc = lambda tol: max_compression(curve, ref, tol / 100)  # noqa: E731
        chosen = ", ".join(_describe(r["chosen"]))
        if "budget" in r["point"]:
            chosen += f" (budget {r['point']['budget'][1]:g})"
        lines.append(
            f"| {name} | {chosen} | {mc(0.5)}x | {mc(1.0)}x | {at(10)} | {at(50)} | {at(100)} | "
            f"{r['exact_zero_fraction']:.3f} | {r['epoch_seconds'] / sgd['epoch_seconds']:.2f} | "
            f"{r['diverged_seeds']} |"
        )
    return "\n".join(lines)


def figure(setting: str, results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, r in results.items():
        if r.get("test_curve") is None:
            continue
        style = dict(lw=2.5, color="black") if name.startswith("rewa (") else dict(lw=1.2)
        ax.plot(COMPRESSIONS, [100 * a for a in r["test_curve"]], marker=".", label=name, **style)
    ax.axhline(100 * results["sgd"]["test_curve"][0] - 1, ls=":", color="gray", label="dense SGD - 1 pt")
    ax.set_xscale("log")
    ax.set_xlabel("compression (weights / nonzeros)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(max(0, 100 * results["sgd"]["test_curve"][0] - 30), 100)
    ax.set_title(f"{setting}: accuracy vs compression (mean of seeds)")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", choices=tuple(SCALES), default="quick")
    parser.add_argument("--settings", nargs="+", choices=tuple(SETTINGS), help="override the scale's settings")
    parser.add_argument("--methods", nargs="+", choices=tuple(METHODS), help="override the scale's methods")
    parser.add_argument("--epochs", type=int, help="override the scale's epochs")
    parser.add_argument("--grid", type=int, help="grid points per method (the same for every method)")
    parser.add_argument("--seeds", type=int, help="seeds of the evaluation runs")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="results/networks")
    parser.add_argument("--no-figures", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    scale = dict(SCALES[args.scale])
    for key in ("epochs", "grid", "seeds"):
        if getattr(args, key) is not None:
            scale[key] = getattr(args, key)
    if not 1 <= scale["grid"] <= 4:
        parser.error(f"--grid={scale['grid']} must be in [1, 4] (the grids have 4 points)")
    settings = args.settings or scale["settings"]
    methods = args.methods or scale["methods"] or list(METHODS)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    print(
        f"scale {args.scale}: epochs {scale['epochs']}, grid {scale['grid']} points per method, "
        f"seeds {scale['seeds']}, threads {args.threads}; settings {', '.join(settings)}"
    )
    everything = {
        "scale": args.scale,
        **{k: scale[k] for k in ("epochs", "grid", "seeds")},
        "threads": args.threads,
        "compressions": COMPRESSIONS,
        "settings": {},
    }
    start = time.perf_counter()
    # one throwaway run first, so that no method's epoch time carries the first run's start-up costs
    _TRAIN[0] = load_dataset("digits").train
    train(
        TrainConfig(
            dataset="digits", epochs=1, max_steps_per_epoch=2, out="", progress=False, figures=False, device="cpu"
        ),
        train_data=_TRAIN[0],
    )
    for setting in settings:
        results = run_setting(setting, scale, methods, log)
        everything["settings"][setting] = results
        text = table(setting, results)
        print(text + "\n", flush=True)
        (out / "table.md").write_text("\n\n".join(table(s, r) for s, r in everything["settings"].items()) + "\n")
        (out / "results.json").write_text(json.dumps(everything, indent=1, default=str))
        if not args.no_figures:
            figure(setting, results, out / f"{setting}.png")
    print(f"total {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
