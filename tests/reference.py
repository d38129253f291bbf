"""Paper-literal reference updates, used only by the tests.

Written from the paper's formulas with NumPy in float64, element by element, with no code
shared with the library. Powers are of |y| (Remark C.3); at y = 0 with eps = 0 the factor
|y|^(K-1) / (|y|^(K-1) + eps) takes its limit 1.
"""

from __future__ import annotations

import numpy as np


def adaptive_factor(y: float, K: float, M: float, eps: float) -> float:
    a = abs(y)
    t = a ** (K - 1)
    ratio = 1.0 if t + eps == 0 else t / (t + eps)
    return a**M * ratio


def rewa_sgd_step(y, g, *, lr, K, M, eps, weight_decay, momentum=0.0, dampening=0.0,
                  nesterov=False, buf=None, decoupled_weight_decay=False):
    """Equation 3 plus torch-SGD momentum. Returns (y, x, buf).

    Default (the paper's code, which hands the scaled gradient to torch.optim.SGD with
    weight_decay on y): d' = d + lambda*y enters the momentum buffer, y <- y - lr*v.
    decoupled_weight_decay=True: momentum on d alone, y <- (1 - lr*lambda) y - lr*v.
    """
    y = np.asarray(y, dtype=np.float64)
    g = np.asarray(g, dtype=np.float64)
    d = np.array([adaptive_factor(yi, K, M, eps) * gi for yi, gi in zip(y.ravel(), g.ravel())]).reshape(y.shape)
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
    """The paper's code, literally: the gradient of y is replaced by
    y^M * y^(K-1) / (y^(K-1) + eps) * g (its y^M without abs: the same for even M), and
    torch.optim.SGD(weight_decay, momentum) steps y: b <- mu*b + (g_y + lambda*y), y <- y - lr*b.
    Returns (y, buf)."""
    y = np.asarray(y, dtype=np.float64)
    t = np.abs(y) ** (K - 1)
    ratio = np.where(t + eps == 0, 1.0, t / np.where(t + eps == 0, 1.0, t + eps))
    g_y = y**M * ratio * np.asarray(g, dtype=np.float64) + weight_decay * y
    if momentum:
        buf = g_y.copy() if buf is None else momentum * buf + g_y
        g_y = buf
    return y - lr * g_y, buf


def rewa_adamw_step(y, g, m, v, t, *, lr, beta1, beta2, adam_eps, K, M, eps, weight_decay):
    """Algorithm 2 (replaced gradient into AdamW, decoupled decay on y). Returns (y, x, m, v)."""
    y = np.asarray(y, dtype=np.float64)
    g = np.asarray(g, dtype=np.float64)
    d = np.array([adaptive_factor(yi, K, M, eps) * gi for yi, gi in zip(y.ravel(), g.ravel())]).reshape(y.shape)
    m = beta1 * m + (1 - beta1) * d
    v = beta2 * v + (1 - beta2) * d * d
    m_hat = m / (1 - beta1**t)
    v_hat = v / (1 - beta2**t)
    y_new = (1 - lr * weight_decay) * y - lr * m_hat / (np.sqrt(v_hat) + adam_eps)
    return y_new, np.sign(y_new) * np.abs(y_new) ** K, m, v
