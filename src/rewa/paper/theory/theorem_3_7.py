"""Theorem 3.7: clipping, checked numerically."""

from __future__ import annotations

import math
import time

import numpy as np

from .. import formulas as theory
from .records import ClaimRecord, TheoryConfig


def _measured_clipping_bounds(p: float, u: float, kind: str) -> tuple[float, float]:
    """Per-coordinate max |slope| and max gap of the clipped penalty, from a dense grid."""
    t = np.unique(np.concatenate([np.linspace(0, 4 * u, 40_001), np.geomspace(u, 1e3 * u, 4001)]))
    clipped = theory.clipped_lp_penalty(t, p, u, kind)
    slope = np.abs(np.diff(clipped) / np.diff(t))
    gap = np.abs(clipped - theory.lp_penalty(t, p))
    return float(slope.max()), float(gap.max())


def check_theorem_3_7(config: TheoryConfig) -> ClaimRecord:
    """Theorem 3.7: a clipped l_p penalty cannot have both a small gradient and a small error.

    Measured from dense grids of the 1-D clipped penalty (the penalty is a sum over
    coordinates, so ``E1 = sqrt(d) * max slope`` and ``E2 = d * max gap``): E1 and E2 match
    the closed forms; scanning the threshold ``u`` gives the smallest E2 with ``E1 <= sqrt(d)``,
    which must exceed ``d/(2e)`` (constant clipping) and ``1/(c e)`` (l1 clipping, for
    ``p < 1 - 1/(c d)``).
    """
    start = time.perf_counter()
    ps = np.round(np.linspace(0.05, 0.95, 10 if config.quick else 19), 4)
    ds = [1, 10, 100, 1000]
    cs = [1.0, 10.0]
    us = np.geomspace(1e-4, 10, 200 if config.quick else 600)
    closed_form_error = 0.0
    rows = []
    for p in ps:
        p = float(p)
        for kind in theory.CLIPPING_KINDS:
            for u in (0.1, 0.5, 2.0):
                slope, gap = _measured_clipping_bounds(p, u, kind)
                e1 = theory.clipping_gradient_bound(p, u, 1, kind)
                e2 = theory.clipping_approximation_error(p, u, 1, kind)
                closed_form_error = max(closed_form_error, abs(slope - e1) / e1, abs(gap - e2) / e2)
            for d in ds:
                # E1 and E2 of the scanned thresholds, from the closed forms checked above.
                e1 = np.array([theory.clipping_gradient_bound(p, float(u), d, kind) for u in us])
                e2 = np.array([theory.clipping_approximation_error(p, float(u), d, kind) for u in us])
                feasible = e1 <= math.sqrt(d)
                scanned = float(e2[feasible].min()) if feasible.any() else math.inf
                u_best, e2_best = theory.smallest_clipping_error(p, d, kind)
                rows.append(dict(p=p, kind=kind, d=d, u_best=u_best, smallest_e2=e2_best, scanned_e2=scanned))
    checks = []
    for row in rows:
        d, p = row["d"], row["p"]
        scan_ok = row["smallest_e2"] <= row["scanned_e2"] * (1 + 1e-9)  # nothing scanned beats the closed form
        if row["kind"] == "constant":
            claims = [row["smallest_e2"] > d / (2 * math.e)]
        else:
            claims = [row["smallest_e2"] > 1 / (c * math.e) for c in cs if p < 1 - 1 / (c * d)]
        checks.append(scan_ok and all(claims))
    passed = all(checks) and closed_form_error <= 1e-3
    const_min = min(r["smallest_e2"] / r["d"] for r in rows if r["kind"] == "constant")
    return ClaimRecord(
        key="theorem_3_7",
        claim="Theorem 3.7",
        statement="Constant clipping cannot have E1 <= sqrt(d) and E2 <= d/(2e) together; l1 clipping with "
        "p < 1 - 1/(cd) cannot have E1 <= sqrt(d) and E2 <= 1/(ce) together.",
        checked=f"E1, E2 of both clippings measured on dense grids for {len(ps)} values of p and u in {{0.1, 0.5, 2}} "
        f"(relative error to closed forms <= 1e-3); smallest E2 with E1 <= sqrt(d) for d in {ds}, "
        f"checked against a scan of {len(us)} thresholds and against the two bounds (c in {cs})",
        inputs=dict(p=ps, d=ds, c=cs, thresholds_scanned=len(us)),
        measured=dict(max_relative_error_closed_forms=closed_form_error, rows=rows, min_constant_e2_over_d=const_min),
        passed=passed,
        summary=f"{sum(checks)}/{len(checks)} (p, d, kind); closed forms within {closed_form_error:.0e}; "
        f"min E2/d (constant) = {const_min:.3f} > 1/(2e) = {1 / (2 * math.e):.3f}",
        figures=["theorem_3_7_tradeoff", "theorem_3_7_clipping"],
        seconds=time.perf_counter() - start,
    )
