"""Argument checks: each raises a ValueError or TypeError whose message names the bad value.

The bottom of the package: it imports nothing of ``rewa``. Callers write ``check.real("lr", lr)``.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from numbers import Real
from typing import Any


def real(name: str, value: Any) -> Any:
    """``value`` itself, after checking it is a finite real number (``bool`` is not)."""
    kind = type(value)
    if (kind is float or kind is int) and math.isfinite(value):
        return value  # the common case, without the slower abstract-class check (every step)
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name}={value!r} must be a real number, got {type(value).__name__}")
    if not math.isfinite(value):
        raise ValueError(f"{name}={value} must be finite")
    return value


def boolean(name: str, value, allow_none: bool = False) -> None:
    if not isinstance(value, bool) and not (allow_none and value is None):
        allowed = "True, False or None" if allow_none else "True or False"
        raise TypeError(f"{name}={value!r} must be {allowed}, got {type(value).__name__}")


def integer(name: str, value, low: int = 1, high: int | None = None) -> int:
    """``value`` itself, after checking it is an ``int`` (not a ``bool``) in ``[low, high]``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        if high is not None:
            allowed = f"an integer in [{low}, {high}]"
        else:
            allowed = {1: "a positive integer", 0: "a non-negative integer"}.get(low, f"an integer >= {low}")
        raise ValueError(f"{name}={value!r} must be {allowed}")
    return value


def at_least(name: str, value, low: float) -> float:
    """``value`` itself, after checking it is a finite real number ``>= low``."""
    if real(name, value) < low:
        raise ValueError(f"{name}={value} must be >= {low:g}")
    return value


def at_most(name: str, value, high: float, high_name: str | None = None) -> float:
    """``value`` itself, after checking ``value <= high`` (``high_name``: how to show the bound)."""
    if real(name, value) > high:
        bound = f"{high_name}={high:g}" if high_name else f"{high:g}"
        raise ValueError(f"{name}={value} must be <= {bound}")
    return value


def above(name: str, value, low: float) -> None:
    if not real(name, value) > low:
        raise ValueError(f"{name}={value} must be > {low:g}")


def in_range(name: str, value, low: float, high: float, *, closed: str = "both") -> Any:
    """``low <= value <= high``; ``closed`` is ``"both"``, ``"left"`` (``value < high``),
    ``"right"`` (``low < value``) or ``"neither"``."""
    value = real(name, value)
    left_ok = low <= value if closed in ("both", "left") else low < value
    right_ok = value <= high if closed in ("both", "right") else value < high
    if not (left_ok and right_ok):
        opening = "[" if closed in ("both", "left") else "("
        closing = "]" if closed in ("both", "right") else ")"
        raise ValueError(f"{name}={value} must be in {opening}{low:g}, {high:g}{closing}")
    return value


def in_closed(name: str, value, low: float, high: float) -> Any:
    return in_range(name, value, low, high, closed="both")


def in_half_open(name: str, value, low: float, high: float) -> Any:
    return in_range(name, value, low, high, closed="left")


def one_of(name: str, value, allowed: Collection) -> None:
    if value not in allowed:
        raise ValueError(f"{name}={value!r} must be one of {tuple(allowed)!r}")


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


# x = |y|^K overflows float32 once |y| > (3.4e38)^(1/K): 19,111 at K = 9 but 1.0009 at K = 1e5;
# the paper uses K <= 13. Above this bound every weight with |y| > 1.4 would overflow float32.
K_MAX = 256


def check_reparameterization(K, M, eps) -> None:
    """1 <= K <= K_MAX (256), 0 <= M <= K - 1, eps >= 0 (paper, Equation 3)."""
    in_closed("K", K, 1, K_MAX)
    real("M", M)
    if not 0 <= M <= K - 1:
        raise ValueError(f"M={M} must be in [0, K-1] = [0, {K - 1:g}]")
    at_least("eps", eps, 0)
