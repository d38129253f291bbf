"""Latency of a sparse-matmul Linear (CSR weight) against the dense Linear on CPU, and file size.

For each sparsity, a ``features x features`` Linear has that fraction of its weights zeroed at
random; :func:`rewa.export.to_sparse_linear` converts it. Prints the min and median of
``repeats`` timings of one forward pass and the dense / sparse ratio (> 1: sparse is faster),
then the size of :func:`rewa.export.export_sparse`'s file against ``torch.save`` of the dense
state dict.

    .venv/bin/python benchmarks/sparse_inference.py [--features 1024] [--batch 64] [--repeats 50]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import torch

from rewa.export import export_sparse, to_sparse_linear


def time_forward(module: torch.nn.Module, x: torch.Tensor, repeats: int) -> list[float]:
    with torch.inference_mode():
        for _ in range(3):  # warm-up
            module(x)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            module(x)
            times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--features", type=int, default=1024)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--sparsities", type=float, nargs="+", default=[0.9, 0.99])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    x = torch.randn(args.batch, args.features)
    print(
        f"Linear {args.features}x{args.features}, batch {args.batch}, {args.repeats} repeats, "
        f"{args.threads} thread(s), torch {torch.__version__}"
    )
    print(
        f"{'sparsity':>8}  {'dense min':>10}  {'dense med':>10}  {'sparse min':>10}  {'sparse med':>10}  {'ratio (med)':>11}"
    )
    sizes = []
    for sparsity in args.sparsities:
        dense = torch.nn.Linear(args.features, args.features)
        with torch.no_grad():
            dense.weight.masked_fill_(torch.rand_like(dense.weight) < sparsity, 0.0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # torch: sparse CSR support is beta
            sparse = to_sparse_linear(dense, min_sparsity=0.0)
            torch.testing.assert_close(sparse(x), dense(x), rtol=1e-4, atol=1e-4)
            t_dense = time_forward(dense, x, args.repeats)
            t_sparse = time_forward(sparse, x, args.repeats)
        md, ms = statistics.median(t_dense), statistics.median(t_sparse)
        print(
            f"{sparsity:>8.2%}  {min(t_dense) * 1e6:>8.1f}us  {md * 1e6:>8.1f}us  "
            f"{min(t_sparse) * 1e6:>8.1f}us  {ms * 1e6:>8.1f}us  {md / ms:>10.2f}x"
        )
        with tempfile.TemporaryDirectory() as tmp:
            sizes.append((sparsity, export_sparse(dense, Path(tmp) / "model.pt")))
    print(f"{'sparsity':>8}  {'export_sparse':>14}  {'torch.save':>12}  {'smaller':>8}")
    for sparsity, summary in sizes:
        print(
            f"{sparsity:>8.2%}  {summary.file_bytes:>12,} B  {summary.dense_file_bytes:>10,} B  "
            f"{summary.size_ratio:>7.1f}x"
        )


if __name__ == "__main__":
    main()
