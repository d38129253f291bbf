"""scikit-learn estimators fitted with ReWA."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn")

from sklearn.exceptions import ConvergenceWarning, NotFittedError  # noqa: E402
from sklearn.utils.estimator_checks import check_estimator  # noqa: E402

from rewa.linear_model import ReWAClassifier, ReWARegressor, ReWARegressorCV  # noqa: E402


def sparse_problem(n=400, d=2000, seed=0, signs=(1.0,)):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    beta = np.zeros(d)
    beta[: len(signs)] = signs
    return X, X @ beta + rng.standard_normal(n), beta


@pytest.mark.parametrize("estimator", [ReWARegressor(), ReWAClassifier(max_iter=200)], ids=type)
def test_check_estimator(estimator):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check_estimator(estimator)


def test_d1_like_problem_exact_support_and_noise_floor():
    """The D.1 problem at 1/5 scale: only the true coefficient survives, at least squares on it."""
    X, t, _ = sparse_problem()
    model = ReWARegressor(fit_intercept=False).fit(X, t)
    assert np.flatnonzero(model.coef_).tolist() == [0]
    oracle = (X[:, 0] @ t) / (X[:, 0] @ X[:, 0])  # least squares on the true support alone
    assert abs(model.coef_[0] - oracle) < 1e-3


def test_wrong_sign_start_crosses_the_zero_saddle():
    """Example 3.2: a warm start with the true coefficient's sign flipped still recovers it."""
    X, t, _ = sparse_problem(signs=(1.0, -0.8))
    model = ReWARegressor(fit_intercept=False, warm_start=True)
    model.coef_ = np.zeros(X.shape[1])
    model.coef_[:2] = [-0.9, 0.7]  # both wrong
    model.fit(X, t)
    assert model.coef_[0] > 0.8 and model.coef_[1] < -0.6
    assert np.count_nonzero(model.coef_) == 2


def test_intercept_threshold_and_multioutput():
    X, t, _ = sparse_problem(n=200, d=100)
    model = ReWARegressor().fit(X, t + 5.0)
    assert abs(model.intercept_ - 5.0) < 0.2
    no_debias = ReWARegressor(debias=False, alpha=0.3, threshold=1e-3).fit(X, t)
    assert np.all((no_debias.coef_ == 0) | (np.abs(no_debias.coef_) > 1e-3))
    assert no_debias.coef_[0] < model.coef_[0]  # the decay shrinks what debiasing restores
    both = ReWARegressor().fit(X, np.column_stack([t, -t]))
    assert both.coef_.shape == (2, 100) and both.predict(X).shape == (200, 2)


def test_sgd_solver_runs_the_paper_recipe():
    X, t, _ = sparse_problem(n=200, d=50)
    model = ReWARegressor(solver="sgd", max_iter=30, learning_rate=0.02, alpha=0.05, random_state=0).fit(X, t)
    assert model.coef_[0] > 0.7 and model.n_iter_ > 30 * 8


def test_classifier_selects_the_informative_feature():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((300, 40))
    y = (X[:, 2] + 0.3 * rng.standard_normal(300) > 0).astype(int)
    clf = ReWAClassifier(alpha=0.05).fit(X, y)
    assert clf.coef_.shape == (1, 40)
    assert np.argmax(np.abs(clf.coef_[0])) == 2 and clf.score(X, y) > 0.85
    assert np.allclose(clf.predict_proba(X).sum(1), 1)


def test_cv_variant_picks_an_alpha_from_its_grid():
    X, t, _ = sparse_problem(n=100, d=30, signs=(1.0, 0.5))
    model = ReWARegressorCV(cv=2).fit(X, t)
    assert model.alpha_ in model.alphas_ and model.mse_path_.shape == (8, 2)
    assert model.mse_path_.mean(1).min() == model.mse_path_.mean(1)[list(model.alphas_).index(model.alpha_)]
    assert 0 in np.flatnonzero(model.coef_)


@pytest.mark.parametrize(
    "X, y, error, message",
    [
        (np.array([[1.0, np.nan], [0.0, 1.0]]), np.array([1.0, 2.0]), ValueError, "NaN"),
        (np.ones((3, 2)), np.ones(4), ValueError, "inconsistent numbers of samples"),
        (np.ones((1, 2)), np.ones(1), ValueError, "minimum of 2 is required"),
        (np.ones(5), np.ones(5), ValueError, "Expected a 2-dimensional container|Expected 2D array"),
    ],
)
def test_invalid_input_raises_sklearn_errors(X, y, error, message):
    with pytest.raises(error, match=message):
        ReWARegressor().fit(X, y)


@pytest.mark.parametrize(
    "params, message",
    [
        (dict(K=0.5), "'K' parameter"),
        (dict(K=3, M=4), r"M=4 must be in \[0, K-1\]"),
        (dict(alpha=-1.0), "'alpha' parameter"),
        (dict(solver="lbfgs"), "'solver' parameter"),
    ],
)
def test_invalid_hyperparameters_name_the_value(params, message):
    X, t, _ = sparse_problem(n=20, d=5)
    with pytest.raises(ValueError, match=message):
        ReWARegressor(**params).fit(X, t)


def test_predict_before_fit_raises():
    with pytest.raises(NotFittedError):
        ReWARegressor().predict(np.ones((2, 2)))


def test_features_on_very_different_scales_warn_at_the_users_line():
    """Raw wine (feature ranges from 0.53 to 1,402) fits poorly unscaled; the fit says so and
    names the fix. Standardized features, and a constant column, do not warn."""
    from sklearn.datasets import load_wine
    from sklearn.preprocessing import StandardScaler

    from rewa.linear_model import FeatureScaleWarning, ReWAClassifier

    X, y = load_wine(return_X_y=True)
    with pytest.warns(FeatureScaleWarning, match="standardize") as record:
        ReWAClassifier(max_iter=50).fit(X, y)
    assert record[0].filename == __file__
    with warnings.catch_warnings():
        warnings.simplefilter("error", FeatureScaleWarning)
        Xs = StandardScaler().fit_transform(X)
        ReWAClassifier(max_iter=50).fit(np.column_stack([Xs, np.ones(len(Xs))]), y)


def _standardized_problem():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 10))
    X = (X - X.mean(0)) / X.std(0)
    y = 2 * X[:, 0] - X[:, 3] + 0.1 * rng.normal(size=200) + 5.0
    return X, y


@pytest.mark.parametrize("scale", [1e10, 1e-10])
def test_targets_of_any_scale_fit_the_same_objective(scale):
    """Targets scaled by s: with alpha mapped as the objective's fixed point maps it
    (alpha * s^(1 + (M-1)/K)), the coefficients and intercept are s times those of the fit on
    the unscaled targets, to rtol 1e-8 (the solver works on targets of unit spread either way)."""
    X, y = _standardized_problem()
    K, M, alpha = 9, 2, 0.05
    plain = ReWARegressor(K=K, M=M, alpha=alpha).fit(X, y)
    scaled = ReWARegressor(K=K, M=M, alpha=alpha * scale ** (1 + (M - 1) / K)).fit(X, y * scale)
    np.testing.assert_allclose(scaled.coef_, scale * plain.coef_, rtol=1e-8, atol=0)
    np.testing.assert_allclose(scaled.intercept_, scale * plain.intercept_, rtol=1e-8)
    assert np.count_nonzero(plain.coef_) == 2


def test_targets_scaled_by_1e10_fit_with_the_defaults_where_lasso_does():
    """The defaults (alpha="auto", debiased): the same support, and coef_ 1e10 times that of the
    fit on y to rtol 1e-4 (the debiased least squares on the support, to the solver's tol)."""
    from sklearn.linear_model import Lasso

    X, y = _standardized_problem()
    assert np.count_nonzero(Lasso(alpha=0.1 * 1e10).fit(X, y * 1e10).coef_) == 2
    plain = ReWARegressor().fit(X, y)
    scaled = ReWARegressor().fit(X, y * 1e10)
    np.testing.assert_allclose(scaled.coef_, 1e10 * plain.coef_, rtol=1e-4, atol=0)
    assert np.array_equal(scaled.coef_ != 0, plain.coef_ != 0)


def test_a_step_size_underflow_names_the_features_scale():
    X, y = _standardized_problem()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(FloatingPointError, match=r"standard deviations up to 1e\+12 .*Standardize X"):
            ReWARegressor().fit(X * 1e12, y)
