"""Paper-literal ReWA: Algorithms 1 and 2 written out in NumPy float64, one coordinate at a time.

Slow on purpose and shares no code with the fast paths (:mod:`rewa.optim`), so the tests can
hold the fast paths against it. Powers are of ``|y|`` (Remark C.3); at ``y = 0`` with
``eps = 0`` the factor ``|y|^(K-1) / (|y|^(K-1) + eps)`` takes its limit 1.

Example:
    >>> import torch
    >>> p = torch.nn.Parameter(torch.tensor([0.5, -1.0], dtype=torch.float64))
    >>> opt = ReWAReference([p], lr=0.1, K=3, M=2, weight_decay=0.1)
    >>> p.grad = torch.tensor([1.0, 1.0], dtype=torch.float64)
    >>> opt.step()
    >>> p.detach().numpy().round(4).tolist()
    [0.3776, -1.295]
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = [
    "ReWAAdamWReference",
    "ReWAReference",
    "adaptive_factor",
    "paper_code_sgd_step",
    "rewa_adamw_step",
    "rewa_sgd_step",
]


def adaptive_factor(y: float, K: float, M: float, eps: float) -> float:
    """``|y|^M * |y|^(K-1) / (|y|^(K-1) + eps)`` for one coordinate."""
    a = abs(y)
    t = a ** (K - 1)
    ratio = 1.0 if t + eps == 0 else t / (t + eps)
    return a**M * ratio


def _direction(y: np.ndarray, g: np.ndarray, K: float, M: float, eps: float) -> np.ndarray:
    d = [adaptive_factor(yi, K, M, eps) * gi for yi, gi in zip(y.ravel(), g.ravel())]
    return np.array(d).reshape(y.shape)


def rewa_sgd_step(
    y,
    g,
    *,
    lr,
    K,
    M,
    eps,
    weight_decay,
    momentum=0.0,
    dampening=0.0,
    nesterov=False,
    buf=None,
    decoupled_weight_decay=False,
):
    """Equation 3 plus torch-SGD momentum. Returns ``(y, x, buf)``.

    Default (the paper's code, which hands the scaled gradient to ``torch.optim.SGD`` with
    weight_decay on y): ``d' = d + lambda*y`` enters the momentum buffer, ``y <- y - lr*v``.
    ``decoupled_weight_decay=True``: momentum on ``d`` alone, ``y <- (1 - lr*lambda) y - lr*v``.
    """
    y = np.asarray(y, dtype=np.float64)
    d = _direction(y, np.asarray(g, dtype=np.float64), K, M, eps)
    if not decoupled_weight_decay:
        d = d + weight_decay * y
    if momentum:
        buf = d.copy() if buf is None else momentum * buf + (1 - dampening) * d
        d = d + momentum * buf if nesterov else buf
    if decoupled_weight_decay:
        y_new = (1 - lr * weight_decay) * y - lr * d
    else:
        y_new = y - lr * d
    return y_new, np.sign(y_new) * np.abs(y_new) ** K, buf


def paper_code_sgd_step(y, g, *, lr, K, M, eps, weight_decay, momentum=0.0, buf=None):
    """The paper's released code, literally: the gradient of y is replaced by
    ``y^M * y^(K-1) / (y^(K-1) + eps) * g`` (its ``y^M`` without abs: the same for even M),
    and ``torch.optim.SGD(weight_decay, momentum)`` steps y: ``b <- mu*b + (g_y + lambda*y)``,
    ``y <- y - lr*b``. Returns ``(y, buf)``."""
    y = np.asarray(y, dtype=np.float64)
    t = np.abs(y) ** (K - 1)
    ratio = np.where(t + eps == 0, 1.0, t / np.where(t + eps == 0, 1.0, t + eps))
    g_y = y**M * ratio * np.asarray(g, dtype=np.float64) + weight_decay * y
    if momentum:
        buf = g_y.copy() if buf is None else momentum * buf + g_y
        g_y = buf
    return y - lr * g_y, buf


def rewa_adamw_step(y, g, m, v, t, *, lr, beta1, beta2, adam_eps, K, M, eps, weight_decay):
    """Algorithm 2 (the scaled gradient into AdamW, decoupled decay on y). Returns
    ``(y, x, m, v)``; ``t`` is the step number, from 1."""
    y = np.asarray(y, dtype=np.float64)
    d = _direction(y, np.asarray(g, dtype=np.float64), K, M, eps)
    m = beta1 * m + (1 - beta1) * d
    v = beta2 * v + (1 - beta2) * d * d
    m_hat = m / (1 - beta1**t)
    v_hat = v / (1 - beta2**t)
    y_new = (1 - lr * weight_decay) * y - lr * m_hat / (np.sqrt(v_hat) + adam_eps)
    return y_new, np.sign(y_new) * np.abs(y_new) ** K, m, v


def _latent(p: torch.Tensor, K: float) -> np.ndarray:
    """Algorithm 1, line 1: ``y = sign(x)|x|^(1/K)``."""
    x = p.detach().to(torch.float64).numpy()
    return np.sign(x) * np.abs(x) ** (1 / K)


def _evaluate(closure):
    if closure is None:
        return None
    with torch.enable_grad():
        return closure()


def _with_gradients(optimizer: torch.optim.Optimizer):
    """``(group, parameter, its gradient as float64 NumPy, its state)`` for each parameter with a
    gradient, in group order."""
    for group in optimizer.param_groups:
        for p in group["params"]:
            if p.grad is not None:
                yield group, p, p.grad.cpu().double().numpy(), optimizer.state[p]


class ReWAReference(torch.optim.Optimizer):
    """Algorithm 1 (with torch-SGD momentum) through :func:`rewa_sgd_step`; the latent ``y``
    is ``state["y"]`` (float64), the weights are set to ``sign(y)|y|^K``."""

    def __init__(
        self,
        params,
        lr: float,
        K: float,
        M: float = 0.0,
        eps: float = 0.0,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
        dampening: float = 0.0,
        nesterov: bool = False,
        decoupled_weight_decay: bool = False,
    ):
        defaults = dict(
            lr=lr,
            K=K,
            M=M,
            eps=eps,
            weight_decay=weight_decay,
            momentum=momentum,
            dampening=dampening,
            nesterov=nesterov,
            decoupled_weight_decay=decoupled_weight_decay,
        )
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        loss = _evaluate(closure)
        for group, p, g, state in _with_gradients(self):
            if not state:
                state["y"], state["buf"] = _latent(p, group["K"]), None
            hyper = {k: v for k, v in group.items() if k != "params"}
            state["y"], x, state["buf"] = rewa_sgd_step(state["y"], g, buf=state["buf"], **hyper)
            p.copy_(torch.from_numpy(x))
        return loss


class ReWAAdamWReference(torch.optim.Optimizer):
    """Algorithm 2 through :func:`rewa_adamw_step`; state ``y``, ``m``, ``v``, ``t`` in float64."""

    def __init__(
        self,
        params,
        lr: float,
        K: float,
        M: float = 0.0,
        eps: float = 0.0,
        weight_decay: float = 0.0,
        betas: tuple[float, float] = (0.9, 0.999),
        adam_eps: float = 1e-8,
    ):
        defaults = dict(lr=lr, K=K, M=M, eps=eps, weight_decay=weight_decay, betas=betas, adam_eps=adam_eps)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        loss = _evaluate(closure)
        for group, p, g, state in _with_gradients(self):
            if not state:
                y = _latent(p, group["K"])
                state.update(y=y, m=np.zeros_like(y), v=np.zeros_like(y), t=0)
            state["t"] += 1
            beta1, beta2 = group["betas"]
            state["y"], x, state["m"], state["v"] = rewa_adamw_step(
                state["y"],
                g,
                state["m"],
                state["v"],
                state["t"],
                lr=group["lr"],
                beta1=beta1,
                beta2=beta2,
                adam_eps=group["adam_eps"],
                K=group["K"],
                M=group["M"],
                eps=group["eps"],
                weight_decay=group["weight_decay"],
            )
            p.copy_(torch.from_numpy(x))
        return loss
