"""``rewa generate RUN_DIR --prompt "..."``: a sample from a trained (pruned) language-model run."""

from __future__ import annotations

import argparse
import math
import sys

__all__ = ["add_commands"]


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} must be >= 0")
    return value


def _temperature(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"{value} must be a finite number >= 0 (0: greedy)")
    return value


def _sparsity(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be in [0, 1)")
    return value


def add_commands(subparsers) -> None:
    from ._cli_options import add_common_options

    generate = subparsers.add_parser(
        "generate",
        help="print text sampled from a language-model run of rewa train (--dataset text)",
        description="Continue --prompt with characters sampled from the GPT of RUN_DIR (its checkpoint, "
        "read with torch.load(weights_only=True), and vocab.json). Prompt characters the training text "
        "did not hold enter the model as the unknown id (a note on stderr says which).",
    )
    generate.add_argument("run_dir", metavar="RUN_DIR", help="the --out of a rewa train run on text")
    generate.add_argument("--prompt", default="", help="text to continue (default: a newline)")
    generate.add_argument(
        "--max-new-tokens", type=_non_negative_int, default=200, help="characters to sample (default: %(default)s)"
    )
    generate.add_argument(
        "--temperature", type=_temperature, default=0.8, help="sampling temperature, 0: greedy (default: %(default)s)"
    )
    generate.add_argument("--seed", type=int, default=0, help="seed of the sampling (default: %(default)s)")
    generate.add_argument(
        "--sparsity",
        type=_sparsity,
        default=None,
        help="first prune the sparsified matrices to this sparsity (global magnitude; default: as trained)",
    )
    generate.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="(default: %(default)s)")
    add_common_options(generate)
    generate.set_defaults(run=_generate)


def _generate(args: argparse.Namespace) -> int:
    from .sparsity import prune, sparsity_report
    from .training.generate import generate_text, load_language_model

    run = load_language_model(args.run_dir, device=args.device)
    if args.sparsity is not None:
        prune(run.model, sparsity=args.sparsity, apply=True)
    unknown = run.vocab.unknown(args.prompt)
    if unknown:
        shown = ", ".join(repr(c) for c in unknown[:10]) + (", ..." if len(unknown) > 10 else "")
        print(
            f"rewa generate: note: prompt characters outside the vocabulary enter as the unknown id: {shown}",
            file=sys.stderr,
        )
    report = sparsity_report(run.model)
    unfinished = f" (of {run.total_epochs}: the run is not finished)" if run.epoch < run.total_epochs else ""
    print(
        f"rewa generate: checkpoint of epoch {run.epoch}{unfinished}; sparsity of the sparsified matrices "
        f"{100 * report.sparsity:.1f}%",
        file=sys.stderr,
    )
    text = generate_text(
        run, args.prompt, max_new_tokens=args.max_new_tokens, temperature=args.temperature, seed=args.seed
    )
    print(args.prompt + text)
    return 0
