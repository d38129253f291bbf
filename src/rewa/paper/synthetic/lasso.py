"""The Lasso baseline of Figure 2(a): scikit-learn's LassoCV on each seed, measured like a run."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .config import Method, RunResult, SyntheticConfig
from .data import make_problem
from .engine import measure

LASSO_LABEL = "Lasso (LassoCV, 5-fold)"


def run_lasso(
    seeds: Sequence[int], config: SyntheticConfig, *, n_alphas: int = 10, cv: int = 5, path_ratio: float = 0.05
) -> list[RunResult]:
    """scikit-learn ``LassoCV`` (no intercept) on each seed's training set, measured like a run.

    ``LassoCV`` minimizes ``||t - X w||^2 / (2n) + alpha ||w||_1`` and picks ``alpha`` among
    ``n_alphas`` log-spaced values from ``alpha_max`` down to ``path_ratio * alpha_max`` by
    ``cv``-fold cross-validation. (The default ``path_ratio = 1e-3`` reaches alphas that keep
    thousands of coefficients and took minutes per seed at d = 10,000; the CV optimum of D.1
    is near ``alpha_max / 10``.)
    """
    from sklearn.linear_model import LassoCV

    method = Method(K=1, M=0, weight_decay=0.0, label=LASSO_LABEL)
    runs = []
    for seed in seeds:
        X, target, _ = make_problem(seed, config)
        X64, t64 = X.double().numpy(), target.double().numpy()
        model = LassoCV(alphas=n_alphas, eps=path_ratio, cv=cv, fit_intercept=False, random_state=seed).fit(X64, t64)
        w = torch.as_tensor(model.coef_, dtype=config.torch_dtype).view(1, 1, -1)
        (run,) = measure(w, X.unsqueeze(0), target.unsqueeze(0), (seed,), (method,), config)
        runs.append(run)
    return runs
