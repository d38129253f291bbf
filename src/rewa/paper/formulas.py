"""The formulas of the paper's Section 3 that its checks use, as functions of their parameters.

Everything here is plain numpy on float64 (scalars or arrays): these are closed forms and
small scalar equations, not training code. The checks that compare them with the optimizers
live in :mod:`rewa.paper.theory`. The closed forms the library uses (``lp_exponent``,
Proposition 3.4, ``R(x)``) are in :mod:`rewa.implicit` and re-exported here.

Contents, in the paper's order:

* :func:`stationarity_weight`, :func:`stationarity_residual`: the weight ``V(x)`` of
  Theorem 3.3 and the measured quantity ``V(x) * grad(f + lambda*R)(x)``.
* :func:`clipped_lp_penalty`, :func:`clipping_gradient_bound`,
  :func:`clipping_approximation_error`, :func:`smallest_clipping_error`: Definition 3.6 and
  Theorem 3.7.
* :func:`stagnation_ratio`, :func:`stagnation_radius_adaptive_m`,
  :func:`stagnation_radius_adaptive_eps`, :func:`stagnation_radius_plain`: the radii
  ``U1, U2, U3`` of Theorem 3.10 (compared in Proposition 3.11).
* :func:`constrained_solution`: the l0 / l1 / l_p solutions of Example 3.12.

Reference:
    Theoretical Analysis of Sparse Optimization with Reparameterization, Weight Decay, and
    Adaptive Learning Rate (ICML 2026), Section 3 and Appendix C.

Example:
    >>> from rewa.paper.formulas import stagnation_ratio
    >>> stagnation_ratio(lr=0.5, weight_decay=0.2, grad_bound=2.0)
    0.9
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .. import _check as check
from ..implicit import (
    SparsityConfiguration,
    implicit_regularizer,
    implicit_regularizer_grad,
    lp_exponent,
    sparsity_configuration,
    sparsity_problem,
)
from ..penalties import CLIP_KINDS as CLIPPING_KINDS
from ..penalties import ClippedLp

__all__ = [
    "SparsityConfiguration",
    "clipped_lp_penalty",
    "clipping_approximation_error",
    "clipping_gradient_bound",
    "constrained_solution",
    "implicit_regularizer",
    "implicit_regularizer_grad",
    "lp_exponent",
    "lp_penalty",
    "sparsity_problem",
    "smallest_clipping_error",
    "sparsity_configuration",
    "stagnation_radius_adaptive_eps",
    "stagnation_radius_adaptive_m",
    "stagnation_radius_plain",
    "stagnation_ratio",
    "stationarity_residual",
    "stationarity_weight",
]


def _as_array(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


def stationarity_weight(x, K: float, M: float, eps: float) -> np.ndarray:
    """V(x) of Theorem 3.3: ``|x|^((K-1)/K + M/(2K)) / sqrt(|x|^((K-1)/K) + eps)``.

    Computed from ``|y| = |x|^(1/K)`` as ``|y|^(K-1+M/2) / sqrt(|y|^(K-1) + eps)`` (for
    ``eps = 0``: ``|y|^((K-1+M)/2)``), so it is 0, not ``nan``, at ``x = 0``.

    Note (departure): this is the V of the proof (Appendix C.4, last display). The theorem's
    statement writes ``|x|^(1/K + 1)`` under the square root, which does not follow from the
    proof; the numerators agree.
    """
    check.check_reparameterization(K, M, eps)
    a = np.abs(_as_array(x)) ** (1.0 / K)  # |y|
    if eps == 0:  # the ratio would be 0/0 at x = 0
        return a ** ((K - 1 + M) / 2)
    return a ** (K - 1 + M / 2) / np.sqrt(a ** (K - 1) + eps)


def stationarity_residual(x, grad_f, K: float, M: float, eps: float, weight_decay: float) -> np.ndarray:
    """``V(x) * (grad f(x) + lambda * grad R(x))`` coordinate-wise, finite at ``x = 0``.

    Theorem 3.3 bounds its squared norm by ``log T / sqrt(T)`` along ReWA's trajectory. The
    regularizer part is computed in closed form,
    ``V * grad R = sign(y) |y|^(1 - M/2) sqrt(|y|^(K-1) + eps)`` with ``y = sign(x)|x|^(1/K)``,
    which is 0 at ``x = 0`` for ``eps = 0`` or ``M < 2`` (the product of the two factors
    would be ``0 * inf`` there).

    Note (departure): the theorem's display drops ``lambda``; the proof's potential is
    ``f + lambda*R`` and so is this residual (``weight_decay`` is ``lambda``).
    """
    check.check_reparameterization(K, M, eps)
    check.at_least("weight_decay", weight_decay, 0)
    x = _as_array(x)
    a = np.abs(x) ** (1.0 / K)  # |y|
    if eps == 0:  # one power, so no 0 * inf at x = 0 for M > 2
        reg = np.sign(x) * a ** ((K + 1 - M) / 2)
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            reg = np.sign(x) * a ** (1 - M / 2) * np.sqrt(a ** (K - 1) + eps)
    return stationarity_weight(x, K, M, eps) * _as_array(grad_f) + weight_decay * reg


# ----------------------------------------------------------------------------------------
# Definition 3.6 and Theorem 3.7: clipping the l_p penalty
# ----------------------------------------------------------------------------------------


def _check_p(p, low_open: float = 0.0, high: float = 2.0) -> None:
    check.in_range("p", p, low_open, high, closed="right")


def _check_clipping(p, u, d, kind) -> None:
    check.in_range("p", p, 0, 1, closed="neither")  # Theorem 3.7 is about l_p with p < 1
    check.above("u", u, 0)  # the clipping threshold
    if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 1:
        raise ValueError(f"d={d!r} must be a positive integer (the dimension)")
    check.one_of("kind", kind, CLIPPING_KINDS)


def lp_penalty(x, p: float) -> np.ndarray:
    """``|x|^p`` coordinate-wise (``psi_p`` of Definition 3.6 is its sum), ``p`` in ``(0, 2]``."""
    _check_p(p)
    return np.abs(_as_array(x)) ** p


def clipped_lp_penalty(x, p: float, u: float, kind: str) -> np.ndarray:
    """Definition 3.6, coordinate-wise. Constant clipping: ``max(|x|^p, u^p)``. l1 clipping:
    the tangent of ``|x|^p`` at ``u``, ``p u^(p-1) |x| + (1-p) u^p``, for ``|x| < u`` and
    ``|x|^p`` beyond.

    Note (departure): the paper writes l1 clipping as ``max(|x|^p, tangent)``; since ``|x|^p``
    is concave on ``[0, inf)`` it lies below every tangent, so that maximum is the tangent line
    everywhere and its error grows without bound. The piecewise form is the one the proof
    (Appendix C.5: error ``d(1-p)u^p`` at 0) and Figure 5 use.

    Example:
        >>> float(clipped_lp_penalty(0.0, 0.5, 4.0, "constant"))
        2.0
        >>> float(clipped_lp_penalty(0.0, 0.5, 4.0, "l1"))
        1.0
        >>> float(clipped_lp_penalty(9.0, 0.5, 4.0, "l1"))
        3.0
    """
    _check_clipping(p, u, 1, kind)
    return ClippedLp(p, u, kind).pointwise(torch.as_tensor(_as_array(x), dtype=torch.float64)).numpy()


def clipping_gradient_bound(p: float, u: float, d: int, kind: str) -> float:
    """E1 = max_x ||grad clipped psi_p(x)|| = ``sqrt(d) p u^(p-1)`` for both kinds.

    Constant clipping is flat below ``u`` and ``|x|^p`` above, whose slope is largest at
    ``u``; l1 clipping has slope ``p u^(p-1)`` below ``u``. Every coordinate at ``u`` gives the
    norm ``sqrt(d)`` times that (Appendix C.5).
    """
    _check_clipping(p, u, d, kind)
    return ClippedLp(p, u, kind).gradient_bound(d)


def clipping_approximation_error(p: float, u: float, d: int, kind: str) -> float:
    """E2 = max_x |psi_p(x) - clipped psi_p(x)|, attained at ``x = 0``: ``d u^p`` (constant)
    or ``d (1-p) u^p`` (l1) (Appendix C.5, Equations 13 and 14)."""
    _check_clipping(p, u, d, kind)
    return ClippedLp(p, u, kind).approximation_error(d)


def smallest_clipping_error(p: float, d: int, kind: str) -> tuple[float, float]:
    """``(u, E2)``: the smallest approximation error reachable with ``E1 <= sqrt(d)``.

    E1 falls and E2 grows with ``u``, so the best threshold is the one with ``E1 = sqrt(d)``:
    ``u = p^(1/(1-p))``, giving ``E2 = d p^(p/(1-p))`` (constant) or
    ``d (1-p) p^(p/(1-p))`` (l1). Theorem 3.7: the first is above ``d/e``, the second above
    ``1/(c e)`` when ``p < 1 - 1/(c d)``.
    """
    _check_clipping(p, 1.0, d, kind)
    u = p ** (1 / (1 - p))
    return u, clipping_approximation_error(p, u, d, kind)


# ----------------------------------------------------------------------------------------
# Theorem 3.10 and Proposition 3.11: stagnation radii
# ----------------------------------------------------------------------------------------


def stagnation_ratio(lr: float, weight_decay: float, grad_bound: float) -> float:
    """``C = (1 - lambda*eta) / (eta * B)`` (Appendix C.9); needs ``lr*weight_decay < 1``."""
    check.above("lr", lr, 0)
    check.at_least("weight_decay", weight_decay, 0)
    check.above("grad_bound", grad_bound, 0)  # the bound B on |grad f|
    if not lr * weight_decay < 1:
        raise ValueError(f"lr*weight_decay={lr * weight_decay:g} must be < 1 (the decay keeps the sign of y)")
    return (1 - weight_decay * lr) / (lr * grad_bound)


def _check_ratio(C) -> None:
    check.above("C", C, 0)


def stagnation_radius_adaptive_m(C: float, M: float) -> float:
    """U1 = C^(1/(M-1)): ReWA with ``eps = 0`` cannot change the sign of ``|y| < U1``.

    From ``eta |y|^M B < (1 - lambda*eta)|y|``. Note: this is a radius around 0 only for
    ``M > 1`` (for ``M < 1`` the inequality holds *outside* it), so ``M <= 1`` is rejected;
    the theorem says ``M != 0``.
    """
    _check_ratio(C)
    check.above("M", M, 1)  # for U1 to bound a region around 0
    return C ** (1 / (M - 1))


def stagnation_radius_plain(C: float, K: float) -> float:
    """U3 = C^(1/(K-2)): without the adaptive rate (Equation 2), ``|y| < U3`` keeps its sign."""
    _check_ratio(C)
    check.above("K", K, 2)  # for U3 to bound a region around 0
    return C ** (1 / (K - 2))


def stagnation_radius_adaptive_eps(C: float, K: float, eps: float) -> float:
    """U2: the small root of ``F(U) = U + eps U^-(K-2) = 1/C`` (ReWA with ``M = 0, eps > 0``).

    ``F`` falls from ``+inf`` to its minimum ``F(U*) = U* (K-1)/(K-2)`` at
    ``U* = (eps (K-2))^(1/(K-1))``; the root on that branch is found by bisection. If
    ``F(U*) > 1/C`` there is no root: no ``|y|`` can change sign under the worst-case
    gradient, and ``inf`` is returned.

    Note (departure): that existence condition reads
    ``eps <= [(K-2)/((K-1) C)]^(K-1) / (K-2)``; the theorem prints
    ``[C (K-1)/(K-2)]^(K-1) / (K-2)``, with ``C`` and the ratio inverted (for ``K = 3`` the
    root of ``U + eps/U = 1/C`` exists iff ``eps <= 1/(4 C^2)``).
    """
    _check_ratio(C)
    check.above("K", K, 2)  # for U2 to bound a region around 0
    check.above("eps", eps, 0)  # U2 is the radius of the eps-adaptive update
    target = 1 / C
    u_star = (eps * (K - 2)) ** (1 / (K - 1))

    def F(u: float) -> float:
        return u + eps * u ** (-(K - 2))

    if F(u_star) > target:
        return math.inf
    low, high = 0.0, u_star  # F(low+) = +inf > target >= F(high)
    for _ in range(200):
        mid = 0.5 * (low + high)
        if mid == low or mid == high:
            break
        if F(mid) > target:
            low = mid
        else:
            high = mid
    return low


# ----------------------------------------------------------------------------------------
# Example 3.12: l0, l1 and l_p over a ball
# ----------------------------------------------------------------------------------------


def constrained_solution(d: int, u: float, p: float) -> np.ndarray:
    """A minimizer of ``||theta||_p^p`` (``p = 0``: the count of nonzeros) over the ball
    ``||theta - u 1||^2 <= (d - 1) u^2`` (Example 3.12, Appendix C.10).

    * ``p = 0`` and ``0 < p <= 0.5``: ``(u, 0, ..., 0)`` (any coordinate will do), support 1.
    * ``1 <= p <= 2``: ``c 1`` with ``c = (1 - sqrt((d-1)/d)) u``, support ``d`` (the ball's
      point nearest the origin along the diagonal; convexity and symmetry make it optimal).

    ``0.5 < p < 1`` is not covered by the example and raises ``ValueError``.

    Example:
        >>> constrained_solution(3, 1.0, 0.5).tolist()
        [1.0, 0.0, 0.0]
    """
    if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 2:
        raise ValueError(f"d={d!r} must be an integer >= 2")
    check.above("u", u, 0)
    check.real("p", p)
    if p != 0:
        _check_p(p)
        if 0.5 < p < 1:
            raise ValueError(f"p={p} is in (0.5, 1), which Example 3.12 does not cover; use p = 0, p <= 0.5 or p >= 1")
    theta = np.zeros(d)
    if p <= 0.5:
        theta[0] = u
    else:
        theta[:] = (1 - math.sqrt((d - 1) / d)) * u
    return theta
