"""Time of one optimizer step on a CIFAR ResNet-18-shaped parameter set, side by side with torch.

Prints min and median over repeats of one ``step()`` (random gradients, fixed between steps)
and the ratio of each ReWA variant to its peer measured in the same run:
ReWA / ``torch.optim.SGD(momentum=0.9, foreach=True)`` and
ReWA-AdamW / ``torch.optim.AdamW(foreach=True)``. The ``check_finite=False`` rows show what the
finite-step checks (gradient check and overflow bound, one host sync) cost against the
default ``check_finite=True`` rows above them.

    python benchmarks/step.py [--repeats 30] [--threads 2] [--device cpu]
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import torch

import rewa
from rewa.cli_bench import resnet18_cifar_shapes, resnet18_params


def time_steps(make_optimizer, device: str, repeats: int, warmup: int = 3) -> list[float]:
    params = resnet18_params(device=device)
    opt = make_optimizer(params)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    for _ in range(warmup):
        opt.step()
    times = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        opt.step()
        sync()
        times.append(time.perf_counter() - start)
    return times


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore", rewa.SparsityConfigWarning)

    n = sum(p.numel() for p in resnet18_params())
    print(
        f"ResNet-18 (CIFAR) parameter set: {len(resnet18_cifar_shapes())} tensors, {n / 1e6:.2f}M weights, "
        f"float32, device {args.device}, {args.threads} threads, {args.repeats} repeats"
    )

    cases = {
        "torch SGD(momentum=0.9, foreach)": lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, foreach=True),
        "ReWA K=9 M=2 momentum=0.9 foreach": lambda ps: rewa.ReWA(
            ps, lr=0.1, K=9, M=2, weight_decay=1e-4, momentum=0.9, foreach=True
        ),
        "ReWA K=9 M=2 momentum=0.9 for-loop": lambda ps: rewa.ReWA(
            ps, lr=0.1, K=9, M=2, weight_decay=1e-4, momentum=0.9, foreach=False
        ),
        "ReWA K=9 M=2 momentum=0.9 for-loop check_finite=False": lambda ps: rewa.ReWA(
            ps, lr=0.1, K=9, M=2, weight_decay=1e-4, momentum=0.9, foreach=False, check_finite=False
        ),
        "ReWA K=3 M=2 eps=1e-3 momentum=0.9 foreach": lambda ps: rewa.ReWA(
            ps, lr=0.1, K=3, M=2, eps=1e-3, weight_decay=5e-5, momentum=0.9, foreach=True
        ),
        "torch AdamW(foreach)": lambda ps: torch.optim.AdamW(ps, lr=1e-3, foreach=True),
        "ReWA-AdamW K=9 M=2 foreach": lambda ps: rewa.ReWAAdamW(ps, lr=1e-3, K=9, M=2, weight_decay=1e-4, foreach=True),
        "ReWA-AdamW K=9 M=2 for-loop": lambda ps: rewa.ReWAAdamW(
            ps, lr=1e-3, K=9, M=2, weight_decay=1e-4, foreach=False
        ),
        "ReWA-AdamW K=9 M=2 for-loop check_finite=False": lambda ps: rewa.ReWAAdamW(
            ps, lr=1e-3, K=9, M=2, weight_decay=1e-4, foreach=False, check_finite=False
        ),
    }
    results = {name: time_steps(make, args.device, args.repeats) for name, make in cases.items()}
    peers = {"ReWA": "torch SGD(momentum=0.9, foreach)", "ReWA-AdamW": "torch AdamW(foreach)"}

    print(f"{'optimizer':55s} {'min ms':>8s} {'median ms':>10s} {'ratio (min)':>12s} {'ratio (median)':>15s}")
    for name, times in results.items():
        family = name.split(" ")[0]
        peer = peers.get(family)
        line = f"{name:55s} {min(times) * 1e3:8.2f} {statistics.median(times) * 1e3:10.2f}"
        if peer:
            ref = results[peer]
            line += f" {min(times) / min(ref):11.2f}x {statistics.median(times) / statistics.median(ref):14.2f}x"
        print(line)
    print("ratios: ReWA rows against torch SGD(momentum=0.9, foreach), ReWA-AdamW rows against torch AdamW(foreach)")


if __name__ == "__main__":
    main()
