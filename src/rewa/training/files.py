"""The run directory's files: atomic fsynced writes, standard JSON, the checksummed checkpoint.

Guarantees (each tested in ``tests/test_run_safety.py``):

* a file is written to ``NAME.tmp``, fsynced, then renamed over ``NAME``: a kill or a full disk
  leaves the previous ``NAME`` whole (a failed write removes its ``.tmp`` and raises
  :class:`RunFileError` naming the file);
* JSON is standard JSON: a non-finite float is written as ``null``, noted in its dict (:func:`json_text`);
* the checkpoint is read with ``torch.load(weights_only=True)`` only (no code runs from it), and
  carries the SHA-256 of its payload, checked before anything of it is used: a flipped bit or a
  truncated file is refused with one line that names the file.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import random
from pathlib import Path

import numpy as np
import torch

from .. import _json

__all__ = [
    "RunFileError",
    "atomic_write",
    "write_json",
    "read_json",
    "json_text",
    "save_checkpoint",
    "load_checkpoint",
    "rng_state",
    "set_rng_state",
]

CHECKPOINT_FORMAT = "rewa-train-checkpoint"
CHECKPOINT_VERSION = 1


class RunFileError(ValueError):
    """A file of a run directory cannot be written or read; the message names it and what to do."""


def _fsync_dir(folder: Path) -> None:
    # the rename itself is durable only once the directory entry is on disk (POSIX)
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes | str) -> None:
    """Replace ``path`` by ``data`` all at once: write ``path.tmp``, fsync, rename, fsync the folder.

    On any failure (a full disk, a signal) the ``.tmp`` file is removed and ``path`` keeps its
    previous content; an ``OSError`` becomes :class:`RunFileError` naming the file.
    """
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    payload = data.encode() if isinstance(data, str) else data
    try:
        with open(tmp, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException as error:
        tmp.unlink(missing_ok=True)
        if isinstance(error, OSError):
            kept = f"the previous {path.name} is kept" if path.exists() else f"no {path.name} was written"
            raise RunFileError(f"cannot write {str(path)!r}: {error.strerror or error}; {kept}") from error
        raise


def json_text(record, *, indent: int | None = 2) -> str:
    """Standard JSON of ``record``: a nan or inf is written as ``null`` and noted in its dict's
    ``"non_finite_as_null"`` field (:mod:`rewa._json`)."""
    return _json.dumps(record, indent=indent)


def write_json(path: Path, record) -> None:
    atomic_write(path, json_text(record))


def read_json(path: Path, *, what: str = "run file"):
    """The JSON in ``path``; a truncated or corrupt file raises :class:`RunFileError` naming it."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise RunFileError(
            f"{str(path)!r} ({what}) cannot be read ({type(error).__name__}: {error}); "
            "it is truncated or not a file of this run: restore it or start the run in a new --out"
        ) from None


# -- random number generators as plain types (what weights_only=True admits) ----------------


def rng_state() -> dict:
    """Every generator a run draws from, as tensors, tuples and numbers."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": (kind, torch.from_numpy(np.asarray(keys, dtype=np.int64)), int(pos), int(has_gauss), float(cached)),
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# -- the checkpoint --------------------------------------------------------------------------


_LOAD_ERRORS = (pickle.UnpicklingError, RuntimeError, OSError, EOFError, ValueError, TypeError, KeyError)


def _reason(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    refused = next((line for line in lines if "Unsupported global" in line), None)
    if refused is not None:  # torch's long weights_only message: keep the line that says what was refused
        return "it holds a pickled object, which is never loaded: " + refused.split(" was not an allowed")[0]
    return f"{type(error).__name__}: {lines[0] if lines else ''}"


def save_checkpoint(path: Path, payload: dict) -> None:
    """Write ``payload`` (tensors, numbers, strings, lists, tuples, dicts) with its SHA-256."""
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    body = buffer.getvalue()
    outer = io.BytesIO()
    torch.save(
        {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "sha256": hashlib.sha256(body).hexdigest(),
            "payload": torch.frombuffer(bytearray(body), dtype=torch.uint8),
        },
        outer,
    )
    atomic_write(path, outer.getvalue())


def load_checkpoint(path: Path, *, map_location=None) -> dict:
    """The payload :func:`save_checkpoint` wrote, after its checksum matched.

    Only ``torch.load(weights_only=True)`` reads it. A file that is truncated, corrupt, of
    another format or whose checksum differs raises :class:`RunFileError` naming it.
    """
    where = repr(str(path))
    advice = "restore it from a copy, or start the run again in a new --out"
    try:
        outer = torch.load(path, map_location="cpu", weights_only=True)
    except _LOAD_ERRORS as error:  # weights_only refuses a pickled object: it lands here, unloaded
        raise RunFileError(f"{where} cannot be read ({_reason(error)}); {advice}") from None
    if not isinstance(outer, dict) or outer.get("format") != CHECKPOINT_FORMAT:
        raise RunFileError(f"{where} is not a checkpoint of rewa train (or was written by an older rewa); {advice}")
    if outer.get("version") != CHECKPOINT_VERSION:
        raise RunFileError(
            f"{where} has checkpoint version {outer.get('version')!r}; this rewa reads {CHECKPOINT_VERSION}"
        )
    body = outer.get("payload")
    if not isinstance(body, torch.Tensor) or body.dtype != torch.uint8 or body.dim() != 1:
        raise RunFileError(f"{where} has no payload; {advice}")
    data = body.numpy().tobytes()
    if hashlib.sha256(data).hexdigest() != outer.get("sha256"):
        raise RunFileError(f"{where} fails its checksum (the file was changed or damaged on disk); {advice}")
    try:
        payload = torch.load(io.BytesIO(data), map_location=map_location, weights_only=True)
    except _LOAD_ERRORS as error:
        raise RunFileError(f"{where} cannot be read ({_reason(error)}); {advice}") from None
    if not isinstance(payload, dict):
        raise RunFileError(f"{where} holds no checkpoint record; {advice}")
    return payload
