"""The run directory: which directories may hold a run, resuming from one, saving each epoch.

A directory holds a run when it holds only files a run writes (``RUN_FILES`` and their ``.tmp``
twins) and a ``config.json`` record of ``rewa train``; anything else is the user's and is never
written over. ``checkpoint.pt`` and ``metrics.jsonl`` are written together, between signals.
"""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ..sparsity import FixedMask
from .config import OPTIONAL_RUN_FILES, RUN_FILES
from .distributed import Processes
from .files import (
    RunFileError,
    atomic_write,
    json_text,
    load_checkpoint,
    read_json,
    rng_state,
    save_checkpoint,
    set_rng_state,
    write_json,
)
from .interrupts import signals_deferred
from .plan import RECORD_FORMAT, RunPlan

__all__ = ["RunState", "check_run_dir", "read_record", "open_run_dir", "save_epoch", "save_vocab", "resume_command"]


@dataclass
class RunState:
    """What a run carries from epoch to epoch (restored on resume)."""

    start_epoch: int = 0
    saved_epoch: int = 0
    metrics: list = field(default_factory=list)
    fixed_mask: FixedMask | None = None
    masks: dict | None = None
    elapsed_before: float = 0.0
    controller_state: dict | None = None


def resume_command(run_dir: Path) -> str:
    """The command that continues the run in ``run_dir``."""
    return f"rewa train --out {shlex.quote(str(run_dir))} --resume"


def read_record(run_dir: Path) -> dict:
    """The ``config.json`` record of the run in ``run_dir`` (``{"config": asked, "plan": resolved}``)."""
    path = run_dir / "config.json"
    record = read_json(path, what="the run's config")
    if not isinstance(record, dict) or record.get("format") != RECORD_FORMAT:
        raise RunFileError(
            f"{str(path)!r} is not a run record of this rewa (an older rewa or another program wrote it); "
            "start the run again in a new --out"
        )
    if not isinstance(record.get("config"), dict) or not isinstance(record.get("plan"), dict):
        raise RunFileError(f"{str(path)!r} lacks its config or plan; start the run again in a new --out")
    return record


def check_run_dir(run_dir: Path, *, resume: bool) -> None:
    """Refuse a run directory that holds anything but a run of ``rewa train`` (never overwrite a
    user's files), or a started run without ``resume``."""
    if not run_dir.exists():
        return
    where = repr(str(run_dir))
    if not run_dir.is_dir():
        raise ValueError(f"out={where} is a file, not a directory: choose another --out")
    names = (*RUN_FILES, *OPTIONAL_RUN_FILES)
    ours = set(names) | {f + ".tmp" for f in names}
    entries = sorted(p.name for p in run_dir.iterdir())
    foreign = [name for name in entries if name not in ours]
    if foreign:
        raise ValueError(
            f"out={where} holds files that are not a run of rewa train ({', '.join(foreign[:5])}"
            f"{', ...' if len(foreign) > 5 else ''}); nothing was written: choose another --out"
        )
    if not entries or entries == ["config.json.tmp"]:
        return
    if not (run_dir / "config.json").exists():
        raise ValueError(
            f"out={where} holds {', '.join(entries)} but no config.json of a rewa train run; "
            "nothing was written: choose another --out"
        )
    read_record(run_dir)
    if (run_dir / "checkpoint.pt").exists() and not resume:
        raise FileExistsError(
            f"{where} already holds a run (checkpoint.pt): pass --resume to continue it, or choose another --out"
        )


def open_run_dir(plan: RunPlan, run_dir: Path, model, opt, dist: Processes, device) -> RunState:
    """Resume the run in ``run_dir`` if asked (its plan must equal ``plan``), then record ``plan``."""
    run = RunState()
    checkpoint_path = run_dir / "checkpoint.pt"
    if plan.config.resume and checkpoint_path.exists():
        differ = plan.differences(read_record(run_dir)["plan"])
        if differ:
            raise ValueError(f"--resume with a different config than the run in {str(run_dir)!r}: " + ", ".join(differ))
        _restore(run, load_checkpoint(checkpoint_path, map_location=device), checkpoint_path, model, opt, device)
        if dist.main:
            total = plan.total_epochs
            if run.start_epoch >= total:
                note = f"the run in {str(run_dir)!r} is finished ({total} of {total} epochs): nothing to train"
            else:
                note = f"resuming the run in {str(run_dir)!r} from epoch {run.start_epoch} of {total}"
            print(note, file=sys.stderr, flush=True)
    if dist.main:
        run_dir.mkdir(parents=True, exist_ok=True)
        for leftover in run_dir.glob("*.tmp"):  # a killed write of ours (names checked by check_run_dir)
            leftover.unlink()
        write_json(run_dir / "config.json", plan.record())
        # metrics.jsonl holds exactly the checkpointed epochs (a killed run may have written one more)
        write_metrics(run_dir, run.metrics)
    dist.barrier()
    return run


def _restore(run: RunState, ckpt: dict, path: Path, model, opt, device) -> None:
    try:
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        run.start_epoch, run.metrics, run.elapsed_before = ckpt["epoch"], ckpt["metrics"], ckpt["wall_seconds"]
        rng = ckpt["rng"]
    except (KeyError, RuntimeError, ValueError, TypeError) as error:
        raise RunFileError(
            f"{str(path)!r} does not fit this run's model and optimizer ({type(error).__name__}: {error}); "
            "start the run again in a new --out"
        ) from None
    run.controller_state = ckpt.get("controller")
    if ckpt.get("masks") is not None:
        run.masks = {k: v.to(device) for k, v in ckpt["masks"].items()}
        run.fixed_mask = FixedMask(model, run.masks).attach(opt)
    run.saved_epoch = run.start_epoch
    set_rng_state(rng)


def write_metrics(run_dir: Path, metrics: list[dict]) -> None:
    atomic_write(run_dir / "metrics.jsonl", "".join(json_text(m, indent=None) + "\n" for m in metrics))


def save_epoch(run_dir: Path, run: RunState, payload: dict) -> None:
    """The checkpoint and the metrics of the epoch ``payload["epoch"]``. A signal waits until
    both are written; a write error leaves the previous checkpoint (``metrics.jsonl`` is rewritten
    from the checkpoint on resume)."""
    with signals_deferred():
        save_checkpoint(run_dir / "checkpoint.pt", {**payload, "rng": rng_state(), "metrics": run.metrics})
        write_metrics(run_dir, run.metrics)
        run.saved_epoch = payload["epoch"]


def save_vocab(run_dir: Path, vocab, dist: Processes) -> None:
    """``vocab.json``: the character vocabulary of a text run (JSON, so ``rewa generate`` reads it
    without unpickling). A resumed run whose text gives another vocabulary is refused."""
    path = run_dir / "vocab.json"
    if dist.main:
        record = vocab.to_json()
        if path.exists() and read_json(path, what="the run's vocabulary") != record:
            raise ValueError(
                f"{str(path)!r} holds another vocabulary than this run's text: the text changed since the run "
                "started; start the run again in a new --out"
            )
        write_json(path, record)
    dist.barrier()
