"""ReWA on networks against its peers at one tuning budget: accuracy vs compression, chosen on
validation only, tested over seeds.

Protocol (every method alike):

1. **Search.** Each method gets the same number of trials (``--trials``), proposed by Optuna's
   TPE sampler with a fixed seed, over the method's own hyperparameters, the learning rate
   included (``SPACES``, next to the method list). Penalty strengths are searched as a *budget*
   ``B = strength x sum_t lr_t`` (the total shrink an unused weight gets from the penalty alone),
   so one range means the same at any run length and dataset size. A trial trains with seed 0;
   its objective (what TPE sees) is the mean validation accuracy over the target compressions
   and the four pruning columns.
2. **Pruning columns.** Every trained network is pruned to each target compression
   ``c in TARGETS`` (keep ``n / c`` of the conv and linear weights; batch-norm not counted) by
   global magnitude and by LAMP (Lee et al. 2021, :func:`rewa.sparsity.prune`), batch-norm
   statistics re-estimated after pruning (:func:`rewa.sparsity.recalibrate_batchnorm`), once
   without and once with a short masked fine-tune (the same length and optimizer for every
   method: SGD, momentum 0.9, cosine from ``FINETUNE_LR``, ``--finetune-fraction`` of the
   training steps).
3. **Choice on validation.** For each column and each ``c``, the trial with the best validation
   accuracy at ``c``; for dense SGD's reference, the trial with the best unpruned validation
   accuracy.
4. **Test.** Each chosen trial is rerun with ``--seeds`` seeds (seed 0 is the trial itself);
   the tables give test accuracy mean +- std over seeds.

Every method trains with the same loop: cross-entropy, batch 64 (128 on MNIST-1D), cosine
learning rate per step, gradient norm clipped to 1 (ReWA's recipe needs it; it is applied to
every method). ``sgd`` pruned and fine-tuned *is* one-shot magnitude pruning (SGD, prune, masked
fine-tune); it is one row. On the batch-norm networks every method also searches ``norm``
(``rewa.param_groups(norm="dense" | "sparsify")``: normalization scales and shifts dense, or in
the sparsified group with the method's penalty / decay / reparameterization).

Batch-norm ablation (``--ablation``, on BN settings): the chosen ReWA trial rerun with its norm
treatment flipped; accuracy with and without re-estimated statistics; the BN shifts and scales
at the end of training.

``--scale smoke`` checks the pipeline in seconds (the tests run it); ``quick`` is what the docs
report on 2 CPU cores; ``full`` is for a GPU (more trials, epochs and settings).
Results: ``OUT/results.json``, ``OUT/table.md``, ``OUT/<setting>.png`` (accuracy vs compression).

Example: ``python benchmarks/networks.py --scale quick --threads 1 --out results/networks``
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch
from torch import nn

from rewa.experiments.data import load_dataset, make_mnist1d, split_validation
from rewa.experiments.models import make_model
from rewa.optim.registry import create_optimizer
from rewa.sparsity import FixedMask, prune, recalibrate_batchnorm, sparsity_report

TARGETS = (10, 30, 100, 300)
SCORES = ("magnitude", "lamp")
COLUMNS = tuple((score, ft) for ft in (False, True) for score in SCORES)
FINETUNE_LR = 0.05
CLIP = 1.0
RECAL_BATCHES = 20


def column_name(column) -> str:
    score, ft = column
    return f"{score}{' + fine-tune' if ft else ''}"


# -- methods and their search spaces ------------------------------------------------------------
# name -> (registry method, fixed hyperparameters, search space). A space entry is
# ("log", low, high) (log-uniform), ("uniform", low, high) or ("cat", choices). "budget:<hp>"
# searches B and sets hp = B / sum_t lr_t.
_MOM = dict(momentum=0.9)
_SGD_LR = ("log", 0.01, 0.5)
METHODS: dict[str, tuple[str, dict, dict]] = {
    "sgd": ("sgd", _MOM, {"lr": _SGD_LR, "weight_decay": ("log", 1e-5, 1e-3)}),
    "l1-prox": ("l1-prox", _MOM, {"lr": _SGD_LR, "budget:strength": ("log", 3e-3, 1.0)}),
    "l1-subgradient": ("l1-subgradient", _MOM, {"lr": _SGD_LR, "budget:strength": ("log", 3e-3, 1.0)}),
    "pwd p=0.5": ("pwd-sgd", dict(_MOM, p=0.5), {"lr": _SGD_LR, "budget:lambda_p": ("log", 1e-3, 1.0)}),
    "pwd p=1": ("pwd-sgd", dict(_MOM, p=1.0), {"lr": _SGD_LR, "budget:lambda_p": ("log", 3e-3, 1.0)}),
    # ReWA: Configuration A (K 9, M 2, eps 0), a stronger A (M searched in [2, 4]: p = 1 + (1 - M)/K
    # from 8/9 down to 6/9), Configuration B (eps > 0, M < 2), and ReWA on AdamW. Decoupled decay.
    "rewa A (K9 M2)": (
        "rewa",
        dict(_MOM, K=9, M=2, eps=0.0, decoupled_weight_decay=True),
        {"lr": ("log", 0.02, 1.0), "budget:weight_decay": ("log", 0.05, 5.0)},
    ),
    "rewa A+ (K9 M 2-4)": (
        "rewa",
        dict(_MOM, K=9, eps=0.0, decoupled_weight_decay=True),
        {"lr": ("log", 0.02, 1.0), "budget:weight_decay": ("log", 0.05, 5.0), "M": ("uniform", 2.0, 4.0)},
    ),
    "rewa B (K9 M<2 eps>0)": (
        "rewa",
        dict(_MOM, K=9, decoupled_weight_decay=True),
        {
            "lr": ("log", 0.02, 1.0),
            "budget:weight_decay": ("log", 0.05, 5.0),
            "M": ("uniform", 0.0, 1.9),
            "eps": ("log", 1e-4, 1e-1),
        },
    ),
    "rewa-adamw (K9 M2)": (
        "rewa-adamw",
        dict(K=9, M=2, eps=0.0),
        {"lr": ("log", 3e-4, 3e-2), "budget:weight_decay": ("log", 0.05, 5.0)},
    ),
}
REWA_ROWS = tuple(name for name in METHODS if name.startswith("rewa"))


def _mnist1d_20k():
    return make_mnist1d(25000)  # 20,000 train / 5,000 test


SETTINGS = {
    # name -> (data, model, batch size)
    "digits-mlp": (lambda: load_dataset("digits"), "mlp", 64),
    "digits-cnn": (lambda: load_dataset("digits"), "cnn", 64),
    "mnist1d20k-mlp": (_mnist1d_20k, "mlp", 128),
    "mnist1d20k-resnet": (_mnist1d_20k, "resnet-small", 128),
    "digits-resnet": (lambda: load_dataset("digits"), "resnet-small", 64),
}

SCALES = {
    "smoke": dict(
        epochs=1,
        trials=2,
        seeds=2,
        settings=("digits-mlp",),
        methods=("sgd", "rewa A (K9 M2)", "l1-prox"),
        max_steps=3,
        ablation=False,
    ),
    # what the docs report, sized for about 80 minutes on one CPU thread (MNIST-1D has 8x the steps)
    "quick": dict(
        epochs={"digits-mlp": 20, "digits-cnn": 20, "digits-resnet": 20, "mnist1d20k-mlp": 10, "mnist1d20k-resnet": 10},
        trials=12,
        seeds=5,
        settings=("digits-mlp", "digits-resnet", "mnist1d20k-mlp", "digits-cnn"),
        methods=tuple(m for m in METHODS if m != "pwd p=1"),
        max_steps=0,
        ablation=True,
    ),
    "full": dict(
        epochs=60, trials=32, seeds=5, settings=tuple(SETTINGS), methods=tuple(METHODS), max_steps=0, ablation=True
    ),
}


# -- one run ------------------------------------------------------------------------------------


def has_batchnorm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


class Setting:
    """Data of one setting, split once: train / validation (20% of train, fixed) / test."""

    def __init__(self, name: str, max_steps: int):
        make, self.model_name, self.batch = SETTINGS[name]
        bundle = make()
        self.name, self.input_shape, self.classes = name, bundle.input_shape, bundle.num_classes
        self.train, self.val = split_validation(bundle.train, 0.2, 12345)
        self.test = bundle.test
        n = len(self.train)
        self.steps = n // self.batch if not max_steps else min(max_steps, n // self.batch)
        self.bn = has_batchnorm(make_model(self.model_name, self.input_shape, self.classes))

    def batches(self, generator: torch.Generator, steps: int):
        """``steps`` shuffled training batches (epochs of full batches, reshuffled each epoch)."""
        n = len(self.train)
        done = 0
        while done < steps:
            order = torch.randperm(n, generator=generator)
            for i in range(n // self.batch):
                if done == steps:
                    return
                yield self.train.batch(order[i * self.batch : (i + 1) * self.batch])
                done += 1

    def recal_batches(self):
        order = torch.randperm(len(self.train), generator=torch.Generator().manual_seed(7))
        k = min(RECAL_BATCHES, len(self.train) // self.batch)
        return [self.train.batch(order[i * self.batch : (i + 1) * self.batch])[0] for i in range(k)]


def cosine_factors(total: int) -> list[float]:
    return [0.5 * (1 + math.cos(math.pi * t / total)) for t in range(total)]


def hyperparameters(name: str, params: dict, total_steps: int) -> tuple[str, dict, str]:
    """(registry method, hyperparameters, norm) of trial ``params`` for a run of ``total_steps``."""
    method, fixed, _ = METHODS[name]
    hp = dict(fixed)
    norm = params.get("norm", "dense")
    lr_total = params["lr"] * sum(cosine_factors(total_steps))
    for key, value in params.items():
        if key == "norm":
            continue
        if key.startswith("budget:"):
            hp[key.split(":", 1)[1]] = value / lr_total
        else:
            hp[key] = value
    return method, hp, norm


@torch.no_grad()
def accuracy(model: nn.Module, data) -> float:
    model.eval()
    x, y = data.batch(torch.arange(len(data)))
    return float((model(x).argmax(1) == y).float().mean())


def train_steps(model, opt, setting: Setting, steps: int, seed: int, after_epoch=None) -> bool:
    """Cosine-scheduled steps with clipping; False if the loss or weights went non-finite.
    ``after_epoch(model)``, if given, is called after every ``setting.steps`` steps."""
    base = [g["lr"] for g in opt.param_groups]
    factors = cosine_factors(steps)
    model.train()
    generator = torch.Generator().manual_seed(seed)
    for t, (x, y) in enumerate(setting.batches(generator, steps)):
        for g, lr in zip(opt.param_groups, base):
            g["lr"] = lr * factors[t]
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), CLIP)
        opt.step()
        if after_epoch is not None and (t + 1) % setting.steps == 0:
            after_epoch(model)
    return all(bool(torch.isfinite(p).all()) for p in model.parameters())


def norm_state(model: nn.Module) -> dict:
    """Batch-norm shifts and scales at the end of training (for the BN ablation)."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return {}
    scales = torch.cat([m.weight.detach().abs() for m in norms])
    shifts = torch.cat([m.bias.detach().abs() for m in norms])
    return {
        "max_abs_shift": float(shifts.max()),
        "median_scale": float(scales.median()),
        "scales_below_1e-2": float((scales < 1e-2).float().mean()),
    }


def evaluate(model: nn.Module, setting: Setting, finetune_steps: int, seed: int) -> dict:
    """Val/test accuracy of ``model`` pruned to each target by each score, with and without
    the masked fine-tune; BN statistics re-estimated after pruning (and the accuracy without)."""
    out: dict = {
        "dense": {"val": accuracy(model, setting.val), "test": accuracy(model, setting.test)},
        "norm": norm_state(model),
        "zeros": float(sparsity_report(model).sparsity),
    }
    recal = setting.recal_batches() if setting.bn else None
    for score in SCORES:
        for c in TARGETS:
            pruned = copy.deepcopy(model)
            masks = prune(pruned, sparsity=1 - 1 / c, score=score, apply=True)
            entry = {}
            if recal is not None:
                entry["no_recal"] = {"val": accuracy(pruned, setting.val), "test": accuracy(pruned, setting.test)}
                recalibrate_batchnorm(pruned, recal)
            entry["val"], entry["test"] = accuracy(pruned, setting.val), accuracy(pruned, setting.test)
            out[f"{score}/{c}"] = entry
            if finetune_steps:
                opt = torch.optim.SGD(pruned.parameters(), lr=FINETUNE_LR, momentum=0.9)
                fixed = FixedMask(pruned, masks).attach(opt)
                ok = train_steps(pruned, opt, setting, finetune_steps, seed + 1000)
                fixed.remove()
                if recal is not None:
                    recalibrate_batchnorm(pruned, recal)
                ft = {"val": accuracy(pruned, setting.val), "test": accuracy(pruned, setting.test)} if ok else None
                out[f"{score}+ft/{c}"] = ft or {"val": 0.0, "test": 0.0}
    return out


def key(column, c) -> str:
    score, ft = column
    return f"{score}{'+ft' if ft else ''}/{c}"


def run(name: str, params: dict, setting: Setting, epochs: int, seed: int, finetune_fraction: float) -> dict:
    """Train method ``name`` with ``params`` and evaluate every column; a failed run is marked."""
    steps = epochs * setting.steps
    method, hp, norm = hyperparameters(name, params, steps)
    torch.manual_seed(seed)
    model = make_model(setting.model_name, setting.input_shape, setting.classes)
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            opt = create_optimizer(method, model, norm=norm, **hp)
            ok = train_steps(model, opt, setting, steps, seed)
    except (FloatingPointError, RuntimeError, ValueError) as error:
        ok, err = False, f"{type(error).__name__}: {error}"
    else:
        err = "" if ok else "non-finite weights"
    seconds = time.perf_counter() - t0
    if not ok:
        return {"diverged": True, "error": err, "seconds": seconds}
    result = evaluate(model, setting, max(1, round(finetune_fraction * steps)) if finetune_fraction else 0, seed)
    result.update(diverged=False, seconds=time.perf_counter() - t0, train_seconds=seconds)
    return result


def val_of(result: dict, k: str) -> float:
    return 0.0 if result["diverged"] else result[k]["val"]


def objective_value(result: dict) -> float:
    if result["diverged"]:
        return 0.0
    return statistics.mean(result[key(col, c)]["val"] for col in COLUMNS for c in TARGETS if key(col, c) in result)


# -- search, choice, test -----------------------------------------------------------------------


def search(name: str, setting: Setting, scale: dict, log) -> list[dict]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = dict(METHODS[name][2])
    if setting.bn:
        space["norm"] = ("cat", ("dense", "sparsify"))
    trials = scale["trials"]
    sampler = optuna.samplers.TPESampler(seed=0, n_startup_trials=max(2, trials // 3))
    study = optuna.create_study(direction="maximize", sampler=sampler)
    records = []
    for i in range(trials):
        trial = study.ask()
        params = {}
        for hp, spec in space.items():
            if spec[0] == "log":
                params[hp] = trial.suggest_float(hp, spec[1], spec[2], log=True)
            elif spec[0] == "uniform":
                params[hp] = trial.suggest_float(hp, spec[1], spec[2])
            else:
                params[hp] = trial.suggest_categorical(hp, list(spec[1]))
        result = run(name, params, setting, scale["epochs"], 0, scale["finetune_fraction"])
        study.tell(trial, objective_value(result))
        records.append({"params": params, "result": result})
        shown = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())
        status = "diverged" if result["diverged"] else f"dense val {100 * result['dense']['val']:.1f}"
        if not result["diverged"]:
            status += f", lamp+ft@100 val {100 * result.get('lamp+ft/100', result['lamp/100'])['val']:.1f}"
        log(f"  [{setting.name}] {name} trial {i}: {shown}: {status} ({result['seconds']:.1f} s)")
    return records


def choose(records: list[dict]) -> dict:
    """Index of the chosen trial per column/target (validation only), and the dense one."""
    chosen = {"dense": max(range(len(records)), key=lambda i: val_of(records[i]["result"], "dense"))}
    for col in COLUMNS:
        for c in TARGETS:
            k = key(col, c)
            if all(r["result"].get(k) is None for r in records if not r["result"]["diverged"]):
                continue
            chosen[k] = max(range(len(records)), key=lambda i: val_of(records[i]["result"], k))
    return chosen


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def run_method(name: str, setting: Setting, scale: dict, log) -> dict:
    records = search(name, setting, scale, log)
    chosen = choose(records)
    reruns: dict[int, list[dict]] = {}
    for i in sorted(set(chosen.values())):
        runs = [records[i]["result"]]
        for seed in range(1, scale["seeds"]):
            runs.append(run(name, records[i]["params"], setting, scale["epochs"], seed, scale["finetune_fraction"]))
        reruns[i] = runs
        log(f"  [{setting.name}] {name}: trial {i} rerun with {scale['seeds']} seeds")
    summary = {}
    for k, i in chosen.items():
        good = [r for r in reruns[i] if not r["diverged"]]
        tests = [r[k]["test"] for r in good]
        summary[k] = {
            "trial": i,
            "test": mean_std(tests) if tests else None,
            "diverged_seeds": len(reruns[i]) - len(good),
        }
        if good and "no_recal" in good[0].get(k, {}):
            summary[k]["test_no_recal"] = mean_std([r[k]["no_recal"]["test"] for r in good])
    return {
        "trials": records,
        "chosen": chosen,
        "summary": summary,
        "reruns": {str(i): runs for i, runs in reruns.items()},
    }


def ablation(setting: Setting, results: dict, scale: dict, log) -> dict:
    """BN treatment of ReWA A: its trial chosen at 100x (LAMP + fine-tune) rerun with norm flipped."""
    name = "rewa A (K9 M2)"
    if name not in results or not setting.bn:
        return {}
    k = key(("lamp", True), 100)
    i = results[name]["chosen"].get(k)
    if i is None:
        return {}
    params = dict(results[name]["trials"][i]["params"])
    out = {}
    for norm in ("dense", "sparsify"):
        if params.get("norm") == norm:
            runs = results[name]["reruns"][str(i)]
        else:
            flipped = dict(params, norm=norm)
            runs = [
                run(name, flipped, setting, scale["epochs"], seed, scale["finetune_fraction"])
                for seed in range(scale["seeds"])
            ]
            log(f"  [{setting.name}] ablation: {name} with norm={norm}, {scale['seeds']} seeds")
        good = [r for r in runs if not r["diverged"]]
        out[norm] = {
            "params": dict(params, norm=norm),
            "diverged_seeds": len(runs) - len(good),
            "dense_test": mean_std([r["dense"]["test"] for r in good]) if good else None,
            **{
                kk: mean_std([r[kk]["test"] for r in good]) if good else None
                for kk in (key(col, c) for col in COLUMNS for c in TARGETS)
            },
            "norm_state": [r["norm"] for r in good],
        }
    return out


# -- report -------------------------------------------------------------------------------------


def _fmt(ms) -> str:
    return "diverged" if ms is None else f"{100 * ms[0]:.1f} ± {100 * ms[1]:.1f}"


def table(setting: str, results: dict, seeds: int) -> str:
    lines = [f"### {setting}", ""]
    sgd = results.get("sgd")
    if sgd:
        i = sgd["chosen"]["dense"]
        dense = [r["dense"]["test"] for r in sgd["reruns"][str(i)] if not r["diverged"]]
        lines.append(f"dense SGD (reference, chosen on validation): test {_fmt(mean_std(dense))}% over {seeds} seeds")
        lines.append("")
    for col in COLUMNS:
        lines += [
            f"**{column_name(col)}** (test accuracy %, mean ± std over {seeds} seeds; BN statistics re-estimated)",
            "",
            "| method | " + " | ".join(f"{c}x" for c in TARGETS) + " |",
            "|---|" + "---|" * len(TARGETS),
        ]
        best = {}
        for c in TARGETS:
            vals = [
                (r["summary"][key(col, c)]["test"] or (0, 0))[0]
                for r in results.values()
                if key(col, c) in r["summary"]
            ]
            best[c] = max(vals) if vals else None
        for name, r in results.items():
            cells = []
            for c in TARGETS:
                s = r["summary"].get(key(col, c))
                if s is None:
                    cells.append("")
                    continue
                text = _fmt(s["test"])
                if s["test"] is not None and s["test"][0] == best[c]:
                    text = f"**{text}**"
                if s["diverged_seeds"]:
                    text += f" ({s['diverged_seeds']} div.)"
                cells.append(text)
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def figure(setting: str, results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(COLUMNS), figsize=(4 * len(COLUMNS), 3.8), sharey=True)
    for ax, col in zip(axes, COLUMNS):
        for name, r in results.items():
            pts = [(c, r["summary"][key(col, c)]["test"]) for c in TARGETS if key(col, c) in r["summary"]]
            pts = [(c, t) for c, t in pts if t is not None]
            if not pts:
                continue
            style = dict(lw=2.2) if name.startswith("rewa") else dict(lw=1.0, ls="--")
            ax.errorbar(
                [c for c, _ in pts],
                [100 * t[0] for _, t in pts],
                yerr=[100 * t[1] for _, t in pts],
                marker="o",
                ms=3,
                capsize=2,
                label=name,
                **style,
            )
        ax.set_xscale("log")
        ax.set_title(column_name(col), fontsize=9)
        ax.set_xlabel("compression")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("test accuracy (%)")
    axes[0].legend(fontsize=6)
    fig.suptitle(f"{setting}: test accuracy of the trial chosen on validation at each compression")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def epochs_of(scale: dict, setting: str) -> int:
    epochs = scale["epochs"]
    return int(epochs[setting]) if isinstance(epochs, dict) else int(epochs)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", choices=tuple(SCALES), default="quick")
    parser.add_argument("--settings", nargs="+", choices=tuple(SETTINGS), help="override the scale's settings")
    parser.add_argument("--methods", nargs="+", choices=tuple(METHODS), help="override the scale's methods")
    parser.add_argument("--epochs", type=int, help="training epochs of every run")
    parser.add_argument("--trials", type=int, help="Optuna trials per method (the same for every method)")
    parser.add_argument("--seeds", type=int, help="seeds of the test reruns (seed 0 is the trial)")
    parser.add_argument("--finetune-fraction", type=float, default=0.1, help="masked fine-tune, x training steps")
    parser.add_argument("--no-ablation", action="store_true", help="skip the batch-norm ablation")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="results/networks")
    parser.add_argument("--no-figures", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    scale = dict(SCALES[args.scale], finetune_fraction=args.finetune_fraction)
    for name in ("epochs", "trials", "seeds"):
        if getattr(args, name) is not None:
            scale[name] = getattr(args, name)
    if scale["trials"] < 1 or scale["seeds"] < 1 or (args.epochs is not None and args.epochs < 1):
        parser.error(
            f"--trials, --seeds, --epochs must be >= 1, got {scale['trials']}, {scale['seeds']}, {args.epochs}"
        )
    settings = args.settings or scale["settings"]
    methods = args.methods or scale["methods"]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    print(
        f"scale {args.scale}: epochs {scale['epochs']}, {scale['trials']} trials per method, {scale['seeds']} seeds, "
        f"fine-tune {scale['finetune_fraction']:g} x steps, threads {args.threads}; settings {', '.join(settings)}",
        flush=True,
    )
    everything: dict = {
        "scale": args.scale,
        "argv": list(sys.argv[1:] if argv is None else argv),
        **{k: scale[k] for k in ("epochs", "trials", "seeds", "finetune_fraction")},
        "targets": TARGETS,
        "spaces": {m: METHODS[m][2] for m in methods},
        "settings": {},
    }
    start = time.perf_counter()
    for name in settings:
        setting = Setting(name, scale["max_steps"])
        here = dict(scale, epochs=epochs_of(scale, name))
        results = {}
        for method in methods:
            results[method] = run_method(method, setting, here, log)
            everything["settings"][name] = {"methods": results, "epochs": here["epochs"]}
            (out / "results.json").write_text(json.dumps(everything, indent=1, default=str))
        if scale["ablation"] and not args.no_ablation:
            everything["settings"][name]["ablation"] = ablation(setting, results, here, log)
        text = table(name, results, scale["seeds"])
        print(text + "\n", flush=True)
        (out / "table.md").write_text(
            "\n\n".join(table(s, r["methods"], scale["seeds"]) for s, r in everything["settings"].items()) + "\n"
        )
        (out / "results.json").write_text(json.dumps(everything, indent=1, default=str))
        if not args.no_figures:
            figure(name, results, out / f"{name}.png")
        log(f"[{name}] done at {time.perf_counter() - start:.0f} s")
    print(f"total {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
