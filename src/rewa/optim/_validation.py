"""Checks of hyperparameters: every message names the bad value and the allowed range."""

from __future__ import annotations

import math
from numbers import Real


def real(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name}={value!r} must be a real number, got {type(value).__name__}")
    if not math.isfinite(value):
        raise ValueError(f"{name}={value} must be finite")
    return value


def positive_int(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}={value!r} must be a positive integer")


def at_least(name: str, value, low: float) -> None:
    if real(name, value) < low:
        raise ValueError(f"{name}={value} must be >= {low:g}")


def in_closed(name: str, value, low: float, high: float) -> None:
    if not low <= real(name, value) <= high:
        raise ValueError(f"{name}={value} must be in [{low:g}, {high:g}]")


def in_half_open(name: str, value, low: float, high: float) -> None:
    if not low <= real(name, value) < high:
        raise ValueError(f"{name}={value} must be in [{low:g}, {high:g})")


def check_momentum(group: dict) -> None:
    """torch-SGD momentum settings: momentum in [0, 1), dampening in [0, 1], Nesterov's needs."""
    in_half_open("momentum", group["momentum"], 0, 1)
    in_closed("dampening", group["dampening"], 0, 1)
    if group["nesterov"] and (group["momentum"] == 0 or group["dampening"] != 0):
        raise ValueError(
            f"nesterov=True needs momentum > 0 and dampening = 0, got momentum="
            f"{group['momentum']}, dampening={group['dampening']}"
        )


def check_betas(betas) -> None:
    """Adam's ``(beta1, beta2)``: a pair, each in [0, 1)."""
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise ValueError(f"betas={betas!r} must be a pair (beta1, beta2)")
    in_half_open("betas[0]", betas[0], 0, 1)
    in_half_open("betas[1]", betas[1], 0, 1)


def check_reparameterization(K, M, eps) -> None:
    """K >= 1, 0 <= M <= K - 1, eps >= 0 (paper, Equation 3)."""
    at_least("K", K, 1)
    real("M", M)
    if not 0 <= M <= K - 1:
        raise ValueError(f"M={M} must be in [0, K-1] = [0, {K - 1:g}]")
    at_least("eps", eps, 0)


def lp_exponent(K: float, M: float) -> float:
    """The l_p exponent of ReWA's implicit regularizer: p = 1 + (1 - M)/K (Theorem 3.3)."""
    return 1 + (1 - M) / K


def sparsity_problem(K: float, M: float, eps: float) -> str | None:
    """Why (K, M, eps) does not induce l_p (p < 1) sparsity under Proposition 3.4, or None.

    Only Configuration A's failure with eps = 0 is reported; K = 1 is deliberately plain.
    """
    if K == 1 or eps != 0:
        return None
    p = lp_exponent(K, M)
    if p >= 1:
        return (
            f"K={K:g}, M={M:g}, eps=0 gives p = 1 + (1 - M)/K = {p:.4g} >= 1: this setting does "
            "not induce l_p (p < 1) sparsity (Proposition 3.4, Configuration A needs M > 1 "
            "when eps = 0; Configuration B needs eps > 0 and M < 2)"
        )
    return None
