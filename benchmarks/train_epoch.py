"""One training epoch of the digits MLP (LeNet-300-100), ReWA against SGD, side by side.

Times the epoch loop of :mod:`rewa.experiments.train` (its own data iterator and step) with the
same data order, batch 64, momentum 0.9, interleaving the two methods in each repeat. Prints
min and median per epoch, the ratio ReWA / SGD, and the fraction of the epoch spent outside
forward, backward and optimizer step (data indexing, loss book-keeping, lr setting), and the
optimizer step's own time per step inside the epoch. The two fused rows show what the one-kernel
checked step of small fused models gains against per-group kernels after the finite checks.

    python benchmarks/train_epoch.py --repeats 20 --threads 1
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import rewa
from rewa.experiments.data import load_dataset
from rewa.experiments.models import make_model
from rewa.experiments.train import TrainConfig
from rewa.training.batches import Batches
from rewa.training.distributed import Processes
from rewa.training.loop import _no_autocast, _Run, _train_epoch
from rewa.training.plan import DataFacts, resolve_plan
from rewa.training.records import Evaluation
from rewa.training.run_dir import RunState


class PerGroupKernels(rewa.ReWA):
    """ReWA whose fused steps never take the one-kernel checked step of small models: the
    finite checks, then one compiled kernel per group. Its row shows what that step gains."""

    def _checked_fused_step(self, work) -> bool:
        return False


def _setup(method: str, config: TrainConfig, per_group_kernels: bool = False, **extra):
    bundle = load_dataset("digits")
    torch.manual_seed(0)
    model = make_model("mlp", bundle.input_shape, bundle.num_classes)
    hp = dict(lr=0.05, momentum=0.9, weight_decay=1e-4)
    if method == "rewa":
        hp.update(K=9, M=2, eps=0.0, **extra)
    opt = rewa.create_optimizer(method, model, **hp)
    if per_group_kernels:
        opt = PerGroupKernels([dict(group) for group in opt.param_groups])
    cpu = torch.device("cpu")
    data = Batches(bundle.train, device=cpu, dist=Processes(), c=config, augment=False, train=True)
    facts = DataFacts("digits", bundle.input_shape, 10, len(bundle.train), data.steps_per_epoch())
    plan = resolve_plan(config, facts)  # the loop of `rewa train` (clipping at 1.0 for every row, as before)
    evaluation = Evaluation(plan, model, None, None, None, cpu, _no_autocast)
    run = _Run(
        plan,
        model,
        model,
        opt,
        data,
        Processes(),
        cpu,
        evaluation,
        None,
        RunState(),
        None,
        [0.05] * len(opt.param_groups),
        [],
    )
    return model, opt, data, run


def _phases(model, opt, data, epoch):
    """Seconds in forward+loss, backward, step, and the whole epoch (same loop as train)."""
    fwd = bwd = stp = 0.0
    start = time.perf_counter()
    for x, y, n in data.epoch(epoch):
        t0 = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(model(x), y, reduction="sum") / n
        t1 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        t2 = time.perf_counter()
        opt.step()
        t3 = time.perf_counter()
        fwd, bwd, stp = fwd + t1 - t0, bwd + t2 - t1, stp + t3 - t2
    return fwd, bwd, stp, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)  # as train() does on CPU
    # the schedule spans every repeat (cosine per epoch, lr > 0 throughout): repeats past
    # ``epochs`` would count as fine-tuning epochs, whose lr (0 here) is no training step
    config = TrainConfig(batch_size=64, epochs=args.repeats + 1, progress=False, out="")
    runs = {
        "sgd": _setup("sgd", config),
        "rewa": _setup("rewa", config),
        # check_finite=False drops ReWA's per-step finiteness check and its host sync
        "rewa nocheck": _setup("rewa", config, check_finite=False),
        # fused=True: each group's update as one compiled kernel (compiled on the first step)
        "rewa fused": _setup("rewa", config, fused=True),
        # the same without the one-kernel checked step (per-group kernels after the checks)
        "rewa fused per-group": _setup("rewa", config, per_group_kernels=True, fused=True),
    }
    epoch_times = {m: [] for m in runs}
    outside = {m: [] for m in runs}
    step_seconds = {m: [] for m in runs}
    steps = runs["sgd"][2].steps_per_epoch()
    for r in range(args.repeats + 1):
        for method, (model, opt, data, run) in runs.items():
            t0 = time.perf_counter()
            _train_epoch(run, r)
            seconds = time.perf_counter() - t0
            fwd, bwd, stp, total = _phases(model, opt, data, r)
            if r:  # the first repeat warms up
                epoch_times[method].append(seconds)
                outside[method].append(1 - (fwd + bwd + stp) / total)
                step_seconds[method].append(stp / steps)
    print(
        f"digits MLP 64-300-100-10, {len(runs['sgd'][2].data)} training samples, batch 64 ({steps} steps), "
        f"{args.threads} thread(s), {args.repeats} repeats (interleaved)"
    )
    print(
        f"{'method':<22}{'min ms':>10}{'median ms':>12}{'outside fwd/bwd/step (median)':>34}"
        f"{'step us (median)':>18}{'ratio (min)':>13}{'ratio (median)':>16}"
    )
    sgd_min, sgd_med = min(epoch_times["sgd"]), statistics.median(epoch_times["sgd"])
    for method, times in epoch_times.items():
        print(
            f"{method:<22}{1e3 * min(times):>10.2f}{1e3 * statistics.median(times):>12.2f}"
            f"{statistics.median(outside[method]):>33.1%}{1e6 * statistics.median(step_seconds[method]):>18.0f}"
            f"{min(times) / sgd_min:>12.2f}x"
            f"{statistics.median(times) / sgd_med:>15.2f}x"
        )
    print("ratios against torch SGD (momentum 0.9) in the same run; target <= 1.2x")


if __name__ == "__main__":
    main()
