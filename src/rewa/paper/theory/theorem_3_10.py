"""Theorem 3.10 / Proposition 3.11: stagnation radii, checked numerically."""

from __future__ import annotations

import math
import time

import numpy as np
import torch

from .. import formulas as theory
from .records import ClaimRecord, TheoryConfig
from .stepping import step_once


def _measured_stagnation_radius(lr, weight_decay, grad_bound, *, K, M, eps, grid) -> float:
    """The smallest grid ``y > 0`` that one ReWA step moves across 0 under the worst-case
    gradient ``+B`` (pushing toward 0); ``inf`` if none does."""
    grad = torch.full_like(grid, grad_bound)
    y_next = step_once(grid, grad, lr=lr, K=K, M=M, eps=eps, weight_decay=weight_decay)
    crossed = (y_next < 0).nonzero()
    return float(grid[crossed[0, 0]]) if len(crossed) else math.inf


def check_theorem_3_10(config: TheoryConfig) -> ClaimRecord:
    """Theorem 3.10 / Proposition 3.11: the stagnation radii U1, U2, U3, measured.

    For each ratio ``C = (1 - lambda eta)/(eta B)`` one ReWA step is run from a log grid of
    ``y(t) > 0`` with the gradient ``+B``; the measured radius is the smallest ``y(t)`` whose
    step crosses 0. It must match U1 (``eps = 0``, ``M > 1``), U2 (``M = 0``, ``eps > 0``) or
    U3 (non-adaptive, ``M = K - 1``) within the grid spacing, and the measured radii must obey
    Proposition 3.11's comparisons.
    """
    start = time.perf_counter()
    B, lam = 1.0, 0.1
    grid = torch.tensor(np.geomspace(1e-4, 1e2, 20_001 if config.quick else 200_001), dtype=torch.float64)
    spacing = float(grid[1] / grid[0]) - 1
    slack = 1 + 2 * spacing  # two grid steps of tolerance in a comparison of measured radii
    ratios = [0.2, 0.5, 0.9, 1.5, 3.0]
    settings = [
        ("U1", 9, 2, 0.0),
        ("U1", 9, 3.5, 0.0),
        ("U1", 5, 3, 0.0),
        ("U2", 5, 0, 1e-3),
        ("U2", 9, 0, 1e-3),
        ("U2", 3, 0, 1e-2),
        ("U3", 5, 4, 0.0),
        ("U3", 9, 8, 0.0),
        ("U3", 3, 2, 0.0),
    ]
    rows = []
    for C in ratios:
        lr = 1 / (C * B + lam)  # solves C = (1 - lam*lr)/(lr*B)
        for radius, K, M, eps in settings:
            if radius == "U1":
                predicted = theory.stagnation_radius_adaptive_m(C, M)
            elif radius == "U2":
                predicted = theory.stagnation_radius_adaptive_eps(C, K, eps)
            else:
                predicted = theory.stagnation_radius_plain(C, K)
            measured = _measured_stagnation_radius(lr, lam, B, K=K, M=M, eps=eps, grid=grid)
            if math.isinf(predicted) or predicted > float(grid[-1]):
                match = math.isinf(measured)
            else:
                match = abs(measured - predicted) <= 2 * spacing * predicted
            rows.append(
                dict(C=C, lr=lr, radius=radius, K=K, M=M, eps=eps, predicted=predicted, measured=measured, match=match)
            )
    # Proposition 3.11 on the measured radii (pairs with the same K where both exist).
    comparisons = []
    for C in ratios:
        at = [r for r in rows if r["C"] == C]
        for u1 in (r for r in at if r["radius"] == "U1"):
            for u3 in (r for r in at if r["radius"] == "U3" and r["K"] == u1["K"] and u1["M"] < r["K"] - 1):
                if C <= 1:
                    comparisons.append(("1: U1 <= U3", C, u1["K"], u1["measured"] <= u3["measured"] * slack))
        for u2 in (r for r in at if r["radius"] == "U2"):
            for u3 in (r for r in at if r["radius"] == "U3" and r["K"] == u2["K"]):
                if C <= (1 - u2["eps"]) ** ((u2["K"] - 2) / (u2["K"] - 1)):
                    comparisons.append(("2: U2 <= U3", C, u2["K"], u2["measured"] <= u3["measured"] * slack))
        if C > 1:
            for r in at:
                if r["radius"] in ("U1", "U3"):
                    comparisons.append((f"3: {r['radius']} > 1", C, r["K"], r["measured"] > 1))
                else:  # corrected: a finite U2 is <= 1/C < 1
                    comparisons.append(
                        (
                            "3': U2 <= 1/C or inf",
                            C,
                            r["K"],
                            math.isinf(r["measured"]) or r["measured"] <= (1 / C) * (1 + 2 * spacing),
                        )
                    )
    counterexample = theory.stagnation_radius_adaptive_eps(1.0, 3, 0.1)
    matches = sum(r["match"] for r in rows)
    passed = matches == len(rows) and all(c[3] for c in comparisons)
    return ClaimRecord(
        key="theorem_3_10",
        claim="Theorem 3.10 / Prop. 3.11",
        statement="One step keeps the sign of y(t) when |y(t)| <= U1 = C^(1/(M-1)) (eps = 0), U2 = F^-1(1/C) "
        "(M = 0, F(U) = U + eps U^-(K-2)) or U3 = C^(1/(K-2)) (no adaptive rate); U1 <= U3 if C <= 1, "
        "U2 <= U3 if C <= (1-eps)^((K-2)/(K-1)), U1, U2, U3 > 1 if C >= 1.",
        checked=f"one ReWA step (rewa_sgd) from {len(grid)} log-spaced y(t) in [1e-4, 1e2] with gradient +B, "
        f"{len(ratios)} ratios C x {len(settings)} settings; measured radius within 2 grid steps "
        f"({2 * spacing:.1e} relative) of the formula; Proposition 3.11 on the measured radii",
        inputs=dict(B=B, weight_decay=lam, C=ratios, settings=settings, grid_points=len(grid)),
        measured=dict(
            rows=rows,
            comparisons=[dict(item=c[0], C=c[1], K=c[2], holds=c[3]) for c in comparisons],
            u2_counterexample=dict(C=1.0, K=3, eps=0.1, U2=counterexample),
        ),
        passed=passed,
        summary=(
            f"{matches}/{len(rows)} radii match; {sum(c[3] for c in comparisons)}/{len(comparisons)} comparisons hold"
        ),
        discrepancies=[
            f"Prop. 3.11(3) says U2 > 1 when C >= 1, but F(U) >= U makes any finite U2 <= 1/C <= 1 "
            f"(C=1, K=3, eps=0.1 gives U2 = {counterexample:.4f}); checked: U2 <= 1/C or U2 = inf.",
            "Theorem 3.10's condition for U2 to exist is printed as eps <= [C(K-1)/(K-2)]^(K-1)/(K-2); the proof's "
            "F gives eps <= [(K-2)/((K-1)C)]^(K-1)/(K-2). Beyond it no |y| crosses 0 (U2 = inf, also measured).",
            "U1 bounds a region around 0 only for M > 1 (the theorem says M != 0).",
        ],
        seconds=time.perf_counter() - start,
    )
