"""ReWA with AdamW as the base optimizer (paper, Algorithm 2).

The class keeps the books; :func:`rewa_adamw` does the math and chooses the implementation:
:func:`_rewa_adamw_tensor` is one tensor's update, the ground truth that
:func:`_single_tensor_rewa_adamw` loops over and :func:`_fused_rewa_adamw` compiles;
:func:`_multi_tensor_rewa_adamw` is its ``torch._foreach_*`` twin. :func:`rewa_adamw_bound`
bounds one step for the finite-step guarantee.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import Tensor

from .. import _check as check
from .._math import (
    Number,
    adam_bias_corrections,
    add_quotient_,
    is_zero,
    rewa_direction,
    weights_scratch,
    write_weights,
)
from . import _compile
from . import _foreach as foreach_ops
from ._base import SparseOptimizer, default_fused, pick, put_back, step_paths, weights_before_zero_lr_step
from ._checks import power_bound
from .rewa import warn_unless_sparse

__all__ = ["ReWAAdamW", "rewa_adamw", "rewa_adamw_bound"]


class ReWAAdamW(SparseOptimizer):
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
        saved = weights_before_zero_lr_step(group["lr"], params)
        for indices, path in zip(step_paths(group, params), ("fused", "loop", "foreach")):
            if indices:
                picked = [pick(t, indices) for t in lists]
                rewa_adamw(*picked, **hyper, foreach=path == "foreach", fused=path == "fused")
        put_back(params, saved)
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


# ----------------------------------------------------------------------------------------
# The update, as keyword-only functions over lists of tensors
# ----------------------------------------------------------------------------------------


def rewa_adamw(
    params: list[Tensor],
    grads: list[Tensor],
    latents: list[Tensor],
    exp_avgs: list[Tensor],
    exp_avg_sqs: list[Tensor],
    steps: list[int],
    *,
    lr: float,
    beta1: float,
    beta2: float,
    adam_eps: float,
    K: float,
    M: float,
    eps: float,
    weight_decay: float,
    foreach: bool = False,
    fused: bool = False,
) -> None:
    """One ReWA-AdamW step. ``steps`` holds each tensor's step number *after* this step.

    The scaled gradient ``d`` replaces the gradient in AdamW (torch ``AdamW`` order of
    operations): ``y <- (1 - lr*wd) y``; ``m <- beta1 m + (1-beta1) d``;
    ``v <- beta2 v + (1-beta2) d^2``; ``y <- y - lr/(1-beta1^t) * m / (sqrt(v/(1-beta2^t)) + adam_eps)``;
    then ``params <- power_map(y)``.

    ``foreach=True`` runs the multi-tensor implementation, ``fused=True`` compiled kernels (the
    tensors they cannot take, and all of them where compilation is unavailable, take the loop);
    otherwise the single-tensor loop. All three compute :func:`_rewa_adamw_tensor`.
    """
    if fused and foreach:
        raise ValueError(f"fused={fused} and foreach={foreach} cannot both be True; pick one")
    lists = (params, grads, latents, exp_avgs, exp_avg_sqs, steps)
    hyper = dict(lr=lr, beta1=beta1, beta2=beta2, adam_eps=adam_eps, K=K, M=M, eps=eps, weight_decay=weight_decay)
    if fused:
        done = _fused_rewa_adamw(*lists, **hyper)
        if done < len(params):  # not compiled here: the loop takes them
            _single_tensor_rewa_adamw(*(t[done:] for t in lists), **hyper)
        return
    impl = _multi_tensor_rewa_adamw if foreach else _single_tensor_rewa_adamw
    impl(*lists, **hyper)


def _rewa_adamw_tensor(
    param: Tensor,
    grad: Tensor,
    y: Tensor,
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
    *,
    lr: Number | Tensor,
    weight_decay: Number | Tensor,
    step_size: Number | Tensor,
    bias_correction2_sqrt: Number | Tensor,
    beta1: float,
    beta2: float,
    adam_eps: float,
    K: float,
    M: float,
    eps: float,
    scratch: Tensor | None = None,
) -> None:
    """One tensor's ReWA-AdamW step, in place on ``y``, ``param`` and the moments: the ground
    truth that the loop runs and the compiled kernels trace (torch ``AdamW``'s order of
    operations, with the scaled gradient ``d`` in place of the gradient).

    ``step_size`` is ``lr / (1 - beta1^t)`` and ``bias_correction2_sqrt`` ``sqrt(1 - beta2^t)``
    for the step number ``t``; the numbers may be 0-dim tensors (compiled kernels). ``scratch``:
    the weights as working memory (:func:`rewa._math.weights_scratch`).
    """
    d = rewa_direction(y, grad, K=K, M=M, eps=eps, out=scratch)
    if not is_zero(weight_decay):
        y.mul_(1 - lr * weight_decay)
    exp_avg.lerp_(d, 1 - beta1)
    exp_avg_sq.mul_(beta2).addcmul_(d, d, value=1 - beta2)
    denom = torch.sqrt(exp_avg_sq, out=scratch).div_(bias_correction2_sqrt).add_(adam_eps)
    add_quotient_(y, exp_avg, denom, -step_size)
    write_weights(param, y, K, scratch=scratch)


def _single_tensor_rewa_adamw(
    params, grads, latents, exp_avgs, exp_avg_sqs, steps, *, lr, beta1, beta2, adam_eps, K, M, eps, weight_decay
):
    for param, grad, y, exp_avg, exp_avg_sq, step in zip(params, grads, latents, exp_avgs, exp_avg_sqs, steps):
        step_size, bias_correction2_sqrt = adam_bias_corrections(step, lr, beta1, beta2)
        _rewa_adamw_tensor(
            param,
            grad,
            y,
            exp_avg,
            exp_avg_sq,
            lr=lr,
            weight_decay=weight_decay,
            step_size=step_size,
            bias_correction2_sqrt=bias_correction2_sqrt,
            beta1=beta1,
            beta2=beta2,
            adam_eps=adam_eps,
            K=K,
            M=M,
            eps=eps,
            scratch=weights_scratch(param, y),
        )


def _multi_tensor_rewa_adamw(
    params, grads, latents, exp_avgs, exp_avg_sqs, steps, *, lr, beta1, beta2, adam_eps, K, M, eps, weight_decay
):
    if not params:
        return
    scratch = foreach_ops.weights_as_scratch(params, latents)
    ds = foreach_ops.directions(latents, grads, K=K, M=M, eps=eps, out=scratch)
    if weight_decay != 0:
        torch._foreach_mul_(latents, 1 - lr * weight_decay)
    torch._foreach_lerp_(exp_avgs, ds, 1 - beta1)
    torch._foreach_mul_(exp_avg_sqs, beta2)
    torch._foreach_addcmul_(exp_avg_sqs, ds, ds, 1 - beta2)
    corrections = [adam_bias_corrections(s, lr, beta1, beta2) for s in steps]
    step_sizes = [-step_size for step_size, _ in corrections]
    bias_correction2_sqrt = [c for _, c in corrections]
    if scratch is None:
        denom = torch._foreach_sqrt(exp_avg_sqs)
    elif scratch[0].device.type == "cpu":
        denom = [torch.sqrt(v, out=o) for v, o in zip(exp_avg_sqs, scratch)]
    else:
        denom = scratch
        torch._foreach_copy_(denom, exp_avg_sqs)
        torch._foreach_sqrt_(denom)
    torch._foreach_div_(denom, bias_correction2_sqrt)
    torch._foreach_add_(denom, adam_eps)
    torch._foreach_addcdiv_(latents, exp_avgs, denom, step_sizes)
    foreach_ops.write_weights(params, latents, K)


def _fused_rewa_adamw(
    params, grads, latents, exp_avgs, exp_avg_sqs, steps, *, lr, beta1, beta2, adam_eps, K, M, eps, weight_decay
) -> int:
    """:func:`_rewa_adamw_tensor` through compiled kernels (:mod:`._compile`); returns how many
    leading tensors were updated."""
    config = dict(K=K, M=M, eps=eps, beta1=beta1, beta2=beta2, adam_eps=adam_eps)
    items = list(zip(params, grads, latents, exp_avgs, exp_avg_sqs))
    coefficients = _compile.adam_coefficients(steps, lr, beta1, beta2)
    return _compile.run("ReWA-AdamW", _compiled, config, items, coefficients, [float(lr), float(weight_decay)])


def _compiled(x, g, y, m, v, step_size, bias_correction2_sqrt, lr, weight_decay, **config):
    _rewa_adamw_tensor(
        x,
        g,
        y,
        m,
        v,
        lr=lr,
        weight_decay=weight_decay,
        step_size=step_size,
        bias_correction2_sqrt=bias_correction2_sqrt,
        **config,
    )


def rewa_adamw_bound(
    *,
    y_max: float,
    grad_max: float,
    step: int,
    lr: float,
    beta1: float,
    beta2: float,
    M: float,
    weight_decay: float,
    limit: float,
) -> float:
    """An upper bound of ``|y|`` after one :func:`rewa_adamw` step (``step``: its number).

    Adam's direction is bounded by Cauchy-Schwarz over the history of ``d``:
    ``|m_t| / sqrt(v_t) <= (1 - beta1)/sqrt(1 - beta2) * sqrt(sum_{k<t} (beta1^2/beta2)^k)``,
    times the bias corrections ``sqrt(1 - beta2^t)/(1 - beta1^t)``; so
    ``|y'| <= |1 - lr lambda| max|y| + lr C_t``. This assumes the moments were built with the
    current betas (as this optimizer builds them); ``inf`` when ``d^2`` may exceed ``limit``.
    """
    d = (power_bound(y_max, M) if M else 1.0) * grad_max
    if not d * d < limit or beta2 == 0:
        return math.inf
    ratio = beta1 * beta1 / beta2
    terms = step if ratio == 1 else (1 - power_bound(ratio, step)) / (1 - ratio)
    direction = (1 - beta1) / math.sqrt(1 - beta2) * math.sqrt(terms) * math.sqrt(1 - beta2**step) / (1 - beta1**step)
    return abs(1 - lr * weight_decay) * y_max + lr * direction
