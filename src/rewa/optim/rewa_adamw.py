"""ReWA with AdamW as the base optimizer (paper, Algorithm 2)."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor

from .. import _check as check
from . import _fused
from ._functional import rewa_adamw, rewa_adamw_bound
from ._fused import fused_rewa_adamw
from ._latent import LatentOptimizer, default_fused, step_paths
from .rewa import warn_unless_sparse

__all__ = ["ReWAAdamW"]


class ReWAAdamW(LatentOptimizer):
    r"""ReWA on AdamW: the scaled gradient of ReWA feeds Adam's moments.

    The model's parameters hold ``x = sign(y)|y|^K``; the latent ``y`` lives in
    ``state[p]["y"]``. With ``g`` the gradient with respect to ``x``:

    .. math::

        d_t &= |y_t|^M \, \frac{|y_t|^{K-1}}{|y_t|^{K-1} + \epsilon} \, g_t \\
        m_t &= \beta_1 m_{t-1} + (1 - \beta_1) d_t, \qquad
        v_t = \beta_2 v_{t-1} + (1 - \beta_2) d_t^2 \\
        y_{t+1} &= (1 - \eta_t \lambda) y_t
            - \eta_t \frac{m_t / (1 - \beta_1^t)}{\sqrt{v_t / (1 - \beta_2^t)} + \epsilon_{\text{Adam}}} \\
        x_{t+1} &= \mathrm{sign}(y_{t+1}) |y_{t+1}|^K

    ``K = 1, M = 0, eps = 0`` is ``torch.optim.AdamW``.

    .. warning::
        ``eps`` is the paper's epsilon (in ``|y|^(K-1) + eps``), not Adam's. Adam's
        denominator constant is ``adam_eps``. Swapping ``torch.optim.AdamW(..., eps=1e-8)``
        for this class means writing ``adam_eps=1e-8``.

    Args:
        params: parameters or param groups; every hyperparameter may differ per group.
        lr: learning rate ``eta_t``.
        betas: Adam's ``(beta1, beta2)``, each in ``[0, 1)``.
        adam_eps: Adam's denominator constant, ``>= 0``.
        K, M, eps: the reparameterization power (``>= 1``), the adaptive power
            (``0 <= M <= K - 1``) and the paper's epsilon (``>= 0``), as in :class:`ReWA`.
        weight_decay: ``lambda``, decoupled decay of ``y`` (AdamW style).
        foreach, fused, check_finite: as in :class:`ReWA`. The finite-step guarantee's cheap bound
            assumes the betas were the same for every step so far; when they change (a
            scheduler cycling ``beta1``) the bound may be off and a step that overflows may
            not be caught.

    Notes on departures from the paper:
        * Algorithm 2 writes the replaced gradient with a factor ``eta_t``; Adam's update
          divides it out up to ``adam_eps``, so it is left out and ``eta_t`` acts once, as
          Adam's step size.
        * Powers of ``|y|`` as in :class:`ReWA` (Remark C.3).
        * The defaults are the paper's AdamW setting (Table 1, Appendix D.4): ``K = 9, M = 2,
          eps = 0``. A group whose ``(K, M, eps)`` gives ``p >= 1`` warns
          (:class:`rewa.SparsityConfigWarning`) as in :class:`ReWA`: Proposition 3.4 is
          proven for the SGD update, and Adam's normalisation changes the implicit
          regularizer, but such settings do not sparsify in practice either.

    Reference:
        Theoretical Analysis of Sparse Optimization with Reparameterization, Weight Decay,
        and Adaptive Learning Rate (ICML 2026), Algorithm 2 and Appendix D.4.

    Example:
        >>> import torch, rewa
        >>> model = torch.nn.Linear(20, 1)
        >>> opt = rewa.ReWAAdamW(rewa.param_groups(model), lr=1e-2, K=9, M=2, weight_decay=1e-2)
        >>> x, y = torch.randn(64, 20), torch.randn(64, 1)
        >>> for _ in range(3):
        ...     opt.zero_grad()
        ...     torch.nn.functional.mse_loss(model(x), y).backward()
        ...     opt.step()
        >>> sorted(k for k in opt.state_dict()["state"][0])
        ['K', 'exp_avg', 'exp_avg_sq', 'step', 'y']
    """

    _latent_state_keys = ("y", "exp_avg", "exp_avg_sq")

    def __init__(
        self,
        params: Iterable,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        adam_eps: float = 1e-8,
        K: float = 9,
        M: float = 2,
        eps: float = 0.0,
        weight_decay: float = 1e-2,
        *,
        foreach: bool | None = None,
        fused: bool | None = None,
        check_finite: bool = True,
    ):
        defaults = dict(
            lr=lr,
            betas=betas,
            adam_eps=adam_eps,
            K=K,
            M=M,
            eps=eps,
            weight_decay=weight_decay,
            foreach=foreach,
            fused=fused,
            check_finite=check_finite,
        )
        super().__init__(params, defaults)
        warn_unless_sparse(self.param_groups)

    def _check_group(self, group: dict) -> None:
        check.at_least("lr", group["lr"], 0)
        check.check_betas(group["betas"])
        check.at_least("adam_eps", group["adam_eps"], 0)
        check.check_reparameterization(group["K"], group["M"], group["eps"])
        check.at_least("weight_decay", group["weight_decay"], 0)
        default_fused(group.setdefault("fused", None), group["foreach"], [])

    def _update_bound(
        self, group: dict, states: list[dict], *, y_max: float, grad_max: float, others: list[float], limit: float
    ) -> tuple[float, list[float]]:
        beta1, beta2 = group["betas"]
        # the bound depends on the step number (bias corrections): the largest over the group's
        # step numbers (one, unless tensors joined the group late)
        steps = {int(state.get("step", 0)) + 1 for state in states} or {1}
        y_bound = max(
            rewa_adamw_bound(
                y_max=y_max,
                grad_max=grad_max,
                step=step,
                lr=group["lr"],
                beta1=beta1,
                beta2=beta2,
                M=group["M"],
                weight_decay=group["weight_decay"],
                limit=limit,
            )
            for step in steps
        )
        return y_bound, []  # the moments are not part of the bound

    def _step_group(self, group: dict, params: list[Tensor], grads: list[Tensor]) -> None:
        states = [self.state[p] for p in params]
        latents = self._latents(group, params, states)
        for state in states:
            if "exp_avg" not in state:
                state["exp_avg"] = torch.zeros_like(state["y"])
                state["exp_avg_sq"] = torch.zeros_like(state["y"])
        exp_avgs, exp_avg_sqs = [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states]
        steps = [s["step"] + 1 for s in states]
        hyper = _hyperparameters(group)
        lists = (params, grads, latents, exp_avgs, exp_avg_sqs, steps)
        saved = self._weights_before_zero_lr_step(group["lr"], params)
        fused, loop, multi = step_paths(group, params)
        if fused:
            done = fused_rewa_adamw(*(_fused.pick(t, fused) for t in lists), **hyper)
            loop = fused[done:] + loop  # not compiled here: the loop takes them
        for indices, foreach in ((loop, False), (multi, True)):
            if indices:
                rewa_adamw(*(_fused.pick(t, indices) for t in lists), **hyper, foreach=foreach)
        self._put_back(params, saved)
        self._mark_written(params, states)


def _hyperparameters(group: dict) -> dict:
    """The keyword arguments of :func:`rewa_adamw` from a param group."""
    beta1, beta2 = group["betas"]
    return dict(
        lr=group["lr"],
        beta1=beta1,
        beta2=beta2,
        adam_eps=group["adam_eps"],
        K=group["K"],
        M=group["M"],
        eps=group["eps"],
        weight_decay=group["weight_decay"],
    )
