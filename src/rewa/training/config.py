"""What a training run is asked to do: :class:`TrainConfig`, its checks, the per-method recipe
defaults (learning rate, clipping, decay budget), ``rewa train``'s option forms, and the
learning-rate schedules. :mod:`rewa.training.loop` runs it."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import asdict, dataclass, field

import numpy as np

from .. import _check as check
from ..experiments.data import DATASETS
from ..experiments.models import MODELS
from ..experiments.presets import preset as _preset
from ..optim.registry import list_methods, method_names
from ..param_groups import NORM_CHOICES
from ..recipe import GRAD_CLIP_NORM, MAX_WEIGHT_DECAY, OPTIMIZER_DEFAULTS, WEIGHT_DECAY
from ..sparsity.measure import SWEEP_THRESHOLDS

__all__ = [
    "STANDARD_THRESHOLDS",
    "SWEEP_THRESHOLDS",
    "RUN_FILES",
    "OPTIONAL_RUN_FILES",
    "METHOD_DEFAULTS",
    "METHOD_LOOP_DEFAULTS",
    "SHORTCUT_HYPERPARAMETERS",
    "TrainConfig",
    "decay_budget",
    "grad_clip_norm",
    "lr_factor",
    "lr_sum",
    "method_options",
    "model_options",
    "parse_model_options",
    "parse_schedule",
    "resolve_config",
]

STANDARD_THRESHOLDS = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2)
RUN_FILES = (
    "config.json",
    "metrics.jsonl",
    "sweep.json",
    "summary.json",
    "checkpoint.pt",
    "training_curves.png",
    "accuracy_vs_compression.png",
)
# written by some runs only (text: the character vocabulary)
OPTIONAL_RUN_FILES = ("vocab.json",)

_SGD_LIKE = dict(lr=0.05, momentum=0.9)
_ADAM_LIKE = dict(lr=1e-3)
# Training defaults per method, over the registry's (which are the optimizers' own defaults). The
# sparsity strengths (and learning rates) were chosen on the validation split of digits (MLP, 30
# epochs, seeds 0-2): the largest compression at |w| <= 1e-2 whose pruned validation accuracy is
# within 2 points of dense SGD's. hadamard, spred and lp-subgradient reach no 10x there within
# those 2 points (their chosen points give 4x, 6x and 4x); powerprop has no regularizer
# (sparsity needs pruning); sgd and adamw are the dense references.
METHOD_DEFAULTS: dict[str, dict] = {
    "sgd": dict(_SGD_LIKE, weight_decay=1e-4),
    "adamw": dict(_ADAM_LIKE),
    # ReWA's recommended recipe (rewa.recipe, its one home)
    "rewa": dict(OPTIMIZER_DEFAULTS, weight_decay=WEIGHT_DECAY),
    "rewa-adamw": dict(lr=0.03, K=9, M=2, eps=0.0, weight_decay=0.1),
    "pwd-sgd": dict(_SGD_LIKE, lr=0.1, lambda_p=5e-3),
    "pwd-adamw": dict(lr=0.01, lambda_p=0.1),
    "l1-prox": dict(_SGD_LIKE, lr=0.1, strength=1.5e-2),
    "l1-subgradient": dict(_SGD_LIKE, lr=0.1, strength=1.5e-3),
    "lp-subgradient": dict(_SGD_LIKE, lr=0.1, strength=1e-3),
    "lp-clipped": dict(_SGD_LIKE, lr=0.1, strength=1e-3),
    "hadamard": dict(_SGD_LIKE, lr=0.3, weight_decay=1e-3),
    "hadamard-signed": dict(_SGD_LIKE, lr=0.2, weight_decay=3e-3),
    "spred": dict(_SGD_LIKE, lr=0.5, weight_decay=1e-3),
    "powerprop": dict(_SGD_LIKE),
}
# Training-loop defaults per method (TrainConfig fields left at None): ReWA's recommended recipe
# clips the gradient norm (without it ReWA diverges at learning rates SGD trains with).
METHOD_LOOP_DEFAULTS: dict[str, dict] = {"rewa": dict(grad_clip_norm=GRAD_CLIP_NORM)}
SHORTCUT_HYPERPARAMETERS = ("lr", "momentum", "weight_decay", "K", "M", "eps")


def _opt(default, help: str, **kw):
    return field(default=default, metadata={"help": help, **kw})


@dataclass(frozen=True)
class TrainConfig:
    """Every setting of one training run (each one is a ``rewa train`` option)."""

    # data and model
    dataset: str = _opt("digits", f"dataset by name: {', '.join(DATASETS)} (ignored when data is passed in Python)")
    data_dir: str = _opt(
        "",
        "directory of cifar10 / cifar100 (python-pickle files) or imagefolder (train/, val/); "
        "text: a UTF-8 text file (default: Python's pydoc_data.topics)",
    )
    val_fraction: float = _opt(
        0.1,
        "fraction of the training data held out for validation (0: none; text has its own contiguous "
        "90/5/5 train/validation/test parts)",
    )
    context: int = _opt(128, "text: tokens (characters) per sample, the GPT's context")
    model: str = _opt(
        "auto",
        f"one of {', '.join(MODELS)}; auto: mlp for digits/mnist1d, resnet18 for CIFAR (resnet18-imagenet with "
        "transform=imagenet), resnet50 for "
        "imagefolder, gpt for text",
    )
    model_options: tuple = _opt(
        (),
        "the model's sizes as NAME=VALUE (gpt: layers, heads, width, mlp_ratio, dropout, bias, tie, "
        "sparsify, e.g. layers=2 width=64 sparsify=attention,mlp)",
    )
    num_classes: int | None = _opt(
        None,
        "number of classes (default: the dataset's, or 1 + the largest training label, every class "
        "needing a training example)",
    )
    augment: bool = _opt(
        True,
        "training augmentation on cifar10/100: random crop with padding 4 and horizontal flip; with "
        "transform=imagenet, RandomResizedCrop and horizontal flip",
    )
    transform: str = _opt(
        "native",
        "inputs of cifar10/100: native (32 pixels) or imagenet (the paper code's: 224 pixels, training "
        "RandomResizedCrop(224) + flip, evaluation Resize(256) + CenterCrop(224), ImageNet normalization)",
    )
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
        f"set the weight decay of the sparsified weights to min({MAX_WEIGHT_DECAY:g}, decay_budget / "
        "(sum of the learning rates of the training steps)): the total "
        "log-shrink an unused (latent) weight gets from the decay alone, so "
        "one value fits any dataset size and epochs, capped so that short runs keep "
        "the regularization strength; the weight decay (the objective's lambda) then changes with "
        "the run's length (rewa.recipe.budget_weight_decay; default: off, weight_decay applies)",
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
    dist_timeout_s: float = _opt(
        300.0, "seconds a process waits for its peers (torchrun) before the run stops with an error naming them"
    )
    eval_batch_size: int = _opt(1000, "batch size of evaluation")
    num_workers: int = _opt(4, "DataLoader workers for datasets read from disk (imagefolder)")
    max_steps_per_epoch: int = _opt(0, "stop each epoch after this many steps (0: the whole data; for quick tries)")
    out: str = _opt("runs/train", "run directory ('' in Python: write nothing)")
    resume: bool = _opt(False, "continue the run in out from its checkpoint")
    progress: bool = _opt(True, "progress bars (on a terminal)")
    figures: bool = _opt(True, "write the figures (needs matplotlib)")

    def __post_init__(self):
        for name in _TUPLE_FIELDS:  # lists (a config file's, JSON's) become tuples: equal after a round trip
            value = getattr(self, name)
            if isinstance(value, (list, tuple)):
                object.__setattr__(self, name, _frozen(value))
        _validate(self)

    def to_dict(self) -> dict:
        return _jsonable(asdict(self))


def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


_TUPLE_FIELDS = ("options", "model_options", "schedule", "step_milestones", "sweep_thresholds")
_BOOL_FIELDS = ("augment", "bf16", "channels_last", "resume", "progress", "figures")
_STR_CHOICES = {
    "dataset": tuple(DATASETS),
    "model": ("auto", *MODELS),
    "method": None,  # the registry's names, read when checked (methods may be registered later)
    "lr_schedule": ("cosine", "step", "cyclic", "constant"),
    "schedule_per": ("epoch", "step"),
    "prune_scope": ("global", "layer"),
    "norm": tuple(NORM_CHOICES),
    "transform": ("native", "imagenet"),
    "device": ("auto", "cpu", "cuda"),
}
# lowest value of each integer field
_INT_FIELDS = {
    "context": 1,
    "epochs": 1,
    "batch_size": 1,
    "eval_batch_size": 1,
    "finetune_epochs": 0,
    "zero_M_epochs": 0,
    "num_workers": 0,
    "max_steps_per_epoch": 0,
    "seed": 0,
}
# float fields: (low, high, low_open, high_open, may be None); -inf/inf: no bound (but finite)
_INF = math.inf
_FLOAT_FIELDS = {
    "val_fraction": (0, 1, False, True, False),
    "lr": (-_INF, _INF, True, True, True),  # the method checks its own ranges (at build)
    "momentum": (-_INF, _INF, True, True, True),
    "weight_decay": (-_INF, _INF, True, True, True),
    "K": (-_INF, _INF, True, True, True),
    "M": (-_INF, _INF, True, True, True),
    "eps": (-_INF, _INF, True, True, True),
    "label_smoothing": (0, 1, False, True, False),
    "decay_budget": (0, _INF, False, True, True),
    "grad_clip_norm": (0, _INF, False, True, True),
    "warmup_epochs": (0, _INF, False, True, False),  # and <= epochs, below
    "step_gamma": (0, _INF, True, True, False),
    "target_sparsity": (0, 1, False, True, True),
    "target_threshold": (0, _INF, True, True, False),
    "prune_sparsity": (0, 1, False, True, True),
    "finetune_lr": (0, _INF, True, True, True),
    "finetune_weight_decay": (0, _INF, False, True, False),
    "dist_timeout_s": (0, _INF, True, True, False),
}


def _frozen(value):
    """Lists (at any depth) as tuples; a bare string stays one (refused by the checks)."""
    if isinstance(value, (list, tuple)):
        return tuple(_frozen(v) for v in value)
    return value


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_number(name: str, value, low=-_INF, high=_INF, low_open=True, high_open=True, optional=False) -> None:
    if value is None and optional:
        return
    if low == -_INF and high == _INF:
        allowed = "a finite number"
    elif high == _INF:
        allowed = f"a finite number {'>' if low_open else '>='} {low:g}"
    else:
        allowed = f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    if not _is_number(value):
        shown = "a number" if allowed == "a finite number" else allowed
        raise ValueError(f"{name}={value!r} must be {shown}, got {type(value).__name__}")
    above = value > low if low_open else value >= low
    below = value < high if high_open else value <= high
    if not (math.isfinite(value) and above and below):
        raise ValueError(f"{name}={value!r} must be {allowed}")


def _check_types(c: TrainConfig) -> None:
    """Each field's type and range, field by field; ValueError naming the field and the value."""
    for name in _BOOL_FIELDS:
        value = getattr(c, name)
        if not isinstance(value, bool):
            raise ValueError(f"{name}={value!r} must be true or false, got {type(value).__name__}")
    for name in ("data_dir", "out", *_STR_CHOICES):
        value = getattr(c, name)
        if not isinstance(value, str):
            raise ValueError(f"{name}={value!r} must be a string, got {type(value).__name__}")
        allowed = method_names() if name == "method" else _STR_CHOICES.get(name)
        if allowed is not None:
            check.one_of(name, value, allowed)
    if c.num_classes is not None:  # optional: the data's classes otherwise
        if isinstance(c.num_classes, bool) or not isinstance(c.num_classes, int):
            raise ValueError(
                f"num_classes={c.num_classes!r} must be an integer >= 1, got {type(c.num_classes).__name__}"
            )
        check.integer("num_classes", c.num_classes, 1)
    for name, low in _INT_FIELDS.items():
        value = getattr(c, name)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{name}={value!r} must be an integer >= {low}, got {type(value).__name__}")
        check.integer(name, value, low)
    for name, (f_low, f_high, low_open, high_open, optional) in _FLOAT_FIELDS.items():
        _check_number(name, getattr(c, name), f_low, f_high, low_open, high_open, optional)
    for name in _TUPLE_FIELDS:
        value = getattr(c, name)
        if not isinstance(value, tuple):
            raise ValueError(f"{name}={value!r} must be a list, got {type(value).__name__}")
    for i, t in enumerate(c.step_milestones):
        if isinstance(t, bool) or not isinstance(t, int):
            raise ValueError(f"step_milestones[{i}]={t!r} must be an integer epoch, got {type(t).__name__}")
    for i, t in enumerate(c.sweep_thresholds):
        _check_number(f"sweep_thresholds[{i}]", t, 0, _INF, False)
    for i, entry in enumerate(c.schedule):
        pair = isinstance(entry, tuple) and len(entry) == 2 and isinstance(entry[0], str)
        if not (isinstance(entry, str) or pair):
            raise ValueError(
                f"schedule[{i}]={entry!r} must be a string NAME=EPOCH:VALUE,EPOCH:VALUE "
                "or a pair (NAME, [(EPOCH, VALUE), ...])"
            )
    for field_name in ("options", "model_options"):
        for i, item in enumerate(getattr(c, field_name)):
            pair = isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str)
            if not (isinstance(item, str) or pair):
                raise ValueError(f"{field_name}[{i}]={item!r} must be a string NAME=VALUE or a pair (NAME, VALUE)")


def _validate(c: TrainConfig) -> None:
    _check_types(c)
    model_options(c)  # the NAME=VALUE forms, and the model's own checks
    if not c.warmup_epochs <= c.epochs:
        raise ValueError(f"warmup_epochs={c.warmup_epochs} must be in [0, epochs] = [0, {c.epochs}]")
    valid = _method_info(c.method).hyperparameters
    for name in SHORTCUT_HYPERPARAMETERS:
        value = getattr(c, name)
        if value is not None and name not in valid:
            raise ValueError(
                f"{name}={value} is not a hyperparameter of method {c.method!r}; it has: {', '.join(valid)}"
            )
    options = method_options(c)  # checks the NAME=VALUE forms, repeats and shortcut conflicts
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ValueError(
            f"option(s) {', '.join(unknown)} are not hyperparameters of method {c.method!r}; it has: {', '.join(valid)}"
        )
    if c.decay_budget is not None:
        if c.weight_decay is not None:
            raise ValueError(
                f"decay_budget={c.decay_budget} and weight_decay={c.weight_decay}: give only one "
                "(decay_budget sets the weight decay)"
            )
        if "weight_decay" in options:
            raise ValueError(
                f"decay_budget={c.decay_budget} and options weight_decay={options['weight_decay']!r}: give only one "
                "(decay_budget sets the weight decay)"
            )
        if c.target_sparsity is not None:
            raise ValueError("target_sparsity sets the weight decay itself: drop decay_budget")
        if "weight_decay" in parse_schedule(c.schedule):
            raise ValueError("decay_budget sets the weight decay: drop weight_decay from schedule")
        if "weight_decay" not in valid:
            raise ValueError(f"decay_budget sets the weight decay, which method {c.method!r} does not have")
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
    if c.zero_M_epochs:
        if "M" not in valid:
            raise ValueError(f"zero_M_epochs={c.zero_M_epochs}: method {c.method!r} has no M")
        if "M" in parsed:
            raise ValueError("zero_M_epochs and a schedule for M: give only one")
    if not c.sweep_thresholds:
        raise ValueError(f"sweep_thresholds={c.sweep_thresholds} must be a non-empty list of finite values >= 0")
    for milestone in c.step_milestones:
        if not 0 < milestone <= c.epochs:
            raise ValueError(f"step_milestones value {milestone} must be in (0, epochs] = (0, {c.epochs}]")
    _check_hyperparameters(c, valid, options, parsed)


def _check_hyperparameters(c: TrainConfig, valid, options: dict, schedule: dict) -> None:
    """Build the method's optimizer on a one-layer model, so that its own range checks (lr >= 0,
    M <= K - 1, Adam's betas, ...) run now, before any data is loaded, for the hyperparameters
    as given and for each scheduled value."""
    import warnings

    from torch import nn

    from ..optim import SparsityConfigWarning
    from ..optim.registry import create_optimizer

    hp = {k: v for k, v in METHOD_DEFAULTS.get(c.method, {}).items() if k in valid}
    hp.update({k: getattr(c, k) for k in SHORTCUT_HYPERPARAMETERS if getattr(c, k) is not None})
    hp.update(options)
    trials: list[tuple[str | None, dict]] = [(None, hp)]
    for name, points in schedule.items():
        if name in valid:
            trials += [(f"schedule {name}={value:g}", {**hp, name: value}) for _, value in points]
    for what, values in trials:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", SparsityConfigWarning)
                opt = create_optimizer(c.method, nn.Linear(2, 2), **values)
        except (TypeError, ValueError) as error:
            where = f"at {what}" if what else "from its defaults, the shortcut fields and options"
            raise ValueError(f"{error} (method {c.method!r}, {where})") from None
        if what is None:
            have = set(opt.param_groups[0]) - {"params"}
            for name in schedule:
                if name not in have:
                    raise ValueError(
                        f"schedule sets {name!r}, which the sparsified param groups of method {c.method!r} "
                        f"do not have; they have: {', '.join(sorted(have))}"
                    )


def _method_info(name: str):
    return next(m for m in list_methods() if m.name == name)


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
    """The decay budget of run ``c``: its own; else its method's default (no method has one
    today) when neither ``weight_decay`` nor ``target_sparsity`` nor a weight-decay schedule is
    given; else ``None``.

    Example:
        >>> from rewa.training.config import TrainConfig, decay_budget
        >>> decay_budget(TrainConfig(method="rewa", decay_budget=0.5)), decay_budget(TrainConfig(method="rewa"))
        (0.5, None)
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
        form = f"schedule entry {entry!r} must look like NAME=EPOCH:VALUE,EPOCH:VALUE (e.g. M=0:0,3:2)"
        if isinstance(entry, (list, tuple)) and len(entry) == 2 and isinstance(entry[1], (list, tuple)):
            name, points = entry[0], entry[1]
            if not isinstance(name, str) or not all(
                isinstance(p, (list, tuple))
                and len(p) == 2
                and isinstance(p[0], int)
                and not isinstance(p[0], bool)
                and _is_number(p[1])
                for p in points
            ):
                raise ValueError(f"schedule entry {entry!r} must be a pair (NAME, [(EPOCH, VALUE), ...])")
        elif isinstance(entry, str):
            try:
                name, text = entry.split("=", 1)
                points = [(int(e), float(v)) for e, v in (p.split(":") for p in text.split(","))]
            except ValueError:
                raise ValueError(form) from None
        else:
            raise ValueError(form)
        name = name.strip()
        if not name.isidentifier():
            raise ValueError(f"schedule entry {entry!r}: {name!r} is not a hyperparameter name")
        if name in out:
            raise ValueError(f"schedule sets {name!r} twice: give one entry per hyperparameter")
        epochs = [e for e, _ in points]
        if not epochs or epochs != sorted(set(epochs)) or epochs[0] != 0:
            raise ValueError(f"schedule entry {entry!r}: epochs must increase and start at 0, got {epochs}")
        bad = [v for _, v in points if not math.isfinite(v)]
        if bad:
            raise ValueError(f"schedule entry {entry!r}: value {bad[0]} must be finite")
        out[name] = [(int(e), float(v)) for e, v in points]
    return out


def _check_option_value(name: str, value, shown=None) -> None:
    """A number (finite), bool, string, None or a list of those (e.g. Adam's betas)."""
    shown = name if shown is None else shown
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _check_option_value(name, v, f"{shown}[{i}]")
    elif _is_number(value):
        if not math.isfinite(value):
            raise ValueError(f"option {shown}={value!r} must be finite")
    elif not (value is None or isinstance(value, (bool, str))):
        raise ValueError(
            f"option {shown}={value!r} must be a number, true/false, a string or a list of those, "
            f"got {type(value).__name__}"
        )


def method_options(c: TrainConfig) -> dict:
    """``c.options`` as ``{name: value}``: the ``NAME=VALUE`` forms' values read as JSON (else a
    string). Refused: a malformed item, a name given twice, a name also given as a shortcut
    field (``K=3`` with ``options=("K=5",)``: which one would train is not clear), a non-finite
    number.

    Example:
        >>> from rewa.experiments.train import TrainConfig, method_options
        >>> method_options(TrainConfig(method="l1-prox", options=("strength=1e-5",)))
        {'strength': 1e-05}
    """
    out: dict = {}
    for item in c.options:
        name, value = _name_value(item, "option")
        if not name.isidentifier():
            raise ValueError(f"option {item!r}: {name!r} is not a hyperparameter name")
        _check_option_value(name, value)
        if name in out:
            raise ValueError(f"option {name} given twice in options ({out[name]!r} and {value!r}): give it once")
        if name in SHORTCUT_HYPERPARAMETERS and getattr(c, name) is not None:
            raise ValueError(
                f"{name}={getattr(c, name)!r} and options {name}={value!r}: give {name} once "
                f"(as --{name.replace('_', '-')} or in options)"
            )
        out[name] = value
    return out


def _name_value(item, kind: str) -> tuple[str, object]:
    """One ``NAME=VALUE`` string (the value read as JSON, else kept as a string) or a
    ``(NAME, VALUE)`` pair, as ``(name, value)``; ``kind`` names the field in errors."""
    if isinstance(item, str):
        if "=" not in item:
            raise ValueError(f"{kind} {item!r} must look like NAME=VALUE")
        name, text = item.split("=", 1)
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text
    elif isinstance(item, (list, tuple)) and len(item) == 2 and isinstance(item[0], str):
        name, value = item
    else:
        raise ValueError(f"{kind} {item!r} must be a string NAME=VALUE or a pair (NAME, VALUE)")
    return name.strip(), value


def model_options(c: TrainConfig) -> dict:
    """``c.model_options`` as ``{name: value}`` (values read as JSON, else a string), checked
    against the model: only ``gpt`` (also ``auto`` on ``text``) takes options.

    Example:
        >>> from rewa.experiments.train import TrainConfig
        >>> from rewa.training.config import model_options
        >>> model_options(TrainConfig(dataset="text", model_options=("layers=2", "sparsify=attention,mlp")))
        {'layers': 2, 'sparsify': 'attention,mlp'}
    """
    out = parse_model_options(c.model_options)
    model = c.model if c.model != "auto" else ("gpt" if c.dataset == "text" else "auto")
    if out and model != "gpt":
        raise ValueError(
            f"model_options {', '.join(sorted(out))} given, but model={c.model!r} takes no options (only gpt does)"
        )
    if out:
        from ..experiments.gpt import gpt_options

        gpt_options(out)
    return out


def parse_model_options(items) -> dict:
    """``("layers=2", ("tie", False))`` -> ``{"layers": 2, "tie": False}`` (values read as JSON,
    else a string); a malformed item or a name given twice is refused."""
    out: dict = {}
    for item in items:
        name, value = _name_value(item, "model option")
        if name in out:
            raise ValueError(f"model option {name} given twice ({out[name]!r} and {value!r}): give it once")
        _check_option_value(name, value)
        out[name] = value
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
    return TrainConfig(**values)  # lists become tuples there; a bare string where a list belongs is refused


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
