"""ReWAClassifier on raw and on standardized features: why ``fit`` warns about feature scales.

Wine and breast cancer (scikit-learn's copies), 70/30 stratified split (``random_state=0``),
``ReWAClassifier()`` with its defaults, alone and after ``StandardScaler``; prints the test
accuracy of each and the ratio of the largest to the smallest feature range.

    python benchmarks/feature_scaling.py
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.datasets import load_breast_cancer, load_wine
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from rewa.linear_model import FeatureScaleWarning, ReWAClassifier


def main() -> None:
    print(f"{'dataset':<15}{'range ratio':>13}{'raw':>8}{'standardized':>14}")
    for name, load in (("wine", load_wine), ("breast cancer", load_breast_cancer)):
        X, y = load(return_X_y=True)
        X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
        spread = X.max(axis=0) - X.min(axis=0)
        spread = spread[spread > 0]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FeatureScaleWarning)
            warnings.simplefilter("ignore", ConvergenceWarning)
            raw = ReWAClassifier().fit(X_train, y_train).score(X_test, y_test)
            scaled = make_pipeline(StandardScaler(), ReWAClassifier()).fit(X_train, y_train).score(X_test, y_test)
        print(f"{name:<15}{np.max(spread) / np.min(spread):>13.0f}{raw:>8.3f}{scaled:>14.3f}")


if __name__ == "__main__":
    main()
