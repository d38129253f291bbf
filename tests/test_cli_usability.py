"""What a new user meets first on the command line (issue 10): each test runs the installed
package in a subprocess, as a user's shell would."""

import argparse
import fcntl
import importlib.metadata
import json
import os
import pty
import struct
import subprocess
import sys
import termios

import pytest

import rewa
from rewa.cli import build_parser

# Runs main() with some modules made unimportable (sys.modules[name] = None), as if not installed.
_WITHOUT = (
    "import sys\nfor m in {missing!r}: sys.modules[m] = None\nfrom rewa.cli import main\nsys.exit(main({argv!r}))\n"
)


def run(*argv, missing=(), stderr=subprocess.PIPE, timeout=300):
    if missing:
        cmd = [sys.executable, "-c", _WITHOUT.format(missing=list(missing), argv=list(argv))]
    else:
        cmd = [sys.executable, "-m", "rewa", *argv]
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=stderr, text=True, timeout=timeout)


def test_version_in_one_place():
    result = run("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"rewa {rewa.__version__}"
    assert rewa.__version__ == importlib.metadata.version("rewa")


def test_package_metadata_names_license_authors_classifiers():
    meta = importlib.metadata.metadata("rewa")
    assert meta["License-Expression"] == "MIT"
    assert meta.get_all("Author") or meta.get_all("Author-email")
    assert any(c.startswith("Programming Language :: Python :: 3") for c in meta.get_all("Classifier"))
    torch_floor = [r for r in importlib.metadata.requires("rewa") if r.startswith("torch")]
    # the declared floor is the tested version (see the Makefile): the one this suite runs on
    import torch

    assert torch_floor == ["torch>=2.13"] and torch.__version__.startswith("2.13")


def _all_actions(parser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _all_actions(sub)
        else:
            yield parser.prog, action


def test_every_option_has_help_and_threads():
    progs = set()
    for prog, action in _all_actions(build_parser()):
        assert action.help, f"{prog} {action.option_strings or action.dest} has no help text"
        progs.add(prog)
    leaves = {prog for prog, action in _all_actions(build_parser()) if "--threads" in action.option_strings}
    assert leaves == {
        "rewa demo",
        "rewa reproduce theory",
        "rewa reproduce synthetic",
        "rewa reproduce sparsity",
        "rewa train",
        "rewa compare",
        "rewa bench",
        "rewa generate",
    }
    result = run("demo", "--help")
    assert result.returncode == 0 and "number of features" in result.stdout and "--threads N" in result.stdout


def test_boolean_options_are_flags():
    bad = run("demo", "--cosine", "maybe")
    assert bad.returncode == 2 and "unrecognized arguments: maybe" in bad.stderr
    off = run("demo", "--no-cosine", "--d", "50", "--epochs", "4", "--warmup-epochs", "1", "--threads", "1")
    assert "lr=0.05 constant" in off.stdout and "cosine" not in off.stdout.splitlines()[1]


def test_threads_option_sets_torch_threads():
    code = (
        "import torch\nfrom rewa.cli import main\n"
        "main(['demo', '--threads', '1', '--d', '50', '--epochs', '2', '--warmup-epochs', '1', '--json'])\n"
        "print('threads', torch.get_num_threads())\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip().endswith("threads 1"), result.stderr
    bad = run("demo", "--threads", "0")
    assert bad.returncode == 2 and "0 must be a positive integer" in bad.stderr


def test_missing_matplotlib_is_reported_before_work(tmp_path):
    result = run("reproduce", "theory", "--quick", "--out", str(tmp_path / "t"), missing=["matplotlib"])
    assert result.returncode == 2
    assert 'pip install "rewa[plot]"' in result.stderr
    assert not (tmp_path / "t" / "summary.json").exists() and result.stdout == ""
    for argv in (["reproduce", "synthetic"], ["reproduce", "sparsity"]):
        other = run(*argv, "--out", str(tmp_path / "s"), missing=["matplotlib"])
        assert other.returncode == 2 and 'pip install "rewa[plot]"' in other.stderr and other.stdout == ""


def test_missing_sklearn_names_the_extra():
    code = "import sys\nsys.modules['sklearn'] = None\nfrom rewa import ReWARegressor\n"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and 'pip install "rewa[sklearn]"' in result.stderr


def test_unwritable_out_is_refused_before_work(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    for argv in (["reproduce", "theory", "--quick"], ["reproduce", "synthetic"], ["reproduce", "sparsity"]):
        result = run(*argv, "--out", str(blocker / "out"))
        assert result.returncode == 2 and "is not a writable directory" in result.stderr, result.stderr
        assert result.stdout == ""


def test_reproduce_sparsity_writes_a_figure_and_is_quiet_off_a_terminal(tmp_path):
    result = run("reproduce", "sparsity", "--targets", "0.5", "--epochs", "2", "--threads", "1", "--out", str(tmp_path))
    assert result.returncode in (0, 1)
    assert (tmp_path / "target_sparsity.png").stat().st_size > 1000
    assert json.loads((tmp_path / "target_sparsity.json").read_text())[0]["config"]["target_sparsity"] == 0.5
    assert "epoch" not in result.stderr  # no progress bar in a pipe


def test_reproduce_sparsity_shows_progress_on_a_terminal(tmp_path):
    leader, follower = pty.openpty()
    # a terminal of 24 x 100 characters (a fresh pty has size 0 x 0, where tqdm draws nothing)
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    try:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "rewa",
                "reproduce",
                "sparsity",
                "--targets",
                "0.5",
                "--epochs",
                "2",
                "--threads",
                "1",
                "--no-figures",
                "--out",
                str(tmp_path),
            ],
            stdout=subprocess.PIPE,
            stderr=follower,
            text=True,
            timeout=300,
        )
        os.close(follower)
        follower = None
        seen = b""
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
    finally:
        if follower is not None:
            os.close(follower)
        os.close(leader)
    assert result.returncode in (0, 1)
    assert b"2/2" in seen and b"epoch" in seen


@pytest.mark.parametrize("argv", [["--version"], ["demo", "--help"]])
def test_python_dash_m_rewa(argv):
    assert run(*argv).returncode == 0


def test_make_demo_runs_the_demo_on_one_thread():
    # torch's default thread count made `make demo` take 14.8 s on a shared 2-core machine
    # against 0.52 s with one thread (the demo's problem is small)
    from pathlib import Path

    makefile = (Path(__file__).resolve().parents[1] / "Makefile").read_text()
    recipe = makefile.split("\ndemo:", 1)[1].split("\n\n", 1)[0]
    (command,) = [line.strip() for line in recipe.splitlines()[1:] if line.strip()]
    assert command.endswith("rewa demo --threads 1"), command
    args = build_parser().parse_args(command.split("rewa ", 1)[1].split())
    assert args.threads == 1
