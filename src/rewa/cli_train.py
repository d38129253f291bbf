"""``rewa train`` and ``rewa compare``: thin wrappers over :func:`rewa.experiments.train.train`.

Every :class:`~rewa.experiments.train.TrainConfig` field is an option (help from the field's
metadata; booleans as ``--flag/--no-flag``). Precedence: field defaults < ``--preset`` <
``--config FILE`` (TOML or JSON; YAML if PyYAML is installed) < options given on the command line.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from pathlib import Path

from .training.files import json_text, read_json

__all__ = ["add_commands", "compare_runs"]

_TUPLE_FIELDS = {
    "options": str,
    "model_options": str,
    "schedule": str,
    "step_milestones": int,
    "sweep_thresholds": float,
}


def _field_type(f):
    text = str(f.type)
    if "bool" in text:
        return bool
    if "int" in text and "float" not in text:
        return int
    if "float" in text:
        return float
    return str


def add_commands(subparsers) -> None:
    """Add ``train`` and ``compare`` to the ``rewa`` command's subparsers."""
    from ._cli_options import add_common_options
    from .experiments.presets import PRESETS
    from .experiments.train import TrainConfig

    train = subparsers.add_parser(
        "train",
        help="train a network sparse (datasets, models, every method; torchrun for many processes)",
        description="Train a network with ReWA or any method of rewa.create_optimizer; writes config.json, "
        "metrics.jsonl, sweep.json, summary.json, checkpoint.pt and figures to --out.",
    )
    train.add_argument("--preset", choices=sorted(PRESETS), help="the paper's settings (Appendix D.7) and CPU presets")
    train.add_argument("--config", metavar="FILE", help="TOML / JSON (YAML with PyYAML) file of config fields")
    add_common_options(train)
    train.add_argument("--json", action="store_true", help="print the summary as JSON")
    for f in dataclasses.fields(TrainConfig):
        flag = f"--{f.name.replace('_', '-')}"
        help_text = f"{f.metadata.get('help', '')} (default: {f.default!r})"
        kind = _field_type(f)
        if f.name in _TUPLE_FIELDS:
            train.add_argument(flag, dest=f.name, nargs="*", type=_TUPLE_FIELDS[f.name], default=None, help=help_text)
        elif kind is bool:
            train.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        else:
            train.add_argument(flag, dest=f.name, type=kind, default=None, help=help_text)
    train.set_defaults(run=_train)

    compare = subparsers.add_parser(
        "compare",
        help="overlay accuracy-vs-compression curves of runs and tabulate them",
        description="Per run: largest compression with accuracy within 0.5 and 1.0 point of the reference "
        "run's dense accuracy, and accuracy at 10x / 50x / 100x (linear in log compression "
        "between sweep points).",
    )
    compare.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run directories of rewa train")
    compare.add_argument(
        "--reference",
        metavar="RUN_DIR",
        help="the dense reference run (default: the first run); its final accuracy is the bar",
    )
    compare.add_argument("--split", choices=("test", "val"), default="test", help="which accuracy (default: test)")
    compare.add_argument("--out", default="compare.png", help="figure file (default: compare.png)")
    compare.add_argument("--json", action="store_true", help="print the table as JSON")
    add_common_options(compare)
    compare.set_defaults(run=_compare)


def _read_config_file(path: str) -> dict:
    """The table of config fields in ``path``; ValueError naming the file when it cannot be read."""
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"--config {path!r}: no such file")
    if p.suffix not in (".toml", ".json", ".yaml", ".yml"):
        raise ValueError(f"--config {path!r}: the suffix must be .toml, .json, .yaml or .yml")
    if p.suffix in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise ValueError(f"--config {path!r}: YAML needs PyYAML (pip install pyyaml); or use TOML / JSON") from None
        kind, errors = "YAML", (yaml.YAMLError,)
    else:
        kind, errors = p.suffix[1:].upper(), ()
    try:
        text = p.read_text(encoding="utf-8")
        if p.suffix == ".toml":
            import tomllib

            values = tomllib.loads(text)
        elif p.suffix == ".json":
            values = json.loads(text)
        else:
            values = yaml.safe_load(text)
            values = {} if values is None else values  # an empty file
    except (OSError, ValueError, *errors) as error:  # ValueError: decoding and syntax errors
        detail = " ".join(str(error).split())  # one line
        raise ValueError(f"--config {path!r} is not valid {kind}: {detail}") from None
    if not isinstance(values, dict):
        raise ValueError(
            f"--config {path!r}: the top level must be a table of config fields (NAME = VALUE), "
            f"got a {type(values).__name__}"
        )
    return values


def _train(args: argparse.Namespace) -> int:
    from .experiments.presets import preset as preset_values
    from .experiments.train import PeerTimeout, TrainConfig, TrainingInterrupted, resolve_config, train

    file_values = _read_config_file(args.config) if args.config else {}
    overrides = {
        f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig) if getattr(args, f.name) is not None
    }
    config = resolve_config(args.preset, file_values, **overrides)
    if config.resume and config.out and (Path(config.out) / "config.json").is_file():
        given = set(preset_values(args.preset) if args.preset else ()) | set(file_values) | set(overrides)
        config = _resumed_config(config, given)
    import os

    main_process = int(os.environ.get("RANK", "0")) == 0
    if main_process:
        asked = {k: v for k, v in config.to_dict().items() if v is not None}  # as config.json records it
        print("config: " + json.dumps(asked, allow_nan=False), flush=True)
    try:
        result = train(config)
    except (FileNotFoundError, FileExistsError, ImportError, FloatingPointError) as error:
        raise ValueError(str(error)) from error  # the command prints ValueErrors as one clear line
    except PeerTimeout as error:
        print(f"rewa train: error: {error}", file=sys.stderr)
        # gloo's threads still wait on the stopped peer and can hold the interpreter's exit for
        # minutes; every file was written atomically before, so nothing is left to clean up
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(1)
    except TrainingInterrupted as interrupted:
        if main_process:
            print(f"rewa train: {interrupted.message}", file=sys.stderr)
        return interrupted.exit_status
    if not main_process:
        return 0
    s = result.summary
    if args.json:
        print(json_text(s))
        return 0
    acc = lambda v: "n/a" if v is None else f"{v:.2%}"  # noqa: E731
    print(
        f"{s['model']} on {s['dataset']}, {s['method']}, {s['epochs']} epochs, {s['processes']} process(es) on "
        f"{s['device']}: {s['wall_seconds']:.1f} s"
    )
    print(
        f"  final loss {s['loss']:.4f}; accuracy train {acc(s['train_accuracy'])}, val {acc(s['val_accuracy'])}, "
        f"test {acc(s['test_accuracy'])}"
    )
    if s.get("val_perplexity") is not None or s.get("test_perplexity") is not None:  # a language model
        ppl = lambda v: "n/a" if v is None else f"{v:.2f}"  # noqa: E731
        rate = f"{s['tokens_per_second']:,.0f}" if s.get("tokens_per_second") else "n/a"
        print(f"  perplexity val {ppl(s.get('val_perplexity'))}, test {ppl(s.get('test_perplexity'))}; {rate} tokens/s")
    for t, sp in s["sparsity"].items():
        print(f"  |w| <= {t:<6}: sparsity {sp:.2%}, compression {s['compression'][t]:.1f}x")
    split = "test_accuracy" if s["test_accuracy"] is not None else "val_accuracy"
    print(
        f"  threshold sweep ({split}): "
        + ", ".join(
            f"{r['compression']:.0f}x {acc(r.get(split))}" for r in result.sweep if r["compression"] is not None
        )
    )
    if result.run_dir is not None:
        print(f"  run directory: {result.run_dir}")
    return 0


def _resumed_config(given, given_keys: set[str]):
    """The config a run directory records, for ``--resume``: the options given must resolve to
    the run's plan (preset, file and command-line forms of the same values are the same run)."""
    from .experiments.train import RESUME_FREE_FIELDS, resolve_config
    from .training.plan import DataFacts, resolve_plan
    from .training.run_dir import read_record

    run_dir = Path(given.out)
    record = read_record(run_dir)
    saved = record["plan"]
    try:
        facts = DataFacts(
            **{**saved["data"], "input_shape": tuple(saved["data"]["input_shape"])}, num_classes=saved["num_classes"]
        )
    except (KeyError, TypeError) as error:
        raise ValueError(f"{str(run_dir / 'config.json')!r} lacks the run's data facts ({error})") from None
    custom = saved.get("model") if str(saved.get("model", "")).startswith("module ") else None
    differ = resolve_plan(given, facts, model=custom).differences(saved, names=given_keys)
    if differ:
        raise ValueError(
            f"--resume: option(s) that differ from the run in {str(run_dir)!r}: "
            + ", ".join(differ)
            + "; drop them to resume the run as it was started"
        )
    now = given.to_dict()
    free = {k: now[k] for k in RESUME_FREE_FIELDS}
    try:
        return resolve_config(file_values={**record["config"], **free})
    except (TypeError, ValueError) as error:
        raise ValueError(f"{str(run_dir / 'config.json')!r} is not a config this rewa can resume: {error}") from None


def _interpolate(points: list[tuple[float, float]], compression: float) -> float | None:
    """Accuracy at ``compression``, linear in log compression; None outside the swept range."""
    for (c0, a0), (c1, a1) in zip(points, points[1:]):
        if c0 <= compression <= c1:
            if c1 == c0:
                return max(a0, a1)
            w = (math.log(compression) - math.log(c0)) / (math.log(c1) - math.log(c0))
            return a0 + w * (a1 - a0)
    return None


def compare_runs(run_dirs, *, reference: str | None = None, split: str = "test") -> list[dict]:
    """One row per run: max compression within 0.5 / 1.0 point of the reference, accuracy at 10x/50x/100x.

    The reference accuracy is the reference run's final (unpruned) accuracy on ``split``.
    """
    key = f"{split}_accuracy"
    runs = {}
    for d in run_dirs:
        path = Path(d)
        for name in ("sweep.json", "summary.json"):
            if not (path / name).is_file():
                raise ValueError(f"{d!r} has no {name}: not a finished rewa train run directory")
        runs[str(d)] = (read_json(path / "sweep.json", what="sweep"), read_json(path / "summary.json", what="summary"))
    ref_dir = reference or str(run_dirs[0])
    if ref_dir not in runs:
        path = Path(ref_dir)
        if not (path / "summary.json").is_file():
            raise ValueError(f"--reference {ref_dir!r} has no summary.json")
        ref_summary = read_json(path / "summary.json", what="summary")
    else:
        ref_summary = runs[ref_dir][1]
    ref_acc = ref_summary.get(key)
    if ref_acc is None:
        raise ValueError(f"the reference run {ref_dir!r} has no {key}")
    rows = []
    for d, (sweep, summary) in runs.items():
        points = sorted(
            (r["compression"], r[key]) for r in sweep if r.get("compression") is not None and r.get(key) is not None
        )
        row = {
            "run": d,
            "method": summary.get("method"),
            "dense_accuracy": summary.get(key),
            "reference_accuracy": ref_acc,
        }
        for drop in (0.5, 1.0):
            ok = [c for c, a in points if a >= ref_acc - drop / 100]
            row[f"max_compression_within_{drop}pt"] = max(ok) if ok else None
        for target in (10, 50, 100):
            row[f"accuracy_at_{target}x"] = _interpolate(points, target)
        rows.append(row)
    return rows


def _compare(args: argparse.Namespace) -> int:
    from .plotting._pyplot import pyplot
    from .plotting.training import plot_compression_curves

    rows = compare_runs(args.runs, reference=args.reference, split=args.split)
    key = f"{args.split}_accuracy"
    sweeps = {str(d): read_json(Path(d) / "sweep.json", what="sweep") for d in args.runs}
    fig = plot_compression_curves(
        sweeps, split=args.split, reference=rows[0]["reference_accuracy"], title=f"{args.split} accuracy vs compression"
    )
    fig.savefig(args.out, dpi=110)
    pyplot().close(fig)
    if args.json:
        print(json_text(rows))
        return 0
    fmt_c = lambda v: "-" if v is None else f"{v:.1f}x"  # noqa: E731
    fmt_a = lambda v: "-" if v is None else f"{v:.2%}"  # noqa: E731
    print(f"reference: {args.reference or args.runs[0]} ({key} {rows[0]['reference_accuracy']:.2%})")
    print("| run | method | dense | max compr. within 0.5 pt | within 1.0 pt | acc @10x | @50x | @100x |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(
            f"| {r['run']} | {r['method']} | {fmt_a(r['dense_accuracy'])} | "
            f"{fmt_c(r['max_compression_within_0.5pt'])} | {fmt_c(r['max_compression_within_1.0pt'])} | "
            f"{fmt_a(r['accuracy_at_10x'])} | {fmt_a(r['accuracy_at_50x'])} | {fmt_a(r['accuracy_at_100x'])} |"
        )
    print(f"figure: {args.out}")
    return 0
