"""The losses the estimators fit, each returning ``(loss, gradient in the logits)``, and the
facts about them the solver needs (curvature, the smallest alpha with ``w = 0`` stationary)."""

from __future__ import annotations

import warnings

import numpy as np
import torch

__all__ = ["CURVATURE", "LOSSES", "alpha_max", "logistic_loss", "multinomial_loss", "read_only_tensor", "squared_loss"]


def squared_loss(X, target, coef, intercept):
    residual = X @ coef + intercept - target
    n = X.shape[0]
    return 0.5 * float((residual * residual).sum()) / n, residual / n


def logistic_loss(X, target, coef, intercept):
    logits = X @ coef + intercept
    n = X.shape[0]
    loss = float(torch.nn.functional.binary_cross_entropy_with_logits(logits, target, reduction="sum")) / n
    return loss, (torch.sigmoid(logits) - target) / n


def multinomial_loss(X, target, coef, intercept):
    """Softmax cross-entropy ``-(1/n) sum_i log softmax(z_i)_{c_i}`` with ``z = X W + b`` and
    one-hot targets; its gradient in ``z`` is ``(softmax(z) - T)/n``."""
    logits = X @ coef + intercept
    n = X.shape[0]
    log_p = torch.log_softmax(logits, dim=1)
    loss = -float((target * log_p).sum()) / n
    return loss, (log_p.exp() - target) / n


LOSSES = {"squared": squared_loss, "logistic": logistic_loss, "multinomial": multinomial_loss}
# 1 / (largest curvature of the loss in one sample's logits): the intercept's step and the
# factor of ||X||_2^2/n in SGD's automatic step (sigmoid' <= 1/4; softmax Hessian <= 1/2)
CURVATURE = {"squared": 1.0, "logistic": 0.25, "multinomial": 0.5}


def read_only_tensor(a) -> torch.Tensor:
    """A float64 tensor sharing memory with ``a`` where possible; the solver only reads it.

    torch warns that it cannot mark a read-only NumPy array (scikit-learn's checks pass such
    arrays) as read-only; nothing here writes to it, so that warning is silenced.
    """
    a = np.ascontiguousarray(a, dtype=np.float64)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(a)


def alpha_max(X, T, loss, fit_intercept) -> float:
    """The smallest alpha at which w = 0 is stationary: ``max_j |X_j^T r_0| / n``, with ``r_0``
    the residual (squared loss, data already centred) or the logistic / softmax gradient at
    ``w = 0`` (with the best intercept, which predicts the class frequencies; both losses give
    ``r_0 = T - mean(T)``). The same scale as the Lasso's and LassoCV's ``alpha_max``."""
    if loss == "squared":
        residual = T
    else:
        residual = T - (T.mean(0) if fit_intercept else 0.5)
    return float((X.T @ residual).abs().max()) / X.shape[0]
