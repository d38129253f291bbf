"""Sparsity penalties as small objects: l1, l_p and clipped l_p (paper, Definition 3.6).

Every penalty ``psi`` acts element-wise and sums over the entries of a tensor. It has a fixed
protocol:

* ``value(x)``: ``psi(x)`` as a 0-d tensor, built from differentiable torch operations, so a
  training loop may simply add ``strength * penalty.value(w)`` to its loss;
* ``grad(x)``: a (sub)gradient of ``psi`` at ``x``, element-wise, with the value 0 chosen at
  ``x = 0`` (the minimal-norm subgradient of l1; for ``p < 1`` the l_p derivative is unbounded
  there and 0 is the convention, see the notes of :class:`Lp`);
* ``prox(x, step)`` where a closed form exists (``has_prox``): the minimizer of
  ``(z - x)^2 / 2 + step * psi(z)`` element-wise;
* ``support(x)``: the boolean mask of the entries that are not exactly zero.

A penalty carries no strength; the optimizer or the loop multiplies by ``lambda``.

Example:
    >>> import torch
    >>> from rewa.penalties import ClippedLp, L1
    >>> L1().prox(torch.tensor([-2.0, 0.3, 1.5]), 0.5)
    tensor([-1.5000,  0.0000,  1.0000])
    >>> psi = ClippedLp(p=0.5, threshold=0.25, kind="l1")
    >>> float(psi.value(torch.zeros(4)))  # d (1 - p) u^p: the approximation error at 0
    1.0
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from . import _check as check

__all__ = ["L1", "Lp", "ClippedLp", "make_penalty", "PENALTY_NAMES", "CLIP_KINDS"]

CLIP_KINDS = ("constant", "l1")
PENALTY_NAMES = ("l1", "lp", "lp-clipped")


def _signed_power_derivative(x: Tensor, p: float) -> Tensor:
    """``p * sign(x) * |x|^(p-1)``, with 0 at ``x = 0`` (where it is ``0 * inf`` otherwise)."""
    a = x.abs()
    out = a.pow(p - 1).mul_(p).mul_(x.sign())
    return torch.where(a == 0, torch.zeros_like(out), out)


class L1:
    r"""``psi(x) = sum_j |x_j|``; its prox is soft-thresholding.

    ``prox(x, t) = sign(x) * max(|x| - t, 0)``, the exact minimizer of
    ``(z - x)^2/2 + t|z|``: it produces exact zeros.
    """

    has_prox = True
    p = 1.0

    def __repr__(self) -> str:
        return "L1()"

    def value(self, x: Tensor) -> Tensor:
        return x.abs().sum()

    def grad(self, x: Tensor) -> Tensor:
        return x.sign()

    def prox(self, x: Tensor, step: float | Tensor) -> Tensor:
        return x.sign() * (x.abs() - step).clamp_min(0)

    def support(self, x: Tensor) -> Tensor:
        return x != 0


class Lp:
    r"""``psi(x) = sum_j |x_j|^p`` for ``p > 0`` (the paper's [Bp] penalty).

    ``grad(x) = p * sign(x) * |x|^(p-1)``.

    Note:
        For ``p < 1`` the derivative is unbounded near 0 and undefined at 0; ``grad`` returns 0
        at exactly 0 (so a coordinate that reached 0 stays there under a subgradient step) and
        can be huge next to it, which is the instability Theorem 3.7 and the pWD paper's toy
        (Figure 1) are about. No prox is provided.
    """

    has_prox = False

    def __init__(self, p: float):
        check.above("p", p, 0)
        self.p = float(p)

    def __repr__(self) -> str:
        return f"Lp(p={self.p:g})"

    def value(self, x: Tensor) -> Tensor:
        return x.abs().pow(self.p).sum()

    def grad(self, x: Tensor) -> Tensor:
        return _signed_power_derivative(x, self.p)

    def support(self, x: Tensor) -> Tensor:
        return x != 0


class ClippedLp:
    r"""l_p with clipping at threshold ``u`` (paper, Definition 3.6), ``0 < p < 1``.

    * constant clipping: ``psi(x) = sum_j max(|x_j|^p, u^p)``;
    * l1 clipping: ``psi(x) = sum_j h(|x_j|)`` with ``h(a) = p u^(p-1) a + (1 - p) u^p`` for
      ``a < u`` and ``h(a) = a^p`` for ``a >= u``: the l_p curve below ``u`` replaced by its
      tangent line at ``u``.

    Both have gradient norm at most ``sqrt(d) p u^(p-1)`` and differ from ``||x||_p^p`` by up to
    ``d u^p`` (constant) or ``d (1 - p) u^p`` (l1), attained at ``x = 0``:
    :meth:`gradient_bound` and :meth:`approximation_error` return these ``E_1`` and ``E_2`` of
    Theorem 3.7, which shows that both cannot be small at once.

    Note:
        Departure from the letter of Definition 3.6, which writes l1 clipping as
        ``max(|x|^p, p u^(p-1)|x| + (1-p)u^p)``: for ``p < 1`` the tangent line lies above the
        concave ``|x|^p`` everywhere, so that max is the line for every ``x`` and its error
        grows without bound. The proof of Theorem 3.7 (error attained at ``x = 0``, gradient
        bound ``p u^(p-1)``) and Figure 5 use the piecewise form implemented here.

        At the kink ``|x| = u`` ``grad`` takes the l_p side; the two sides agree there for l1
        clipping. Constant clipping has zero gradient for ``|x| < u``, so it exerts no pull
        towards 0 there: that is the method as defined, not a bug.
    """

    has_prox = False

    def __init__(self, p: float, threshold: float, kind: str = "l1"):
        check.in_range("p", p, 0, 1, closed="neither")
        check.above("threshold", threshold, 0)
        check.one_of("kind", kind, CLIP_KINDS)
        self.p, self.threshold, self.kind = float(p), float(threshold), kind

    def __repr__(self) -> str:
        return f"ClippedLp(p={self.p:g}, threshold={self.threshold:g}, kind={self.kind!r})"

    def pointwise(self, x: Tensor) -> Tensor:
        """The clipped ``|x_j|^p`` of each coordinate (``value`` is their sum)."""
        a, p, u = x.abs(), self.p, self.threshold
        if self.kind == "constant":
            return torch.maximum(a.pow(p), torch.full_like(a, u**p))
        tangent = a * (p * u ** (p - 1)) + (1 - p) * u**p
        return torch.where(a >= u, a.pow(p), tangent)

    def value(self, x: Tensor) -> Tensor:
        return self.pointwise(x).sum()

    def grad(self, x: Tensor) -> Tensor:
        a, p, u = x.abs(), self.p, self.threshold
        outside = _signed_power_derivative(x, p)
        inside = torch.zeros_like(x) if self.kind == "constant" else x.sign() * (p * u ** (p - 1))
        return torch.where(a >= u, outside, inside)

    def support(self, x: Tensor) -> Tensor:
        return x != 0

    def gradient_bound(self, d: int) -> float:
        """``E_1 = sqrt(d) p u^(p-1)``, the largest gradient norm over ``R^d``."""
        return math.sqrt(d) * self.p * self.threshold ** (self.p - 1)

    def approximation_error(self, d: int) -> float:
        """``E_2 = max_x |psi(x) - ||x||_p^p|``: ``d u^p`` (constant) or ``d (1-p) u^p`` (l1)."""
        scale = 1.0 if self.kind == "constant" else 1 - self.p
        return d * scale * self.threshold**self.p


def make_penalty(name: str, *, p: float = 1.0, threshold: float | None = None, clip: str = "l1"):
    """The penalty called ``name`` (one of :data:`PENALTY_NAMES`) with its parameters."""
    if name == "l1":
        return L1()
    if name == "lp":
        return Lp(p)
    if name == "lp-clipped":
        if threshold is None:
            raise ValueError("threshold=None: lp-clipped needs a clipping threshold u > 0")
        return ClippedLp(p, threshold, clip)
    raise ValueError(f"penalty={name!r} must be one of {PENALTY_NAMES}")
