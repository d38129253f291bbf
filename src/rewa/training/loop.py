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

import copy
import math
import random
import signal
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..controller import TargetSparsityController
from ..experiments._progress import progress_bar
from ..experiments.data import TensorData, from_dataset, imagenet_view, load_dataset, split_validation
from ..experiments.models import make_model
from ..experiments.outcome import warn_if_untrained
from ..optim import SparsityConfigWarning
from ..optim.registry import create_optimizer
from ..param_groups import split_parameters
from ..sparsity import FixedMask, prune
from .batches import Batches, first_inputs, input_shape
from .config import TrainConfig, model_options
from .data_checks import check_features, check_labels, check_not_empty, check_readable, is_per_position, labels_of
from .distributed import Processes, setup_processes
from .files import write_json
from .interrupts import TrainingInterrupted, handle_signals, signals_deferred
from .plan import DataFacts, RunPlan, model_name, resolve_plan
from .records import Evaluation, epoch_record, summary_record, sweep_records
from .run_dir import RunState, check_run_dir, open_run_dir, resume_command, save_epoch, save_vocab
from .schedules import set_epoch_hyperparameters, set_lr

__all__ = ["TrainResult", "TrainingDiverged", "train"]


@dataclass
class TrainResult:
    """What a run produced; the same records are in its run directory."""

    config: TrainConfig
    metrics: list[dict]
    sweep: list[dict]
    summary: dict
    model: nn.Module = field(repr=False)
    run_dir: Path | None = None
    plan: RunPlan | None = field(default=None, repr=False)


class TrainingDiverged(FloatingPointError):
    """The loss or the weights of a run went non-finite; the last good checkpoint is kept."""


def train(
    config: TrainConfig | None = None,
    *,
    model: nn.Module | None = None,
    train_data=None,
    val_data=None,
    test_data=None,
    loss=None,
) -> TrainResult:
    """Train a classifier sparse with ``config``'s method; write the run directory ``config.out``.

    Args:
        config: the run (:class:`TrainConfig`); its defaults if ``None``.
        model: any ``nn.Module`` mapping a batch of inputs to ``(batch, classes)`` logits (a
            language model: integer tokens ``(batch, T)`` to ``(batch, T, classes)``); it is
            the module that is trained (moved to the device, reparameterized in place by methods
            that do so). ``None``: ``config.model`` built by name.
        train_data, val_data, test_data: any map-style ``torch.utils.data.Dataset`` yielding
            ``(input, label)`` with integer labels (per sample, or ``(T,)`` per position beside
            ``(T,)`` integer tokens: next-token targets); a ``TensorDataset`` is held in memory as
            tensors. Given ``train_data``, ``config.dataset`` is ignored; without ``val_data`` a
            validation split of ``config.val_fraction`` is carved from the training data.
        loss: ``loss(logits, labels) -> mean loss of the batch``; cross-entropy (with
            ``config.label_smoothing``) if ``None``.

    Before the first step the labels (integer, 1-D, or 2-D ``(N, T)`` beside ``(N, T)`` integer
    tokens, every class of ``0..C-1`` present in the training data unless ``config.num_classes``
    or the dataset names ``C``), the splits (none empty) and the
    features (one forward pass per split) are checked. A loss or weights that go non-finite stop
    the run with :class:`TrainingDiverged`; SIGINT / SIGTERM stop it with
    :class:`~rewa.training.interrupts.TrainingInterrupted` (the last checkpoint stands; the
    message says how to resume).

    Example:
        >>> import torch, rewa
        >>> _ = torch.manual_seed(0)
        >>> x = torch.randn(256, 10); y = (x[:, 0] > 0).long()
        >>> data = torch.utils.data.TensorDataset(x, y)
        >>> net = torch.nn.Sequential(torch.nn.Linear(10, 32), torch.nn.ReLU(), torch.nn.Linear(32, 2))
        >>> result = rewa.train(rewa.TrainConfig(epochs=10, out="", progress=False), model=net, train_data=data)
        >>> result.model is net, len(result.metrics), result.summary["val_accuracy"] > 0.5
        (True, 10, True)
    """
    c = config if config is not None else TrainConfig()
    if model is not None and not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module (or None: config.model by name), got {type(model).__name__}")
    if loss is not None and not callable(loss):
        raise TypeError(f"loss must be callable as loss(logits, labels), got {type(loss).__name__}")
    dist, device = setup_processes(c.device, c.dist_timeout_s)
    try:
        with handle_signals(), dist.timeouts_named():
            result = _train(c, dist, device, model, (train_data, val_data, test_data), loss)
            if dist.initialized_here:
                # every rank past its last collective before gloo/nccl are torn down
                torch.distributed.barrier()
            return result
    finally:
        if dist.initialized_here:
            torch.distributed.destroy_process_group()


# -- data -----------------------------------------------------------------------------------


@dataclass
class _Splits:
    train: Any  # TensorData or a map-style Dataset
    val: Any
    test: Any
    input_shape: tuple
    num_classes: int
    name: str
    augment: bool
    positions: int | None = None  # labels per sample of a per-position task (a language model's T)
    vocab: Any = None  # text: the CharVocab, written to the run directory


def _load_splits(c: TrainConfig, train_data, val_data, test_data) -> _Splits:
    own_val, vocab = None, None
    if train_data is not None:
        if c.transform != "native":
            raise ValueError(
                f"transform={c.transform!r} applies to datasets loaded by name (cifar10, cifar100); "
                "transform the train_data passed in yourself"
            )
        train_part = from_dataset(train_data, "train_data")
        test_part = from_dataset(test_data, "test_data") if test_data is not None else None
        check_not_empty("train_data", train_part)
        shape, known_classes, name, augment = input_shape(train_part), None, "user", False
        # token ids (N, T) with labels (N, T): a language model's data (its outputs are checked below)
        per_position = is_per_position(labels_of(train_part), first_inputs(train_part))
    else:
        bundle = load_dataset(c.dataset, c.data_dir, context=c.context)
        if c.transform == "imagenet":
            bundle = imagenet_view(bundle)
        train_part, test_part = bundle.train, bundle.test
        shape, known_classes, name = bundle.input_shape, bundle.num_classes, bundle.name
        augment = c.augment and bundle.augment in ("cifar", "resized-crop")
        own_val, vocab, per_position = bundle.val, bundle.vocab, bundle.targets == "next-token"
    if val_data is not None:
        val_part = from_dataset(val_data, "val_data")
    elif own_val is not None:  # the dataset's own split (text: contiguous, after the training part)
        val_part = own_val
    else:
        train_part, val_part = split_validation(train_part, c.val_fraction, c.seed)
    splits = {"val_data" if val_data is not None else "validation split": val_part, "test_data": test_part}
    for split, part in splits.items():
        check_not_empty(split, part)
    train_labels = labels_of(train_part)
    num_classes = check_labels(
        train_labels,
        {split: labels_of(part) if part is not None else None for split, part in splits.items()},
        c.num_classes if c.num_classes is not None else known_classes,
        per_position=per_position,
    )
    for split, part in splits.items():  # a corrupt image on disk is found now, not after an epoch
        if part is not None and not isinstance(part, TensorData):
            check_readable(split, part, num_workers=c.num_workers)
    positions = int(train_labels.shape[1]) if per_position else None
    return _Splits(train_part, val_part, test_part, shape, num_classes, name, augment, positions, vocab)


# -- the run --------------------------------------------------------------------------------


@dataclass
class _Run:
    """Everything one run's epochs use."""

    plan: RunPlan
    model: nn.Module
    net: nn.Module  # the model, or its DistributedDataParallel wrapper
    opt: torch.optim.Optimizer
    batches: Batches
    dist: Processes
    device: torch.device
    evaluation: Evaluation
    run_dir: Path | None
    state: RunState
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None
    base_lrs: list[float]
    sparse_groups: list[dict]
    controller: TargetSparsityController | None = None
    show: bool = False
    started: float = 0.0

    def wall_seconds(self) -> float:
        return self.state.elapsed_before + time.perf_counter() - self.started


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _sparse_groups(opt: torch.optim.Optimizer, model: nn.Module) -> list[dict]:
    dense = {id(p) for _, p in split_parameters(model)[1]}
    return [g for g in opt.param_groups if any(id(p) not in dense for p in g["params"])]


def _build_model(c: TrainConfig, data: _Splits, given: nn.Module | None, device):
    """The model on ``device`` and a factory of plain twins (for reparameterized methods' records)."""
    _seed_everything(c.seed)
    options = model_options(c)
    if given is None:
        name = model_name(c, data.name)
        model = make_model(name, data.input_shape, data.num_classes, **options).to(device)
        return model, (lambda: make_model(name, data.input_shape, data.num_classes, **options)), None
    if options:
        raise ValueError(
            f"model_options {', '.join(sorted(options))} are for a model built by name; "
            "the module passed in is used as it is"
        )
    template = copy.deepcopy(given)  # before a method reparameterizes it in place
    return given.to(device), (lambda: copy.deepcopy(template)), f"module {type(given).__name__}"


def _prepare(c: TrainConfig, dist: Processes, device, given_model, datasets, loss) -> _Run:
    started = time.perf_counter()
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    data = _load_splits(c, *datasets)
    run_dir = Path(c.out) if c.out else None
    if run_dir is not None:
        check_run_dir(run_dir, resume=c.resume)
    model, factory, custom_name = _build_model(c, data, given_model, device)
    for split, part in (("train", data.train), ("validation", data.val), ("test", data.test)):
        if part is not None:
            check_features(
                model,
                first_inputs(part).to(device),
                data.num_classes,
                input_shape=data.input_shape,
                split=split,
                positions=data.positions,
            )
    if c.channels_last:
        model = model.to(memory_format=torch.channels_last)
    batches = Batches(data.train, device=device, dist=dist, c=c, augment=data.augment, train=True)
    steps = batches.steps_per_epoch()
    if steps < 1:
        raise ValueError(
            f"batch_size={c.batch_size} leaves no full step for {dist.world} process(es) "
            f"on {len(data.train)} training samples"
        )
    facts = DataFacts(data.name, tuple(data.input_shape), data.num_classes, len(data.train), steps, dist.world)
    plan = resolve_plan(c, facts, model=custom_name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SparsityConfigWarning)
        opt = create_optimizer(c.method, model, norm=c.norm, **plan.hyperparameters)
    net = model
    if dist.world > 1:
        net = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    autocast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if c.bf16 else _no_autocast
    evaluation = Evaluation(plan, model, factory, data.val, data.test, device, autocast, data.positions)
    base_lrs = [g["lr"] for g in opt.param_groups]
    state = open_run_dir(plan, run_dir, model, opt, dist, device) if run_dir is not None else RunState()
    if run_dir is not None and data.vocab is not None:
        save_vocab(run_dir, data.vocab, dist)
    run = _Run(plan, model, net, opt, batches, dist, device, evaluation, run_dir, state, loss, base_lrs, [])
    run.sparse_groups = _sparse_groups(opt, model)  # after loading: load_state_dict replaced the group dicts
    run.controller = _controller(plan, run)
    run.show, run.started = c.progress and dist.main and _on_terminal(), started
    return run


def _controller(plan: RunPlan, run: _Run) -> TargetSparsityController | None:
    c = plan.config
    if c.target_sparsity is None:
        return None
    start = plan.hyperparameters.get("weight_decay")  # the method's (a resumed optimizer may hold the fine-tuning one)
    controller = TargetSparsityController(
        run.opt,
        run.model,
        target_sparsity=c.target_sparsity,
        threshold=c.target_threshold,
        total_calls=c.epochs,
        initial_weight_decay=start if start else None,
    )
    if run.state.controller_state is not None:
        controller.load_state_dict(run.state.controller_state)
    return controller


def _train(c: TrainConfig, dist: Processes, device, given_model, datasets, loss) -> TrainResult:
    run = _prepare(c, dist, device, given_model, datasets, loss)
    use_flush = device.type == "cpu"
    if use_flush:  # ReWA drives weights towards float32's subnormal range, slow on CPUs (reset after)
        torch.set_flush_denormal(True)
    bar = progress_bar(
        run.plan.total_epochs, desc="epochs", unit="epoch", initial=run.state.start_epoch, enabled=run.show
    )
    try:
        for epoch in range(run.state.start_epoch, run.plan.total_epochs):
            loss_value, train_acc = _epoch(run, epoch)
            if bar is not None:
                bar.set_postfix_str(f"loss {loss_value:.4f}, train acc {train_acc:.3f}")
                bar.update(1)
    except TrainingInterrupted as interrupted:
        raise TrainingInterrupted(interrupted.signum, _interrupted_message(interrupted, run)) from None
    finally:
        if bar is not None:
            bar.close()
        if use_flush:
            torch.set_flush_denormal(False)
        if run.state.fixed_mask is not None:
            run.state.fixed_mask.remove()
    return _finish(run)


def _epoch(run: _Run, epoch: int) -> tuple[float, float]:
    """One epoch: prune at the start of fine-tuning, train, check, record, save."""
    plan, state = run.plan, run.state
    if epoch >= plan.config.epochs and state.fixed_mask is None:
        state.masks = prune(run.model, sparsity=plan.config.prune_sparsity, scope=plan.config.prune_scope, apply=True)
        state.fixed_mask = FixedMask(run.model, state.masks).attach(run.opt)
    set_epoch_hyperparameters(plan, epoch, run.sparse_groups)
    t0 = time.perf_counter()
    try:
        sums = _train_epoch(run, epoch)
    except FloatingPointError as error:  # an optimizer refused a non-finite gradient
        raise _diverged(run, epoch, str(error).rstrip(".")) from None
    totals = run.dist.all_sum(torch.stack([s.double() for s in sums]))
    loss, train_acc = (totals[0] / totals[2]).item(), (totals[1] / totals[2]).item()
    if not math.isfinite(loss) or not _all_finite(run.model):
        raise _diverged(
            run, epoch, f"the training loss is {loss}" if not math.isfinite(loss) else "the weights hold NaN or inf"
        )
    if run.controller is not None and epoch < plan.config.epochs:
        run.controller.step()
    train_seconds = time.perf_counter() - t0
    if run.dist.main:
        state.metrics.append(
            epoch_record(
                run.evaluation,
                opt=run.opt,
                sparse_groups=run.sparse_groups,
                epoch=epoch,
                loss=loss,
                train_acc=train_acc,
                train_seconds=train_seconds,
                train_labels=int(totals[2]),
                wall_seconds=run.wall_seconds(),
            )
        )
        if run.run_dir is not None:
            save_epoch(run.run_dir, state, _checkpoint_payload(run, epoch))
    state.saved_epoch = epoch + 1
    run.dist.barrier()
    return loss, train_acc


def _checkpoint_payload(run: _Run, epoch: int) -> dict:
    return {
        "epoch": epoch + 1,
        "model": run.model.state_dict(),
        "optimizer": run.opt.state_dict(),
        "controller": run.controller.state_dict() if run.controller is not None else None,
        "masks": {k: v.cpu() for k, v in run.state.masks.items()} if run.state.masks is not None else None,
        "schedule": {"epoch": epoch + 1, "steps_per_epoch": run.plan.steps_per_epoch},
        "wall_seconds": run.wall_seconds(),
    }


def _train_epoch(run: _Run, epoch: int):
    """One pass over the training data; returns the sums of loss, correct predictions, samples."""
    c, net, opt, dist = run.plan.config, run.net, run.opt, run.dist
    net.train()
    clip_norm = run.plan.grad_clip_norm
    loss_sum = torch.zeros((), device=run.device)
    correct = torch.zeros((), dtype=torch.int64, device=run.device)
    seen = torch.zeros((), dtype=torch.int64, device=run.device)  # labels: samples, or tokens per position
    positions = run.evaluation.positions or 1
    bar = progress_bar(run.plan.steps_per_epoch, desc=f"epoch {epoch + 1}", unit="batch", enabled=run.show, every=30.0)
    for step, (x, y, global_n) in enumerate(run.batches.epoch(epoch)):
        set_lr(run.plan, opt, epoch, step, run.base_lrs)
        if c.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        with run.evaluation.autocast():
            logits = net(x)
            if run.loss is None:  # (N, C) against (N,), or (N, T, C) against (N, T): one term per label
                losses = nn.functional.cross_entropy(
                    logits.float().flatten(0, -2), y.flatten(), label_smoothing=c.label_smoothing, reduction="none"
                )
                batch_loss = losses.sum()
            else:
                batch_loss = run.loss(logits.float(), y) * y.numel()
        # DDP averages gradients over processes: scale so the average is the global batch's mean
        scale = dist.world / (global_n * positions) if global_n is not None else 1.0 / y.numel()
        opt.zero_grad(set_to_none=True)
        (batch_loss * scale).backward()
        if clip_norm:  # after DDP's all-reduce: every process clips the same averaged gradient
            nn.utils.clip_grad_norm_(net.parameters(), clip_norm)
        opt.step()
        loss_sum += batch_loss.detach()
        correct += (logits.detach().argmax(-1) == y).sum()
        seen += y.numel()
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return loss_sum, correct, seen


def _finish(run: _Run) -> TrainResult:
    """The threshold sweep, the summary and the figures of a finished run."""
    sweep, summary = [], {}
    if run.dist.main:
        sweep = sweep_records(run.evaluation)
        summary = summary_record(run.evaluation, run.state.metrics, seconds=run.wall_seconds(), device=run.device)
        warn_if_untrained(
            summary,
            run.evaluation.plain(),
            num_classes=run.plan.data.num_classes,
            threshold=run.plan.config.target_threshold,
        )
        if run.run_dir is not None:
            with signals_deferred():
                write_json(run.run_dir / "sweep.json", sweep)
                write_json(run.run_dir / "summary.json", summary)
            if run.plan.config.figures:
                from ..plotting.training import save_run_figures

                title = f"{run.plan.model} on {run.plan.data.dataset}, {run.plan.config.method}"
                save_run_figures(run.state.metrics, sweep, run.run_dir, title=title)
    run.dist.barrier()
    return TrainResult(run.plan.config, run.state.metrics, sweep, summary, run.model, run.run_dir, run.plan)


class _no_autocast:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def _on_terminal() -> bool:
    import sys

    return sys.stderr.isatty()


def _all_finite(model: nn.Module) -> bool:
    # one host sync per epoch, with the loss's
    flags = [torch.isfinite(p).all() for p in model.parameters() if p.is_floating_point()]
    return bool(torch.stack(flags).all()) if flags else True


def _diverged(run: _Run, epoch: int, what: str) -> TrainingDiverged:
    c, saved = run.plan.config, run.state.saved_epoch
    kept = f"; the checkpoint of epoch {saved} is kept" if run.run_dir is not None and saved else ""
    hint = f"lr={c.lr}" if c.lr is not None else f"method {c.method!r}'s lr={run.plan.hyperparameters.get('lr')}"
    return TrainingDiverged(
        f"training diverged in epoch {epoch + 1}: {what}{kept}. Lower the learning rate ({hint}), "
        "or clip gradients (grad_clip_norm)"
    )


def _interrupted_message(error: TrainingInterrupted, run: _Run) -> str:
    name, saved, total = signal.Signals(error.signum).name, run.state.saved_epoch, run.plan.total_epochs
    if run.run_dir is None:
        return f"interrupted by {name} after {saved} of {total} epochs; nothing is saved (out='')"
    if not saved:
        return f"interrupted by {name} before the first epoch was saved; nothing to resume in {str(run.run_dir)!r}"
    return (
        f"interrupted by {name}: epoch {saved} of {total} is saved in {str(run.run_dir / 'checkpoint.pt')!r}; "
        f"resume with: {resume_command(run.run_dir)}"
    )
