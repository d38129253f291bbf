"""The batched engine: every (seed, method) pair stacked in one latent tensor, updated with the
optimizer's own math; and the one-at-a-time runner the tests hold it against."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch

from ... import _check as check
from ..._math import latent_from_weight, power_map, rewa_direction, rewa_update_
from ...experiments._progress import progress_bar
from ...penalties import L1
from .checkpoints import load_checkpoint, save_checkpoint, sweep_key
from .config import THRESHOLDS, Method, RunResult, SyntheticConfig, SyntheticSweepResult
from .data import cosine_lr, epoch_order, make_problem, test_batches


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
    weight_decay = _stacked([float(m.weight_decay) for m in methods], dtype, device)
    l1 = _stacked([float(m.l1) for m in methods], dtype, device)
    l1_penalty = L1()

    key = sweep_key(config, methods, seeds)
    path = Path(checkpoint) if checkpoint is not None else None
    saved = load_checkpoint(path, key, (S, G, d), config.epochs) if path is not None else None
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
    bar = progress_bar(
        config.epochs, desc=f"{G} methods x {S} seeds, d={d}", unit="epoch", initial=start_epoch, enabled=progress
    )
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
            rewa_update_(y, step, lr=lr, weight_decay=weight_decay)
            for rows, k_, _, _ in blocks:
                power_map(y[:, rows], k_, out=x[:, rows])
        if bar is not None:
            bar.update(1)
        now = time.perf_counter()
        if path is not None and (now - last_save >= checkpoint_every or epoch + 1 == config.epochs):
            save_checkpoint(path, key, epoch + 1, y, seconds_before + now - start)
            last_save = now
    if bar is not None:
        bar.close()
    seconds = seconds_before + time.perf_counter() - start
    runs = measure(x, X, target, seeds, methods, config)
    return SyntheticSweepResult(
        config=config, methods=methods, seeds=seeds, runs=runs, seconds=seconds, resumed_from_epoch=start_epoch
    )


def measure(x, X, target, seeds, methods, config) -> list[RunResult]:
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
        for X_test, t_test in test_batches(seed, config):
            X_test, t_test = X_test.to(x.device), t_test.to(x.device)
            sq_err[i] += (X_test @ x[i].T - t_test.unsqueeze(1)).double().pow(2).sum(0)
            oracle_err[i] += (coef[i] * X_test[:, 0] - t_test).double().pow(2).sum()
    host = {
        k: v.cpu().tolist()
        for k, v in dict(
            below=below, w0=w0, max_other=max_other, mse=sq_err / config.n_test, oracle=oracle_err / config.n_test
        ).items()
    }
    runs = []
    for j, method in enumerate(methods):
        for i, seed in enumerate(seeds):
            runs.append(
                RunResult(
                    method=method,
                    seed=seed,
                    w0=host["w0"][i][j],
                    max_other=host["max_other"][i][j],
                    test_mse=host["mse"][i][j],
                    oracle_test_mse=host["oracle"][i],
                    below=dict(zip(THRESHOLDS, host["below"][i][j])),
                )
            )
    return runs


def run_one_at_a_time(
    method: Method,
    seed: int,
    config: SyntheticConfig,
    *,
    steps: int | None = None,
    problem: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """The reference: one run with the :class:`rewa.optim.rewa.ReWA` optimizer and autograd.

    Same data, start, batch order and schedule as :func:`run_sweep`; the l1 term is
    ``l1 * L1().value(w)`` added to the loss. Stops after ``steps`` steps if given;
    ``problem`` is ``make_problem(seed, config)`` when the caller already has it. Returns the
    final weights ``(d,)``. Used by the tests and by ``benchmarks/sweep.py``.
    """
    import warnings

    from ...optim.rewa import ReWA, SparsityConfigWarning

    X, target, w_init = problem if problem is not None else make_problem(seed, config)
    device = torch.device(config.device)
    X, target = X.to(device), target.to(device)
    model = torch.nn.Linear(config.d, 1, bias=False).to(device=device, dtype=config.torch_dtype)
    with torch.no_grad():
        model.weight.copy_(w_init.unsqueeze(0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SparsityConfigWarning)
        opt = ReWA(
            model.parameters(),
            lr=config.lr,
            K=method.K,
            M=method.M,
            eps=method.eps,
            weight_decay=method.weight_decay,
            check_finite=False,
        )
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
