"""ReWA's implicit regularizer: which l_p a setting ``(K, M, eps)`` acts as, and whether it
sparsifies.

Plain numpy on float64: closed forms of the paper's Section 3 that the library itself uses
(the optimizers warn with :func:`sparsity_problem`).

* :func:`lp_exponent` and :func:`sparsity_configuration`: ``p = 1 + (1 - M)/K`` and which of
  Proposition 3.4's Configurations A / B a setting ``(K, M, eps)`` meets, with the reason;
  :func:`sparsity_problem` is its verdict as a warning text.
* :func:`implicit_regularizer`, :func:`implicit_regularizer_grad`: ``R(x)`` of Theorem 3.3
  (Equation 4) and its gradient.

The formulas behind the paper's other Section 3 claims (stationarity, clipping, stagnation
radii, Example 3.12) are in :mod:`rewa.paper.formulas`.

Reference:
    Theoretical Analysis of Sparse Optimization with Reparameterization, Weight Decay, and
    Adaptive Learning Rate (ICML 2026), Section 3 and Appendix C.

Example:
    >>> from rewa.implicit import lp_exponent, sparsity_configuration
    >>> lp_exponent(9, 4)
    0.6666666666666667
    >>> sparsity_configuration(9, 4, 0.0).configuration
    'A'
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import _check as check

__all__ = [
    "SparsityConfiguration",
    "implicit_regularizer",
    "implicit_regularizer_grad",
    "lp_exponent",
    "sparsity_configuration",
    "sparsity_problem",
]

# ----------------------------------------------------------------------------------------
# Proposition 3.4: Configurations A and B
# ----------------------------------------------------------------------------------------


def lp_exponent(K: float, M: float) -> float:
    """The l_p exponent of ReWA's implicit regularizer: p = 1 + (1 - M)/K (Theorem 3.3)."""
    return 1 + (1 - M) / K


@dataclass(frozen=True)
class SparsityConfiguration:
    """Which of Proposition 3.4's configurations ``(K, M, eps)`` meets, and why.

    ``configuration`` is ``"A"`` (``eps = 0``, ``M > 1``), ``"B"`` (``eps > 0``, ``M < 2``) or
    ``None``. ``p`` is the exponent of R's first term, ``1 + (1 - M)/K``; ``q`` the exponent
    ``(2 - M)/K`` of its eps term (``None`` when ``eps = 0``; ``0.0`` stands for the
    logarithm at ``M = 2``). ``sparse`` says whether R has a term that is sparsity-inducing
    at 0 (an exponent below 1, a logarithm, or a negative power); ``reason`` explains it.
    """

    K: float
    M: float
    eps: float
    configuration: str | None
    p: float
    q: float | None
    sparse: bool
    reason: str


def sparsity_configuration(K: float, M: float, eps: float) -> SparsityConfiguration:
    """Classify ``(K, M, eps)`` by Proposition 3.4, with the reason.

    Configuration A: ``eps = 0`` and ``M > 1``, so ``p = 1 + (1 - M)/K < 1``.
    Configuration B: ``eps > 0`` and ``M < 2``, so the eps term of R is ``|x|^q`` with
    ``q = (2 - M)/K``.

    Note (departure): Configuration B gives ``q < 1`` only when ``K > 2 - M``; the
    proposition leaves this out. For ``K = 1, M = 0`` (plain SGD) or ``K < 2 - M`` the
    result has ``configuration="B"`` but ``sparse=False`` and the reason says why.
    Settings outside both configurations may still be sparse (``eps > 0`` with ``M > 1``
    keeps ``p < 1``); ``sparse`` reports that separately.

    Example:
        >>> sparsity_configuration(3, 0, 1e-3).configuration
        'B'
        >>> sparsity_configuration(9, 1, 0.0).reason[:30]
        'Neither: eps = 0 needs M > 1 ('
    """
    check.check_reparameterization(K, M, eps)
    p = lp_exponent(K, M)
    q = None if eps == 0 else (2 - M) / K
    p_text = f"p = 1 + (1 - M)/K = {p:.4g}"
    if eps == 0:
        if M > 1:
            return SparsityConfiguration(
                K, M, eps, "A", p, q, True, f"Configuration A: eps = 0 and M = {M:g} > 1, so {p_text} < 1"
            )
        return SparsityConfiguration(
            K,
            M,
            eps,
            None,
            p,
            q,
            False,
            f"Neither: eps = 0 needs M > 1 (Configuration A), but M = {M:g}, so {p_text} >= 1 "
            "and R has no l_p (p < 1) term",
        )
    if M < 2:
        assert q is not None  # eps > 0 here
        q_text = f"q = (2 - M)/K = {q:.4g}"
        if q < 1:
            return SparsityConfiguration(
                K, M, eps, "B", p, q, True, f"Configuration B: eps = {eps:g} > 0 and M = {M:g} < 2, so {q_text} < 1"
            )
        return SparsityConfiguration(
            K,
            M,
            eps,
            "B",
            p,
            q,
            p < 1,
            f"Configuration B by Proposition 3.4's letter (eps > 0, M < 2), but {q_text} >= 1 because "
            f"K = {K:g} <= 2 - M; "
            + (
                f"{p_text} < 1 still induces sparsity"
                if p < 1
                else f"{p_text} >= 1 too, so R has no sparsity-inducing term"
            ),
        )
    eps_term = "eps*log|x|" if M == 2 else f"eps*K/(2 - M)*|x|^({q:.4g}), unbounded below at 0"
    return SparsityConfiguration(
        K,
        M,
        eps,
        None,
        p,
        q,
        True,
        f"Neither: eps > 0 needs M < 2 (Configuration B), but M = {M:g}; R's eps term is {eps_term} "
        f"and {p_text} < 1, so R still pulls toward 0, outside Proposition 3.4",
    )


def sparsity_problem(K: float, M: float, eps: float) -> str | None:
    """Why (K, M, eps) does not induce l_p (p < 1) sparsity, or None.

    The verdict of :func:`sparsity_configuration` (Proposition 3.4 with its departure notes);
    K = 1 is deliberately plain (the dense groups of :func:`rewa.param_groups`).
    """
    if K == 1:
        return None
    configuration = sparsity_configuration(K, M, eps)
    if configuration.sparse:
        return None
    return f"K={K:g}, M={M:g}, eps={eps:g} does not induce l_p (p < 1) sparsity: {configuration.reason}"


# ----------------------------------------------------------------------------------------
# Theorem 3.3: the implicit regularizer
# ----------------------------------------------------------------------------------------


def _as_array(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


def implicit_regularizer(x, K: float, M: float, eps: float) -> np.ndarray:
    """R(x) of Theorem 3.3 (Equation 4), coordinate-wise (sum it for the vector value).

    ``R(x) = K/(1 - M + K) |x|^(1 + (1-M)/K) + eps K/(2 - M) |x|^((2-M)/K)``.

    Note (departure): at ``M = 2`` with ``eps > 0`` the second term is singular; it is
    replaced by its limit up to an additive constant, ``eps*log|x|`` (the gradient,
    ``eps*|x|^((2-M-K)/K)*sign(x)``, is the same continuous family). At ``x = 0`` that term is
    ``-inf``, as is the eps term for ``M > 2``.

    Example:
        >>> float(implicit_regularizer(3.0, K=1, M=0, eps=0))  # K = 1, M = 0: x^2 / 2
        4.5
    """
    check.check_reparameterization(K, M, eps)
    a = np.abs(_as_array(x))
    p = lp_exponent(K, M)
    value = K / (1 - M + K) * a**p
    if eps == 0:
        return value
    with np.errstate(divide="ignore"):
        if M == 2:
            return value + eps * np.log(a)
        return value + eps * K / (2 - M) * a ** ((2 - M) / K)


def implicit_regularizer_grad(x, K: float, M: float, eps: float) -> np.ndarray:
    """dR/dx: ``sign(x) * (|x|^((1-M)/K) + eps |x|^((2-M-K)/K))``, coordinate-wise.

    Equals ``y^(1-M) + eps y^(2-M-K)`` with ``y = sign(x)|x|^(1/K)``: the terms the weight
    decay contributes in the proof of Theorem 3.3 (Appendix C.4). At ``x = 0`` it is
    ``+-inf`` or ``nan`` when an exponent is negative (use :func:`stationarity_residual`,
    which is finite there).

    Example:
        >>> float(implicit_regularizer_grad(8.0, K=3, M=2, eps=0))  # 8^(-1/3)
        0.5
    """
    check.check_reparameterization(K, M, eps)
    x = _as_array(x)
    a = np.abs(x)
    with np.errstate(divide="ignore", invalid="ignore"):
        grad = a ** ((1 - M) / K)
        if eps != 0:
            grad = grad + eps * a ** ((2 - M - K) / K)
    return np.sign(x) * grad
