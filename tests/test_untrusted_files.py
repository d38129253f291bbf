"""Files from the user's disk: nothing in them runs code, and bad ones get one clear error."""

from __future__ import annotations

import io
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from rewa.experiments.data import load_dataset

_CIFAR10 = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]


class _Python2Pickler(pickle._Pickler):  # type: ignore[name-defined]
    """Writes bytes as Python 2 wrote its ``str`` (the official files come from Python 2's
    cPickle, protocol 2); Python 3's protocol 2 writes them through ``_codecs.encode``."""

    dispatch = pickle._Pickler.dispatch.copy()  # type: ignore[attr-defined]

    def save_str2(self, obj: bytes) -> None:
        n = len(obj)
        self.write(
            pickle.SHORT_BINSTRING + bytes([n]) + obj if n < 256 else pickle.BINSTRING + struct.pack("<i", n) + obj
        )
        self.memoize(obj)

    dispatch[bytes] = save_str2


def _python2_pickle(obj, numpy_module: str = "numpy.core.multiarray") -> bytes:
    buffer = io.BytesIO()
    _Python2Pickler(buffer, protocol=2).dump(obj)
    # the module the files name: numpy.core.multiarray (numpy 1), numpy._core.multiarray (numpy 2)
    return buffer.getvalue().replace(b"cnumpy._core.multiarray\n", f"c{numpy_module}\n".encode())


def _official_layout(folder: Path, n: int = 4, protocol: int | str = 2) -> None:
    """Files laid out as the official CIFAR-10 python archive: dicts of bytes keys, a uint8
    ``(n, 3072)`` array, labels and file names as lists, and ``batches.meta``; ``protocol=2``
    writes them as Python 2 did, ``"numpy2"`` likewise with numpy 2's module name, an int
    with Python 3's pickle."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in _CIFAR10:
        entry = {
            b"batch_label": name.encode(),
            b"labels": [int(v) for v in rng.integers(0, 10, n)],
            b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            b"filenames": [f"img_{i}.png".encode() for i in range(n)],
        }
        (folder / name).write_bytes(_dumps(entry, protocol))
    meta = {b"num_cases_per_batch": n, b"label_names": [b"airplane"] * 10, b"num_vis": 3072}
    (folder / "batches.meta").write_bytes(_dumps(meta, protocol))


def _dumps(obj, protocol: int | str = 2) -> bytes:
    if protocol == 2:
        return _python2_pickle(obj)
    if protocol == "numpy2":
        return _python2_pickle(obj, "numpy._core.multiarray")
    return pickle.dumps(obj, protocol=protocol)


@pytest.mark.parametrize("protocol", [2, "numpy2", 4])
def test_cifar_files_in_the_official_layout_load(tmp_path, protocol):
    folder = tmp_path / "cifar-10-batches-py"
    _official_layout(folder, protocol=protocol)
    bundle = load_dataset("cifar10", str(tmp_path))
    assert bundle.train.x.shape == (20, 3, 32, 32) and bundle.train.x.dtype == torch.uint8
    assert bundle.train.y.dtype == torch.int64 and len(bundle.test) == 4
    first = pickle.loads((folder / "data_batch_1").read_bytes(), encoding="bytes")
    assert torch.equal(bundle.train.x[:4].reshape(4, -1), torch.from_numpy(first[b"data"]))


_MARKER_ENV = "REWA_TEST_MARKER"


def _touch_marker() -> None:  # what a crafted file would run
    Path(os.environ[_MARKER_ENV]).write_text("ran")


class _Payload:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _CallsMarker:
    def __reduce__(self):
        return (_touch_marker, ())


@pytest.mark.parametrize("payload", ["os.system", "module function"])
def test_a_cifar_file_that_would_run_code_is_refused_and_nothing_runs(tmp_path, monkeypatch, payload):
    folder = tmp_path / "cifar-10-batches-py"
    _official_layout(folder)
    marker = tmp_path / "marker"
    monkeypatch.setenv(_MARKER_ENV, str(marker))
    evil = _Payload(marker) if payload == "os.system" else _CallsMarker()
    entry = pickle.loads((folder / "data_batch_3").read_bytes(), encoding="bytes")
    entry[b"batch_label"] = evil
    (folder / "data_batch_3").write_bytes(pickle.dumps(entry, protocol=4))
    refused = "posix.system|nt.system" if payload == "os.system" else "tests.test_untrusted_files._touch_marker"
    with pytest.raises(ValueError, match=rf"data_batch_3.*not an official CIFAR python file.*({refused})"):
        load_dataset("cifar10", str(tmp_path))
    assert not marker.exists()


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({b"labels": [1]}, "needs keys b'data' and b'labels'"),
        ([1, 2], "needs keys b'data' and b'labels', got list"),
        ({b"data": np.zeros((1, 3072), np.float32), b"labels": [1]}, "uint8 array of shape \\(n, 3072\\), got float32"),
        ({b"data": np.zeros((1, 3072), np.uint8), b"labels": [1.5]}, "must be a list of integers"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [1]}, "2 images but 1 labels"),
    ],
)
def test_a_cifar_file_of_another_shape_is_refused_naming_it(tmp_path, entry, message):
    folder = tmp_path / "cifar-10-batches-py"
    _official_layout(folder)
    (folder / "test_batch").write_bytes(_dumps(entry))
    with pytest.raises(ValueError, match=f"test_batch.*{message}"):
        load_dataset("cifar10", str(tmp_path))


def test_a_truncated_cifar_file_is_refused_naming_it(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    _official_layout(folder)
    data = (folder / "data_batch_2").read_bytes()
    (folder / "data_batch_2").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="data_batch_2.*cannot be read as a CIFAR python file"):
        load_dataset("cifar10", str(tmp_path))


# -- sparse checkpoints: bounded memory, no entry twice --------------------------------------


def _sparse_file(tmp_path, tensors: dict) -> Path:
    from rewa.export import FORMAT, FORMAT_VERSION

    path = tmp_path / "crafted.pt"
    torch.save({"format": FORMAT, "version": FORMAT_VERSION, "tensors": tensors}, path)
    return path


def _flat(shape, indices=(), values=()) -> dict:
    return {
        "layout": "flat",
        "shape": list(shape),
        "dtype": "float32",
        "indices": torch.tensor(list(indices), dtype=torch.int64),
        "values": torch.tensor(list(values), dtype=torch.float32),
    }


def test_a_tiny_file_declaring_a_huge_tensor_is_refused_without_allocating(tmp_path, monkeypatch):
    from rewa.export import SparseCheckpointError, load_sparse

    path = _sparse_file(tmp_path, {"weight": _flat((10**6, 10**6))})
    assert path.stat().st_size < 4000

    def no_allocation(*args, **kwargs):
        raise AssertionError(f"torch.zeros{args} called")

    monkeypatch.setattr(torch, "zeros", no_allocation)
    expected = r"would take 4000000000000 bytes \(tensor 'weight', shape \[1000000, 1000000\] of torch.float32"
    with pytest.raises(
        SparseCheckpointError, match=expected + r".*default max_bytes=1073741824.*max_bytes=4000000000000"
    ):
        load_sparse(path)
    with pytest.raises(SparseCheckpointError, match=r"above max_bytes=100;"):
        load_sparse(path, max_bytes=100)


def test_the_bound_counts_every_tensor_together_and_max_bytes_lifts_it(tmp_path):
    from rewa.export import SparseCheckpointError, load_sparse

    # two 400 x 400 float32 (640,000 bytes each), from a file of a few KB
    tensors = {"a": _flat((400, 400), [3], [1.0]), "b": _flat((400, 400), [5], [2.0])}
    path = _sparse_file(tmp_path, tensors)
    with pytest.raises(SparseCheckpointError, match="would take 1280000 bytes.*above max_bytes=1000000"):
        load_sparse(path, max_bytes=1_000_000)
    loaded = load_sparse(path, max_bytes=1_280_000)
    assert loaded["a"].shape == (400, 400) and float(loaded["a"].view(-1)[3]) == 1.0
    assert float(loaded["b"].sum()) == 2.0
    assert load_sparse(path)["b"].shape == (400, 400)  # far below the default of 1 GiB
    with pytest.raises(ValueError, match="max_bytes=-1 must be a non-negative integer"):
        load_sparse(path, max_bytes=-1)


def test_an_entry_given_twice_is_refused_naming_the_tensor(tmp_path):
    from rewa.export import SparseCheckpointError, load_sparse

    path = _sparse_file(tmp_path, {"w": _flat((4, 4), [1, 7, 1], [1.0, 2.0, 3.0])})
    with pytest.raises(SparseCheckpointError, match="tensor 'w': flat index 1 is given more than once"):
        load_sparse(path)
    csr = {
        "layout": "csr",
        "shape": [2, 3],
        "dtype": "float32",
        "crow_indices": torch.tensor([0, 1, 3], dtype=torch.uint8),
        "col_indices": torch.tensor([0, 2, 2], dtype=torch.uint8),
        "values": torch.ones(3),
    }
    path = _sparse_file(tmp_path, {"fc.weight": csr})
    with pytest.raises(
        SparseCheckpointError, match=r"tensor 'fc.weight': entry \(row 1, column 2\) is given more than once"
    ):
        load_sparse(path)
    csr["col_indices"] = torch.tensor([2, 0, 2], dtype=torch.uint8)  # the same column in two rows is fine
    assert load_sparse(_sparse_file(tmp_path, {"fc.weight": csr}))["fc.weight"].sum() == 3
