r"""SGD with a sparsity penalty: l1 (proximal or subgradient), l_p, clipped l_p.

:class:`PenalizedSGD` minimizes ``f(x) + lambda * psi(x)`` with ``psi`` one of
:mod:`rewa.penalties`, named in the param group (``penalty``, ``p``, ``threshold``, ``clip``),
in one of two forms chosen by the flag ``proximal``:

* subgradient (``proximal=False``), the "SGD-l1" baseline of the paper and the way l_p with
  clipping (Definition 3.6) is trained::

      d = g + lambda * grad_psi(x);   v = d (or its momentum);   x <- x - eta v

* proximal (``proximal=True``, l1 only: soft-thresholding, which produces exact zeros)::

      v = g (or its momentum);   x <- prox_{eta lambda psi}(x - eta v)
                                   = sign(z) max(|z| - eta lambda, 0),  z = x - eta v
"""

from __future__ import annotations

from collections.abc import Iterable

from torch import Tensor

from .. import _check as check
from .._math import heavy_ball
from ..penalties import CLIP_KINDS, PENALTY_NAMES, make_penalty
from ._base import SparseOptimizer

__all__ = ["PenalizedSGD", "penalized_sgd"]


def penalized_sgd(
    params: list[Tensor],
    grads: list[Tensor],
    momentum_buffers: list[Tensor | None],
    *,
    penalty,
    strength: float,
    lr: float,
    proximal: bool,
    momentum: float,
    dampening: float,
    nesterov: bool,
) -> None:
    """One step in place on ``params`` (see the module docstring); ``grads`` are only read."""
    for i, (x, g) in enumerate(zip(params, grads)):
        if proximal:
            v = heavy_ball(g, momentum_buffers, i, momentum=momentum, dampening=dampening, nesterov=nesterov)
            x.copy_(penalty.prox(x - lr * v, lr * strength))
        else:
            d = g.add(penalty.grad(x), alpha=strength) if strength != 0 else g
            v = heavy_ball(d, momentum_buffers, i, momentum=momentum, dampening=dampening, nesterov=nesterov)
            x.add_(v, alpha=-lr)


class PenalizedSGD(SparseOptimizer):
    r"""SGD on ``f(x) + lambda psi(x)`` with ``psi`` an l1, l_p or clipped l_p penalty.

    .. math::

        \text{subgradient:}\quad x_{t+1} &= x_t - \eta\,(g_t + \lambda \partial\psi(x_t)) \\
        \text{proximal:}\quad x_{t+1} &= \operatorname{sign}(z)\max(|z| - \eta\lambda, 0),
            \quad z = x_t - \eta g_t

    (with momentum, ``torch.optim.SGD`` semantics, on the bracket resp. on ``g``).

    Args:
        params: parameters or param groups; every hyperparameter may differ per group.
        lr: ``eta >= 0``.
        strength: ``lambda >= 0``, the penalty's weight.
        penalty: ``"l1"``, ``"lp"`` (``sum |x|^p``) or ``"lp-clipped"`` (Definition 3.6).
        p: exponent for ``"lp"`` (``> 0``) and ``"lp-clipped"`` (in ``(0, 1)``).
        threshold: clipping threshold ``u > 0`` for ``"lp-clipped"``.
        clip: ``"constant"`` or ``"l1"`` clipping for ``"lp-clipped"``.
        proximal: soft-threshold form (l1 only) instead of the subgradient form.
        momentum, dampening, nesterov: as in ``torch.optim.SGD``.

    Notes on departures from the paper:
        * The subgradient of l1 at 0 is taken as 0 (``sign(0)``), as ``torch.sign`` gives.
        * The subgradient form almost never produces exact zeros; the paper's SGD-l1 runs
          then threshold small weights for evaluation (Appendix D.2), which is left to the user.

    Reference:
        Paper, Section 4 (SGD-L1 baseline) and Definition 3.6 / Theorem 3.7 (clipping).

    Example:
        >>> import torch
        >>> from rewa.optim.penalized import PenalizedSGD
        >>> x = torch.nn.Parameter(torch.tensor([0.05, -1.0]))
        >>> opt = PenalizedSGD([x], lr=0.1, strength=1.0, penalty="l1", proximal=True)
        >>> x.grad = torch.zeros(2)
        >>> opt.step()
        >>> x.detach()
        tensor([ 0.0000, -0.9000])
    """

    def __init__(
        self,
        params: Iterable,
        lr: float = 1e-3,
        strength: float = 1e-5,
        penalty: str = "l1",
        p: float = 1.0,
        threshold: float | None = None,
        clip: str = "l1",
        proximal: bool = False,
        momentum: float = 0.0,
        dampening: float = 0.0,
        nesterov: bool = False,
    ):
        defaults = dict(
            lr=lr,
            strength=strength,
            penalty=penalty,
            p=p,
            threshold=threshold,
            clip=clip,
            proximal=proximal,
            momentum=momentum,
            dampening=dampening,
            nesterov=nesterov,
        )
        super().__init__(params, defaults)

    @staticmethod
    def _penalty(group: dict):
        return make_penalty(group["penalty"], p=group["p"], threshold=group["threshold"], clip=group["clip"])

    def _check_group(self, group: dict) -> None:
        check.at_least("lr", group["lr"], 0)
        check.at_least("strength", group["strength"], 0)
        check.one_of("penalty", group["penalty"], PENALTY_NAMES)
        check.one_of("clip", group["clip"], CLIP_KINDS)
        penalty = self._penalty(group)
        if group["proximal"] and not penalty.has_prox:
            raise ValueError(
                f"proximal=True needs a penalty with a closed-form prox ('l1'), got penalty={group['penalty']!r}"
            )
        check.check_momentum(group)

    def _step_group(self, group: dict, params: list[Tensor], grads: list[Tensor]) -> None:
        states = [self.state[p] for p in params]
        buffers = [s.get("momentum_buffer") for s in states]
        penalized_sgd(
            params,
            grads,
            buffers,
            penalty=self._penalty(group),
            strength=group["strength"],
            lr=group["lr"],
            proximal=group["proximal"],
            momentum=group["momentum"],
            dampening=group["dampening"],
            nesterov=group["nesterov"],
        )
        for state, buf in zip(states, buffers):
            state["step"] = state.get("step", 0) + 1
            if buf is not None:
                state["momentum_buffer"] = buf
