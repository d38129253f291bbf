"""Sparse checkpoints: bitwise round trips, real size reduction, atomic writes; sparse Linear."""

from __future__ import annotations

import os

import pytest
import torch
from torch import nn

import rewa.export as export_module
from rewa.export import SparseLinear, _index_dtype, export_sparse, load_sparse, to_sparse_linear
from rewa.sparsity import attach_masks, prune


def conv_model(dtype=torch.float32) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3),
        nn.BatchNorm2d(8),
        nn.Flatten(),
        nn.Linear(8 * 4 * 4, 20),
        nn.LayerNorm(20),
        nn.Linear(20, 4),
    ).to(dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_round_trip_is_bitwise(tmp_path, dtype):
    model = conv_model(dtype)
    model(torch.randn(2, 3, 6, 6, dtype=dtype))  # BatchNorm running stats become non-trivial
    prune(model, sparsity=0.9, apply=True)
    path = tmp_path / "model.pt"
    summary = export_sparse(model, path)
    assert set(summary.sparse_tensors) == {"0.weight", "3.weight", "5.weight"}
    loaded = load_sparse(path)
    expected = model.state_dict()
    assert list(loaded) == list(expected)
    for name, value in expected.items():
        assert loaded[name].dtype == value.dtype and loaded[name].shape == value.shape, name
        # bitwise: compare the raw bytes, so -0.0 vs +0.0 or NaN payloads would show
        assert torch.equal(loaded[name].view(-1).view(torch.uint8), value.reshape(-1).view(torch.uint8)), name
    fresh = conv_model(dtype)
    fresh.load_state_dict(loaded)
    x = torch.randn(2, 3, 6, 6, dtype=dtype)
    fresh.eval(), model.eval()
    assert torch.equal(fresh(x), model(x))


def test_file_is_ten_times_smaller_at_99_percent(tmp_path):
    torch.manual_seed(0)
    model = nn.Linear(1000, 1000)
    prune(model, sparsity=0.99, apply=True)
    summary = export_sparse(model, tmp_path / "sparse.pt")
    torch.save(model.state_dict(), tmp_path / "dense.pt")
    dense_bytes = os.path.getsize(tmp_path / "dense.pt")
    assert summary.file_bytes == os.path.getsize(tmp_path / "sparse.pt")
    assert abs(summary.dense_file_bytes - dense_bytes) < 1024  # same torch.save, in memory
    assert dense_bytes >= 10 * summary.file_bytes, (dense_bytes, summary.file_bytes)
    assert summary.size_ratio >= 10


def test_index_dtypes_are_the_smallest(tmp_path):
    assert [_index_dtype(n) for n in (0, 255, 256, 65535, 65536, 2**32)] == [
        torch.uint8,
        torch.uint8,
        torch.uint16,
        torch.uint16,
        torch.uint32,
        torch.int64,
    ]
    model = nn.Linear(300, 10, bias=False)  # 10 rows of 300 columns: column index needs uint16
    prune(model, sparsity=0.95, apply=True)
    export_sparse(model, tmp_path / "m.pt")
    record = torch.load(tmp_path / "m.pt", weights_only=True)["tensors"]["weight"]
    assert record["layout"] == "csr"
    assert record["crow_indices"].dtype == torch.uint8  # nnz = 150 <= 255
    assert record["col_indices"].dtype == torch.uint16


def test_dense_when_sparse_is_not_smaller(tmp_path):
    model = nn.Linear(30, 30)  # no zeros: CSR would be larger
    summary = export_sparse(model, tmp_path / "m.pt")
    assert summary.sparse_tensors == () and set(summary.dense_tensors) == {"weight", "bias"}
    assert torch.equal(load_sparse(tmp_path / "m.pt")["weight"], model.weight)


def test_bad_paths_raise_and_leave_files(tmp_path):
    model = nn.Linear(4, 4)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        export_sparse(model, tmp_path / "missing" / "m.pt")
    with pytest.raises(IsADirectoryError, match="is a directory"):
        export_sparse(model, tmp_path)
    existing = tmp_path / "keep.pt"
    existing.write_bytes(b"precious")
    with pytest.raises(ValueError, match="no weight tensors"):
        export_sparse(nn.LayerNorm(4), existing)
    assert existing.read_bytes() == b"precious"


def test_failure_while_writing_keeps_old_file(tmp_path, monkeypatch):
    existing = tmp_path / "m.pt"
    existing.write_bytes(b"precious")

    def broken_save(obj, f):
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(export_module.torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        export_sparse(nn.Linear(4, 4), existing)
    assert existing.read_bytes() == b"precious"
    assert os.listdir(tmp_path) == ["m.pt"]  # no temporary file left behind


def test_refuses_torch_prune_hooks(tmp_path):
    model = nn.Linear(4, 4)
    attach_masks(model, prune(model, sparsity=0.5))
    with pytest.raises(ValueError, match="make them permanent"):
        export_sparse(model, tmp_path / "m.pt")
    assert not (tmp_path / "m.pt").exists()


def test_load_rejects_other_files(tmp_path):
    torch.save({"weight": torch.ones(2)}, tmp_path / "plain.pt")
    with pytest.raises(ValueError, match="not a sparse checkpoint"):
        load_sparse(tmp_path / "plain.pt")


def test_to_sparse_linear():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))
    with torch.no_grad():
        model[0].weight.masked_fill_(torch.rand(32, 16) < 0.9, 0.0)
    converted = to_sparse_linear(model, min_sparsity=0.5)
    assert isinstance(converted[0], SparseLinear) and type(converted[2]) is nn.Linear
    assert type(model[0]) is nn.Linear  # the original is untouched
    x = torch.randn(3, 5, 16)  # extra leading dimensions
    with torch.inference_mode():
        torch.testing.assert_close(converted(x), model(x), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match=r"min_sparsity=1.5 must be in \[0, 1\]"):
        to_sparse_linear(model, min_sparsity=1.5)
