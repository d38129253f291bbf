"""The target-sparsity controller under the learning-rate schedules people use, on digits.

MLP 64-300-100-10 (``rewa.paper.digits``), ReWA-AdamW (K=9, M=2, lr 3e-3), controller
called once per epoch, threshold 1e-3; schedules stepped once per epoch: constant, cosine
(``CosineAnnealingLR(T_max=epochs)``), step (``StepLR(step_size=epochs // 3, gamma=0.1)``) and
warm-up then cosine (``LinearLR`` over 10% of the epochs, then cosine, via ``SequentialLR``).
The schedules need ``allow_lr_schedule=True`` (the controller refuses them otherwise): this is
the measurement behind that refusal.

    python benchmarks/controller_schedulers.py [--epochs 40] [--targets 0.9] [--threads 1]
"""

from __future__ import annotations

import argparse
import time
import warnings

import torch
from torch import nn


def make_scheduler(name: str, opt, epochs: int):
    sched = torch.optim.lr_scheduler
    if name == "constant":
        return None
    if name == "cosine":
        return sched.CosineAnnealingLR(opt, T_max=epochs)
    if name == "step":
        return sched.StepLR(opt, step_size=max(1, epochs // 3), gamma=0.1)
    if name == "warmup-cosine":
        warm = max(1, epochs // 10)
        return sched.SequentialLR(
            opt,
            [
                sched.LinearLR(opt, start_factor=0.1, total_iters=warm),
                sched.CosineAnnealingLR(opt, T_max=epochs - warm),
            ],
            milestones=[warm],
        )
    raise ValueError(f"unknown schedule {name!r}")


def run(schedule: str, target: float, epochs: int, seed: int = 0) -> dict:
    import rewa
    from rewa.paper.digits import evaluate_accuracy, load_digits_split, make_mlp

    torch.manual_seed(seed)
    X_train, y_train, X_test, y_test = load_digits_split(0.25, seed)
    model = make_mlp((300, 100))
    opt = rewa.ReWAAdamW(rewa.param_groups(model, sparse={"weight_decay": 1e-2}), lr=3e-3)
    scheduler = make_scheduler(schedule, opt, epochs)
    controller = rewa.TargetSparsityController(
        opt, model, target_sparsity=target, threshold=1e-3, total_calls=epochs, allow_lr_schedule=True
    )
    gen = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    torch.set_flush_denormal(True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(epochs):
            for batch in torch.randperm(len(X_train), generator=gen).split(64):
                opt.zero_grad(set_to_none=True)
                nn.functional.cross_entropy(model(X_train[batch]), y_train[batch]).backward()
                opt.step()
            controller.step()
            if scheduler is not None:
                scheduler.step()
    torch.set_flush_denormal(False)
    report = rewa.sparsity_report(model, 1e-3)
    return dict(
        schedule=schedule,
        target=target,
        sparsity=report.sparsity,
        accuracy=evaluate_accuracy(model, X_test, y_test),
        weight_decay=controller.weight_decay,
        warned=any("missed its target" in str(w.message) for w in caught),
        seconds=time.perf_counter() - start,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=40, help="epochs per run (default: 40)")
    parser.add_argument("--targets", type=float, nargs="+", default=[0.9], help="requested sparsities")
    parser.add_argument(
        "--schedules",
        nargs="+",
        default=["constant", "cosine", "step", "warmup-cosine"],
        help="learning-rate schedules to run",
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default: 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"digits MLP, ReWA-AdamW, {args.epochs} epochs, {args.threads} thread(s)")
    print("| schedule | requested | reached | test accuracy | final weight decay | warned: missed | seconds |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for target in args.targets:
        for schedule in args.schedules:
            r = run(schedule, target, args.epochs)
            print(
                f"| {r['schedule']} | {target:.0%} | {r['sparsity']:.2%} | {r['accuracy']:.2%} | "
                f"{r['weight_decay']:.3g} | {'yes' if r['warned'] else 'no'} | {r['seconds']:.1f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
