"""What changes during a run: the learning rate per epoch or step, scheduled hyperparameters.

The formulas of the learning-rate factor are :func:`rewa.experiments.train_config.lr_factor`.
"""

from __future__ import annotations

from .config import lr_factor
from .plan import RunPlan

__all__ = ["set_lr", "set_epoch_hyperparameters", "scheduled_value"]


def scheduled_value(points, epoch: int) -> float:
    return [v for e, v in points if e <= epoch][-1]


def set_epoch_hyperparameters(plan: RunPlan, epoch: int, sparse_groups: list[dict]) -> None:
    """The scheduled hyperparameters of epoch ``epoch`` on the sparsified groups (and the
    fine-tuning weight decay once training is over)."""
    finetuning = epoch >= plan.config.epochs
    for group in sparse_groups:
        for name, points in plan.hyper_schedule.items():
            group[name] = scheduled_value(points, epoch)
        if finetuning and "weight_decay" in group:
            group["weight_decay"] = plan.config.finetune_weight_decay


def set_lr(plan: RunPlan, opt, epoch: int, step: int, base_lrs: list[float]) -> None:
    """Each group's learning rate at step ``step`` of epoch ``epoch``: ``base * f(t)``."""
    c, steps = plan.config, plan.steps_per_epoch
    if epoch >= c.epochs:  # fine-tuning: cosine from finetune_lr to 0 (set whenever finetune_epochs > 0)
        assert plan.finetune_lr is not None
        t = (epoch - c.epochs) + (step / steps if c.schedule_per == "step" else 0.0)
        factor = lr_factor("cosine", t, 0, c.finetune_epochs)
        for group in opt.param_groups:
            group["lr"] = plan.finetune_lr * factor
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
