"""A 64-300-100-10 MLP on scikit-learn's bundled digits, trained sparse.

The data (1797 8x8 images, 10 classes) ships with scikit-learn (``load_digits``): nothing is
downloaded. Pixels are scaled to ``[0, 1]``; a stratified split keeps ``test_fraction`` for
testing. The MLP (ReLU) is trained with cross-entropy by the chosen optimizer; its weights are
sparsified, biases stay dense (:func:`rewa.param_groups.param_groups`). With
``target_sparsity`` set, a :class:`rewa.controller.TargetSparsityController` called once per
epoch sets the weight decay. Results: test accuracy of the trained model and of the model pruned
at ``threshold``, the sparsity report and the controller's history.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from .. import _check as check
from ..controller import ControllerRecord, TargetSparsityController
from ..optim.rewa import ReWA, SparsityConfigWarning
from ..optim.rewa_adamw import ReWAAdamW
from ..param_groups import param_groups
from ..sparsity import SparsityReport, prune, sparsity_report

__all__ = ["DigitsConfig", "DigitsResult", "load_digits_split", "make_mlp", "run_digits", "evaluate_accuracy"]

OPTIMIZERS = ("rewa", "rewa_adamw", "sgd", "adamw")


@dataclass(frozen=True)
class DigitsConfig:
    """Settings of one digits run (defaults: ReWA-AdamW, K=9, M=2, a few seconds on a CPU)."""

    optimizer: str = "rewa_adamw"
    lr: float = 3e-3
    K: float = 9
    M: float = 2
    eps: float = 0.0
    weight_decay: float = 1e-2
    # for "rewa" and "sgd"; both put weight_decay * w (for ReWA: * y) into the momentum
    # buffer (torch SGD's meaning), so one weight_decay means the same for both
    momentum: float = 0.9
    epochs: int = 60
    batch_size: int = 64
    hidden: tuple[int, int] = (300, 100)
    threshold: float = 1e-3  # |w| <= threshold counts as zero (report, pruning, controller)
    target_sparsity: float | None = None  # set: the controller chooses the weight decay
    controller_gain: float = 0.1
    controller_ramp: float = 0.7
    # ReWA drives weights into float32's subnormal range, where CPU arithmetic is many times
    # slower; flushing them to zero is process-wide (switched off again after the run).
    flush_denormal: bool = True
    test_fraction: float = 0.25
    seed: int = 0

    def __post_init__(self):
        check.one_of("optimizer", self.optimizer, OPTIMIZERS)
        for name in ("epochs", "batch_size"):
            check.integer(name, getattr(self, name))
        check.in_range("test_fraction", self.test_fraction, 0, 1, closed="neither")
        check.at_least("threshold", self.threshold, 0)
        if self.target_sparsity is not None:
            check.in_half_open("target_sparsity", self.target_sparsity, 0, 1)


@dataclass
class DigitsResult:
    config: DigitsConfig
    test_accuracy: float  # the trained model as is
    pruned_test_accuracy: float  # after zeroing |w| <= threshold
    sparsity: float  # of the weights at the threshold
    compression: float
    final_weight_decay: float
    report: SparsityReport | None = None
    history: list[ControllerRecord] = field(default_factory=list)
    seconds: float = math.nan

    def to_dict(self) -> dict:
        out = {k: v for k, v in asdict(self).items() if k not in ("report", "history")}
        out["report"] = self.report.to_dict() if self.report is not None else None
        out["history"] = [asdict(r) for r in self.history]
        return out


def load_digits_split(test_fraction: float = 0.25, seed: int = 0):
    """``(X_train, y_train, X_test, y_test)`` as float32 / int64 tensors, pixels in ``[0, 1]``."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    X_train, X_test, y_train, y_test = train_test_split(
        data.data / 16.0, data.target, test_size=test_fraction, random_state=seed, stratify=data.target
    )
    as_x = lambda a: torch.as_tensor(a, dtype=torch.float32)  # noqa: E731
    as_y = lambda a: torch.as_tensor(a, dtype=torch.int64)  # noqa: E731
    return as_x(X_train), as_y(y_train), as_x(X_test), as_y(y_test)


def make_mlp(hidden: tuple[int, ...] = (300, 100), n_in: int = 64, n_out: int = 10) -> nn.Sequential:
    """``n_in - hidden... - n_out`` with ReLU between the Linear layers."""
    sizes = (n_in, *hidden, n_out)
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers[:-1])


@torch.no_grad()
def evaluate_accuracy(model: nn.Module, X: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of ``X`` classified as ``y``."""
    return float((model(X).argmax(dim=1) == y).float().mean())


def _make_optimizer(config: DigitsConfig, model: nn.Module) -> torch.optim.Optimizer:
    sparse = {"weight_decay": config.weight_decay}
    if config.optimizer == "rewa":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SparsityConfigWarning)
            return ReWA(
                param_groups(model, sparse=sparse),
                lr=config.lr,
                K=config.K,
                M=config.M,
                eps=config.eps,
                momentum=config.momentum,
            )
    if config.optimizer == "rewa_adamw":
        return ReWAAdamW(param_groups(model, sparse=sparse), lr=config.lr, K=config.K, M=config.M, eps=config.eps)
    groups = param_groups(model, sparse=sparse, dense={"weight_decay": 0.0})
    for group in groups:  # torch optimizers do not know K, M, eps
        for key in ("K", "M", "eps"):
            group.pop(key, None)
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum)
    return torch.optim.AdamW(groups, lr=config.lr)


def run_digits(config: DigitsConfig = DigitsConfig(), *, progress=None) -> DigitsResult:
    """Train the digits MLP once and measure accuracy and sparsity at ``config.threshold``.

    ``progress``: an object with ``update(k)`` (one call per epoch), e.g. a tqdm bar, or None.

    Example:
        >>> from rewa.paper.digits import DigitsConfig, run_digits
        >>> result = run_digits(DigitsConfig(epochs=2))
        >>> 0 <= result.sparsity < 1
        True
    """
    torch.manual_seed(config.seed)
    X_train, y_train, X_test, y_test = load_digits_split(config.test_fraction, config.seed)
    model = make_mlp(config.hidden)
    opt = _make_optimizer(config, model)
    controller = None
    if config.target_sparsity is not None:
        controller = TargetSparsityController(
            opt,
            model,
            target_sparsity=config.target_sparsity,
            threshold=config.threshold,
            total_calls=config.epochs,
            gain=config.controller_gain,
            ramp=config.controller_ramp,
        )
    gen = torch.Generator().manual_seed(config.seed)
    start = time.perf_counter()
    if config.flush_denormal:
        torch.set_flush_denormal(True)
    try:
        for _ in range(config.epochs):
            model.train()
            for batch in torch.randperm(len(X_train), generator=gen).split(config.batch_size):
                opt.zero_grad(set_to_none=True)
                nn.functional.cross_entropy(model(X_train[batch]), y_train[batch]).backward()
                opt.step()
            if controller is not None:
                controller.step()
            if progress is not None:
                progress.update(1)
    finally:
        if config.flush_denormal:
            torch.set_flush_denormal(False)
    seconds = time.perf_counter() - start

    model.eval()
    accuracy = evaluate_accuracy(model, X_test, y_test)
    report = sparsity_report(model, config.threshold)
    prune(model, threshold=config.threshold, apply=True)
    pruned_accuracy = evaluate_accuracy(model, X_test, y_test)
    weight_decay = controller.weight_decay if controller is not None else config.weight_decay
    return DigitsResult(
        config=config,
        test_accuracy=accuracy,
        pruned_test_accuracy=pruned_accuracy,
        sparsity=report.sparsity,
        compression=report.compression,
        final_weight_decay=weight_decay,
        report=report,
        history=list(controller.history) if controller is not None else [],
        seconds=seconds,
    )


def run_target_sparsity_demo(
    targets: tuple[float, ...] = (0.5, 0.9, 0.99),
    base: DigitsConfig = DigitsConfig(),
    *,
    progress: bool = False,
) -> list[DigitsResult]:
    """One controlled run per requested sparsity (the issue's demonstration: met within 1 point).

    ``progress``: show one bar over every epoch of every run (tqdm when importable, else lines).
    """
    from dataclasses import replace

    from ..experiments._progress import progress_bar

    configs = [replace(base, target_sparsity=t) for t in targets]  # every target checked first
    bar = progress_bar(base.epochs * len(configs), desc=f"{len(configs)} target(s)", unit="epoch", enabled=progress)
    try:
        return [run_digits(c, progress=bar) for c in configs]
    finally:
        if bar is not None:
            bar.close()
