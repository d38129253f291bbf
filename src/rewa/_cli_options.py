"""What every ``rewa`` command shares: ``--threads``, progress on a terminal, the check for
optional packages and for a writable ``--out`` (used by :mod:`rewa.cli` and its sub-command
modules, so they need not import each other)."""

from __future__ import annotations

import argparse
import importlib.util
import sys
import uuid
from pathlib import Path

__all__ = [
    "CommandError",
    "add_common_options",
    "apply_threads",
    "output_directory",
    "require_packages",
    "show_progress",
]

# -- options and checks every command shares ----------------------------------------------

# the extra of pyproject.toml that installs each optional package
_EXTRAS = {"matplotlib": "plot", "sklearn": "sklearn", "tqdm": "progress"}


class CommandError(Exception):
    """A problem found before the work starts: printed as ``rewa <command>: error: ...``, exit 2."""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be a positive integer")
    return value


def add_common_options(parser: argparse.ArgumentParser) -> None:
    """``--threads N``: what every command takes (applied by :func:`main` before the command)."""
    parser.add_argument(
        "--threads",
        type=_positive_int,
        default=None,
        metavar="N",
        help="torch intra-op threads (default: torch's choice, usually the number of "
        "cores; on a shared machine --threads 1 is often much faster)",
    )


def apply_threads(threads: int | None) -> None:
    """Set torch's intra-op thread count, or leave torch's default when ``threads`` is None."""
    if threads is not None:
        import torch

        torch.set_num_threads(threads)


def show_progress() -> bool:
    """Progress bars only on a terminal: redirected output stays free of them."""
    return sys.stderr.isatty()


def require_packages(*modules: str) -> None:
    """Raise :class:`CommandError` naming the extra to install if a module is not importable."""
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        extras = ",".join(sorted({_EXTRAS[m] for m in missing}))
        raise CommandError(
            f'this command needs {", ".join(missing)}, which is not installed: pip install "rewa[{extras}]"'
        )


def output_directory(out: str) -> Path:
    """Create ``out`` and prove it writable (a probe file) before any work; else CommandError."""
    path = Path(out)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".rewa-write-test-{uuid.uuid4().hex}"
        probe.write_text("")
        probe.unlink()
    except OSError as error:
        raise CommandError(f"--out {out!r} is not a writable directory: {error}") from None
    return path
