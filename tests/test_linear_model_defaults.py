"""The estimators' defaults on the data a new user tries first (issue 10)."""

import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn")
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from rewa.linear_model import ReWAClassifier, ReWARegressor  # noqa: E402


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X[:400], y[:400]


@pytest.mark.parametrize("scale", ["standardized", "raw/16"])
def test_classifier_defaults_fit_ten_class_digits(digits, scale):
    X, y = digits
    X = StandardScaler().fit_transform(X) if scale == "standardized" else X / 16
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = ReWAClassifier(max_iter=500).fit(X, y)
    # before: chance level (0.10) with every |coef| below 1e-8
    assert clf.score(X, y) > 0.9 and np.abs(clf.coef_).max() > 0.1
    assert clf.alpha_ == pytest.approx(0.01 * clf.alpha_max_)


def test_default_alpha_is_scale_aware():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((150, 40))
    t = 3 * X[:, 0] - 2 * X[:, 5] + 0.1 * rng.standard_normal(150)
    small, large = ReWARegressor().fit(X, t), ReWARegressor().fit(X, 1000 * t)
    assert np.flatnonzero(small.coef_).tolist() == np.flatnonzero(large.coef_).tolist() == [0, 5]
    assert large.alpha_ == pytest.approx(1000 * small.alpha_)


def test_sgd_never_returns_non_finite_coefficients(digits):
    X, y = digits
    X = StandardScaler().fit_transform(X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = ReWAClassifier(solver="sgd", max_iter=3, random_state=0).fit(X, y)
    assert np.isfinite(clf.coef_).all() and clf.score(X, y) > 0.5
    rng = np.random.default_rng(0)
    Xr = 3 * rng.standard_normal((100, 10))  # features with std 3: NaN before
    t = Xr[:, 0] - 2 * Xr[:, 1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        reg = ReWARegressor(solver="sgd", max_iter=10, random_state=0).fit(Xr, t)
    assert np.isfinite(reg.coef_).all() and reg.score(Xr, t) > 0.5  # 10 epochs of the paper's recipe


def test_all_zero_coefficients_warn():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((50, 5))
    t = X[:, 0]
    with pytest.warns(
        ConvergenceWarning, match=r"every coefficient is \(numerically\) 0 with alpha=1e\+06; alpha_max="
    ):
        model = ReWARegressor(alpha=1e6).fit(X, t)
    assert np.abs(model.coef_).max() < 1e-30
