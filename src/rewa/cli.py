"""The ``rewa`` command: parse, call an experiment function, print, save.

The commands live beside what they call: ``train`` and ``compare`` in :mod:`rewa.cli_train`,
``bench`` in :mod:`rewa.cli_bench`, and the paper's ``demo`` and ``reproduce`` in
:mod:`rewa.paper.cli`, which :func:`build_parser` imports when it runs (the library itself
never imports :mod:`rewa.paper`).

Every command takes ``--threads N`` (torch's intra-op threads; default: torch's own choice),
shows progress on stderr when stderr is a terminal (tqdm, the ``progress`` extra, else plain
lines) and is quiet otherwise, and checks its optional packages and its ``--out`` directory
before any work starts. New commands reuse ``add_common_options``, ``output_directory`` and
``require_packages`` of :mod:`rewa._cli_options`.
"""

from __future__ import annotations

import argparse
import sys

from ._cli_options import CommandError, apply_threads
from ._version import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rewa", description="Sparse training with ReWA.")
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {__version__}", help="print the version and exit"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    from .paper.cli import add_commands as add_paper_commands  # demo, reproduce (the paper's commands)

    add_paper_commands(commands)
    from .cli_train import add_commands as add_train_commands  # train, compare

    add_train_commands(commands)
    from .cli_bench import add_commands as add_bench_commands  # bench

    add_bench_commands(commands)
    from .cli_generate import add_commands as add_generate_commands  # generate

    add_generate_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    name = " ".join(filter(None, (args.command, getattr(args, "target", None))))
    try:
        apply_threads(getattr(args, "threads", None))
        return args.run(args)
    except (ValueError, CommandError) as error:
        print(f"rewa {name}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
