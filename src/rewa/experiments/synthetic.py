"""The paper's Section 4.1 at full scale: sparse linear regression (Appendix D.1), batched.

The problem: ``x ~ N(0, I_d)``, ``target = x_1 + noise`` with ``noise ~ N(0, sigma^2)``
(``beta* = e_1``, Bayes test MSE ``sigma^2 = 1``); a linear model without intercept is trained
on the mean squared error ``mean((x.w - target)^2)`` with mini-batch SGD under ReWA.

**The batched sweep engine.** :func:`run_sweep` trains every pair (method, seed) at once. The
latents of all runs are one tensor ``y`` of shape ``(S, G, d)`` (``S`` seeds, ``G`` methods);
each method has its own ``K``, ``M``, ``eps``, decay ``lambda`` and l1 strength. Decay and
l1 strength are tensors of shape ``(G, 1)`` that broadcast against ``y``; the factor and the
map run once per run of consecutive methods sharing ``(K, M, eps)``, on views of ``y``, through
the optimizer's scalar code path. One step for all runs is

.. math::

    x &= \\mathrm{sign}(y)|y|^K, \\qquad
    g = \\tfrac{2}{b} (x X_B^\\top - t_B) X_B + \\mu\\, \\mathrm{sign}(x) \\\\
    y &\\leftarrow (1 - \\eta_t \\lambda)\\, y - \\eta_t\\, |y|^M
        \\frac{|y|^{K-1}}{|y|^{K-1} + \\epsilon}\\, g

with one batched matrix product per direction over the seeds (runs of one seed share the data
and the batch order). The factor and the map are :func:`rewa.functional.rewa_direction`
and :func:`~rewa.functional.power_map`, the functions :class:`rewa.optim.rewa.ReWA` calls,
so the engine computes what the optimizer computes (the tests check this against ``ReWA`` run
one configuration at a time, in float64). The l1 term ``mu sign(x)`` is
:meth:`rewa.penalties.L1.grad`; with ``K = 1, M = 0, lambda = 0`` it is SGD-l1, the baseline
of Figure 2(a).

**Units of the weight decay.** ``lambda`` is Algorithm 1's: ``y <- (1 - eta_t lambda) y``.
Appendix D.1 quotes ``5e-5``, which the paper's code applies as a per-step shrink
``kappa_t = 5e-5 * eta_t / eta_0``; that is ``lambda = kappa / eta_0 = 5e-5 / 2e-4 = 0.25``.
Every decay of the appendix is converted the same way (:func:`decay_from_appendix`): Figure 1
uses ``lambda = 0.25``, Figure 2(d) ``lambda`` in ``{0.05, 0.125, 0.25, 0.5}``, and SGD-l1's
l1 strength is ``0.25`` in the same units. A literal ``lambda = 5e-5`` barely decays.

Notes on departures from the paper:
    * Powers are of ``|y|`` (Remark C.3): for odd ``M`` (Figure 2's ``M = 5``) the paper's code,
      which takes ``y^M``, flips the gradient of negative coordinates, so its ``M = 5`` is a
      different algorithm.
    * The paper does not state its initialization or test-set size: weights start from
      ``U(-1/sqrt(d), 1/sqrt(d))`` (``torch.nn.Linear``'s default), the test set has
      ``n_test`` fresh samples (2,000 at paper scale), and the model has no intercept.
    * The learning rate follows ``eta_t = eta_0 (1 + cos(pi t / T)) / 2`` for step
      ``t = 0..T-1`` of ``T`` steps (``CosineAnnealingLR`` with ``T_max = T``, closed form).
    * Lasso (Figure 2(a)) is scikit-learn's ``LassoCV`` (5-fold, 10 alphas from ``alpha_max``
      to ``alpha_max / 20``) on the training set of each seed; the paper does not state its
      alpha.

Reference:
    Theoretical Analysis of Sparse Optimization with Reparameterization, Weight Decay, and
    Adaptive Learning Rate (ICML 2026), Section 4.1, Figures 1-2, Appendix D.1.

Example:
    >>> from rewa.experiments.synthetic import Method, SyntheticConfig, run_sweep
    >>> config = SyntheticConfig(d=200, n_train=100, n_test=200, epochs=20, lr=2e-3)
    >>> result = run_sweep([Method(K=9, M=2), Method(K=1, M=0, weight_decay=0.0, l1=0.25)],
    ...                    seeds=(0, 1), config=config, progress=False)
    >>> len(result.runs)
    4
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import warnings
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from .. import _check as check
from .._math import latent_from_weight, power_map, rewa_direction, rewa_update_
from ..penalties import L1
from ._progress import progress_bar
from .problem import SparseRegression, make_regression

__all__ = [
    "THRESHOLDS",
    "PAPER_LR",
    "Method",
    "SyntheticConfig",
    "RunResult",
    "SyntheticSweepResult",
    "FigureResult",
    "decay_from_appendix",
    "make_problem",
    "initial_w0",
    "cosine_lr",
    "epoch_order",
    "run_sweep",
    "run_one_at_a_time",
    "run_lasso",
    "figure1_methods",
    "figure2_panels",
    "run_figure",
    "write_results",
]

THRESHOLDS = (1e-7, 5e-7, 1e-6, 5e-6, 1e-5, 5e-5, 1e-4, 5e-4, 1e-3)
PAPER_LR = 2e-4
PAPER_DECAY = 0.25  # kappa = 5e-5 of Appendix D.1 in Algorithm 1's units: 5e-5 / 2e-4


def decay_from_appendix(kappa: float, lr: float = PAPER_LR) -> float:
    """Algorithm 1's ``lambda`` for a per-step shrink ``kappa`` quoted by Appendix D.1.

    The paper's code shrinks ``y <- (1 - kappa * eta_t / eta_0) y``; Algorithm 1 writes
    ``(1 - lambda * eta_t) y``; so ``lambda = kappa / eta_0``.

    Example:
        >>> decay_from_appendix(5e-5)
        0.25
    """
    check.at_least("kappa", kappa, 0)
    check.real("lr", lr)
    if not lr > 0:
        raise ValueError(f"lr={lr} must be > 0")
    return round(kappa / lr, 12)


@dataclass(frozen=True)
class Method:
    """One configuration of the update: ReWA's ``K, M, eps``, decay ``lambda``, l1 strength.

    ``weight_decay`` is ``lambda`` in Algorithm 1's units (see the module notes); ``l1`` adds
    ``l1 * sign(x)`` to the gradient (SGD-l1 when ``K = 1, M = 0, weight_decay = 0``).
    """

    K: float = 9
    M: float = 5
    eps: float = 0.0
    weight_decay: float = PAPER_DECAY
    l1: float = 0.0
    label: str = ""

    def __post_init__(self):
        check.check_reparameterization(self.K, self.M, self.eps)
        check.at_least("weight_decay", self.weight_decay, 0)
        check.at_least("l1", self.l1, 0)
        if not self.label:
            object.__setattr__(self, "label", self.default_label())

    def default_label(self) -> str:
        if self.K == 1 and self.M == 0 and self.l1 > 0 and self.weight_decay == 0:
            return f"SGD-l1 (mu={self.l1:g})"
        text = f"ReWA K={self.K:g} M={self.M:g}"
        if self.eps:
            text += f" eps={self.eps:g}"
        text += f" lambda={self.weight_decay:g}"
        if self.l1:
            text += f" l1={self.l1:g}"
        return text


@dataclass(frozen=True)
class SyntheticConfig(SparseRegression):
    """The data and the training schedule shared by every run of a sweep (defaults: paper scale)."""

    batch_size: int = 25
    epochs: int = 800
    lr: float = PAPER_LR
    cosine: bool = True
    dtype: str = "float32"
    device: str = "cpu"

    def __post_init__(self):
        super().__post_init__()
        check.integer("batch_size", self.batch_size)
        check.at_most("batch_size", self.batch_size, self.n_train, "n_train")
        check.integer("epochs", self.epochs)
        check.above("lr", self.lr, 0)
        check.one_of("dtype", self.dtype, ("float32", "float64"))

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(self.n_train / self.batch_size)

    @property
    def torch_dtype(self) -> torch.dtype:
        return getattr(torch, self.dtype)

    @classmethod
    def scale(cls, name: str, **overrides) -> SyntheticConfig:
        """``"paper"``: Appendix D.1. ``"quick"``: d = 1,000, n = 200, 800 epochs at lr 2e-3.

        ``quick`` keeps the batch size and the integral of the learning rate over training
        (``eta_0 T / 2`` = 6.4, so the decay acts as much as at paper scale) on a 10x smaller
        problem; it runs in seconds.
        """
        if name == "paper":
            return cls(**overrides)
        if name == "quick":
            return cls(**{**dict(d=1_000, n_train=200, n_test=1_000, epochs=800, lr=2e-3), **overrides})
        raise ValueError(f"scale={name!r} must be 'paper' or 'quick'")


@dataclass
class RunResult:
    """The measurements of one (method, seed) run."""

    method: Method
    seed: int
    w0: float  # learned coefficient of the true feature (truth 1)
    max_other: float  # largest |w_j| over the d - 1 null coordinates
    test_mse: float  # on n_test fresh samples (Bayes: noise^2)
    oracle_test_mse: float  # least squares on the true support alone, same test set
    below: dict[float, float] = field(default_factory=dict)  # threshold -> fraction of |w_j| < threshold

    def to_row(self) -> dict:
        row = {"label": self.method.label, **{k: v for k, v in asdict(self.method).items() if k != "label"},
               "seed": self.seed, "w0": self.w0, "max_other": self.max_other, "test_mse": self.test_mse,
               "oracle_test_mse": self.oracle_test_mse}
        row.update({f"sparsity@{t:g}": s for t, s in self.below.items()})
        return row


@dataclass
class SyntheticSweepResult:
    """All runs of a sweep, in the order (method, seed) they were requested."""

    config: SyntheticConfig
    methods: tuple[Method, ...]
    seeds: tuple[int, ...]
    runs: list[RunResult]
    seconds: float
    resumed_from_epoch: int = 0

    def for_method(self, method: Method) -> list[RunResult]:
        return [r for r in self.runs if r.method == method]

    def summary(self) -> list[dict]:
        """Mean and std over seeds per method (std with ``ddof = 0``, as ``numpy.std``)."""
        rows = []
        for method in self.methods:
            runs = self.for_method(method)
            row = {"label": method.label, **{k: v for k, v in asdict(method).items() if k != "label"},
                   "seeds": len(runs)}
            for key in ("w0", "test_mse", "max_other"):
                values = np.array([getattr(r, key) for r in runs])
                row[f"{key}_mean"], row[f"{key}_std"] = float(values.mean()), float(values.std())
            for t in THRESHOLDS:
                values = np.array([r.below[t] for r in runs])
                row[f"sparsity@{t:g}_mean"], row[f"sparsity@{t:g}_std"] = float(values.mean()), float(values.std())
            rows.append(row)
        return rows


# ----------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------

_TEST_STREAM, _ORDER_STREAM = 1_000_003, 2_000_029  # offsets that separate a seed's random streams


def make_problem(seed: int, config: SyntheticConfig) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(X, target, w_init)`` of one seed on the CPU, in ``config.dtype``.

    ``X ~ N(0, I_d)`` (``n_train x d``), ``target = X[:, 0] + noise * N(0, 1)``, and
    ``w_init ~ U(-1/sqrt(d), 1/sqrt(d))``, all from ``torch.Generator().manual_seed(seed)``.
    """
    gen = torch.Generator().manual_seed(seed)
    X, target = make_regression(config.d, config.n_train, config.noise, gen, dtype=config.torch_dtype)
    bound = 1 / math.sqrt(config.d)
    w_init = torch.empty(config.d, dtype=config.torch_dtype).uniform_(-bound, bound, generator=gen)
    return X, target, w_init


def initial_w0(seed: int, config: SyntheticConfig) -> float:
    """The starting value of the true coefficient ``w_0`` for ``seed`` (its sign matters when
    ``M > 0``: a wrong-sign start has to cross the zero saddle of Example 3.2)."""
    return float(make_problem(seed, config)[2][0])


def _test_batches(seed: int, config: SyntheticConfig, rows: int = 500):
    """The fresh test set of a seed, in chunks of ``rows`` samples (never held whole)."""
    gen = torch.Generator().manual_seed(seed + _TEST_STREAM)
    left = config.n_test
    while left > 0:
        n = min(rows, left)
        yield make_regression(config.d, n, config.noise, gen, dtype=config.torch_dtype)
        left -= n


def epoch_order(seed: int, epoch: int, n: int) -> torch.Tensor:
    """The sample order of one epoch, from ``(seed, epoch)`` alone, so a resumed sweep replays it."""
    gen = torch.Generator().manual_seed((seed + _ORDER_STREAM) * 100_003 + epoch)
    return torch.randperm(n, generator=gen)


def cosine_lr(step: int, total: int, lr: float, cosine: bool = True) -> float:
    """``eta_t = lr (1 + cos(pi t / T)) / 2`` (or ``lr`` when ``cosine`` is False)."""
    return lr * (1 + math.cos(math.pi * step / total)) / 2 if cosine else lr


# ----------------------------------------------------------------------------------------
# Progress and checkpoints
# ----------------------------------------------------------------------------------------


def _sweep_key(config: SyntheticConfig, methods: Sequence[Method], seeds: Sequence[int]) -> str:
    """A fingerprint of everything that determines a sweep's trajectory (not the device)."""
    payload = json.dumps({"config": {k: v for k, v in asdict(config).items() if k != "device"},
                          "methods": [asdict(m) for m in methods], "seeds": list(seeds)}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _save_checkpoint(path: Path, key: str, epoch: int, y: torch.Tensor, seconds: float) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save({"key": key, "epoch": epoch, "y": y.detach().cpu(), "seconds": seconds}, tmp)
    os.replace(tmp, path)  # atomic: an interrupt never leaves half a checkpoint


class CheckpointWarning(UserWarning):
    """A sweep checkpoint that cannot be used (corrupt, foreign, or of another sweep's shape)."""


def _load_checkpoint(path: Path, key: str, shape: tuple[int, ...] | None = None,
                     epochs: int | None = None) -> dict | None:
    """The saved state of this sweep, or None. A file that is not a usable checkpoint of
    this sweep is reported with a :class:`CheckpointWarning` and ignored (the sweep starts
    over and the next save replaces it); a checkpoint of another sweep is ignored silently."""
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(state, dict) or not {"key", "epoch", "y", "seconds"} <= state.keys():
            raise ValueError("not a rewa sweep checkpoint (needs key, epoch, y, seconds)")
        if state["key"] != key:
            return None
        epoch, y = state["epoch"], state["y"]
        if isinstance(epoch, bool) or not isinstance(epoch, int) or not 0 <= epoch <= (epochs if epochs is not None else epoch):
            raise ValueError(f"epoch {epoch!r} is not an integer in [0, {epochs}]")
        if not isinstance(y, torch.Tensor) or not y.is_floating_point() or (shape is not None and tuple(y.shape) != shape):
            raise ValueError(f"latents {getattr(y, 'shape', type(y).__name__)!s} are not a floating tensor of shape {shape}")
        if not isinstance(state["seconds"], (int, float)):
            raise ValueError(f"seconds {state['seconds']!r} is not a number")
    except Exception as error:  # any unreadable file: report it, never fail every rerun
        warnings.warn(f"ignoring sweep checkpoint {str(path)!r}: {type(error).__name__}: {error}; "
                      "starting from epoch 0 (the next save replaces it)", CheckpointWarning, stacklevel=3)
        return None
    return state


# ----------------------------------------------------------------------------------------
# The engine
# ----------------------------------------------------------------------------------------


def _stacked(values: Sequence[float], dtype, device) -> float | torch.Tensor:
    """A Python number when every method shares it (the functional update's fast paths),
    else a ``(G, 1)`` tensor that broadcasts against latents of shape ``(S, G, d)``."""
    if len(set(values)) == 1:
        return values[0]
    return torch.tensor(values, dtype=dtype, device=device).unsqueeze(1)


def _blocks(methods: Sequence[Method]) -> list[tuple[slice, float, float, float]]:
    """Maximal runs of consecutive methods with the same ``(K, M, eps)``: ``(rows, K, M, eps)``."""
    blocks: list[tuple[slice, float, float, float]] = []
    for g, m in enumerate(methods):
        shape = (float(m.K), float(m.M), float(m.eps))
        if blocks and blocks[-1][1:] == shape and blocks[-1][0].stop == g:
            blocks[-1] = (slice(blocks[-1][0].start, g + 1), *shape)
        else:
            blocks.append((slice(g, g + 1), *shape))
    return blocks


def _unique(name: str, values: Iterable) -> tuple:
    values = tuple(values)
    if not values:
        raise ValueError(f"{name} must not be empty")
    if len(set(values)) != len(values):
        raise ValueError(f"{name} has duplicates: {values}")
    return values


def run_sweep(
    methods: Sequence[Method],
    seeds: Sequence[int] = (0, 1, 2),
    config: SyntheticConfig = SyntheticConfig(),
    *,
    progress: bool = True,
    checkpoint: str | Path | None = None,
    checkpoint_every: float = 60.0,
) -> SyntheticSweepResult:
    """Train every (method, seed) pair on the D.1 problem as one stacked computation.

    Args:
        methods: the configurations (distinct).
        seeds: the seeds (distinct); a seed fixes the data, the initial weights, the test set
            and the batch order, shared by all methods.
        config: data and schedule.
        progress: show a progress bar (tqdm when importable, else lines on stderr).
        checkpoint: a file path; the latents are saved there every ``checkpoint_every``
            seconds (at epoch boundaries) and at the end, and a later call with the same
            methods, seeds and config resumes from the saved epoch. A checkpoint of a
            different sweep is ignored (and overwritten).

    Returns:
        A :class:`SyntheticSweepResult` with one :class:`RunResult` per pair, ordered by method then seed.
    """
    methods = _unique("methods", methods)
    seeds = _unique("seeds", seeds)
    for m in methods:
        if not isinstance(m, Method):
            raise TypeError(f"methods must hold Method objects, got {type(m).__name__}")
    check.at_least("checkpoint_every", checkpoint_every, 0)
    dtype, device = config.torch_dtype, torch.device(config.device)
    S, G, d, b = len(seeds), len(methods), config.d, config.batch_size

    problems = [make_problem(s, config) for s in seeds]
    X = torch.stack([p[0] for p in problems]).to(device)  # (S, n, d)
    target = torch.stack([p[1] for p in problems]).to(device)  # (S, n)
    w_init = torch.stack([p[2] for p in problems]).to(device)  # (S, d)
    del problems

    K = _stacked([float(m.K) for m in methods], dtype, device)
    decay = _stacked([float(m.weight_decay) for m in methods], dtype, device)
    l1 = _stacked([float(m.l1) for m in methods], dtype, device)
    l1_penalty = L1()

    key = _sweep_key(config, methods, seeds)
    path = Path(checkpoint) if checkpoint is not None else None
    saved = _load_checkpoint(path, key, (S, G, d), config.epochs) if path is not None else None
    if saved is not None:
        y = saved["y"].to(device=device, dtype=dtype)
        start_epoch, seconds_before = int(saved["epoch"]), float(saved["seconds"])
    else:
        y = latent_from_weight(w_init[:, None, :].expand(S, G, d).contiguous(), K)
        start_epoch, seconds_before = 0, 0.0
    # Runs of methods sharing (K, M, eps) are updated through the optimizer's scalar code
    # path (repeated squaring for integer powers), several times faster than pow with a
    # per-row tensor exponent; decay and l1 strength stay per-row tensors.
    blocks = _blocks(methods)
    step, x = torch.empty_like(y), torch.empty_like(y)
    for rows, k_, _, _ in blocks:
        power_map(y[:, rows], k_, out=x[:, rows])

    steps_per_epoch = config.steps_per_epoch
    total_steps = steps_per_epoch * config.epochs
    seed_index = torch.arange(S, device=device).unsqueeze(1)
    grad = torch.empty_like(y)
    bar = progress_bar(config.epochs, desc=f"{G} methods x {S} seeds, d={d}", unit="epoch",
                       initial=start_epoch, enabled=progress)
    start = time.perf_counter()
    last_save = start
    for epoch in range(start_epoch, config.epochs):
        order = torch.stack([epoch_order(s, epoch, config.n_train) for s in seeds]).to(device)
        for k, batch in enumerate(order.split(b, dim=1)):
            lr = cosine_lr(epoch * steps_per_epoch + k, total_steps, config.lr, config.cosine)
            X_batch = X[seed_index, batch]  # (S, b, d)
            residual = torch.bmm(x, X_batch.transpose(1, 2)) - target[seed_index, batch].unsqueeze(1)
            torch.bmm(residual, X_batch, out=grad).mul_(2 / batch.shape[1])  # d mean((x.w - t)^2) / dw
            if not (isinstance(l1, float) and l1 == 0):
                grad.add_(l1_penalty.grad(x).mul_(l1))
            for rows, k_, m_, e_ in blocks:
                scaled = rewa_direction(y[:, rows], grad[:, rows], K=k_, M=m_, eps=e_, out=step[:, rows])
                if scaled.data_ptr() != step[:, rows].data_ptr():  # a factor of 1 returns grad itself
                    step[:, rows] = scaled
            rewa_update_(y, step, lr=lr, weight_decay=decay)
            for rows, k_, _, _ in blocks:
                power_map(y[:, rows], k_, out=x[:, rows])
        if bar is not None:
            bar.update(1)
        now = time.perf_counter()
        if path is not None and (now - last_save >= checkpoint_every or epoch + 1 == config.epochs):
            _save_checkpoint(path, key, epoch + 1, y, seconds_before + now - start)
            last_save = now
    if bar is not None:
        bar.close()
    seconds = seconds_before + time.perf_counter() - start
    runs = _measure(x, X, target, seeds, methods, config)
    return SyntheticSweepResult(config=config, methods=methods, seeds=seeds, runs=runs, seconds=seconds,
                       resumed_from_epoch=start_epoch)


def _measure(x, X, target, seeds, methods, config) -> list[RunResult]:
    """Sparsity, w_0 and test MSE of the weights ``x`` (S, G, d); one host transfer at the end."""
    S, G, d = x.shape
    thresholds = torch.tensor(THRESHOLDS, dtype=x.dtype, device=x.device)
    below = (x.abs().unsqueeze(-1) < thresholds).sum(dim=2).to(torch.float64) / d  # (S, G, T)
    w0 = x[:, :, 0]
    max_other = x[:, :, 1:].abs().amax(dim=2)
    # Oracle: least squares on the true feature alone, per seed.
    coef = (X[:, :, 0] * target).sum(1) / (X[:, :, 0] * X[:, :, 0]).sum(1)  # (S,)
    sq_err = torch.zeros(S, G, dtype=torch.float64, device=x.device)
    oracle_err = torch.zeros(S, dtype=torch.float64, device=x.device)
    for i, seed in enumerate(seeds):
        for X_test, t_test in _test_batches(seed, config):
            X_test, t_test = X_test.to(x.device), t_test.to(x.device)
            sq_err[i] += (X_test @ x[i].T - t_test.unsqueeze(1)).double().pow(2).sum(0)
            oracle_err[i] += (coef[i] * X_test[:, 0] - t_test).double().pow(2).sum()
    host = {k: v.cpu().tolist() for k, v in dict(below=below, w0=w0, max_other=max_other,
                                                    mse=sq_err / config.n_test,
                                                    oracle=oracle_err / config.n_test).items()}
    runs = []
    for j, method in enumerate(methods):
        for i, seed in enumerate(seeds):
            runs.append(RunResult(
                method=method, seed=seed, w0=host["w0"][i][j], max_other=host["max_other"][i][j],
                test_mse=host["mse"][i][j], oracle_test_mse=host["oracle"][i],
                below=dict(zip(THRESHOLDS, host["below"][i][j])),
            ))
    return runs


def run_one_at_a_time(method: Method, seed: int, config: SyntheticConfig, *, steps: int | None = None,
                      problem: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """The reference: one run with the :class:`rewa.optim.rewa.ReWA` optimizer and autograd.

    Same data, start, batch order and schedule as :func:`run_sweep`; the l1 term is
    ``l1 * L1().value(w)`` added to the loss. Stops after ``steps`` steps if given;
    ``problem`` is ``make_problem(seed, config)`` when the caller already has it. Returns the
    final weights ``(d,)``. Used by the tests and by ``benchmarks/sweep.py``.
    """
    import warnings

    from ..optim.rewa import ReWA, SparsityConfigWarning

    X, target, w_init = problem if problem is not None else make_problem(seed, config)
    device = torch.device(config.device)
    X, target = X.to(device), target.to(device)
    model = torch.nn.Linear(config.d, 1, bias=False).to(device=device, dtype=config.torch_dtype)
    with torch.no_grad():
        model.weight.copy_(w_init.unsqueeze(0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SparsityConfigWarning)
        opt = ReWA(model.parameters(), lr=config.lr, K=method.K, M=method.M, eps=method.eps,
                   weight_decay=method.weight_decay, check_finite=False)
    penalty = L1()
    total = config.steps_per_epoch * config.epochs
    limit = total if steps is None else min(steps, total)
    t = 0
    for epoch in range(config.epochs):
        for batch in epoch_order(seed, epoch, config.n_train).to(device).split(config.batch_size):
            if t == limit:
                return model.weight.detach().squeeze(0)
            for group in opt.param_groups:
                group["lr"] = cosine_lr(t, total, config.lr, config.cosine)
            opt.zero_grad(set_to_none=True)
            loss = torch.nn.functional.mse_loss(model(X[batch]).squeeze(1), target[batch])
            if method.l1:
                loss = loss + method.l1 * penalty.value(model.weight)
            loss.backward()
            opt.step()
            t += 1
    return model.weight.detach().squeeze(0)


# ----------------------------------------------------------------------------------------
# Lasso (Figure 2(a))
# ----------------------------------------------------------------------------------------

LASSO_LABEL = "Lasso (LassoCV, 5-fold)"


def run_lasso(seeds: Sequence[int], config: SyntheticConfig, *, n_alphas: int = 10, cv: int = 5,
              path_ratio: float = 0.05) -> list[RunResult]:
    """scikit-learn ``LassoCV`` (no intercept) on each seed's training set, measured like a run.

    ``LassoCV`` minimizes ``||t - X w||^2 / (2n) + alpha ||w||_1`` and picks ``alpha`` among
    ``n_alphas`` log-spaced values from ``alpha_max`` down to ``path_ratio * alpha_max`` by
    ``cv``-fold cross-validation. (The default ``path_ratio = 1e-3`` reaches alphas that keep
    thousands of coefficients and took minutes per seed at d = 10,000; the CV optimum of D.1
    is near ``alpha_max / 10``.)
    """
    from sklearn.linear_model import LassoCV

    method = Method(K=1, M=0, weight_decay=0.0, label=LASSO_LABEL)
    runs = []
    for seed in seeds:
        X, target, _ = make_problem(seed, config)
        X64, t64 = X.double().numpy(), target.double().numpy()
        model = LassoCV(alphas=n_alphas, eps=path_ratio, cv=cv, fit_intercept=False,
                        random_state=seed).fit(X64, t64)
        w = torch.as_tensor(model.coef_, dtype=config.torch_dtype).view(1, 1, -1)
        (run,) = _measure(w, X.unsqueeze(0), target.unsqueeze(0), (seed,), (method,), config)
        runs.append(run)
    return runs


# ----------------------------------------------------------------------------------------
# The paper's figures
# ----------------------------------------------------------------------------------------

FIGURE1_K = (3, 5, 7, 9, 11, 13)
FIGURE1_M = (0, 2, 4, 6, 8, 10)


def figure1_methods(weight_decay: float = PAPER_DECAY) -> list[Method]:
    """The 26 valid (K, M) of Figure 1 (``M <= K - 1``), ``eps = 0``, decay ``lambda``."""
    return [Method(K=K, M=M, weight_decay=weight_decay) for K in FIGURE1_K for M in FIGURE1_M if M <= K - 1]


def figure2_panels(weight_decay: float = PAPER_DECAY) -> dict[str, list[Method]]:
    """Panels (a)-(d) of Figure 2 (Appendix D.1), decays in Algorithm 1's units.

    (a) ReWA (9, 5) and SGD-l1 (``K = 1, M = 0``, l1 strength ``lambda``; Lasso is added by
    :func:`run_figure`); (b) (K, M) in {(9, 5), (7, 4), (5, 2), (3, 0), (1, 0)}; (c) K = 9,
    M in {0, 2, 5}; (d) K = 9, M = 5, ``lambda`` = 0.2, 0.5, 1 and 2 times the base
    (Appendix: 1e-5, 2.5e-5, 5e-5, 1e-4 per step, that is 0.05, 0.125, 0.25, 0.5).
    """
    lam = weight_decay
    return {
        "a": [Method(K=9, M=5, weight_decay=lam), Method(K=1, M=0, weight_decay=0.0, l1=lam)],
        "b": [Method(K=K, M=M, weight_decay=lam) for K, M in ((9, 5), (7, 4), (5, 2), (3, 0), (1, 0))],
        "c": [Method(K=9, M=M, weight_decay=lam) for M in (0, 2, 5)],
        "d": [Method(K=9, M=5, weight_decay=lam * f) for f in (0.2, 0.5, 1.0, 2.0)],
    }


@dataclass
class FigureResult:
    """The runs behind one figure: the sweep, and Lasso's runs for Figure 2(a)."""

    figure: int
    scale: str
    sweep: SyntheticSweepResult
    lasso: list[RunResult] = field(default_factory=list)
    panels: dict[str, list[Method]] = field(default_factory=dict)

    @property
    def runs(self) -> list[RunResult]:
        return self.sweep.runs + self.lasso

    def summary(self) -> list[dict]:
        rows = self.sweep.summary()
        if self.lasso:
            lasso_sweep = replace(self.sweep, methods=(self.lasso[0].method,), runs=self.lasso)
            rows += lasso_sweep.summary()
        return rows

    def to_dict(self) -> dict:
        return {
            "figure": self.figure, "scale": self.scale, "config": asdict(self.sweep.config),
            "seeds": list(self.sweep.seeds), "seconds": self.sweep.seconds,
            "resumed_from_epoch": self.sweep.resumed_from_epoch,
            "weight_decay_units": "Algorithm 1's lambda: y <- (1 - eta_t*lambda) y; "
                                  "lambda = kappa/eta_0 for the appendix's per-step kappa",
            "panels": {k: [m.label for m in v] for k, v in self.panels.items()},
            "summary": self.summary(),
            "runs": [r.to_row() for r in self.runs],
        }


def run_figure(
    figure: int,
    scale: str = "quick",
    *,
    seeds: Sequence[int] = (0, 1, 2),
    out_dir: str | Path | None = None,
    progress: bool = True,
    lasso: bool = True,
    config: SyntheticConfig | None = None,
) -> FigureResult:
    """Run the sweep behind Figure 1 or Figure 2 of the paper; write CSV/JSON if ``out_dir``.

    With ``out_dir`` the sweep checkpoints to ``out_dir/figure{N}_{scale}.ckpt`` and resumes
    from it when rerun. ``config`` overrides the scale's data and schedule.
    """
    if figure not in (1, 2):
        raise ValueError(f"figure={figure!r} must be 1 or 2")
    config = config or SyntheticConfig.scale(scale)
    if figure == 1:
        methods, panels = figure1_methods(), {}
    else:
        panels = figure2_panels()
        methods = list(dict.fromkeys(m for panel in panels.values() for m in panel))
    ckpt = None
    if out_dir is not None:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        ckpt = Path(out_dir) / f"figure{figure}_{scale}.ckpt"
    sweep = run_sweep(methods, seeds, config, progress=progress, checkpoint=ckpt)
    lasso_runs = run_lasso(seeds, config) if figure == 2 and lasso else []
    result = FigureResult(figure=figure, scale=scale, sweep=sweep, lasso=lasso_runs, panels=panels)
    if out_dir is not None:
        write_results(result, out_dir)
    return result


def write_results(result: FigureResult, out_dir: str | Path) -> list[Path]:
    """``figure{N}_{scale}_runs.csv`` (one row per run), ``..._summary.csv`` (mean/std over
    seeds) and ``figure{N}_{scale}.json`` (both, plus the config). Returns the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"figure{result.figure}_{result.scale}"
    written = []
    for name, rows in ((f"{stem}_runs.csv", [r.to_row() for r in result.runs]),
                       (f"{stem}_summary.csv", result.summary())):
        path = out / name
        with path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        written.append(path)
    path = out / f"{stem}.json"
    path.write_text(json.dumps(result.to_dict(), indent=1))
    written.append(path)
    return written
