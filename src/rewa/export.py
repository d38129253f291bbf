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
import io
import os
import tempfile
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from .optim import _validation as check
from .param_groups import split_parameters

__all__ = [
    "FORMAT",
    "ExportSummary",
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


def _dtype_from_name(name: str) -> torch.dtype:
    dtype = getattr(torch, name, None)
    if not isinstance(dtype, torch.dtype):
        raise ValueError(f"unknown dtype {name!r} in sparse checkpoint")
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


def _decode(record: dict) -> Tensor:
    shape, dtype = tuple(record["shape"]), _dtype_from_name(record["dtype"])
    values = record["values"]
    if values.dtype != dtype:
        raise ValueError(f"sparse checkpoint is inconsistent: values of dtype {values.dtype}, record says {dtype}")
    out = torch.zeros(shape, dtype=dtype, device=values.device)
    if record["layout"] == "csr":
        crow = record["crow_indices"].to(torch.int64)
        col = record["col_indices"].to(torch.int64)
        row = torch.repeat_interleave(torch.arange(shape[0], device=values.device), crow.diff())
        out[row, col] = values
    elif record["layout"] == "flat":
        out.view(-1)[record["indices"].to(torch.int64)] = values
    else:
        raise ValueError(f"unknown layout {record['layout']!r} in sparse checkpoint")
    return out


def _record_nbytes(record: dict) -> int:
    return sum(_nbytes(v) for v in record.values() if isinstance(v, Tensor))


def _check_writable(path: Path) -> None:
    parent = path.parent
    if path.is_dir():
        raise IsADirectoryError(f"cannot write the checkpoint to {str(path)!r}: it is a directory")
    if not parent.is_dir():
        raise FileNotFoundError(f"cannot write the checkpoint to {str(path)!r}: directory {str(parent)!r} does not exist")
    if not os.access(parent, os.W_OK):
        raise PermissionError(f"cannot write the checkpoint to {str(path)!r}: directory {str(parent)!r} is not writable")


def _atomic_save(obj, path: Path) -> None:
    """``torch.save`` into a temporary file beside ``path``, then rename it over ``path``."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


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


def export_sparse(
    model: nn.Module, path: str | os.PathLike, *, include_bias_and_norm: bool = False
) -> ExportSummary:
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

    buffer = io.BytesIO()
    torch.save(state, buffer)
    return ExportSummary(
        path=str(path),
        file_bytes=path.stat().st_size,
        dense_file_bytes=buffer.getbuffer().nbytes,
        sparse_tensors=tuple(sparse_names),
        dense_tensors=tuple(dense_names),
        payload_bytes=payload,
    )


def load_sparse(path: str | os.PathLike, *, map_location=None) -> OrderedDict[str, Tensor]:
    """Read a file written by :func:`export_sparse` and return an ordinary (dense) state dict.

    Loading uses ``torch.load(..., weights_only=True)``; the result goes into
    ``model.load_state_dict`` and gives back exactly the exported tensors.

    Example: see :func:`export_sparse`.
    """
    saved = torch.load(path, map_location=map_location, weights_only=True)
    if not isinstance(saved, dict) or saved.get("format") != FORMAT:
        raise ValueError(f"{str(path)!r} is not a sparse checkpoint written by rewa.export_sparse")
    if saved.get("version") != FORMAT_VERSION:
        raise ValueError(f"{str(path)!r} has format version {saved.get('version')!r}; this rewa reads {FORMAT_VERSION}")
    out: OrderedDict[str, Tensor] = OrderedDict()
    for name, record in saved["tensors"].items():
        out[name] = record["value"] if record["layout"] == "dense" else _decode(record)
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
    def from_linear(cls, linear: nn.Linear) -> "SparseLinear":
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
