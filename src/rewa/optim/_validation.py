"""Checks of hyperparameters: every message names the bad value and the allowed range."""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Real


def real(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name}={value!r} must be a real number, got {type(value).__name__}")
    if not math.isfinite(value):
        raise ValueError(f"{name}={value} must be finite")
    return value


def boolean(name: str, value, allow_none: bool = False) -> None:
    if not isinstance(value, bool) and not (allow_none and value is None):
        allowed = "True, False or None" if allow_none else "True or False"
        raise TypeError(f"{name}={value!r} must be {allowed}, got {type(value).__name__}")


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


# x = |y|^K overflows float32 once |y| > (3.4e38)^(1/K): 19.4 at K = 9 but 1.0000009 at K = 1e5;
# the paper uses K <= 13. Above this bound every weight with |y| > 1.4 would overflow float32.
K_MAX = 256


def check_reparameterization(K, M, eps) -> None:
    """1 <= K <= K_MAX (256), 0 <= M <= K - 1, eps >= 0 (paper, Equation 3)."""
    in_closed("K", K, 1, K_MAX)
    real("M", M)
    if not 0 <= M <= K - 1:
        raise ValueError(f"M={M} must be in [0, K-1] = [0, {K - 1:g}]")
    at_least("eps", eps, 0)


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
    check_reparameterization(K, M, eps)
    p = lp_exponent(K, M)
    q = None if eps == 0 else (2 - M) / K
    p_text = f"p = 1 + (1 - M)/K = {p:.4g}"
    if eps == 0:
        if M > 1:
            return SparsityConfiguration(K, M, eps, "A", p, q, True,
                                         f"Configuration A: eps = 0 and M = {M:g} > 1, so {p_text} < 1")
        return SparsityConfiguration(
            K, M, eps, None, p, q, False,
            f"Neither: eps = 0 needs M > 1 (Configuration A), but M = {M:g}, so {p_text} >= 1 "
            "and R has no l_p (p < 1) term",
        )
    if M < 2:
        q_text = f"q = (2 - M)/K = {q:.4g}"
        if q < 1:
            return SparsityConfiguration(K, M, eps, "B", p, q, True,
                                         f"Configuration B: eps = {eps:g} > 0 and M = {M:g} < 2, so {q_text} < 1")
        return SparsityConfiguration(
            K, M, eps, "B", p, q, p < 1,
            f"Configuration B by Proposition 3.4's letter (eps > 0, M < 2), but {q_text} >= 1 because "
            f"K = {K:g} <= 2 - M; " + (f"{p_text} < 1 still induces sparsity" if p < 1 else
                                       f"{p_text} >= 1 too, so R has no sparsity-inducing term"),
        )
    eps_term = "eps*log|x|" if M == 2 else f"eps*K/(2 - M)*|x|^({q:.4g}), unbounded below at 0"
    return SparsityConfiguration(
        K, M, eps, None, p, q, True,
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
