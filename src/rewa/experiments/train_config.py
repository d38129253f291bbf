"""What a training run is asked to do: :class:`TrainConfig`, its checks, the per-method recipe
defaults (learning rate, clipping, decay budget), ``rewa train``'s option forms, and the
learning-rate schedules. :mod:`rewa.experiments.train` runs it."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import asdict, dataclass, field

import numpy as np

from .. import _check as check
from ..optim.registry import list_methods, method_names
from ..param_groups import NORM_CHOICES
from .data import DATASETS
from .models import MODELS
from .presets import preset as _preset

__all__ = [
    "STANDARD_THRESHOLDS",
    "SWEEP_THRESHOLDS",
    "RUN_FILES",
    "METHOD_DEFAULTS",
    "METHOD_LOOP_DEFAULTS",
    "SHORTCUT_HYPERPARAMETERS",
    "TrainConfig",
    "decay_budget",
    "grad_clip_norm",
    "lr_factor",
    "lr_sum",
    "method_options",
    "parse_schedule",
    "resolve_config",
]

STANDARD_THRESHOLDS = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2)
SWEEP_THRESHOLDS = (0.0, 1e-7, 1e-6, 1e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 2e-2, 3e-2, 5e-2, 7e-2, 1e-1)
RUN_FILES = (
    "config.json",
    "metrics.jsonl",
    "sweep.json",
    "summary.json",
    "checkpoint.pt",
    "training_curves.png",
    "accuracy_vs_compression.png",
)

_SGD_LIKE = dict(lr=0.05, momentum=0.9)
_ADAM_LIKE = dict(lr=1e-3)
# Training defaults per method, over the registry's (which are the optimizers' own defaults).
METHOD_DEFAULTS: dict[str, dict] = {
    "sgd": dict(_SGD_LIKE, weight_decay=1e-4),
    "adamw": dict(_ADAM_LIKE),
    # ReWA's recommended recipe on small networks (with METHOD_LOOP_DEFAULTS' clipping); README
    # Its decay is decoupled (y <- (1 - lr*lambda) y), the units decay_budget is defined in.
    "rewa": dict(lr=0.2, momentum=0.9, K=9, M=2, eps=0.0, weight_decay=1e-2, decoupled_weight_decay=True),
    "rewa-adamw": dict(_ADAM_LIKE, K=9, M=2, eps=0.0, weight_decay=1e-2),
    "pwd-sgd": dict(_SGD_LIKE),
    "pwd-adamw": dict(_ADAM_LIKE),
    "l1-prox": dict(_SGD_LIKE),
    "l1-subgradient": dict(_SGD_LIKE),
    "lp-subgradient": dict(_SGD_LIKE),
    "lp-clipped": dict(_SGD_LIKE),
    "hadamard": dict(_SGD_LIKE),
    "hadamard-signed": dict(_SGD_LIKE),
    "spred": dict(_SGD_LIKE),
    "powerprop": dict(_SGD_LIKE),
}
# Training-loop defaults per method (TrainConfig fields left at None): ReWA's recommended recipe
# clips the gradient norm (without it ReWA diverges at learning rates SGD trains with) and sets
# its weight decay from a budget (README, "ReWA on networks").
METHOD_LOOP_DEFAULTS: dict[str, dict] = {"rewa": dict(grad_clip_norm=1.0, decay_budget=0.5)}
SHORTCUT_HYPERPARAMETERS = ("lr", "momentum", "weight_decay", "K", "M", "eps")


def _opt(default, help: str, **kw):
    return field(default=default, metadata={"help": help, **kw})


@dataclass(frozen=True)
class TrainConfig:
    """Every setting of one training run (each one is a ``rewa train`` option)."""

    # data and model
    dataset: str = _opt("digits", f"dataset by name: {', '.join(DATASETS)} (ignored when data is passed in Python)")
    data_dir: str = _opt("", "directory of cifar10 / cifar100 (python-pickle files) or imagefolder (train/, val/)")
    val_fraction: float = _opt(0.1, "fraction of the training data held out for validation (0: none)")
    model: str = _opt(
        "auto",
        f"one of {', '.join(MODELS)}; auto: mlp for digits/mnist1d, resnet18 for CIFAR, resnet50 for imagefolder",
    )
    augment: bool = _opt(True, "CIFAR augmentation (random crop, padding 4, horizontal flip) on cifar10/100")
    # method and its hyperparameters
    method: str = _opt("rewa", "a method of rewa.create_optimizer (list_methods() describes them)")
    lr: float | None = _opt(None, "base learning rate (default: the method's)")
    momentum: float | None = _opt(None, "SGD momentum (default: the method's)")
    weight_decay: float | None = _opt(None, "weight decay of the sparsified weights (default: the method's)")
    K: float | None = _opt(None, "ReWA reparameterization order K (default: the method's)")
    M: float | None = _opt(None, "ReWA adaptive learning rate order M (default: the method's)")
    eps: float | None = _opt(None, "ReWA epsilon, or Adam's for adamw-type torch methods (default: the method's)")
    options: tuple = _opt((), "other hyperparameters of the method as NAME=VALUE (e.g. strength=1e-5)")
    norm: str = _opt("dense", "normalization scales and shifts: dense, or sparsify (decayed like the weights)")
    label_smoothing: float = _opt(0.0, "label smoothing of the cross-entropy loss")
    decay_budget: float | None = _opt(
        None,
        "set the weight decay of the sparsified weights to decay_budget / "
        "(sum of the learning rates of the training steps): the total "
        "log-shrink an unused (latent) weight gets from the decay alone, so "
        "one value fits any dataset size and epochs (default: the method's, "
        "0.5 for rewa when weight_decay is not given, else off)",
    )
    grad_clip_norm: float | None = _opt(
        None,
        "clip the gradient norm of all parameters to this before each step "
        "(torch.nn.utils.clip_grad_norm_; 0: off; default: the method's, "
        "1.0 for rewa, else off)",
    )
    # schedule
    epochs: int = _opt(10, "training epochs (before any fine-tuning)")
    batch_size: int = _opt(64, "global batch size (split across processes)")
    lr_schedule: str = _opt("cosine", "cosine, step, cyclic or constant, after warm-up")
    warmup_epochs: float = _opt(0.0, "linear warm-up length in epochs (cyclic: epoch of the peak)")
    schedule_per: str = _opt("epoch", "set the learning rate once per epoch or every step")
    step_milestones: tuple = _opt((), "epochs at which the step schedule multiplies the lr by step_gamma")
    step_gamma: float = _opt(0.1, "factor of the step schedule")
    zero_M_epochs: int = _opt(
        0, "M = 0 for the first epochs, so weights that start with the wrong sign can cross zero (Example 3.2)"
    )
    schedule: tuple = _opt(
        (),
        "piecewise-constant hyperparameters of the sparsified groups by epoch: "
        "NAME=EPOCH:VALUE,EPOCH:VALUE (e.g. weight_decay=0:0,5:1e-4)",
    )
    # stages
    target_sparsity: float | None = _opt(
        None,
        "reach this sparsity at target_threshold by the end "
        "(rewa.TargetSparsityController sets the weight decay each epoch)",
    )
    target_threshold: float = _opt(1e-3, "|w| <= this counts as zero for the controller")
    prune_sparsity: float | None = _opt(None, "after training, prune to this sparsity and fine-tune with a fixed mask")
    prune_scope: str = _opt("global", "global or layer: where prune_sparsity applies")
    finetune_epochs: int = _opt(0, "epochs of fine-tuning after pruning")
    finetune_lr: float | None = _opt(None, "fine-tuning learning rate, cosine to 0 (default: lr / 10)")
    finetune_weight_decay: float = _opt(0.0, "weight decay of the sparsified groups while fine-tuning")
    sweep_thresholds: tuple = _opt(SWEEP_THRESHOLDS, "thresholds of the final accuracy-vs-compression sweep")
    # devices and run
    device: str = _opt("auto", "cpu, cuda or auto (cuda if available)")
    bf16: bool = _opt(False, "bf16 autocast for forward and loss (GPU)")
    channels_last: bool = _opt(False, "channels-last memory format for 4-d inputs and the model (GPU)")
    seed: int = _opt(0, "seed of initialization, data order, augmentation and split")
    eval_batch_size: int = _opt(1000, "batch size of evaluation")
    num_workers: int = _opt(4, "DataLoader workers for datasets read from disk (imagefolder)")
    max_steps_per_epoch: int = _opt(0, "stop each epoch after this many steps (0: the whole data; for quick tries)")
    out: str = _opt("runs/train", "run directory ('' in Python: write nothing)")
    resume: bool = _opt(False, "continue the run in out from its checkpoint")
    progress: bool = _opt(True, "progress bars (on a terminal)")
    figures: bool = _opt(True, "write the figures (needs matplotlib)")

    def __post_init__(self):
        _validate(self)

    def to_dict(self) -> dict:
        return _jsonable(asdict(self))


def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def _validate(c: TrainConfig) -> None:
    check.one_of("dataset", c.dataset, DATASETS)
    check.one_of("model", c.model, ("auto", *MODELS))
    check.one_of("method", c.method, method_names())
    check.one_of("lr_schedule", c.lr_schedule, ("cosine", "step", "cyclic", "constant"))
    check.one_of("schedule_per", c.schedule_per, ("epoch", "step"))
    check.one_of("prune_scope", c.prune_scope, ("global", "layer"))
    check.one_of("norm", c.norm, NORM_CHOICES)
    check.one_of("device", c.device, ("auto", "cpu", "cuda"))
    for name in ("epochs", "batch_size", "eval_batch_size"):
        check.integer(name, getattr(c, name))
    for name in ("finetune_epochs", "zero_M_epochs", "num_workers", "max_steps_per_epoch", "seed"):
        check.integer(name, getattr(c, name), 0)
    check.in_half_open("val_fraction", c.val_fraction, 0, 1)
    if not 0 <= c.warmup_epochs <= c.epochs:
        raise ValueError(f"warmup_epochs={c.warmup_epochs} must be in [0, epochs] = [0, {c.epochs}]")
    if c.decay_budget is not None:
        if not (isinstance(c.decay_budget, (int, float)) and 0 <= c.decay_budget < math.inf):
            raise ValueError(f"decay_budget={c.decay_budget!r} must be a finite number >= 0")
        if c.weight_decay is not None:
            raise ValueError(
                f"decay_budget={c.decay_budget} and weight_decay={c.weight_decay}: give only one "
                "(decay_budget sets the weight decay)"
            )
        if c.target_sparsity is not None:
            raise ValueError("target_sparsity sets the weight decay itself: drop decay_budget")
        if "weight_decay" in parse_schedule(c.schedule):
            raise ValueError("decay_budget sets the weight decay: drop weight_decay from schedule")
    if c.grad_clip_norm is not None and not (
        isinstance(c.grad_clip_norm, (int, float)) and 0 <= c.grad_clip_norm < math.inf
    ):
        raise ValueError(f"grad_clip_norm={c.grad_clip_norm!r} must be a finite number >= 0 (0: off)")
    if not 0 <= c.label_smoothing < 1:
        raise ValueError(f"label_smoothing={c.label_smoothing} must be in [0, 1)")
    if c.target_sparsity is not None and not 0 <= c.target_sparsity < 1:
        raise ValueError(f"target_sparsity={c.target_sparsity} must be in [0, 1)")
    if c.prune_sparsity is not None and not 0 <= c.prune_sparsity < 1:
        raise ValueError(f"prune_sparsity={c.prune_sparsity} must be in [0, 1)")
    if c.finetune_epochs and c.prune_sparsity is None:
        raise ValueError(f"finetune_epochs={c.finetune_epochs} needs prune_sparsity (the mask to fine-tune with)")
    if c.prune_sparsity is not None and c.method in _reparameterizing():
        usable = ", ".join(m for m in method_names() if m not in _reparameterizing())
        raise ValueError(
            f"prune_sparsity with method={c.method!r}: pruning a reparameterized model is not "
            f"supported; use one of {usable}"
        )
    if c.resume and not c.out:
        raise ValueError("resume=True needs a run directory (out)")
    parsed = parse_schedule(c.schedule)
    if "lr" in parsed:
        raise ValueError("schedule cannot set lr: use lr_schedule and warmup_epochs")
    if c.target_sparsity is not None and "weight_decay" in parsed:
        raise ValueError("target_sparsity sets the weight decay itself: drop weight_decay from schedule")
    if not c.sweep_thresholds or any(not (t >= 0 and math.isfinite(t)) for t in c.sweep_thresholds):
        raise ValueError(f"sweep_thresholds={c.sweep_thresholds} must be a non-empty list of finite values >= 0")
    for milestone in c.step_milestones:
        if not 0 < milestone <= c.epochs:
            raise ValueError(f"step_milestones value {milestone} must be in (0, epochs] = (0, {c.epochs}]")
    method_options(c)  # checks the NAME=VALUE forms


def grad_clip_norm(c: TrainConfig) -> float:
    """The gradient-norm clip of run ``c``: its own, else its method's default (0: off).

    Example:
        >>> from rewa.experiments.train import TrainConfig, grad_clip_norm
        >>> grad_clip_norm(TrainConfig(method="rewa")), grad_clip_norm(TrainConfig(method="sgd"))
        (1.0, 0.0)
        >>> grad_clip_norm(TrainConfig(method="rewa", grad_clip_norm=0))
        0
    """
    if c.grad_clip_norm is not None:
        return c.grad_clip_norm
    return float(METHOD_LOOP_DEFAULTS.get(c.method, {}).get("grad_clip_norm", 0.0))


def decay_budget(c: TrainConfig) -> float | None:
    """The decay budget of run ``c``: its own; else its method's default when neither
    ``weight_decay`` nor ``target_sparsity`` nor a weight-decay schedule is given; else ``None``.

    Example:
        >>> from rewa.experiments.train import TrainConfig, decay_budget
        >>> decay_budget(TrainConfig(method="rewa")), decay_budget(TrainConfig(method="rewa", weight_decay=1e-3))
        (0.5, None)
        >>> decay_budget(TrainConfig(method="l1-prox"))
    """
    if c.decay_budget is not None:
        return c.decay_budget
    if c.weight_decay is not None or c.target_sparsity is not None or "weight_decay" in parse_schedule(c.schedule):
        return None
    return METHOD_LOOP_DEFAULTS.get(c.method, {}).get("decay_budget")


def lr_sum(c: TrainConfig, lr: float, steps_per_epoch: int) -> float:
    """``sum_t lr_t`` over the training steps of run ``c`` (no fine-tuning), base rate ``lr``.

    Example:
        >>> from rewa.experiments.train import TrainConfig, lr_sum
        >>> lr_sum(TrainConfig(epochs=4, lr_schedule="constant"), 0.1, 10)
        4.0
        >>> round(lr_sum(TrainConfig(epochs=30), 0.2, 17), 3)  # cosine, set per epoch: about lr * steps / 2
        52.7
    """
    if c.schedule_per == "epoch":
        factors = [
            lr_factor(
                c.lr_schedule, e, c.warmup_epochs, c.epochs, milestones=c.step_milestones, gamma=c.step_gamma, epoch=e
            )
            * steps_per_epoch
            for e in range(c.epochs)
        ]
    else:
        total, warmup = c.epochs * steps_per_epoch, c.warmup_epochs * steps_per_epoch
        factors = [
            lr_factor(
                c.lr_schedule,
                t,
                warmup,
                total,
                milestones=c.step_milestones,
                gamma=c.step_gamma,
                epoch=t // steps_per_epoch,
            )
            for t in range(total)
        ]
    return lr * sum(factors)


def _reparameterizing() -> tuple[str, ...]:
    return tuple(m.name for m in list_methods() if m.reparameterizes)


def parse_schedule(entries) -> dict[str, list[tuple[int, float]]]:
    """``("M=0:0,3:2",)`` -> ``{"M": [(0, 0.0), (3, 2.0)]}`` (from epoch 0 value 0, from epoch 3 value 2)."""
    out: dict[str, list[tuple[int, float]]] = {}
    for entry in entries:
        if isinstance(entry, (list, tuple)) and len(entry) == 2 and isinstance(entry[1], (list, tuple)):
            name, points = entry[0], [tuple(p) for p in entry[1]]
        else:
            try:
                name, text = str(entry).split("=", 1)
                points = [(int(e), float(v)) for e, v in (p.split(":") for p in text.split(","))]
            except ValueError:
                raise ValueError(
                    f"schedule entry {entry!r} must look like NAME=EPOCH:VALUE,EPOCH:VALUE (e.g. M=0:0,3:2)"
                ) from None
        epochs = [e for e, _ in points]
        if epochs != sorted(set(epochs)) or epochs[0] != 0:
            raise ValueError(f"schedule entry {entry!r}: epochs must increase and start at 0, got {epochs}")
        out[name.strip()] = [(int(e), float(v)) for e, v in points]
    return out


def method_options(c: TrainConfig) -> dict:
    out = {}
    for item in c.options:
        if isinstance(item, str):
            if "=" not in item:
                raise ValueError(f"option {item!r} must look like NAME=VALUE")
            name, text = item.split("=", 1)
            try:
                value = json.loads(text)
            except json.JSONDecodeError:
                value = text
        else:
            name, value = item
        out[name.strip()] = value
    return out


def resolve_config(preset: str | None = None, file_values: dict | None = None, **overrides) -> TrainConfig:
    """Defaults, then the preset, then a config file's values, then explicit overrides.

    Example:
        >>> from rewa.experiments.train import resolve_config
        >>> c = resolve_config("cifar10-resnet18-rewa", epochs=10)
        >>> c.lr, c.epochs, c.lr_schedule, c.warmup_epochs
        (0.256, 10, 'cosine', 5)
    """
    values: dict = {}
    if preset:
        values.update(_preset(preset))
    values.update(file_values or {})
    values.update(overrides)
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown config field(s) {', '.join(unknown)}; valid: {', '.join(sorted(known))}")
    for name in ("options", "schedule", "step_milestones", "sweep_thresholds"):
        if name in values:
            values[name] = tuple(tuple(v) if isinstance(v, list) else v for v in values[name])
    return TrainConfig(**values)


# -- schedules ------------------------------------------------------------------------------


def lr_factor(kind: str, t: float, warmup: float, total: float, *, milestones=(), gamma=0.1, epoch: int = 0) -> float:
    """The learning-rate multiplier at ``t`` (epochs or steps) of ``total``, warm-up ``warmup``.

    Example:
        >>> from rewa.experiments.train import lr_factor
        >>> [round(lr_factor("cosine", e, 5, 100), 4) for e in (0, 4, 5, 52.5, 100)]
        [0.2, 1.0, 1.0, 0.5, 0.0]
        >>> round(lr_factor("cyclic", 1, 2, 88), 5), lr_factor("cyclic", 2, 2, 88), lr_factor("cyclic", 88, 2, 88)
        (0.50005, 1.0, 0.0)
    """
    if kind == "cyclic":
        return float(np.interp(t, [0, warmup, total], [1e-4, 1.0, 0.0]))
    if t < warmup:
        return (t + 1) / warmup
    if kind == "cosine":
        return 0.5 * (1 + math.cos(math.pi * (t - warmup) / max(total - warmup, 1e-12)))
    if kind == "step":
        return gamma ** sum(1 for m in milestones if m <= epoch)
    return 1.0
