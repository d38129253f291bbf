"""ReWAClassifier with its defaults against L1 logistic regression (saga) at a comparable sparsity.

Each dataset is split 75/25 (stratified, ``random_state=0``); standardized variants are scaled
on the training part. ``ReWAClassifier()`` is fitted with its defaults; then the ``C`` of
``LogisticRegression`` with an l1 penalty (``solver="saga"``, multinomial for more than two
classes) is bisected on a log scale (``C`` in ``[1e-4, 1e4]``) toward ReWA's share of nonzero
coefficients, and the ``C`` whose share is closest is reported. "within 2 pts" is ReWA's test
accuracy at least L1-LogReg's minus 0.02. Times are the fit of the reported models.

    python benchmarks/classifier_vs_l1_logreg.py [--threads 1] [--multi-class multinomial|ovr]
"""

from __future__ import annotations

import argparse
import math
import time
import warnings

import numpy as np


def split(X, y, standardize):
    """A stratified 75/25 split (``random_state=0``), scaled on the training part if asked
    (tests/test_classifier_vs_l1_logreg.py splits the same way)."""
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, stratify=y, random_state=0)
    if standardize:
        scaler = StandardScaler().fit(X_train)
        X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
    return X_train, X_test, y_train, y_test


def datasets():
    """(name, X_train, X_test, y_train, y_test) for each problem."""
    from sklearn.datasets import load_breast_cancer, load_digits, load_iris

    X, y = load_digits(return_X_y=True)
    yield ("digits, standardized", *split(X, y, True))
    yield ("digits, X/16", *split(X / 16, y, False))
    X, y = load_iris(return_X_y=True)
    yield ("iris, standardized", *split(X, y, True))
    yield ("iris, raw", *split(X, y, False))
    X, y = load_breast_cancer(return_X_y=True)
    yield ("breast_cancer, standardized", *split(X, y, True))


def l1_logreg(C):
    """``LogisticRegression`` with an l1 penalty and saga (``l1_ratio=1`` from scikit-learn 1.8)."""
    import sklearn
    from sklearn.linear_model import LogisticRegression

    major, minor = (int(part) for part in sklearn.__version__.split(".")[:2])
    penalty = {"l1_ratio": 1.0} if (major, minor) >= (1, 8) else {"penalty": "l1"}
    return LogisticRegression(C=C, solver="saga", max_iter=5000, **penalty)


def fit_timed(model, X, y):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        start = time.perf_counter()
        model.fit(X, y)
        seconds = time.perf_counter() - start
    return model, seconds, len(caught)


def share(model) -> float:
    return np.count_nonzero(model.coef_) / model.coef_.size


def matched_logreg(X, y, target, steps):
    """Bisect log10(C) toward the nonzero share ``target``; return the closest (model, C, s, warnings)."""
    low, high = -4.0, 4.0
    best = None
    for _ in range(steps):
        mid = (low + high) / 2
        model, seconds, n_warn = fit_timed(l1_logreg(10.0**mid), X, y)
        s = share(model)
        if best is None or abs(s - target) < abs(best[0] - target):
            best = (s, model, 10.0**mid, seconds, n_warn)
        if s == target:
            break
        if s < target:
            low = mid
        else:
            high = mid
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default: 1)")
    parser.add_argument(
        "--multi-class",
        choices=("multinomial", "ovr"),
        default="multinomial",
        help="ReWAClassifier's multi_class (default: multinomial, its default)",
    )
    parser.add_argument("--steps", type=int, default=12, help="bisection steps on log10(C) (default: 12)")
    args = parser.parse_args()
    import torch

    from rewa.linear_model import ReWAClassifier

    torch.set_num_threads(args.threads)
    print(
        f"ReWAClassifier(multi_class={args.multi_class!r}) vs L1 LogisticRegression(saga), "
        f"25% stratified test split, {args.threads} thread(s)"
    )
    print(
        "| dataset | ReWA acc | ReWA nonzero | L1-LogReg C | L1-LogReg acc | L1-LogReg nonzero | "
        "within 2 pts | ReWA fit s | L1-LogReg fit s |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, X_train, X_test, y_train, y_test in datasets():
        rewa, rewa_s, rewa_warn = fit_timed(ReWAClassifier(multi_class=args.multi_class), X_train, y_train)
        rewa_acc, rewa_share = rewa.score(X_test, y_test), share(rewa)
        lr_share, lr, C, lr_s, lr_warn = matched_logreg(X_train, y_train, rewa_share, args.steps)
        lr_acc = lr.score(X_test, y_test)
        ok = "yes" if rewa_acc >= lr_acc - 0.02 - 1e-12 else "no"
        notes = "".join(f" ({count} warning{'s' * (count > 1)})" if count else "" for count in (rewa_warn,))
        print(
            f"| {name} | {rewa_acc:.3f}{notes} | {rewa_share:.3f} | {C:.3g} | {lr_acc:.3f} | {lr_share:.3f} | "
            f"{ok} | {rewa_s:.2f} | {lr_s:.2f} |",
            flush=True,
        )
        assert math.isfinite(rewa_acc)


if __name__ == "__main__":
    main()
