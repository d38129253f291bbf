"""Train a network sparse, end to end: data, model, method, schedules, stages, run directory.

:func:`train` takes a :class:`TrainConfig` and returns a :class:`TrainResult`; ``rewa train``
is a thin wrapper. Under ``torchrun --nproc_per_node N`` the same call trains with
``DistributedDataParallel`` (gloo on CPU, nccl on CUDA); only rank 0 writes files.

The loop, per epoch ``e`` (0-based) of ``epochs`` (+ ``finetune_epochs``):

1. scheduled hyperparameters (``schedule``, ``zero_M_epochs``) are set on the sparsified
   param groups; the learning rate is set per epoch or per step (``schedule_per``) as
   ``lr_g * f(t)`` for each group's own ``lr_g``, with ``f`` from ``lr_schedule``:

   * ``cosine``: ``(t + 1)/W`` for ``t < W`` (warm-up), then ``0.5 (1 + cos(pi (t - W)/(T - W)))``;
   * ``step``: warm-up as above, then ``step_gamma ** #{milestones <= epoch}``;
   * ``cyclic`` (FFCV): linear from ``1e-4`` at ``t = 0`` to 1 at ``t = W``, then to 0 at ``T``;
   * ``constant``: 1 (after the warm-up).

   ``t``, ``W`` and ``T`` count epochs (``schedule_per="epoch"``) or steps (``"step"``:
   ``W = warmup_epochs * steps_per_epoch``).
2. one pass over the training data in a fixed order drawn from ``(seed, epoch)``: the batch of
   ``batch_size`` samples is global; each of the ``N`` processes takes its share and the loss
   is scaled so that DDP's gradient average equals the gradient of the global batch's mean loss
   (so N processes follow the 1-process run up to float rounding).
3. the target-sparsity controller (if any) adjusts the weight decay; validation and test
   accuracy; sparsity at :data:`STANDARD_THRESHOLDS`; one line in ``metrics.jsonl``; the
   checkpoint (model, optimizer, controller, masks, RNG states, epoch) is replaced atomically.

After ``epochs``, with ``prune_sparsity`` set, the weights are pruned to that sparsity
(``prune_scope`` global or per layer, :func:`rewa.prune`) and fine-tuned ``finetune_epochs``
with a fixed mask (:class:`rewa.FixedMask`): learning rate ``finetune_lr`` with cosine decay,
weight decay of the sparsified groups ``finetune_weight_decay``. At the end: a threshold sweep
(accuracy vs compression on val and test), ``summary.json`` and the figures.

Resuming (``resume=True``) loads the last checkpoint and replays from the epoch after it; the
data order, augmentation and every RNG are functions of the seed and the epoch or restored from
the checkpoint, so on CPU the final weights equal those of an uninterrupted run bitwise.

Host synchronisations: one per epoch for the loss and accuracy, one per threshold for the
sparsity, and those of evaluation; none per training step (except the optimizers' own
``check_finite``).
"""

from __future__ import annotations

import json
import math
import os
import random
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..controller import TargetSparsityController
from ..optim import SparsityConfigWarning
from ..optim.registry import create_optimizer, list_methods
from ..param_groups import split_parameters
from ..sparsity import FixedMask, prune, sparsity_report, threshold_sweep
from ._progress import progress_bar
from .data import TensorData, as_float, augment_batch, describe, from_dataset, load_dataset, split_validation
from .models import make_model
from .train_config import (
    METHOD_DEFAULTS,
    METHOD_LOOP_DEFAULTS,
    RUN_FILES,
    SHORTCUT_HYPERPARAMETERS,
    STANDARD_THRESHOLDS,
    TrainConfig,
    decay_budget,
    grad_clip_norm,
    lr_factor,
    lr_sum,
    method_options,
    parse_schedule,
    resolve_config,
)

__all__ = [
    "TrainConfig",
    "TrainResult",
    "train",
    "resolve_config",
    "lr_factor",
    "STANDARD_THRESHOLDS",
    "METHOD_DEFAULTS",
    "METHOD_LOOP_DEFAULTS",
    "grad_clip_norm",
    "decay_budget",
    "lr_sum",
    "RUN_FILES",
]


# -- results --------------------------------------------------------------------------------


@dataclass
class TrainResult:
    """What a run produced; the same records are in its run directory."""

    config: TrainConfig
    metrics: list[dict]
    sweep: list[dict]
    summary: dict
    model: nn.Module = field(repr=False)
    run_dir: Path | None = None


# -- processes and devices ------------------------------------------------------------------


@dataclass
class _Dist:
    world: int = 1
    rank: int = 0
    initialized_here: bool = False

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self):
        if self.world > 1:
            torch.distributed.barrier()

    def all_sum(self, t: torch.Tensor) -> torch.Tensor:
        if self.world > 1:
            torch.distributed.all_reduce(t)
        return t


def _setup_processes(device_kind: str) -> tuple[_Dist, torch.device]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if device_kind == "auto":
        device_kind = "cuda" if torch.cuda.is_available() else "cpu"
    if device_kind == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' but torch.cuda.is_available() is False; use device='cpu' or 'auto'")
    if world <= 1:
        return _Dist(), torch.device(device_kind)
    dist = torch.distributed
    initialized_here = False
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device_kind == "cuda" else "gloo")
        initialized_here = True
    rank = dist.get_rank()
    if device_kind == "cuda":
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    else:
        device = torch.device("cpu")
    return _Dist(dist.get_world_size(), rank, initialized_here), device


# -- the run --------------------------------------------------------------------------------


def _method_hyperparameters(c: TrainConfig) -> dict:
    valid = next(m for m in list_methods() if m.name == c.method).hyperparameters
    hp = {k: v for k, v in METHOD_DEFAULTS.get(c.method, {}).items() if k in valid}
    for name in SHORTCUT_HYPERPARAMETERS:
        value = getattr(c, name)
        if value is None:
            continue
        if name not in valid:
            raise ValueError(
                f"{name}={value} is not a hyperparameter of method {c.method!r}; it has: {', '.join(valid)}"
            )
        hp[name] = value
    options = method_options(c)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ValueError(
            f"option(s) {', '.join(unknown)} are not hyperparameters of method {c.method!r}; it has: {', '.join(valid)}"
        )
    hp.update(options)
    return hp


def _model_name(c: TrainConfig, dataset_name: str, input_shape) -> str:
    if c.model != "auto":
        return c.model
    if dataset_name in ("cifar10", "cifar100"):
        return "resnet18"
    if dataset_name == "imagefolder":
        return "resnet50"
    return "mlp"


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _atomic_write(path: Path, write) -> None:
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


def _write_json(path: Path, record) -> None:
    _atomic_write(path, lambda tmp: tmp.write_text(json.dumps(record, indent=2)))


def _is_parametrized(model: nn.Module) -> bool:
    return any(torch.nn.utils.parametrize.is_parametrized(m) for m in model.modules())


def _plain_copy(model: nn.Module, factory) -> nn.Module:
    """The model itself, or for reparameterized methods a fresh ``factory()`` model holding the
    effective weights (``rewa.collapse`` on a deep copy would strip the parametrization property
    from the class the copy shares with the model in training)."""
    if not _is_parametrized(model):
        return model
    twin = factory()
    with torch.no_grad():
        state = {}
        for name in twin.state_dict():
            path, attr = name.rpartition(".")[::2]
            state[name] = getattr(model.get_submodule(path) if path else model, attr).detach().clone()
    twin.load_state_dict(state)
    return twin.to(next(model.parameters()).device)


class _Data:
    """Batches of one split: in-memory tensors (cut by index) or a DataLoader."""

    def __init__(self, data, *, device, dist: _Dist, c: TrainConfig, augment: bool, train: bool):
        self.data, self.device, self.dist, self.c, self.augment, self.train = data, device, dist, c, augment, train
        self.in_memory = isinstance(data, TensorData)
        if self.in_memory:
            self.data = data.to(device)
        elif train:
            if c.batch_size % dist.world:
                raise ValueError(
                    f"batch_size={c.batch_size} must be divisible by the number of processes "
                    f"{dist.world} for datasets read through a DataLoader"
                )
            self.sampler = torch.utils.data.DistributedSampler(
                data, num_replicas=dist.world, rank=dist.rank, shuffle=True, seed=c.seed, drop_last=True
            )
            self.loader = torch.utils.data.DataLoader(
                data,
                batch_size=c.batch_size // dist.world,
                sampler=self.sampler,
                num_workers=c.num_workers,
                pin_memory=device.type == "cuda",
                drop_last=True,
                persistent_workers=False,
            )

    def steps_per_epoch(self) -> int:
        if self.in_memory:
            n = len(self.data) // self.c.batch_size + (len(self.data) % self.c.batch_size >= self.dist.world)
        else:
            n = len(self.loader)
        return min(n, self.c.max_steps_per_epoch) if self.c.max_steps_per_epoch else n

    def epoch(self, epoch: int):
        """Yields ``(x, y, global_batch_size)``; the order depends only on ``(seed, epoch)``."""
        steps = self.steps_per_epoch()
        if not self.in_memory:
            self.sampler.set_epoch(epoch)
            for i, (x, y) in enumerate(self.loader):
                if i >= steps:
                    return
                yield x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True), None
            return
        order_gen = torch.Generator().manual_seed(self.c.seed * 1_000_003 + epoch)
        order = torch.randperm(len(self.data), generator=order_gen).to(self.device)
        aug_gen = None
        if self.augment:
            aug_gen = torch.Generator(device=self.device)
            aug_gen.manual_seed((self.c.seed * 1_000_003 + epoch) * 1009 + self.dist.rank + 1)
        for batch in order.split(self.c.batch_size)[:steps]:
            mine = batch.tensor_split(self.dist.world)[self.dist.rank]
            x = self.data.x[mine]
            if aug_gen is not None:
                x = augment_batch(x, aug_gen)
            yield as_float(x, self.data.mean, self.data.std), self.data.y[mine], len(batch)


@torch.no_grad()
def _accuracy(model: nn.Module, data, c: TrainConfig, device, autocast) -> float:
    model.eval()
    correct = torch.zeros((), dtype=torch.int64, device=device)
    total = 0
    if isinstance(data, TensorData):
        batches = ((data.batch(idx)) for idx in torch.arange(len(data), device=data.x.device).split(c.eval_batch_size))
    else:
        batches = torch.utils.data.DataLoader(data, batch_size=c.eval_batch_size, num_workers=c.num_workers)
    for x, y in batches:
        x, y = x.to(device), y.to(device)
        if c.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast():
            correct += (model(x).argmax(1) == y).sum()
        total += len(y)
    return float(correct) / total


def _sparse_groups(opt: torch.optim.Optimizer, model: nn.Module) -> list[dict]:
    dense = {id(p) for _, p in split_parameters(model)[1]}
    return [g for g in opt.param_groups if any(id(p) not in dense for p in g["params"])]


def _hyper_schedule(c: TrainConfig, base: dict) -> dict[str, list[tuple[int, float]]]:
    schedule = parse_schedule(c.schedule)
    if c.zero_M_epochs:
        if "M" not in base:
            raise ValueError(f"zero_M_epochs={c.zero_M_epochs}: method {c.method!r} has no M")
        if "M" in schedule:
            raise ValueError("zero_M_epochs and a schedule for M: give only one")
        schedule["M"] = [(0, 0.0), (c.zero_M_epochs, base["M"])]
    for name in schedule:
        if name not in base:
            raise ValueError(
                f"schedule sets {name!r}, which the sparsified param groups of method {c.method!r} "
                f"do not have; they have: {', '.join(sorted(k for k in base if k != 'params'))}"
            )
    return schedule


def _scheduled_value(points, epoch: int) -> float:
    return [v for e, v in points if e <= epoch][-1]


def train(config: TrainConfig = TrainConfig(), *, train_data=None, val_data=None, test_data=None) -> TrainResult:
    """Train ``config``'s model with ``config``'s method; write the run directory ``config.out``.

    ``train_data`` / ``val_data`` / ``test_data``: any map-style ``torch.utils.data.Dataset``
    yielding ``(input, label)`` with integer labels ``0..C-1``; a ``TensorDataset`` is held in
    memory as tensors. Given ``train_data``, ``config.dataset`` is ignored; without
    ``val_data`` a validation split of ``config.val_fraction`` is carved from the training data.

    Example:
        >>> import torch
        >>> from rewa.experiments.train import TrainConfig, train
        >>> x = torch.randn(256, 10); y = (x[:, 0] > 0).long()
        >>> data = torch.utils.data.TensorDataset(x, y)
        >>> result = train(TrainConfig(epochs=2, out="", progress=False), train_data=data, test_data=data)
        >>> len(result.metrics), result.summary["test_accuracy"] > 0.5
        (2, True)
    """
    c = config
    dist, device = _setup_processes(c.device)
    try:
        return _train(c, dist, device, train_data, val_data, test_data)
    finally:
        if dist.initialized_here:
            torch.distributed.destroy_process_group()


def _train(c: TrainConfig, dist: _Dist, device, train_data, val_data, test_data) -> TrainResult:
    start_wall = time.perf_counter()
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    # data
    if train_data is not None:
        train_part = from_dataset(train_data, "train_data")
        test_part = from_dataset(test_data, "test_data") if test_data is not None else None
        input_shape, num_classes = describe(train_part)
        dataset_name, augment = "user", False
    else:
        bundle = load_dataset(c.dataset, c.data_dir)
        train_part, test_part = bundle.train, bundle.test
        input_shape, num_classes, dataset_name = bundle.input_shape, bundle.num_classes, bundle.name
        augment = c.augment and bundle.augment == "cifar"
    if val_data is not None:
        val_part = from_dataset(val_data, "val_data")
    else:
        train_part, val_part = split_validation(train_part, c.val_fraction, c.seed)

    # model and optimizer (reparameterizing methods change the model: before DDP)
    _seed_everything(c.seed)
    model_name = _model_name(c, dataset_name, input_shape)
    factory = lambda: make_model(model_name, input_shape, num_classes)  # noqa: E731
    model = factory().to(device)
    if c.channels_last:
        model = model.to(memory_format=torch.channels_last)
    train_loader = _Data(train_part, device=device, dist=dist, c=c, augment=augment, train=True)
    steps = train_loader.steps_per_epoch()
    if steps < 1:
        raise ValueError(
            f"batch_size={c.batch_size} leaves no full step for {dist.world} process(es) "
            f"on {len(train_part)} training samples"
        )
    hp = _method_hyperparameters(c)
    budget = decay_budget(c)
    if budget is not None:  # the weight decay whose total shrink over the run is the budget
        hp["weight_decay"] = budget / lr_sum(c, hp["lr"], steps)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SparsityConfigWarning)
        opt = create_optimizer(c.method, model, norm=c.norm, **hp)
    sparse_groups = _sparse_groups(opt, model)
    base_lrs = [g["lr"] for g in opt.param_groups]
    base_values = [dict(g) for g in sparse_groups]
    hyper_schedule = _hyper_schedule(c, base_values[0] if base_values else {})
    net = model
    if dist.world > 1:
        net = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    total_epochs = c.epochs + c.finetune_epochs
    finetune_lr = c.finetune_lr if c.finetune_lr is not None else base_lrs[0] / 10

    # run directory and resume
    run_dir = Path(c.out) if c.out else None
    start_epoch, metrics, fixed_mask, masks, elapsed_before = 0, [], None, None, 0.0
    controller_state = None
    checkpoint_path = run_dir / "checkpoint.pt" if run_dir else None
    if run_dir is not None:
        if checkpoint_path.exists() and not c.resume:
            raise FileExistsError(
                f"{str(run_dir)!r} already holds a run (checkpoint.pt): pass --resume to continue "
                "it, or choose another --out"
            )
        if c.resume and checkpoint_path.exists():
            saved = json.loads((run_dir / "config.json").read_text())
            now = c.to_dict()
            differ = [k for k in now if k not in ("resume", "progress", "figures") and saved.get(k) != now[k]]
            if differ:
                raise ValueError(
                    f"--resume with a different config than the run in {str(run_dir)!r}: "
                    + ", ".join(f"{k}={now[k]!r} (run: {saved.get(k)!r})" for k in differ)
                )
            ckpt = torch.load(checkpoint_path, map_location=device, weights_only=False)
            model.load_state_dict(ckpt["model"])
            opt.load_state_dict(ckpt["optimizer"])
            controller_state = ckpt.get("controller")
            if ckpt.get("masks") is not None:
                masks = {k: v.to(device) for k, v in ckpt["masks"].items()}
                fixed_mask = FixedMask(model, masks).attach(opt)
            start_epoch, metrics, elapsed_before = ckpt["epoch"], ckpt["metrics"], ckpt["wall_seconds"]
            _set_rng_state(ckpt["rng"])
        if dist.main:
            run_dir.mkdir(parents=True, exist_ok=True)
            _write_json(run_dir / "config.json", c.to_dict())
            # metrics.jsonl holds exactly the checkpointed epochs (a killed run may have written one more)
            _atomic_write(
                run_dir / "metrics.jsonl", lambda tmp: tmp.write_text("".join(json.dumps(m) + "\n" for m in metrics))
            )
        dist.barrier()

    # after loading: load_state_dict replaced the optimizer's param-group dicts
    sparse_groups = _sparse_groups(opt, model)
    controller = None
    if c.target_sparsity is not None:
        # start from the method's weight decay (a resumed optimizer may hold the fine-tuning one)
        start = base_values[0].get("weight_decay") if base_values else None
        controller = TargetSparsityController(
            opt,
            model,
            target_sparsity=c.target_sparsity,
            threshold=c.target_threshold,
            total_calls=c.epochs,
            initial_weight_decay=start if start else None,
        )

        if controller_state is not None:
            controller.load_state_dict(controller_state)
    autocast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if c.bf16 else _no_autocast
    show = c.progress and dist.main and _on_terminal()
    epoch_bar = progress_bar(total_epochs, desc="epochs", unit="epoch", initial=start_epoch, enabled=show)
    use_flush = device.type == "cpu"
    if use_flush:  # ReWA drives weights towards float32's subnormal range, slow on CPUs (reset after)
        torch.set_flush_denormal(True)
    try:
        for epoch in range(start_epoch, total_epochs):
            finetuning = epoch >= c.epochs
            if finetuning and fixed_mask is None:
                masks = prune(model, sparsity=c.prune_sparsity, scope=c.prune_scope, apply=True)
                fixed_mask = FixedMask(model, masks).attach(opt)
            _set_epoch_hyperparameters(c, epoch, finetuning, sparse_groups, base_values, hyper_schedule)
            t0 = time.perf_counter()
            loss_sum, correct, seen = _train_epoch(
                c, net, opt, train_loader, epoch, steps, base_lrs, finetune_lr, device, autocast, dist, show
            )
            totals = dist.all_sum(torch.stack([loss_sum.double(), correct.double(), seen.double()]))
            loss, train_acc = (totals[0] / totals[2]).item(), (totals[1] / totals[2]).item()
            if controller is not None and not finetuning:
                controller.step()
            train_seconds = time.perf_counter() - t0
            record = None
            if dist.main:
                record = _epoch_record(
                    c,
                    model,
                    factory,
                    epoch,
                    finetuning,
                    loss,
                    train_acc,
                    val_part,
                    test_part,
                    device,
                    autocast,
                    opt,
                    sparse_groups,
                    train_seconds,
                    elapsed_before + time.perf_counter() - start_wall,
                )
                metrics.append(record)
                if run_dir is not None:
                    with open(run_dir / "metrics.jsonl", "a") as f:
                        f.write(json.dumps(record) + "\n")
                    ckpt = {
                        "epoch": epoch + 1,
                        "model": model.state_dict(),
                        "optimizer": opt.state_dict(),
                        "controller": controller.state_dict() if controller is not None else None,
                        "masks": {k: v.cpu() for k, v in masks.items()} if masks is not None else None,
                        "schedule": {"epoch": epoch + 1, "steps_per_epoch": steps},
                        "rng": _rng_state(),
                        "metrics": metrics,
                        "wall_seconds": elapsed_before + time.perf_counter() - start_wall,
                    }
                    _atomic_write(checkpoint_path, lambda tmp: torch.save(ckpt, tmp))
            dist.barrier()
            if epoch_bar is not None:
                epoch_bar.set_postfix_str(f"loss {loss:.4f}, train acc {train_acc:.3f}")
                epoch_bar.update(1)
    finally:
        if epoch_bar is not None:
            epoch_bar.close()
        if use_flush:
            torch.set_flush_denormal(False)
        if fixed_mask is not None:
            fixed_mask.remove()

    sweep, summary = [], {}
    if dist.main:
        sweep = _sweep(c, model, factory, val_part, test_part, device, autocast)
        summary = _summary(
            c,
            model,
            factory,
            metrics,
            sweep,
            model_name,
            dataset_name,
            dist,
            device,
            elapsed_before + time.perf_counter() - start_wall,
            len(train_part),
        )
        if run_dir is not None:
            _write_json(run_dir / "sweep.json", sweep)
            _write_json(run_dir / "summary.json", summary)
            if c.figures:
                from ..plotting.training import save_run_figures

                save_run_figures(metrics, sweep, run_dir, title=f"{model_name} on {dataset_name}, {c.method}")
    dist.barrier()
    return TrainResult(c, metrics, sweep, summary, model, run_dir)


class _no_autocast:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def _on_terminal() -> bool:
    import sys

    return sys.stderr.isatty()


def _set_epoch_hyperparameters(c, epoch, finetuning, sparse_groups, base_values, hyper_schedule) -> None:
    for group in sparse_groups:
        for name, points in hyper_schedule.items():
            group[name] = _scheduled_value(points, epoch)
        if finetuning and "weight_decay" in group:
            group["weight_decay"] = c.finetune_weight_decay


def _train_epoch(c, net, opt, data: _Data, epoch, steps, base_lrs, finetune_lr, device, autocast, dist, show):
    net.train()
    finetuning = epoch >= c.epochs
    clip_norm = grad_clip_norm(c)
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    seen = torch.zeros((), dtype=torch.int64, device=device)
    bar = progress_bar(steps, desc=f"epoch {epoch + 1}", unit="batch", enabled=show, every=30.0)
    for step, (x, y, global_n) in enumerate(data.epoch(epoch)):
        _set_lr(c, opt, epoch, step, steps, base_lrs, finetune_lr, finetuning)
        if c.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast():
            logits = net(x)
            losses = nn.functional.cross_entropy(logits.float(), y, label_smoothing=c.label_smoothing, reduction="none")
        batch_loss = losses.sum()
        # DDP averages gradients over processes: scale so the average is the global batch's mean
        scale = dist.world / global_n if global_n is not None else 1.0 / len(y)
        opt.zero_grad(set_to_none=True)
        (batch_loss * scale).backward()
        if clip_norm:  # after DDP's all-reduce: every process clips the same averaged gradient
            nn.utils.clip_grad_norm_(net.parameters(), clip_norm)
        opt.step()
        loss_sum += batch_loss.detach()
        correct += (logits.detach().argmax(1) == y).sum()
        seen += len(y)
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return loss_sum, correct, seen


def _set_lr(c, opt, epoch, step, steps, base_lrs, finetune_lr, finetuning) -> None:
    if finetuning:
        t = (epoch - c.epochs) + (step / steps if c.schedule_per == "step" else 0.0)
        factor = lr_factor("cosine", t, 0, c.finetune_epochs)
        for group in opt.param_groups:
            group["lr"] = finetune_lr * factor
        return
    if c.schedule_per == "epoch":
        if step:
            return
        t, warmup, total = epoch, c.warmup_epochs, c.epochs
    else:
        t, warmup, total = epoch * steps + step, c.warmup_epochs * steps, c.epochs * steps
    factor = lr_factor(c.lr_schedule, t, warmup, total, milestones=c.step_milestones, gamma=c.step_gamma, epoch=epoch)
    for group, base in zip(opt.param_groups, base_lrs):
        group["lr"] = base * factor


def _epoch_record(
    c,
    model,
    factory,
    epoch,
    finetuning,
    loss,
    train_acc,
    val_part,
    test_part,
    device,
    autocast,
    opt,
    sparse_groups,
    train_seconds,
    wall_seconds,
) -> dict:
    plain = _plain_copy(model, factory)
    sparsity, compression = {}, {}
    for t in STANDARD_THRESHOLDS:
        report = sparsity_report(plain, t)
        sparsity[f"{t:g}"], compression[f"{t:g}"] = report.sparsity, report.compression
    group = sparse_groups[0] if sparse_groups else opt.param_groups[0]
    scheduled = {k: group[k] for k in ("K", "M", "eps", "weight_decay", "strength", "lambda_p") if k in group}
    latents = [
        opt.state[p]["y"]
        for g in (sparse_groups or opt.param_groups)
        for p in g["params"]
        if "y" in opt.state.get(p, {})
    ]
    if latents:  # ReWA's latents: how far |y| runs (one host sync per epoch)
        scheduled["latent_max_abs"] = float(torch.stack([y.abs().max() for y in latents]).max())
    return {
        "epoch": epoch + 1,
        "stage": "finetune" if finetuning else "train",
        "loss": loss,
        "train_accuracy": train_acc,
        "val_accuracy": _accuracy(model, val_part, c, device, autocast) if val_part is not None else None,
        "test_accuracy": _accuracy(model, test_part, c, device, autocast) if test_part is not None else None,
        "sparsity": sparsity,
        "compression": compression,
        "lr": group["lr"],
        **scheduled,
        "epoch_seconds": train_seconds,
        "wall_seconds": wall_seconds,
    }


def _sweep(c, model, factory, val_part, test_part, device, autocast) -> list[dict]:
    plain = _plain_copy(model, factory)
    rows = {float(t): {"threshold": float(t)} for t in c.sweep_thresholds}
    for split, data in (("val", val_part), ("test", test_part)):
        if data is None:
            continue
        result = threshold_sweep(plain, lambda m, d=data: _accuracy(m, d, c, device, autocast), rows)
        for point in result.points:
            row = rows[point.threshold]
            row["compression"] = point.compression
            row[f"{split}_accuracy"] = point.metric
    for t, row in rows.items():
        if "compression" not in row:
            row["compression"] = sparsity_report(plain, t).compression
        row["sparsity"] = 1 - 1 / row["compression"] if row["compression"] != math.inf else 1.0
    return [_finite(r) for r in rows.values()]


def _finite(record: dict) -> dict:
    # JSON has no infinity: an all-pruned model's compression is written as null
    return {k: (None if isinstance(v, float) and math.isinf(v) else v) for k, v in record.items()}


def _summary(c, model, factory, metrics, sweep, model_name, dataset_name, dist, device, seconds, n_train) -> dict:
    last = metrics[-1] if metrics else {}
    plain = _plain_copy(model, factory)
    return {
        "dataset": dataset_name,
        "model": model_name,
        "method": c.method,
        "epochs": len(metrics),
        "train_samples": n_train,
        "processes": dist.world,
        "device": str(device),
        "parameters": sum(p.numel() for p in plain.parameters()),
        "loss": last.get("loss"),
        "train_accuracy": last.get("train_accuracy"),
        "val_accuracy": last.get("val_accuracy"),
        "test_accuracy": last.get("test_accuracy"),
        "sparsity": last.get("sparsity"),
        "compression": last.get("compression"),
        "best_val_accuracy": max((m["val_accuracy"] for m in metrics if m["val_accuracy"] is not None), default=None),
        "wall_seconds": seconds,
        "torch_threads": torch.get_num_threads(),
        "grad_clip_norm": grad_clip_norm(c),
        "decay_budget": decay_budget(c),
    }
