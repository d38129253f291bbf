"""Where ReWA loses in ``networks.py``, layer by layer: the weights' magnitudes during training
and what global magnitude pruning keeps of each layer at 100x.

For each run of ``RUNS`` (the trials ``networks.py --scale quick`` chose at 100x, magnitude
column, for ReWA A and for the l1 subgradient, on the two settings where l1 leads), it trains
with ``networks.py``'s loop and records, after every epoch and for every conv / linear weight:
the fraction of weights below 1e-3 in magnitude and the median magnitude; at the end, the
fraction of each layer kept when the network is pruned to 100x by global magnitude, and the
validation accuracy before and after that pruning.

Example: ``python benchmarks/networks_layers.py --threads 1 --out results/networks_layers``
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import warnings
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
import networks  # noqa: E402
from rewa.experiments.models import make_model  # noqa: E402
from rewa.optim.registry import create_optimizer  # noqa: E402
from rewa.sparsity import prune  # noqa: E402

# (setting, networks.METHODS row, trial parameters): the quick run's choices at 100x (magnitude)
RUNS = (
    ("digits-cnn", "rewa A (K9 M2)", {"lr": 0.2385, "budget:weight_decay": 0.3229}),
    ("digits-cnn", "l1-subgradient", {"lr": 0.3304, "budget:strength": 0.1385}),
    ("mnist1d20k-mlp", "rewa A (K9 M2)", {"lr": 0.1712, "budget:weight_decay": 1.3469}),
    ("mnist1d20k-mlp", "l1-subgradient", {"lr": 0.3264, "budget:strength": 0.2166}),
)
SMALL = 1e-3


def weights(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p for n, p in model.named_parameters() if p.dim() > 1}


@torch.no_grad()
def layer_stats(model: nn.Module) -> dict[str, dict]:
    return {
        n: {"below_1e-3": float((w.abs() < SMALL).float().mean()), "median_abs": float(w.abs().median())}
        for n, w in weights(model).items()
    }


def trace(setting: networks.Setting, row: str, params: dict, epochs: int, seed: int) -> dict:
    steps = epochs * setting.steps
    method, hp, norm = networks.hyperparameters(row, params, steps)
    torch.manual_seed(seed)
    model = make_model(setting.model_name, setting.input_shape, setting.classes)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        opt = create_optimizer(method, model, norm=norm, **hp)
    history: list[dict] = []
    networks.train_steps(model, opt, setting, steps, seed, after_epoch=lambda m: history.append(layer_stats(m)))
    pruned = copy.deepcopy(model)
    masks = prune(pruned, sparsity=1 - 1 / 100, score="magnitude", apply=True)
    kept = {n: float(m.float().mean()) for n, m in masks.items()}
    return {
        "hyperparameters": hp,
        "history": history,
        "kept_at_100x": kept,
        "val_dense": networks.accuracy(model, setting.val),
        "val_100x": networks.accuracy(pruned, setting.val),
    }


def report(results: list[dict]) -> str:
    lines = []
    for r in results:
        last = r["trace"]["history"][-1]
        lines += [
            f"**{r['setting']}, {r['row']}** (val {100 * r['trace']['val_dense']:.1f}% unpruned, "
            f"{100 * r['trace']['val_100x']:.1f}% at 100x)",
            "",
            "| layer | weights | below 1e-3 at epochs 1 / mid / end | median abs, end | kept at 100x |",
            "|---|---|---|---|---|",
        ]
        history = r["trace"]["history"]
        mid = history[len(history) // 2]
        for name, kept in r["trace"]["kept_at_100x"].items():
            below = " / ".join(f"{100 * h[name]['below_1e-3']:.1f}%" for h in (history[0], mid, last))
            lines.append(
                f"| {name} | {r['sizes'][name]:,} | {below} | {last[name]['median_abs']:.2e} | {100 * kept:.2f}% |"
            )
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smoke", action="store_true", help="3 steps of the first run (the tests)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="results/networks_layers")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for name, row, params in RUNS[:1] if args.smoke else RUNS:
        setting = networks.Setting(name, 3 if args.smoke else 0)
        epochs = 1 if args.smoke else networks.epochs_of(networks.SCALES["quick"], name)
        model = make_model(setting.model_name, setting.input_shape, setting.classes)
        sizes = {n: w.numel() for n, w in weights(model).items()}
        results.append(
            {"setting": name, "row": row, "sizes": sizes, "trace": trace(setting, row, params, epochs, args.seed)}
        )
    (out / "results.json").write_text(json.dumps(results, indent=1))
    text = report(results)
    (out / "table.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
