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
                  nesterov=False, buf=None):
    """Equation 3 (plus torch-SGD momentum on the scaled gradient). Returns (y, x, buf)."""
    y = np.asarray(y, dtype=np.float64)
    g = np.asarray(g, dtype=np.float64)
    d = np.array([adaptive_factor(yi, K, M, eps) * gi for yi, gi in zip(y.ravel(), g.ravel())]).reshape(y.shape)
    if momentum:
        buf = d.copy() if buf is None else momentum * buf + (1 - dampening) * d
        d = d + momentum * buf if nesterov else buf
    y_new = (1 - lr * weight_decay) * y - lr * d
    return y_new, np.sign(y_new) * np.abs(y_new) ** K, buf


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
