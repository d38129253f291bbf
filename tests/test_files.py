"""Issue 9, item 4: damaged sparse checkpoints and sweep checkpoints give clear answers."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import tracemalloc
import warnings

import pytest
import torch
from torch import nn

from rewa.export import FORMAT, FORMAT_VERSION, SparseCheckpointError, export_sparse, load_sparse
from rewa.paper.synthetic.checkpoints import CheckpointWarning, load_checkpoint


def exported(tmp_path):
    model = nn.Linear(20, 10)
    with torch.no_grad():
        model.weight.masked_fill_(torch.rand(10, 20) < 0.9, 0.0)
    path = tmp_path / "model.pt"
    export_sparse(model, path)
    return path


def crafted(tmp_path, record):
    path = tmp_path / "crafted.pt"
    torch.save({"format": FORMAT, "version": FORMAT_VERSION, "tensors": {"weight": record}}, path)
    return path


@pytest.mark.parametrize("keep", [0.1, 0.5, 0.9])
def test_truncated_file_raises_one_clear_error(tmp_path, keep):
    path = exported(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(SparseCheckpointError, match=re.escape(repr(str(path))) + " cannot be read as a checkpoint"):
        load_sparse(path)


def test_huge_declared_shape_is_refused_before_allocating(tmp_path):
    """A ~2 KB file declaring a 30,000 x 30,000 float32 tensor (3.6 GB) with 2 rows of data."""
    record = {
        "layout": "csr",
        "shape": [30_000, 30_000],
        "dtype": "float32",
        "crow_indices": torch.tensor([0, 1, 2], dtype=torch.uint8),
        "col_indices": torch.tensor([0, 1], dtype=torch.uint8),
        "values": torch.ones(2),
    }
    path = crafted(tmp_path, record)
    assert path.stat().st_size < 4000
    tracemalloc.start()
    try:
        with pytest.raises(SparseCheckpointError, match=r"tensor 'weight', shape \[30000, 30000\] of torch.float32"):
            load_sparse(path)
        # past the bound on the bytes, the record's own checks still refuse it
        with pytest.raises(
            SparseCheckpointError, match=r"tensor 'weight': crow_indices has 3 entries, the record needs 30001"
        ):
            load_sparse(path, max_bytes=4 * 10**9)
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize(
    "change,message",
    [
        (dict(col_indices=torch.tensor([0, 7], dtype=torch.uint8)), r"col_indices outside \[0, 5\)"),
        (dict(crow_indices=torch.tensor([0, 2, 1], dtype=torch.uint8)), "crow_indices must rise from 0"),
        (
            dict(values=torch.ones(2, dtype=torch.float64)),
            "values of dtype torch.float64, the record says torch.float32",
        ),
        (dict(dtype="nonsense"), "unknown dtype 'nonsense'"),
        (dict(shape=[2, -5]), re.escape("shape [2, -5] is not a list of non-negative integers")),
        (dict(layout="coo"), "unknown layout 'coo'"),
        (dict(col_indices=None), "col_indices must be a 1-D integer tensor"),
    ],
)
def test_inconsistent_records_name_file_tensor_and_problem(tmp_path, change, message):
    record = {
        "layout": "csr",
        "shape": [2, 5],
        "dtype": "float32",
        "crow_indices": torch.tensor([0, 1, 2], dtype=torch.uint8),
        "col_indices": torch.tensor([0, 1], dtype=torch.uint8),
        "values": torch.ones(2),
    }
    record.update(change)
    path = crafted(tmp_path, record)
    with pytest.raises(SparseCheckpointError, match=re.escape(repr(str(path))) + ", tensor 'weight': " + message):
        load_sparse(path)


def test_flat_indices_outside_the_shape(tmp_path):
    record = {
        "layout": "flat",
        "shape": [3, 2, 2],
        "dtype": "float32",
        "indices": torch.tensor([1, 12], dtype=torch.uint8),
        "values": torch.ones(2),
    }
    with pytest.raises(SparseCheckpointError, match=r"indices outside \[0, 12\)"):
        load_sparse(crafted(tmp_path, record))


def test_foreign_file(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"weight": torch.ones(2)}, path)
    with pytest.raises(SparseCheckpointError, match="is not a sparse checkpoint"):
        load_sparse(path)
    path.write_text("hello")
    with pytest.raises(SparseCheckpointError, match="cannot be read"):
        load_sparse(path)


def test_export_does_not_hold_a_serialized_dense_copy(tmp_path):
    """The dense size is counted while streaming: peak Python memory stays far below the
    4 MB that a serialized copy of a 1024 x 1024 float32 weight takes."""
    model = nn.Linear(1024, 1024, bias=False)
    with torch.no_grad():
        model.weight.zero_()
    tracemalloc.start()
    try:
        summary = export_sparse(model, tmp_path / "m.pt")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert summary.dense_file_bytes > 4 * 1024 * 1024
    assert peak < 1024 * 1024


@pytest.mark.slow
def test_sigterm_during_export_leaves_no_temporary_file(tmp_path):
    script = textwrap.dedent(f"""
        import os, signal, torch
        import rewa.export as ex
        real_save = torch.save
        def save_then_die(obj, f, *args, **kwargs):
            f.write(b"partial")
            os.kill(os.getpid(), signal.SIGTERM)
            real_save(obj, f, *args, **kwargs)
        ex.torch.save = save_then_die
        ex.export_sparse(torch.nn.Linear(4, 4), {str(tmp_path / "model.pt")!r})
        print("not reached")
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == -signal.SIGTERM, done.stderr
    assert "not reached" not in done.stdout
    assert os.listdir(tmp_path) == []


# -- sweep checkpoints --------------------------------------------------------------------------


@pytest.mark.parametrize("content", [b"garbage", None, "wrong-shape", "not-a-dict"])
def test_corrupt_sweep_checkpoint_is_reported_and_ignored(tmp_path, content):
    path = tmp_path / "sweep.ckpt"
    if content == "wrong-shape":
        torch.save({"key": "k", "epoch": 1, "y": torch.zeros(2, 2), "seconds": 1.0}, path)
    elif content == "not-a-dict":
        torch.save([1, 2, 3], path)
    elif content is None:
        torch.save({"key": "k", "epoch": 1, "y": torch.zeros(1, 2, 3), "seconds": 1.0}, path)
        path.write_bytes(path.read_bytes()[:100])
    else:
        path.write_bytes(content)
    with pytest.warns(CheckpointWarning, match=re.escape(f"ignoring sweep checkpoint {str(path)!r}")):
        assert load_checkpoint(path, "k", (1, 2, 3), 10) is None


def test_sweep_checkpoint_of_this_sweep_loads_and_of_another_is_skipped_silently(tmp_path):
    path = tmp_path / "sweep.ckpt"
    torch.save({"key": "k", "epoch": 4, "y": torch.zeros(1, 2, 3), "seconds": 1.0}, path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_checkpoint(path, "k", (1, 2, 3), 10)["epoch"] == 4
        assert load_checkpoint(path, "other", (1, 2, 3), 10) is None
