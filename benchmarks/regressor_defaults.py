"""ReWARegressor / ReWARegressorCV with their defaults against Lasso / LassoCV (issue 10's problem).

``make_regression(n_samples=300, n_features=2000, n_informative=5, noise=1, random_state=0)``,
every estimator with its defaults; prints features kept (|w| > 0), informative ones among them,
R^2 on 1,000 fresh samples of the same model, and the fit time.

    python benchmarks/regressor_defaults.py [--threads 1]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default: 1)")
    args = parser.parse_args()
    import torch
    from sklearn.datasets import make_regression
    from sklearn.linear_model import Lasso, LassoCV

    from rewa.linear_model import ReWARegressor, ReWARegressorCV

    torch.set_num_threads(args.threads)
    X, t, w = make_regression(n_samples=300, n_features=2000, n_informative=5, noise=1, random_state=0, coef=True)
    X_test = np.random.default_rng(1).standard_normal((1000, 2000))  # fresh samples, same coefficients
    t_test = X_test @ w + np.random.default_rng(2).standard_normal(1000)
    informative = set(np.flatnonzero(w))
    print(f"make_regression(300 x 2000, 5 informative, noise 1), {args.threads} thread(s)")
    print("| estimator | alpha | kept | informative kept | test R^2 | seconds | warnings |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, make in (
        ("ReWARegressor()", ReWARegressor),
        ("Lasso()", Lasso),
        ("ReWARegressorCV()", ReWARegressorCV),
        ("LassoCV()", LassoCV),
    ):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            start = time.perf_counter()
            model = make().fit(X, t)
            seconds = time.perf_counter() - start
        kept = set(np.flatnonzero(model.coef_))
        alpha = getattr(model, "alpha_", getattr(model, "alpha", float("nan")))
        print(
            f"| {name} | {alpha:.3g} | {len(kept)} | {len(kept & informative)} of 5 | "
            f"{model.score(X_test, t_test):.4f} | {seconds:.2f} | {len(caught)} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
