"""``rewa reproduce cifar10``: the paper's CIFAR-10 table and figure, as its code ran them.

Each row is a preset of :mod:`rewa.experiments.presets` (``cifar10-resnet18-<row>``): the
ImageNet-style ResNet-18 on 224-pixel inputs, 100 epochs, and at the end the threshold sweep
(the paper's absolute thresholds and this library's, on the test set, nothing fine-tuned). The
command prints an estimate of its run time (from steps timed on the device) before it starts,
trains the rows one after the other (each in its own run directory ``<out>/<row>``; a rerun
continues a row from its checkpoint), and writes:

* ``table.md``: per row, accuracy against compression at every threshold, and the paper's
  points beside ours (our accuracy at the paper's compression, interpolated linearly in log
  compression between sweep points, and the largest compression at which we reach the
  paper's accuracy);
* ``results.json``: the same numbers;
* ``accuracy_vs_compression.png``: the curves with the paper's points (``--no-figures``: none).
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import torch

from ..experiments.presets import PAPER_CIFAR10_ROWS
from ..sparsity.measure import PAPER_THRESHOLDS

__all__ = [
    "PAPER_CIFAR10",
    "ROWS",
    "add_command",
    "estimate_seconds",
    "paper_table",
    "row_config",
    "run_rows",
]

ROWS = tuple(PAPER_CIFAR10_ROWS)

# The paper's CIFAR-10 numbers, (compression, test accuracy %): ReWA (K 9, M 2) and l1 (1e-5)
# from the CSV results of its code; ReWA-AdamW from Table 1 (Appendix D.4); the paper reports
# no sparsity for plain SGD (the dense reference).
PAPER_CIFAR10: dict[str, tuple[tuple[float, float], ...]] = {
    "rewa": ((10.4, 91.87), (99.6, 91.47), (121.0, 90.24)),
    "sgd": (),
    "l1": ((25.0, 93.36), (41.0, 90.57)),
    "rewa-adamw": ((10.3, 91.61), (52.4, 91.58), (82.3, 91.45), (122.4, 90.30), (157.6, 82.33)),
}

# evaluation costs about a third of a training step per image (forward only)
_EVAL_SHARE = 1 / 3


def row_config(
    row: str,
    *,
    data_dir: str,
    out: str = "",
    epochs: int | None = None,
    device: str = "auto",
    bf16: bool = False,
    channels_last: bool = False,
    workers: int = 4,
    seed: int = 0,
    progress: bool = False,
    figures: bool = True,
):
    """The :class:`~rewa.training.config.TrainConfig` of ``row`` (one of :data:`ROWS`).

    ``epochs`` shortens the run; the warm-up keeps its share (5 of 100 epochs, rounded).
    """
    from ..training.config import resolve_config

    if row not in PAPER_CIFAR10_ROWS:
        raise ValueError(f"row={row!r} must be one of {', '.join(ROWS)}")
    overrides: dict = dict(
        data_dir=data_dir,
        out=out,
        device=device,
        bf16=bf16,
        channels_last=channels_last,
        num_workers=workers,
        seed=seed,
        progress=progress,
        figures=figures,
    )
    if epochs is not None:
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
            raise ValueError(f"epochs={epochs!r} must be an integer >= 1")
        overrides.update(epochs=epochs, warmup_epochs=round(5 * epochs / 100))
    if out and (Path(out) / "checkpoint.pt").is_file():
        overrides["resume"] = True  # a rerun continues the row
    return resolve_config(PAPER_CIFAR10_ROWS[row], **overrides)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' but torch sees no CUDA device")
    return torch.device(name)


def estimate_seconds(configs, *, train_samples: int, test_samples: int, steps: int = 3) -> dict:
    """The run time of ``configs`` from ``steps`` training steps timed on their device.

    One warm-up step, then ``steps`` timed steps of the first config's model, optimizer and
    input pipeline on random images (its batch size, capped at ``train_samples``); per config:
    ``epochs * train_samples`` training images, and ``(epochs + thresholds) * test_samples``
    evaluated images at a third of a training image's cost each. Returns the numbers.
    """
    from ..experiments.data import as_float
    from ..experiments.models import make_model
    from ..experiments.transforms import random_resized_crop
    from ..optim.registry import create_optimizer
    from ..training.plan import method_hyperparameters

    if not configs:
        raise ValueError("configs must name at least one run")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps={steps!r} must be an integer >= 1")
    c = configs[0]
    device = _resolve_device(c.device)
    batch = max(1, min(c.batch_size, train_samples))
    model = make_model(c.model, (3, 224, 224), 10).to(device)
    if c.channels_last:
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    opt = create_optimizer(c.method, model, norm=c.norm, **method_hyperparameters(c))
    gen = torch.Generator(device=device).manual_seed(0)
    images = torch.randint(0, 256, (batch, 3, 32, 32), dtype=torch.uint8, device=device, generator=gen)
    labels = torch.randint(0, 10, (batch,), device=device, generator=gen)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=c.bf16)

    def step():
        x = random_resized_crop(as_float(images, (0.5,) * 3, (0.25,) * 3), 224, gen)
        if c.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast:
            loss = torch.nn.functional.cross_entropy(model(x).float(), labels, label_smoothing=c.label_smoothing)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    model.train()
    step()
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    per_image = (time.perf_counter() - t0) / (steps * batch)
    train_s = sum(k.epochs * train_samples * per_image for k in configs)
    eval_s = sum((k.epochs + len(k.sweep_thresholds)) * test_samples * per_image * _EVAL_SHARE for k in configs)
    return {
        "device": str(device) + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""),
        "batch": batch,
        "steps_timed": steps,
        "seconds_per_image": per_image,
        "train_seconds": train_s,
        "eval_seconds": eval_s,
        "seconds": train_s + eval_s,
    }


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"


def _curve(sweep: list[dict]) -> list[tuple[float, float]]:
    """``(compression, accuracy %)`` of a sweep, by compression (all-pruned points left out)."""
    points = [
        (float(r["compression"]), 100 * float(r["test_accuracy"]))
        for r in sweep
        if r.get("compression") is not None and r.get("test_accuracy") is not None
    ]
    return sorted(points)


def _accuracy_at(curve: list[tuple[float, float]], compression: float) -> float | None:
    """Accuracy at ``compression``, linear in log compression; None outside the swept range."""
    for (c0, a0), (c1, a1) in zip(curve, curve[1:]):
        if c0 <= compression <= c1:
            if c1 == c0:
                return max(a0, a1)
            w = (math.log(compression) - math.log(c0)) / (math.log(c1) - math.log(c0))
            return a0 + w * (a1 - a0)
    if curve and curve[-1][0] == compression:
        return curve[-1][1]
    return None


def paper_table(results: dict[str, dict]) -> str:
    """``table.md``: per row, the paper's points beside ours, then our whole sweep."""
    paper = set(PAPER_THRESHOLDS)
    lines = [
        "# CIFAR-10 / ResNet-18, accuracy against compression",
        "",
        "Test accuracy (%) after thresholding every convolution and classifier weight with |w| <= t "
        "(batch-norm parameters not counted), no fine-tuning; compression = weights / nonzeros. "
        "Ours: the last epoch's model. Paper: the CSV results of its code (ReWA K 9 M 2, l1 1e-5) "
        "and Table 1 (ReWA-AdamW).",
        "",
        "## The paper's points beside ours",
        "",
        "| row | paper: compression | paper: accuracy | ours: accuracy at that compression "
        "| ours: largest compression at the paper's accuracy |",
        "|---|---:|---:|---:|---:|",
    ]
    for row, r in results.items():
        curve = _curve(r["sweep"])
        points = PAPER_CIFAR10.get(row, ())
        if not points:
            dense = curve[0][1] if curve else float("nan")
            lines.append(
                f"| {row} | (dense reference) | | {dense:.2f} at {curve[0][0]:.3g}x | |"
                if curve
                else f"| {row} | | | | |"
            )
        for comp, acc in points:
            ours = _accuracy_at(curve, comp)
            reach = [c for c, a in curve if a >= acc]
            lines.append(
                f"| {row} | {comp:g}x | {acc:.2f} | {'' if ours is None else f'{ours:.2f}'} "
                f"| {f'{max(reach):.3g}x' if reach else 'not reached'} |"
            )
    for row, r in results.items():
        lines += [
            "",
            f"## {row} (`--preset {r['preset']}`, {r['epochs']} epochs, input {r['input_shape']})",
            "",
            "| threshold | the paper's threshold | compression | test accuracy |",
            "|---:|:---:|---:|---:|",
        ]
        for point in r["sweep"]:
            shown_c = "all pruned" if point.get("compression") is None else f"{point['compression']:.4g}x"
            shown_a = "" if point.get("test_accuracy") is None else f"{100 * point['test_accuracy']:.2f}"
            mark = "yes" if point["threshold"] in paper else ""
            lines.append(f"| {point['threshold']:g} | {mark} | {shown_c} | {shown_a} |")
    return "\n".join(lines) + "\n"


def save_figure(results: dict[str, dict], path: Path) -> Path:
    """Accuracy against compression per row (ours: lines; the paper's: markers of the same colour)."""
    from ..plotting._pyplot import pyplot

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for i, (row, r) in enumerate(results.items()):
        color = f"C{i}"
        curve = _curve(r["sweep"])
        if curve:
            ax.plot(*zip(*curve), "-o", color=color, ms=3, label=f"{row} (ours)")
        points = PAPER_CIFAR10.get(row, ())
        if points:
            ax.plot(*zip(*points), "x", color=color, ms=8, mew=2, label=f"{row} (paper)")
    ax.set_xscale("log")
    ax.set_xlabel("compression ratio")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("CIFAR-10 / ResNet-18 (224 px)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def run_rows(configs: dict, out: Path, *, figures: bool = True, echo=print) -> dict[str, dict]:
    """Train each row's config, then write ``table.md``, ``results.json`` and the figure to ``out``."""
    from ..training.files import write_json
    from ..training.loop import train

    results: dict[str, dict] = {}
    for row, c in configs.items():
        echo(f"row {row}: --preset {PAPER_CIFAR10_ROWS[row]}, {c.epochs} epochs, run directory {c.out}")
        t0 = time.perf_counter()
        result = train(c)
        results[row] = {
            "preset": PAPER_CIFAR10_ROWS[row],
            "epochs": c.epochs,
            "input_shape": list(result.plan.data.input_shape) if result.plan is not None else None,
            "model": result.summary.get("model"),
            "parameters": result.summary.get("parameters"),
            "test_accuracy": result.summary.get("test_accuracy"),
            "seconds": time.perf_counter() - t0,
            "sweep": result.sweep,
            "paper": [list(p) for p in PAPER_CIFAR10.get(row, ())],
        }
        accuracy = 100 * (result.summary.get("test_accuracy") or 0)
        echo(f"row {row}: test accuracy {accuracy:.2f}% in {_hours(results[row]['seconds'])}")
    (out / "table.md").write_text(paper_table(results))
    write_json(out / "results.json", {"rows": results, "paper_thresholds": list(PAPER_THRESHOLDS)})
    if figures:
        save_figure(results, out / "accuracy_vs_compression.png")
    return results


# -- the command ------------------------------------------------------------------------------


def add_command(targets) -> None:
    """Add ``cifar10`` to ``rewa reproduce``'s sub-commands."""
    from .._cli_options import add_common_options

    p = targets.add_parser(
        "cifar10",
        help="the paper's CIFAR-10 table and figure (ResNet-18 at 224 px, 100 epochs per row; a GPU)",
        description="Train the paper's CIFAR-10 rows as its code ran them (ImageNet-style ResNet-18 on "
        "224-pixel inputs, ReWA and weight decay on every parameter; presets cifar10-resnet18-<row>), "
        "then sweep absolute thresholds and write table.md (accuracy against compression, the paper's "
        "numbers beside), results.json and accuracy_vs_compression.png to --out. Prints a run-time "
        "estimate first. A rerun continues each row from its checkpoint in --out/<row>.",
    )
    p.add_argument(
        "--data-dir",
        required=True,
        metavar="D",
        help="directory of the CIFAR-10 python-pickle files (data_batch_1..5, test_batch; directly or in "
        "cifar-10-batches-py/); nothing is downloaded",
    )
    p.add_argument(
        "--rows",
        nargs="+",
        choices=ROWS,
        default=list(ROWS),
        metavar="ROW",
        help=f"which rows to train, of {', '.join(ROWS)} (default: all)",
    )
    p.add_argument(
        "--epochs",
        type=int,
        default=None,
        metavar="N",
        help="training epochs per row (default: the paper's 100; the warm-up keeps 5%% of them)",
    )
    p.add_argument(
        "--device", choices=("auto", "cpu", "cuda"), default="auto", help="auto: cuda if available (default: auto)"
    )
    p.add_argument(
        "--bf16",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="bf16 autocast for the forward pass and the loss (GPU; default: off, float32 as the paper)",
    )
    p.add_argument(
        "--channels-last",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="channels-last memory format for the model and the inputs (faster convolutions on GPUs; default: off)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=4,
        metavar="N",
        help="DataLoader workers for data read from disk (CIFAR-10 is held in device memory and "
        "transformed there in batches, so it needs none; default: 4)",
    )
    p.add_argument("--out", default="results/cifar10", help="output directory (default: %(default)s)")
    p.add_argument(
        "--seed", type=int, default=0, help="seed of initialization, data order and augmentation (default: 0)"
    )
    p.add_argument(
        "--estimate-steps",
        type=int,
        default=3,
        metavar="N",
        help="training steps timed on the device for the run-time estimate printed first (0: no estimate; default: 3)",
    )
    p.add_argument(
        "--figures",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="write accuracy_vs_compression.png and each run's figures (needs the plot extra; default: yes)",
    )
    add_common_options(p)
    p.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    from .._cli_options import CommandError, output_directory, require_packages, show_progress
    from ..experiments.data import load_dataset

    if args.epochs is not None and args.epochs < 1:
        raise ValueError(f"--epochs {args.epochs} must be >= 1")
    if args.workers < 0:
        raise ValueError(f"--workers {args.workers} must be >= 0")
    if args.estimate_steps < 0:
        raise ValueError(f"--estimate-steps {args.estimate_steps} must be >= 0")
    if args.figures:
        require_packages("matplotlib")
    rows = list(dict.fromkeys(args.rows))  # each row once, in the order given
    try:
        bundle = load_dataset("cifar10", args.data_dir)  # the data's errors before any work
    except FileNotFoundError as error:
        raise CommandError(f"--data-dir: {error}") from None
    n_train, n_test = len(bundle.train), len(bundle.test)  # type: ignore[arg-type]
    out = output_directory(args.out)
    configs = {
        row: row_config(
            row,
            data_dir=args.data_dir,
            out=str(out / row),
            epochs=args.epochs,
            device=args.device,
            bf16=args.bf16,
            channels_last=args.channels_last,
            workers=args.workers,
            seed=args.seed,
            progress=show_progress(),
            figures=args.figures,
        )
        for row in rows
    }
    if args.estimate_steps:
        e = estimate_seconds(
            list(configs.values()),
            train_samples=n_train,
            test_samples=n_test,
            steps=args.estimate_steps,
        )
        print(
            f"estimate: {len(rows)} row(s) x {configs[rows[0]].epochs} epochs x {n_train} images at "
            f"224 px on {e['device']}: {e['steps_timed']} step(s) of {e['batch']} images timed at "
            f"{1000 * e['seconds_per_image']:.3g} ms per image -> about {_hours(e['seconds'])} "
            f"(training {_hours(e['train_seconds'])}, evaluation {_hours(e['eval_seconds'])})",
            flush=True,
        )
    run_rows(configs, out, figures=args.figures)
    print(
        f"wrote {out / 'table.md'}, {out / 'results.json'}"
        + (f", {out / 'accuracy_vs_compression.png'}" if args.figures else "")
    )
    return 0
