"""One epoch of an MLP 784-300-100-10 on MNIST-shaped random data: ReWA against torch SGD.

60,000 samples, batch 128 (469 steps), forward + backward + step, in the same run; prints min
and median over rounds of the epoch time and the ratio to ``SGD(momentum=0.9)`` with the same
weight decay (1e-4). All parameters in one group, as ``model.parameters()`` gives them.
No data is downloaded: the inputs are random (the time of a step does not depend on them).
The row "fused, per-group kernels" turns off the one-kernel checked step of small fused models
(every group's update and its checks in one kernel), so the two fused rows show what it gains.

    python benchmarks/mlp_epoch.py [--threads 1] [--rounds 3] [--samples 60000]
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import torch

import rewa


def mlp() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(784, 300), torch.nn.ReLU(), torch.nn.Linear(300, 100), torch.nn.ReLU(), torch.nn.Linear(100, 10)
    )


class PerGroupKernels(rewa.ReWA):
    """ReWA whose fused steps always take the general path: the finite checks, then one
    compiled kernel per group (never the one-kernel checked step)."""

    def _checked_fused_step(self, work) -> bool:
        return False


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--samples", type=int, default=60_000)
    parser.add_argument("--batch", type=int, default=128)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(args.samples, 784, generator=gen)
    y = torch.randint(0, 10, (args.samples,), generator=gen)
    # the same hyperparameters for both: momentum 0.9, weight decay 1e-4 (SGD pays for its decay too)
    hp = dict(lr=0.05, momentum=0.9, weight_decay=1e-4)
    rewa_hp = dict(hp, K=9, M=2)
    cases = {
        "torch SGD(momentum=0.9)": lambda ps: torch.optim.SGD(ps, **hp),
        "ReWA K=9 M=2 (default path)": lambda ps: rewa.ReWA(ps, **rewa_hp),
        "ReWA K=9 M=2 (loop)": lambda ps: rewa.ReWA(ps, **rewa_hp, foreach=False),
        "ReWA K=9 M=2 (foreach)": lambda ps: rewa.ReWA(ps, **rewa_hp, foreach=True),
        "ReWA K=9 M=2 (fused)": lambda ps: rewa.ReWA(ps, **rewa_hp, fused=True),
        "ReWA K=9 M=2 (fused, per-group kernels)": lambda ps: PerGroupKernels(ps, **rewa_hp, fused=True),
        "ReWA K=9 M=2 (default, check_finite=False)": lambda ps: rewa.ReWA(ps, **rewa_hp, check_finite=False),
    }
    runs = {}
    for name, make in cases.items():
        model = mlp()
        opt = make(model.parameters())

        def epoch(model=model, opt=opt):
            for batch in torch.arange(args.samples).split(args.batch):
                opt.zero_grad(set_to_none=True)
                torch.nn.functional.cross_entropy(model(x[batch]), y[batch]).backward()
                opt.step()

        start = time.perf_counter()
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x[: args.batch]), y[: args.batch]).backward()
        opt.step()  # the fused path compiles here
        print(f"{name}: first step {time.perf_counter() - start:.1f} s")
        runs[name] = epoch
    times = {name: [] for name in runs}
    for _ in range(args.rounds):
        for name, epoch in runs.items():
            start = time.perf_counter()
            epoch()
            times[name].append(time.perf_counter() - start)
    ref = min(times["torch SGD(momentum=0.9)"])
    print(
        f"MLP 784-300-100-10, {args.samples} samples, batch {args.batch}, {args.threads} thread(s), "
        f"{args.rounds} rounds"
    )
    for name, ts in times.items():
        print(
            f"{name:44s} min {min(ts):6.2f} s  median {statistics.median(ts):6.2f} s  ratio (min) {min(ts) / ref:.2f}x"
        )


if __name__ == "__main__":
    main()
