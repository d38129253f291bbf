"""ReWA's full-batch solver with working sets (:class:`Solver`) and the mini-batch recipe
(:func:`sgd_fit`), both on the update of :mod:`rewa.functional`."""

from __future__ import annotations

import math

import torch

from .._math import power_map, rewa_direction, rewa_update
from .datafits import CURVATURE, LOSSES

__all__ = ["GROW", "KEEP", "NULL", "SGD_RETRIES", "WARMUP_ITER", "WARMUP_TOL", "Solver", "sgd_fit"]

KEEP = 0.5  # working set: latents at least this fraction of the largest
WARMUP_TOL = 1e-3  # the warm-up only has to put the signal on the right side of zero
WARMUP_ITER = 100
NULL = 1e-8  # a fit whose features move the prediction by less than this (relative) is null
SGD_RETRIES = 4  # a diverged SGD run is repeated with a 10x smaller step, this many times in all
GROW = 1.5  # step growth after an accepted step (backtracking halves it)


class Solver:
    """ReWA's full-batch update on a latent ``(d, k)`` with a working set of rows (features)."""

    def __init__(self, X, target, loss, *, K, M, eps, alpha, fit_intercept, tol, max_iter):
        self.X, self.target, self.loss = X, target, LOSSES[loss]
        self.K, self.M, self.eps, self.alpha = K, M, eps, alpha
        self.fit_intercept, self.tol, self.max_iter = fit_intercept, tol, max_iter
        self.intercept_step = 1.0 / CURVATURE[loss]  # 1 / curvature of the loss in b
        self.n_iter = 0
        self.converged = True

    def _run(self, latent, intercept, rows, *, M, alpha, lr, max_iter, eps=None, tol=None, grow=1.0, relative=False):
        """Iterate the update on ``latent[rows]`` until the relative loss change is below tol and the
        latent moves by less than ``sqrt(tol)`` (``relative=True``: times its largest entry)."""
        eps = self.eps if eps is None else eps
        tol = self.tol if tol is None else tol
        X = self.X[:, rows] if rows is not None else self.X
        y = latent[rows] if rows is not None else latent
        coef = power_map(y, self.K)
        loss, dz = self.loss(X, self.target, coef, intercept)
        for _ in range(max_iter):
            grad = X.T @ dz
            while True:
                step = rewa_direction(y, grad, K=self.K, M=M, eps=eps)
                new_y = rewa_update(y, step, lr=lr, weight_decay=alpha)
                new_b = intercept - self.intercept_step * dz.sum(0) if self.fit_intercept else intercept
                new_coef = power_map(new_y, self.K)
                new_loss, new_dz = self.loss(X, self.target, new_coef, new_b)
                # Armijo-type test against the first-order change (which the decay may make
                # positive): a rise well beyond it means the step is too long.
                linear = float((grad * (new_coef - coef)).sum()) + float((dz.sum(0) * (new_b - intercept)).sum())
                if math.isfinite(new_loss) and new_loss - loss <= linear + 0.5 * abs(linear) + 1e-12 * (1 + loss):
                    break
                lr /= 2
                if lr < 1e-12:
                    self._raise_step_underflow(X, loss)
            self.n_iter += 1
            lr *= grow  # the warm-up tries longer steps: its flat start (w = y^K near 0) needs them
            change = abs(loss - new_loss) / max(abs(loss), 1e-12)
            moved = float((new_y - y).abs().max())
            if relative:  # the warm-up's flat start: w = y^K ~ 0 moves neither the loss nor y much
                moved /= max(float(new_y.abs().max()), 1e-300)
            y, coef, intercept, loss, dz = new_y, new_coef, new_b, new_loss, new_dz
            if change < tol and moved < math.sqrt(tol):
                break
        else:
            if tol <= self.tol:  # the warm-up's budget is a cap, not a failure
                self.converged = False
        if rows is not None:
            latent[rows] = y
        else:
            latent = y
        return latent, intercept, lr

    @staticmethod
    def _raise_step_underflow(X, loss: float) -> None:
        """No step lowers the loss. The targets are of unit spread here (the regressor scales
        them; the classifier's are 0/1), so the features' scale is what the step 1/K misses."""
        n = max(X.shape[0], 1)
        curvature = float(torch.linalg.matrix_norm(X, ord=2)) ** 2 / n if X.numel() else 0.0
        spread = float(X.std(0).max()) if X.numel() and X.shape[0] > 1 else 0.0
        raise FloatingPointError(
            f"ReWA solver: no step down to 1e-12 lowers the loss ({loss:.6g}): the step (at most 1/K) "
            f"assumes standardized features, and these have standard deviations up to {spread:.3g} "
            f"(curvature ||X||_2^2/n = {curvature:.3g}; about 1 when standardized). Standardize X, e.g. "
            "make_pipeline(StandardScaler(), ...)"
        )

    def fit(self, latent, intercept, *, debias):
        d = latent.shape[0]
        lr = 1.0 / self.K
        budget = self.max_iter
        # Phase 1: M = 0, eps = 0 warm-up (crosses zero freely; see the module notes).
        latent, intercept, lr = self._run(
            latent,
            intercept,
            None,
            M=0,
            alpha=self.alpha,
            lr=lr,
            max_iter=min(budget, WARMUP_ITER),
            eps=0.0,
            tol=WARMUP_TOL,
            grow=GROW,
            relative=True,
        )
        lr = min(lr, 1.0 / self.K)  # the later phases start from the standard step again
        if self.M == 0:
            return latent, intercept
        # Phase 2: selection on working sets.
        magnitude = latent.abs().amax(1)
        rows = torch.nonzero(magnitude >= KEEP * magnitude.max()).squeeze(1)
        for _ in range(20):
            latent, intercept, lr = self._run(
                latent, intercept, rows, M=self.M, alpha=self.alpha, lr=lr, max_iter=max(1, budget // 2)
            )
            inside = torch.zeros(d, dtype=torch.bool)
            inside[rows] = True
            coef = power_map(latent, self.K)
            coef[~inside] = 0
            _, dz = self.loss(self.X, self.target, coef, intercept)
            grad = self.X.T @ dz
            push = rewa_direction(latent, grad, K=self.K, M=self.M, eps=self.eps).abs()
            # keep the large latents and every one the update does not clearly shrink
            # (stationary ones have push = alpha |y|; shrinking ones at most half of it), entry
            # by entry (feature, output): the penalty is elementwise, and 0 is a fixed point of
            # each entry's update when M > 0
            size = latent.abs()
            kept = ((size >= KEEP * size.max()) | (push >= 0.5 * self.alpha * size)) & (size > 0)
            keep = kept.any(1)
            if not (keep & ~inside).any():
                latent[~kept] = 0
                break
            rows = torch.nonzero(keep | inside).squeeze(1)
        # Phase 3: no decay on the support (least squares / logistic fit on it).
        if debias:
            rows = torch.nonzero(latent.abs().amax(1) > 0).squeeze(1)
            if len(rows):
                latent, intercept, lr = self._run(
                    latent, intercept, rows, M=self.M, alpha=0.0, lr=lr, max_iter=max(1, budget // 4)
                )
        return latent, intercept


def sgd_fit(
    X, target, loss_name, latent, intercept, *, K, M, eps, alpha, fit_intercept, epochs, batch_size, lr, generator
):
    """The paper's recipe: mini-batch ReWA-SGD with a cosine schedule (after the M=0 warm-up)."""
    loss = LOSSES[loss_name]
    n = X.shape[0]
    total = epochs * math.ceil(n / batch_size)
    t = 0
    for _ in range(epochs):
        for batch in torch.randperm(n, generator=generator).split(batch_size):
            eta = lr * (1 + math.cos(math.pi * t / total)) / 2
            coef = power_map(latent, K)
            _, dz = loss(X[batch], target[batch], coef, intercept)
            dz = dz * (n / len(batch))
            step = rewa_direction(latent, X[batch].T @ dz, K=K, M=M, eps=eps)
            latent = rewa_update(latent, step, lr=eta, weight_decay=alpha)
            if fit_intercept:
                intercept = intercept - eta * dz.sum(0)
            t += 1
    return latent, intercept, t
