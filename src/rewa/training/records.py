"""What a run records: one line per epoch, the threshold sweep, the summary.

Each takes the trained model and the plan and returns plain records (JSON-ready); the files are
written by :mod:`rewa.training.loop`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .. import _json
from ..sparsity import sparsity_report, threshold_sweep
from .batches import accuracy, loss_and_accuracy
from .config import STANDARD_THRESHOLDS
from .plan import RunPlan

__all__ = ["Evaluation", "epoch_record", "sweep_records", "summary_record", "plain_copy"]


@dataclass
class Evaluation:
    """What evaluating the model needs: the model, a factory of a plain twin, the splits."""

    plan: RunPlan
    model: nn.Module
    factory: Callable[[], nn.Module]  # a fresh model of the same architecture
    val: object
    test: object
    device: torch.device
    autocast: Callable[[], AbstractContextManager]
    positions: int | None = None  # a per-position task (language model): labels (N, T)

    def accuracy(self, model: nn.Module, split) -> float | None:
        if split is None:
            return None
        return accuracy(model, split, self.plan.config, self.device, self.autocast)

    def scores(self, model: nn.Module, split, prefix: str) -> dict:
        """``{prefix}_accuracy``, and for a language model ``{prefix}_loss`` (mean cross-entropy
        per token, nats) and ``{prefix}_perplexity`` (its exp); ``None`` without the split."""
        if self.positions is None:
            return {f"{prefix}_accuracy": self.accuracy(model, split)}
        if split is None:
            return {f"{prefix}_accuracy": None, f"{prefix}_loss": None, f"{prefix}_perplexity": None}
        loss, acc = loss_and_accuracy(model, split, self.plan.config, self.device, self.autocast)
        return {f"{prefix}_accuracy": acc, f"{prefix}_loss": loss, f"{prefix}_perplexity": perplexity(loss)}

    def plain(self) -> nn.Module:
        return plain_copy(self.model, self.factory)


def perplexity(loss: float | None) -> float | None:
    """``exp(loss)``, inf where it overflows (written as null in JSON)."""
    if loss is None:
        return None
    return math.exp(loss) if loss < 700 else math.inf


def is_parametrized(model: nn.Module) -> bool:
    return any(torch.nn.utils.parametrize.is_parametrized(m) for m in model.modules())


def plain_copy(model: nn.Module, factory) -> nn.Module:
    """The model itself, or for reparameterized methods a fresh ``factory()`` model holding the
    effective weights (``rewa.collapse`` on a deep copy would strip the parametrization property
    from the class the copy shares with the model in training)."""
    if not is_parametrized(model):
        return model
    twin = factory()
    with torch.no_grad():
        state = {}
        for name in twin.state_dict():
            path, attr = name.rpartition(".")[::2]
            state[name] = getattr(model.get_submodule(path) if path else model, attr).detach().clone()
    twin.load_state_dict(state)
    return twin.to(next(model.parameters()).device)


def _split_accuracy(ev: Evaluation, model: nn.Module, *, split, losses: list | None = None) -> float:
    if losses is None:
        return accuracy(model, split, ev.plan.config, ev.device, ev.autocast)
    loss, acc = loss_and_accuracy(model, split, ev.plan.config, ev.device, ev.autocast)
    losses.append(loss)
    return acc


def epoch_record(
    ev: Evaluation,
    *,
    opt,
    sparse_groups,
    epoch: int,
    loss: float,
    train_acc: float,
    train_seconds: float,
    wall_seconds: float,
    train_labels: int | None = None,
) -> dict:
    """One line of ``metrics.jsonl``: loss, accuracies, sparsity, the scheduled values."""
    plain = ev.plain()
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
    language = {}
    if ev.positions is not None:  # what a language modeller reads: perplexity, tokens per second
        language = {
            "train_perplexity": perplexity(loss),
            "tokens_per_second": train_labels / train_seconds if train_labels and train_seconds > 0 else None,
        }
    return {
        "epoch": epoch + 1,
        "stage": "finetune" if epoch >= ev.plan.config.epochs else "train",
        "loss": loss,
        "train_accuracy": train_acc,
        **ev.scores(ev.model, ev.val, "val"),
        **ev.scores(ev.model, ev.test, "test"),
        **language,
        "sparsity": sparsity,
        "compression": compression,
        "lr": group["lr"],
        **scheduled,
        "epoch_seconds": train_seconds,
        "wall_seconds": wall_seconds,
    }


def sweep_records(ev: Evaluation) -> list[dict]:
    """Accuracy on val and test against compression, at each of the plan's sweep thresholds."""
    plain = ev.plain()
    rows: dict[float, dict[str, Any]] = {float(t): {"threshold": float(t)} for t in ev.plan.config.sweep_thresholds}
    for split, data in (("val", ev.val), ("test", ev.test)):
        if data is None:
            continue
        losses: list[float] = []  # a language model's loss at each threshold, in the sweep's order
        metric = functools.partial(_split_accuracy, ev, split=data, losses=losses if ev.positions else None)
        result = threshold_sweep(plain, metric, rows)
        for i, point in enumerate(result.points):
            row = rows[point.threshold]
            row["compression"] = point.compression
            row[f"{split}_accuracy"] = point.metric
            if losses:
                row[f"{split}_loss"], row[f"{split}_perplexity"] = losses[i], perplexity(losses[i])
    for t, row in rows.items():
        if "compression" not in row:
            row["compression"] = sparsity_report(plain, t).compression
        row["sparsity"] = 1 - 1 / row["compression"] if row["compression"] != math.inf else 1.0
    # JSON has no infinity: an all-pruned model's compression is null, noted in its row
    return _json.finite(list(rows.values()))


def summary_record(ev: Evaluation, metrics: list[dict], *, seconds: float, device) -> dict:
    """``summary.json``: the last epoch's numbers and the run's facts."""
    plan, last = ev.plan, (metrics[-1] if metrics else {})
    return {
        "dataset": plan.data.dataset,
        "model": plan.model,
        "method": plan.config.method,
        "epochs": len(metrics),
        "train_samples": plan.data.train_samples,
        "processes": plan.data.processes,
        "device": str(device),
        "parameters": sum(p.numel() for p in ev.plain().parameters()),
        "loss": last.get("loss"),
        "train_accuracy": last.get("train_accuracy"),
        "val_accuracy": last.get("val_accuracy"),
        "test_accuracy": last.get("test_accuracy"),
        "sparsity": last.get("sparsity"),
        "compression": last.get("compression"),
        "best_val_accuracy": max((m["val_accuracy"] for m in metrics if m["val_accuracy"] is not None), default=None),
        **_language_summary(metrics),
        "wall_seconds": seconds,
        "torch_threads": torch.get_num_threads(),
        "grad_clip_norm": plan.grad_clip_norm,
        "decay_budget": plan.decay_budget,
    }


def _language_summary(metrics: list[dict]) -> dict:
    """A language model's last validation / test loss and perplexity, the best validation loss,
    and the tokens per second over the run (empty for classifiers)."""
    if not metrics or "val_loss" not in metrics[-1]:
        return {}
    last = metrics[-1]
    val_losses = [m["val_loss"] for m in metrics if m.get("val_loss") is not None]
    rates = [m["tokens_per_second"] for m in metrics if m.get("tokens_per_second")]
    return {
        **{k: last.get(k) for k in ("val_loss", "val_perplexity", "test_loss", "test_perplexity")},
        "best_val_loss": min(val_losses, default=None),
        "best_val_perplexity": perplexity(min(val_losses)) if val_losses else None,
        "tokens_per_second": sum(rates) / len(rates) if rates else None,
    }
