"""Checkpoints that are really smaller, and Linear layers that multiply sparsely.

:func:`export_sparse` stores each weight tensor by its nonzeros (CSR for 2-D tensors, flat
indices otherwise, each index array in the smallest unsigned integer type that holds it) when
that is smaller than the dense tensor, and everything else of the state dict densely.
:func:`load_sparse` rebuilds an ordinary state dict. Files are written to a temporary file in
the target directory and renamed over the target, so a failed export leaves any existing file
as it was.

:func:`to_sparse_linear` replaces ``nn.Linear`` layers of a copy of a model by
:class:`SparseLinear`, which keeps its weight as a ``torch.sparse_csr`` tensor, for inference.
"""

from __future__ import annotations

import copy
import math
import os
import signal
import tempfile
import threading
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from . import _check as check
from .param_groups import split_parameters

__all__ = [
    "FORMAT",
    "ExportSummary",
    "SparseCheckpointError",
    "SparseLinear",
    "export_sparse",
    "load_sparse",
    "to_sparse_linear",
]

FORMAT = "rewa.sparse_state_dict"
FORMAT_VERSION = 1

# Unsigned types first: an index is never negative, so uint16 reaches 65535 where int16 stops at 32767.
_INDEX_DTYPES = (torch.uint8, torch.uint16, torch.uint32, torch.int64)


def _index_dtype(largest: int) -> torch.dtype:
    """The smallest integer dtype that holds every value in ``[0, largest]``."""
    for dtype in _INDEX_DTYPES:
        if largest <= torch.iinfo(dtype).max:
            return dtype
    raise ValueError(f"index {largest} does not fit in int64")


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


class SparseCheckpointError(ValueError):
    """A file that :func:`load_sparse` cannot read: the message names the file and the problem."""


def _dtype_from_name(name) -> torch.dtype:
    dtype = getattr(torch, name, None) if isinstance(name, str) else None
    if not isinstance(dtype, torch.dtype):
        raise ValueError(f"unknown dtype {name!r}")
    return dtype


def _nbytes(t: Tensor) -> int:
    return t.numel() * t.element_size()


def _encode(t: Tensor) -> dict:
    """The sparse record of ``t``: its nonzeros (``t != 0``) and where they are."""
    t = t.detach()
    nonzero = t != 0
    record = {"layout": "csr" if t.ndim == 2 else "flat", "shape": list(t.shape), "dtype": _dtype_name(t.dtype)}
    if t.ndim == 2:
        rows, cols = t.shape
        counts = nonzero.sum(dim=1)
        crow = torch.zeros(rows + 1, dtype=torch.int64, device=t.device)
        torch.cumsum(counts, dim=0, out=crow[1:])
        col = nonzero.nonzero()[:, 1]  # row-major order: the CSR column indices
        nnz = int(crow[-1])
        record["crow_indices"] = crow.to(_index_dtype(nnz))
        record["col_indices"] = col.to(_index_dtype(max(cols - 1, 0)))
    else:
        flat = nonzero.reshape(-1).nonzero().squeeze(1)
        record["indices"] = flat.to(_index_dtype(max(t.numel() - 1, 0)))
    record["values"] = t[nonzero].clone()  # a fresh storage: torch.save writes whole storages
    return record


def _index_array(record: dict, key: str, length: int | None = None) -> Tensor:
    value = record.get(key)
    if not isinstance(value, Tensor) or value.ndim != 1 or value.is_floating_point() or value.is_complex():
        raise ValueError(f"{key} must be a 1-D integer tensor, got {getattr(value, 'shape', type(value).__name__)!s}")
    if length is not None and value.numel() != length:
        raise ValueError(f"{key} has {value.numel()} entries, the record needs {length}")
    return value.to(torch.int64)


def _declared(record) -> tuple[tuple[int, ...], torch.dtype]:
    """The shape and dtype of the dense tensor a record stands for, checked (nothing allocated)."""
    if not isinstance(record, dict):
        raise ValueError(f"record is a {type(record).__name__}, not a dict")
    layout = record.get("layout")
    if layout == "dense":
        value = record.get("value")
        if not isinstance(value, Tensor):
            raise ValueError("dense record without a tensor 'value'")
        return tuple(value.shape), value.dtype
    if layout not in ("csr", "flat"):
        raise ValueError(f"unknown layout {layout!r}")
    shape = record.get("shape")
    sizes_ok = isinstance(shape, (list, tuple)) and all(
        isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape
    )
    if not sizes_ok:
        raise ValueError(f"shape {shape!r} is not a list of non-negative integers")
    return tuple(shape), _dtype_from_name(record.get("dtype"))


def _dense_nbytes(record) -> int:
    """The bytes of the dense tensor of a record, from its declared shape and dtype."""
    shape, dtype = _declared(record)
    return math.prod(shape) * dtype.itemsize


def _first_repeat(keys: Tensor) -> int | None:
    """A value that occurs more than once in ``keys``, or ``None``."""
    if keys.numel() < 2:
        return None
    ordered = keys.sort().values
    same = ordered[1:] == ordered[:-1]
    return int(ordered[1:][same][0]) if bool(same.any()) else None


def _decode(record) -> Tensor:
    """The dense tensor of a record, after checking that the record agrees with itself: the
    declared shape is only allocated once every index array fits it and no entry is given twice."""
    shape, dtype = _declared(record)
    layout = record["layout"]
    if layout == "dense":
        return record["value"]
    values = record.get("values")
    if not isinstance(values, Tensor) or values.ndim != 1:
        raise ValueError(f"values must be a 1-D tensor, got {getattr(values, 'shape', type(values).__name__)!s}")
    if values.dtype != dtype:
        raise ValueError(f"values of dtype {values.dtype}, the record says {dtype}")
    nnz = values.numel()
    numel = math.prod(shape)
    if nnz > numel:
        raise ValueError(f"{nnz} values for a declared shape {shape} of {numel} entries")
    if numel > torch.iinfo(torch.int64).max:
        raise ValueError(f"the declared shape {shape} has more entries than int64 indexes")
    if layout == "csr":
        if len(shape) != 2:
            raise ValueError(f"a CSR record needs a 2-D shape, got {shape}")
        rows, cols = shape
        crow = _index_array(record, "crow_indices", rows + 1)
        col = _index_array(record, "col_indices", nnz)
        counts = crow.diff()
        if int(crow[0]) != 0 or int(crow[-1]) != nnz or bool((counts < 0).any()):
            raise ValueError(f"crow_indices must rise from 0 to the {nnz} values")
        if nnz and (int(col.min()) < 0 or int(col.max()) >= cols):
            raise ValueError(f"col_indices outside [0, {cols}) for the declared shape {shape}")
        row = torch.repeat_interleave(torch.arange(rows, device=values.device), counts)
        repeat = _first_repeat(row * cols + col)
        if repeat is not None:
            raise ValueError(f"entry (row {repeat // cols}, column {repeat % cols}) is given more than once")
        out = torch.zeros(shape, dtype=dtype, device=values.device)
        out[row, col] = values
        return out
    indices = _index_array(record, "indices", nnz)
    if nnz and (int(indices.min()) < 0 or int(indices.max()) >= numel):
        raise ValueError(f"indices outside [0, {numel}) for the declared shape {shape}")
    repeat = _first_repeat(indices)
    if repeat is not None:
        raise ValueError(f"flat index {repeat} is given more than once")
    out = torch.zeros(shape, dtype=dtype, device=values.device)
    out.view(-1)[indices] = values
    return out


def _record_nbytes(record: dict) -> int:
    return sum(_nbytes(v) for v in record.values() if isinstance(v, Tensor))


def _check_writable(path: Path) -> None:
    parent = path.parent
    if path.is_dir():
        raise IsADirectoryError(f"cannot write the checkpoint to {str(path)!r}: it is a directory")
    if not parent.is_dir():
        raise FileNotFoundError(
            f"cannot write the checkpoint to {str(path)!r}: directory {str(parent)!r} does not exist"
        )
    if not os.access(parent, os.W_OK):
        raise PermissionError(
            f"cannot write the checkpoint to {str(path)!r}: directory {str(parent)!r} is not writable"
        )


class _Terminated(BaseException):
    """SIGTERM arrived during a write (raised so the temporary file is removed first)."""


def _atomic_save(obj, path: Path) -> None:
    """``torch.save`` into a temporary file beside ``path``, then rename it over ``path``.

    The temporary file is removed on any error, and on SIGTERM (in the main thread: the
    signal is handled for the duration of the write, then passed on to the previous handler,
    or, for the default one, re-raised so the process still ends by SIGTERM).
    """
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = None
    if in_main_thread:

        def on_sigterm(signum, frame):
            raise _Terminated

        previous = signal.signal(signal.SIGTERM, on_sigterm)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    terminated = False
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as error:
        terminated = isinstance(error, _Terminated)
        if os.path.exists(tmp):
            os.unlink(tmp)
        if not terminated:
            raise
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)
    if terminated:
        if callable(previous):
            previous(signal.SIGTERM, None)
        elif previous != signal.SIG_IGN:
            os.kill(os.getpid(), signal.SIGTERM)
        raise KeyboardInterrupt("SIGTERM during export_sparse; the temporary file was removed")


class _ByteCounter:
    """A write-only stream that counts bytes: the size of a ``torch.save`` without keeping it."""

    def __init__(self):
        self.nbytes = 0

    def write(self, data) -> int:
        n = memoryview(data).nbytes
        self.nbytes += n
        return n

    def flush(self) -> None:
        pass


@dataclass(frozen=True)
class ExportSummary:
    """What :func:`export_sparse` wrote, and how it compares with ``torch.save(state_dict)``."""

    path: str
    file_bytes: int
    dense_file_bytes: int  # torch.save of the dense state dict, measured in memory
    sparse_tensors: tuple[str, ...] = ()
    dense_tensors: tuple[str, ...] = ()
    payload_bytes: dict[str, int] = field(default_factory=dict)

    @property
    def size_ratio(self) -> float:
        """``dense_file_bytes / file_bytes``: how many times smaller the sparse file is."""
        return self.dense_file_bytes / self.file_bytes

    def __str__(self) -> str:
        return (
            f"{self.path}: {self.file_bytes} bytes (dense torch.save: {self.dense_file_bytes} bytes, "
            f"{self.size_ratio:.1f}x smaller); sparse: {len(self.sparse_tensors)} tensors, "
            f"dense: {len(self.dense_tensors)} tensors"
        )


def export_sparse(model: nn.Module, path: str | os.PathLike, *, include_bias_and_norm: bool = False) -> ExportSummary:
    """Write ``model.state_dict()`` with its weight tensors stored by their nonzeros.

    Each weight tensor (as :func:`rewa.param_groups.split_parameters` decides; biases and
    normalization parameters too when ``include_bias_and_norm=True``) is stored sparsely when
    that takes fewer bytes than the dense tensor:

    * 2-D: CSR, ``crow_indices`` (``rows + 1`` running counts), ``col_indices`` and ``values``;
    * other shapes: the indices of the nonzeros in the flattened tensor, and ``values``;

    each index array in the smallest of uint8 / uint16 / uint32 / int64 that holds it. Entries
    equal to zero are dropped (prune first: :func:`rewa.sparsity.prune` with ``apply=True``); a
    ``-0.0`` comes back as ``+0.0``. Everything else (biases, buffers) is stored as is. The file
    is written to a temporary file and renamed, so an error leaves an existing ``path`` intact.

    Raises ``ValueError`` for a model without weight tensors or still carrying
    ``torch.nn.utils.prune`` hooks (make them permanent first), and ``FileNotFoundError`` /
    ``IsADirectoryError`` / ``PermissionError`` for a path that cannot be written.

    Example:
        >>> import os, tempfile, torch
        >>> from rewa.export import export_sparse, load_sparse
        >>> model = torch.nn.Linear(300, 300)
        >>> with torch.no_grad():
        ...     _ = model.weight.masked_fill_(torch.rand(300, 300) < 0.99, 0.0)
        >>> path = os.path.join(tempfile.mkdtemp(), "model.pt")
        >>> summary = export_sparse(model, path)
        >>> summary.size_ratio > 10
        True
        >>> torch.equal(load_sparse(path)["weight"], model.weight)
        True
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    path = Path(path)
    sparse, _ = split_parameters(model, include_bias_and_norm=include_bias_and_norm)
    if not sparse:
        raise ValueError(
            f"{type(model).__name__} has no weight tensors to store sparsely; pass "
            "include_bias_and_norm=True to store biases and normalization parameters sparsely"
        )
    pruned = [name for name, _ in model.named_buffers() if name.endswith("_mask")]
    if pruned:
        raise ValueError(
            f"model carries torch.nn.utils.prune masks {pruned}: make them permanent first "
            "(rewa.sparsity.make_masks_permanent or torch.nn.utils.prune.remove)"
        )
    _check_writable(path)

    weight_names = {name for name, _ in sparse}
    state = model.state_dict()
    tensors: OrderedDict[str, dict] = OrderedDict()
    sparse_names, dense_names, payload = [], [], {}
    for name, value in state.items():
        record = None
        if name in weight_names and value.is_floating_point() and value.ndim >= 1:
            candidate = _encode(value)
            if _record_nbytes(candidate) < _nbytes(value):
                record = candidate
        if record is None:
            record = {"layout": "dense", "value": value.detach()}
            dense_names.append(name)
        else:
            sparse_names.append(name)
        payload[name] = _record_nbytes(record)
        tensors[name] = record
    _atomic_save({"format": FORMAT, "version": FORMAT_VERSION, "tensors": tensors}, path)

    counter = _ByteCounter()  # the dense size, streamed and counted, never held in memory
    torch.save(state, counter)
    return ExportSummary(
        path=str(path),
        file_bytes=path.stat().st_size,
        dense_file_bytes=counter.nbytes,
        sparse_tensors=tuple(sparse_names),
        dense_tensors=tuple(dense_names),
        payload_bytes=payload,
    )


_GIB = 1 << 30


def load_sparse(
    path: str | os.PathLike, *, map_location=None, max_bytes: int | None = None
) -> OrderedDict[str, Tensor]:
    """Read a file written by :func:`export_sparse` and return an ordinary (dense) state dict.

    Loading uses ``torch.load(..., weights_only=True)`` (no code in the file runs); the result
    goes into ``model.load_state_dict`` and gives back exactly the exported tensors.

    A small file can declare huge tensors (a shape with no values). Before any is allocated,
    the bytes of all the dense tensors together, from their declared shapes and dtypes, are
    compared with ``max_bytes`` (default: the larger of 1 GiB and 1000 times the file's size,
    which holds any real export below 99.9% sparsity); a file above it is refused. Pass a larger
    ``max_bytes`` for a file you trust.

    Raises :class:`SparseCheckpointError` (a ``ValueError``) naming the file and what is
    wrong for a file that is truncated, not a checkpoint, of another format version, whose
    dense tensors exceed ``max_bytes``, or whose records disagree with themselves (a declared
    shape that its index arrays do not fit, an entry given twice; refused before anything of
    that shape is allocated); ``FileNotFoundError`` for a missing file; ``ValueError`` for a
    ``max_bytes`` that is not a non-negative integer.

    Example: see :func:`export_sparse`.
    """
    where = repr(str(path))
    if max_bytes is not None:
        check.integer("max_bytes", max_bytes, low=0)
    if not Path(path).is_file():
        raise FileNotFoundError(f"no sparse checkpoint at {where}")
    file_bytes = Path(path).stat().st_size
    limit = max(_GIB, 1000 * file_bytes) if max_bytes is None else max_bytes
    try:
        saved = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # truncated or foreign files fail in many ways inside torch.load
        raise SparseCheckpointError(
            f"{where} cannot be read as a checkpoint ({type(error).__name__}: "
            f"{str(error).splitlines()[0] if str(error) else ''})"
        ) from None
    if not isinstance(saved, dict) or saved.get("format") != FORMAT:
        raise SparseCheckpointError(f"{where} is not a sparse checkpoint written by rewa.export_sparse")
    if saved.get("version") != FORMAT_VERSION:
        raise SparseCheckpointError(
            f"{where} has format version {saved.get('version')!r}; this rewa reads {FORMAT_VERSION}"
        )
    if not isinstance(saved.get("tensors"), dict):
        raise SparseCheckpointError(f"{where} has no 'tensors' dict")
    sizes = {}
    for name, record in saved["tensors"].items():
        try:
            sizes[name] = _dense_nbytes(record)
        except (ValueError, TypeError) as error:
            raise SparseCheckpointError(f"{where}, tensor {name!r}: {error}") from None
    total = sum(sizes.values())
    if total > limit:
        largest = max(sizes, key=sizes.__getitem__)
        shape, dtype = _declared(saved["tensors"][largest])
        bound = (
            f"max_bytes={max_bytes}"
            if max_bytes is not None
            else f"the default max_bytes={limit} (the larger of 1 GiB and 1000 times the file's {file_bytes} bytes)"
        )
        raise SparseCheckpointError(
            f"{where}: its dense tensors would take {total} bytes (tensor {largest!r}, shape {list(shape)} of "
            f"{dtype}: {sizes[largest]} bytes), above {bound}; nothing was allocated. If you trust this "
            f"file, lift the bound: load_sparse(..., max_bytes={total})"
        )
    out: OrderedDict[str, Tensor] = OrderedDict()
    for name, record in saved["tensors"].items():
        try:
            out[name] = _decode(record)
        except (ValueError, RuntimeError, IndexError, TypeError) as error:
            raise SparseCheckpointError(f"{where}, tensor {name!r}: {error}") from None
    return out


# -- sparse inference ----------------------------------------------------------------------


class SparseLinear(nn.Module):
    """``y = x W^T + b`` with ``W`` held as a ``torch.sparse_csr`` tensor (inference only).

    Built from an ``nn.Linear`` with :meth:`from_linear`; the weight is a buffer, not a
    parameter, so it moves with ``.to()`` and is in ``state_dict`` but is not trained.

    Example:
        >>> import torch
        >>> from rewa.export import SparseLinear
        >>> dense = torch.nn.Linear(4, 3)
        >>> sparse = SparseLinear.from_linear(dense)
        >>> x = torch.randn(2, 4)
        >>> torch.allclose(sparse(x), dense(x), atol=1e-6)
        True
    """

    def __init__(self, weight_csr: Tensor, bias: Tensor | None):
        super().__init__()
        if weight_csr.layout != torch.sparse_csr or weight_csr.ndim != 2:
            raise ValueError(f"weight_csr must be a 2-D torch.sparse_csr tensor, got layout {weight_csr.layout}")
        self.out_features, self.in_features = weight_csr.shape
        self.register_buffer("weight", weight_csr)
        self.register_buffer("bias", None if bias is None else bias.detach().clone())

    @classmethod
    def from_linear(cls, linear: nn.Linear) -> SparseLinear:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            return cls(linear.weight.detach().to_sparse_csr(), linear.bias)

    def forward(self, x: Tensor) -> Tensor:
        # W @ x^T with W in CSR (F.linear with a CSR weight fails under torch.inference_mode).
        flat = x.reshape(-1, self.in_features)
        out = torch.sparse.mm(self.weight, flat.T).T
        if self.bias is not None:
            out = out + self.bias
        return out.reshape(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        nnz = self.weight._nnz()
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"nonzeros={nnz}, bias={self.bias is not None}"
        )


@torch.no_grad()
def to_sparse_linear(model: nn.Module, *, min_sparsity: float = 0.5) -> nn.Module:
    """A copy of ``model`` with each ``nn.Linear`` of sparsity ``>= min_sparsity`` made :class:`SparseLinear`.

    Sparsity counts exact zeros of the weight. The original model is not modified. Sparse
    matrix products pay off on CPU only at high sparsity (see ``benchmarks/sparse_inference.py``),
    hence the default ``min_sparsity = 0.5``; ``min_sparsity`` must be in ``[0, 1]``.

    Example:
        >>> import torch
        >>> from rewa.export import to_sparse_linear
        >>> model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
        >>> with torch.no_grad():
        ...     _ = model[0].weight.masked_fill_(torch.rand(8, 8) < 0.9, 0.0)
        >>> type(to_sparse_linear(model, min_sparsity=0.5)[0]).__name__
        'SparseLinear'
    """
    check.in_closed("min_sparsity", min_sparsity, 0, 1)
    converted = copy.deepcopy(model)
    replacements = []
    for name, module in converted.named_modules():
        if type(module) is nn.Linear:
            zeros = int((module.weight == 0).sum())
            if zeros >= min_sparsity * module.weight.numel():
                replacements.append((name, module))
    for name, module in replacements:
        sparse = SparseLinear.from_linear(module)
        if name == "":
            return sparse
        parent_name, _, attr = name.rpartition(".")
        parent = converted.get_submodule(parent_name) if parent_name else converted
        setattr(parent, attr, sparse)
    return converted
