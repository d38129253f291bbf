"""Example 3.2: adaptive vs non-adaptive learning rate, checked numerically."""

from __future__ import annotations

import time

import numpy as np
import torch

from .records import ClaimRecord, TheoryConfig, thin
from .stepping import quiet_rewa


def check_example_3_2(config: TheoryConfig) -> ClaimRecord:
    """Example 3.2: ``f(x) = (x - 1)^2``, ``x = y^K``, ``y(0) = -1``.

    Adaptive (ReWA with ``M = 0, eps = 0``: ``y <- y - eta f'(y^K)``, ``eta < 1/(2K)``):
    ``|y(T) - 1| <= 2 (1 - 2 eta/(K-1))^T``. Non-adaptive (ReWA with ``M = K - 1, eps = 0``,
    i.e. Equation 2: ``y <- y - eta' y^(K-1) f'(y^K)``, ``eta' < 1/4``): ``|y(T) - 1| >= 1``.
    Both run through :class:`~rewa.optim.rewa.ReWA` in float64.
    """
    start = time.perf_counter()
    T = 200 if config.quick else 2000
    runs = []
    for K in (3, 5, 9):
        eta = 0.9 / (2 * K)
        eta_plain = 0.24
        series = {}
        for name, lr, M in (("adaptive", eta, 0), ("non_adaptive", eta_plain, K - 1)):
            x = torch.nn.Parameter(torch.tensor([-1.0], dtype=torch.float64))
            opt = quiet_rewa([x], lr=lr, K=K, M=M, eps=0.0, weight_decay=0.0)
            errors = [2.0]
            for _ in range(T):
                opt.zero_grad()
                ((x - 1) ** 2).sum().backward()
                opt.step()
                errors.append(abs(float(opt.state[x]["y"]) - 1))
            series[name] = errors
        t = np.arange(T + 1)
        bound = 2 * (1 - 2 * eta / (K - 1)) ** t
        adaptive = np.array(series["adaptive"])
        plain = np.array(series["non_adaptive"])
        runs.append(
            dict(
                K=K,
                eta=eta,
                eta_non_adaptive=eta_plain,
                T=T,
                final_error_adaptive=float(adaptive[-1]),
                final_bound=float(bound[-1]),
                max_excess_over_bound=float((adaptive - bound).max()),
                min_error_non_adaptive=float(plain.min()),
                adaptive_ok=bool((adaptive <= bound + 1e-14).all()),
                non_adaptive_ok=bool((plain >= 1).all()),
                t=thin(t.tolist()),
                error_adaptive=thin(adaptive.tolist()),
                error_non_adaptive=thin(plain.tolist()),
                bound=thin(bound.tolist()),
            )
        )
    passed = all(r["adaptive_ok"] and r["non_adaptive_ok"] for r in runs)
    summary = (
        "adaptive |y(t)-1| <= bound at every t, final "
        + ", ".join(f"{r['final_error_adaptive']:.0e}" for r in runs)
        + "; non-adaptive min |y(t)-1| = "
        + ", ".join(f"{r['min_error_non_adaptive']:.2f}" for r in runs)
        + " (K = 3, 5, 9)"
    )
    return ClaimRecord(
        key="example_3_2",
        claim="Example 3.2",
        statement="From y(0) = -1 on (y^K - 1)^2: the adaptive update (eta < 1/(2K)) has "
        "|y(T) - 1| <= 2(1 - 2 eta/(K-1))^T; the non-adaptive one (eta' < 1/4) keeps |y(T) - 1| >= 1.",
        checked=f"ReWA (M=0 and M=K-1, eps=0) for T = {T} steps, K in {{3, 5, 9}}, eta = 0.9/(2K), eta' = 0.24; "
        "bound checked at every t (1e-14 slack for rounding)",
        inputs=dict(K=[3, 5, 9], T=T, eta="0.9/(2K)", eta_non_adaptive=0.24, y0=-1.0),
        measured=dict(runs=runs),
        passed=passed,
        summary=summary,
        figures=["example_3_2_trajectories"],
        seconds=time.perf_counter() - start,
    )
