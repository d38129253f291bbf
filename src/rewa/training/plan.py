"""A :class:`TrainConfig` resolved once, with the data's facts, into the :class:`RunPlan` that runs.

The plan holds every value the run uses: the method's hyperparameters after the registry's
defaults, the training defaults, the options and the decay budget; the gradient clip; the model
by name; the schedules parsed; the fine-tuning rate. The loop reads the plan, ``config.json``
records it (:meth:`RunPlan.record`), and ``--resume`` compares plans, so a preset and the
explicit options it stands for are the same run.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from ..optim.registry import list_methods
from ..recipe import budget_weight_decay
from .config import (
    METHOD_DEFAULTS,
    SHORTCUT_HYPERPARAMETERS,
    TrainConfig,
    decay_budget,
    grad_clip_norm,
    lr_sum,
    method_options,
    parse_schedule,
)

__all__ = ["DataFacts", "RunPlan", "resolve_plan", "RECORD_FORMAT", "RESUME_FREE_FIELDS"]

RECORD_FORMAT = "rewa-train-run"
# fields that may differ between a run and its resumption: how it is shown, and where the
# directory is now (a moved folder or another spelling of its path is the same run)
RESUME_FREE_FIELDS = ("resume", "progress", "figures", "out")


@dataclass(frozen=True)
class DataFacts:
    """What the plan needs to know of the data: read from the splits before any model exists."""

    dataset: str
    input_shape: tuple[int, ...]
    num_classes: int
    train_samples: int
    steps_per_epoch: int
    processes: int = 1


@dataclass(frozen=True)
class RunPlan:
    config: TrainConfig
    data: DataFacts
    model: str  # a name of make_model, or "module <ClassName>" for a module passed in
    hyperparameters: dict  # the method's, complete
    grad_clip_norm: float  # 0: off
    decay_budget: float | None
    finetune_lr: float | None
    hyper_schedule: dict = field(default_factory=dict)

    @property
    def total_epochs(self) -> int:
        return self.config.epochs + self.config.finetune_epochs

    @property
    def steps_per_epoch(self) -> int:
        return self.data.steps_per_epoch

    def values(self) -> dict:
        """Every config field's value as the run uses it (the method's defaults filled in)."""
        out = self.config.to_dict()
        for name in SHORTCUT_HYPERPARAMETERS:
            out[name] = self.hyperparameters.get(name)
        out.update(
            model=self.model,
            num_classes=self.data.num_classes,
            grad_clip_norm=self.grad_clip_norm,
            decay_budget=self.decay_budget,
            finetune_lr=self.finetune_lr,
            options=sorted(f"{k}={v!r}" for k, v in method_options(self.config).items()),
        )
        return out

    def record(self) -> dict:
        """``config.json``: what was asked (fields given a value) and what runs; no nulls."""
        asked = {k: v for k, v in self.config.to_dict().items() if v is not None}
        resolved = {k: v for k, v in self.values().items() if v is not None}
        return {
            "format": RECORD_FORMAT,
            "version": 1,
            "config": asked,
            "plan": {
                **resolved,
                "hyperparameters": {k: v for k, v in sorted(self.hyperparameters.items()) if v is not None},
                "hyper_schedule": {k: [list(p) for p in v] for k, v in self.hyper_schedule.items()},
                "data": {
                    "dataset": self.data.dataset,
                    "input_shape": list(self.data.input_shape),
                    "train_samples": self.data.train_samples,
                    "steps_per_epoch": self.data.steps_per_epoch,
                    "processes": self.data.processes,
                },
            },
        }

    def differences(self, saved_plan: dict, names=None) -> list[str]:
        """``name=value (run: saved)`` for each compared field whose resolved value differs from
        ``saved_plan`` (a :meth:`record`'s ``"plan"``); ``names``: the fields to compare (all)."""
        mine = {k: v for k, v in self.record()["plan"].items() if k not in ("hyper_schedule", "data")}
        keys = [k for k in (names if names is not None else set(mine) | set(saved_plan)) if k not in RESUME_FREE_FIELDS]
        if names is None:
            keys = [k for k in keys if k in TrainConfig.__dataclass_fields__ or k == "hyperparameters"]
        out = []
        for k in sorted(keys):
            if k == "options":  # the hyperparameters the options set, as the run resolved them
                mine_hp, saved_hp = self.hyperparameters, saved_plan.get("hyperparameters", {})
                out += [
                    f"{n}={mine_hp[n]!r} (run: {saved_hp.get(n)!r})"
                    for n in sorted(method_options(self.config))
                    if saved_hp.get(n) != mine_hp.get(n)
                ]
            elif k not in saved_plan and k in _FIELD_DEFAULTS:
                # a field newer than the run: the run had its default's behaviour
                if not _same(mine.get(k), _FIELD_DEFAULTS[k]):
                    out.append(f"{k}={mine.get(k)!r} (run: not recorded, i.e. the default {_FIELD_DEFAULTS[k]!r})")
            elif not _same(mine.get(k), saved_plan.get(k)):
                out.append(f"{k}={mine.get(k)!r} (run: {saved_plan.get(k)!r})")
        return out


_FIELD_DEFAULTS = {f.name: f.default for f in dataclasses.fields(TrainConfig) if f.default is not dataclasses.MISSING}


def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return set(a) == set(b) and all(_same(a[k], b[k]) for k in a)
    return a == b


def method_hyperparameters(c: TrainConfig) -> dict:
    """The method's hyperparameters: registry defaults < training defaults < shortcuts < options."""
    valid = next(m for m in list_methods() if m.name == c.method).hyperparameters
    hp = dict(valid)
    hp.update({k: v for k, v in METHOD_DEFAULTS.get(c.method, {}).items() if k in valid})
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


def model_name(c: TrainConfig, dataset: str) -> str:
    if c.model != "auto":
        return c.model
    if dataset in ("cifar10", "cifar100"):
        return "resnet18-imagenet" if c.transform == "imagenet" else "resnet18"
    if dataset == "imagefolder":
        return "resnet50"
    if dataset == "text":
        return "gpt"
    return "mlp"


def hyper_schedule(c: TrainConfig, hp: dict) -> dict[str, list[tuple[int, float]]]:
    schedule = parse_schedule(c.schedule)
    if c.zero_M_epochs:
        if "M" not in hp:
            raise ValueError(f"zero_M_epochs={c.zero_M_epochs}: method {c.method!r} has no M")
        if "M" in schedule:
            raise ValueError("zero_M_epochs and a schedule for M: give only one")
        schedule["M"] = [(0, 0.0), (c.zero_M_epochs, hp["M"])]
    for name in schedule:
        if name not in hp:
            raise ValueError(
                f"schedule sets {name!r}, which the sparsified param groups of method {c.method!r} "
                f"do not have; they have: {', '.join(sorted(hp))}"
            )
    return schedule


def resolve_plan(c: TrainConfig, data: DataFacts, *, model: str | None = None) -> RunPlan:
    """The plan of run ``c`` on data with ``data``'s facts; ``model`` names a module passed in."""
    hp = method_hyperparameters(c)
    budget = decay_budget(c)
    if budget is not None:  # the budget's total shrink, capped: a short run keeps the objective's strength
        hp["weight_decay"] = budget_weight_decay(budget, lr_sum(c, hp["lr"], data.steps_per_epoch))
    finetune_lr = None
    if c.finetune_epochs:
        finetune_lr = c.finetune_lr if c.finetune_lr is not None else hp["lr"] / 10
    return RunPlan(
        config=c,
        data=data,
        model=model or model_name(c, data.dataset),
        hyperparameters=hp,
        grad_clip_norm=float(grad_clip_norm(c)),
        decay_budget=budget,
        finetune_lr=finetune_lr,
        hyper_schedule=hyper_schedule(c, hp),
    )
