"""ReWARegressor against scikit-learn's Lasso / LassoCV and skglm's l_0.5 and MCP estimators.

Two problems:

* D.1 (Appendix D.1): ``x ~ N(0, I_10000)``, ``t = x_1 + N(0, 1)``, 2,000 training samples,
  a validation set of 1,000 and a test set of 2,000 fresh samples; no intercept.
* diabetes + noise: scikit-learn's diabetes data (442 x 10) with 1,000 standard-normal
  columns appended; standardized; split 60/20/20 into train/validation/test. The 10 real
  columns count as the "true" support (an approximation: not all of them matter).

Each method's regularization is chosen on the validation split from the grid printed with
the table (LassoCV uses its own 5-fold CV on the training split); the time is that of the
final fit at the chosen value. skglm is optional (``pip install skglm``); without it its
rows are left out.

    python benchmarks/sparse_regression.py [--threads 2]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

GRIDS = {
    "ReWARegressor (K=9, M=2)": np.geomspace(0.02, 0.5, 6),
    "Lasso": np.geomspace(1e-3, 0.5, 12),
    "skglm l_0.5": np.geomspace(1e-3, 0.5, 12),
    "skglm MCP (gamma=3)": np.geomspace(1e-3, 0.5, 12),
}


def make_estimators(fit_intercept: bool):
    from sklearn.linear_model import Lasso, LassoCV

    from rewa.linear_model import ReWARegressor

    makers = {
        "ReWARegressor (K=9, M=2)": lambda a: ReWARegressor(alpha=a, fit_intercept=fit_intercept),
        "Lasso": lambda a: Lasso(alpha=a, fit_intercept=fit_intercept, max_iter=5000),
        "LassoCV": None,
    }
    try:
        from skglm import GeneralizedLinearEstimator
        from skglm.datafits import Quadratic
        from skglm.estimators import MCPRegression
        from skglm.penalties import L0_5
    except ImportError:
        print("skglm is not installed: its rows are left out (pip install skglm)")
        return makers, LassoCV
    makers["skglm l_0.5"] = lambda a: GeneralizedLinearEstimator(Quadratic(), L0_5(a))
    makers["skglm MCP (gamma=3)"] = lambda a: MCPRegression(alpha=a, gamma=3.0, fit_intercept=fit_intercept)
    return makers, LassoCV


def evaluate(name, model, seconds, X_test, t_test, true_support, w0_truth):
    coef = np.ravel(model.coef_)
    selected = np.abs(coef) > 1e-6
    hits = selected[true_support].sum()
    row = {
        "method": name,
        "time_s": seconds,
        "test_mse": float(np.mean((model.predict(X_test) - t_test) ** 2)),
        "n_above_1e-3": int((np.abs(coef) > 1e-3).sum()),
        "n_above_1e-6": int(selected.sum()),
        "precision": float(hits / max(selected.sum(), 1)),
        "recall": float(hits / len(true_support)),
        "false_pos": int(selected.sum() - hits),
    }
    if w0_truth is not None:
        row["|w0-1|"] = abs(coef[0] - w0_truth)
    return row


def compare(X_train, t_train, X_val, t_val, X_test, t_test, true_support, fit_intercept, w0_truth=None):
    makers, LassoCV = make_estimators(fit_intercept)
    rows = []
    for name, make in makers.items():
        if make is None:
            start = time.perf_counter()
            model = LassoCV(cv=5, fit_intercept=fit_intercept, max_iter=5000).fit(X_train, t_train)
            rows.append(
                evaluate(
                    f"LassoCV (alpha={model.alpha_:.3g})",
                    model,
                    time.perf_counter() - start,
                    X_test,
                    t_test,
                    true_support,
                    w0_truth,
                )
            )
            continue
        best = None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for alpha in GRIDS[name]:
                model = make(alpha).fit(X_train, t_train)
                score = float(np.mean((model.predict(X_val) - t_val) ** 2))
                if best is None or score < best[0]:
                    best = (score, alpha)
            start = time.perf_counter()
            model = make(best[1]).fit(X_train, t_train)
            seconds = time.perf_counter() - start
        rows.append(evaluate(f"{name} (alpha={best[1]:.3g})", model, seconds, X_test, t_test, true_support, w0_truth))
    return rows


def print_table(title, rows, extra=None):
    print(f"\n{title}")
    columns = ["method", "time_s", "test_mse", "n_above_1e-3", "n_above_1e-6", "precision", "recall", "false_pos"]
    if "|w0-1|" in rows[0]:
        columns.append("|w0-1|")
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for row in rows:
        cells = [
            row["method"],
            f"{row['time_s']:.3f}",
            f"{row['test_mse']:.4f}",
            str(row["n_above_1e-3"]),
            str(row["n_above_1e-6"]),
            f"{row['precision']:.2f}",
            f"{row['recall']:.2f}",
            str(row["false_pos"]),
        ]
        if "|w0-1|" in row:
            cells.append(f"{row['|w0-1|']:.4f}")
        print("| " + " | ".join(cells) + " |")
    if extra:
        print(extra)


def d1_problem(seed: int = 0):
    rng = np.random.default_rng(seed)
    d = 10_000

    def draw(n):
        X = rng.standard_normal((n, d))
        return X, X[:, 0] + rng.standard_normal(n)

    (X_train, t_train), (X_val, t_val), (X_test, t_test) = draw(2000), draw(1000), draw(2000)
    oracle = (X_train[:, 0] @ t_train) / (X_train[:, 0] @ X_train[:, 0])
    oracle_mse = float(np.mean((oracle * X_test[:, 0] - t_test) ** 2))
    return X_train, t_train, X_val, t_val, X_test, t_test, oracle, oracle_mse


def diabetes_problem(seed: int = 0, noise_columns: int = 1000):
    from sklearn.datasets import load_diabetes
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    X, t = load_diabetes(return_X_y=True)
    rng = np.random.default_rng(seed)
    X = np.hstack([X, rng.standard_normal((X.shape[0], noise_columns))])
    X_train, X_rest, t_train, t_rest = train_test_split(X, t, test_size=0.4, random_state=seed)
    X_val, X_test, t_val, t_test = train_test_split(X_rest, t_rest, test_size=0.5, random_state=seed)
    scaler = StandardScaler().fit(X_train)
    t_mean, t_std = t_train.mean(), t_train.std()
    scale = lambda t_: (t_ - t_mean) / t_std  # noqa: E731  standardized target, as the defaults assume
    return (
        scaler.transform(X_train),
        scale(t_train),
        scaler.transform(X_val),
        scale(t_val),
        scaler.transform(X_test),
        scale(t_test),
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    print("grids (validation split): " + "; ".join(f"{k}: {np.round(v, 4).tolist()}" for k, v in GRIDS.items()))

    X_train, t_train, X_val, t_val, X_test, t_test, oracle, oracle_mse = d1_problem(args.seed)
    rows = compare(X_train, t_train, X_val, t_val, X_test, t_test, np.array([0]), False, w0_truth=1.0)
    print_table(
        "D.1: d = 10,000, n = 2,000, one true coefficient (w0 = 1), noise N(0, 1)",
        rows,
        f"least squares on the true support alone: w0 = {oracle:.4f} (|w0-1| = {abs(oracle - 1):.4f}), "
        f"test MSE {oracle_mse:.4f}",
    )

    data = diabetes_problem(args.seed)
    rows = compare(*data, np.arange(10), True)
    print_table(
        "diabetes (442 x 10) + 1,000 noise columns, standardized, 60/20/20 split",
        rows,
        "precision/recall against the 10 real columns; false_pos = noise columns selected (|w| > 1e-6)",
    )


if __name__ == "__main__":
    main()
