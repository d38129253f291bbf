"""The scikit-learn estimators: parameters, checks and the fitting loop around :mod:`.solver`."""

from __future__ import annotations

import math
import warnings
from numbers import Integral, Real

import numpy as np
import torch

try:
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
except ImportError as error:  # the optional dependency: say which extra installs it
    raise ImportError(
        f'rewa\'s estimators need scikit-learn ({error}); install it with: pip install "rewa[sklearn]"'
    ) from error
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import KFold, check_cv
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from .. import _check as check
from .._math import latent_from_weight, power_map
from .datafits import CURVATURE, alpha_max, read_only_tensor
from .solver import NULL, SGD_RETRIES, WARMUP_ITER, Solver, sgd_fit

__all__ = ["FeatureScaleWarning", "ReWAClassifier", "ReWARegressor", "ReWARegressorCV"]

# Features whose ranges (max - min) differ by more than this factor get a warning: one penalty
# strength and one step size then fit none of them well (raw wine: 0.63 accuracy, 1.0 after
# StandardScaler; raw breast cancer 0.90 against 0.95). Ranges, not standard deviations: pixels
# that are nearly always 0 have a tiny deviation but the same units as the others (digits).
FEATURE_SCALE_RATIO = 100.0


class FeatureScaleWarning(UserWarning):
    """The features are on very different scales; standardize them first."""


def _warn_on_feature_scales(X: np.ndarray) -> None:
    spread = X.max(axis=0) - X.min(axis=0)
    varying = spread[spread > 0]
    if varying.size >= 2 and varying.max() > FEATURE_SCALE_RATIO * varying.min():
        warnings.warn(
            f"the features' ranges go from {varying.min():.3g} to {varying.max():.3g} (a factor "
            f"{varying.max() / varying.min():.3g}); the penalty and the step size treat every "
            "feature alike, so standardize them first, e.g. "
            "make_pipeline(StandardScaler(), ReWAClassifier())",
            FeatureScaleWarning,
            stacklevel=4,
        )


class _ReWALinearModel(BaseEstimator):
    """Parameters and the fitting loop shared by the regressor and the classifier."""

    _parameter_constraints: dict = {
        "K": [Interval(Real, 1, None, closed="left")],
        "M": [Interval(Real, 0, None, closed="left")],
        "eps": [Interval(Real, 0, None, closed="left")],
        "alpha": [StrOptions({"auto"}), Interval(Real, 0, None, closed="left")],
        "alpha_ratio": [Interval(Real, 0, 1, closed="neither")],
        "solver": [StrOptions({"gd", "sgd"})],
        "learning_rate": [StrOptions({"auto"}), Interval(Real, 0, None, closed="neither")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "fit_intercept": ["boolean"],
        "tol": [Interval(Real, 0, None, closed="left")],
        "debias": ["boolean"],
        "threshold": [None, Interval(Real, 0, None, closed="left")],
        "warm_start": ["boolean"],
        "random_state": ["random_state"],
    }
    _loss = "squared"

    def __init__(
        self,
        *,
        K=9,
        M=2,
        eps=0.0,
        alpha="auto",
        alpha_ratio=0.1,
        solver="gd",
        learning_rate="auto",
        max_iter=2000,
        batch_size=25,
        fit_intercept=True,
        tol=1e-7,
        debias=True,
        threshold=None,
        warm_start=False,
        random_state=None,
    ):
        self.K = K
        self.M = M
        self.eps = eps
        self.alpha = alpha
        self.alpha_ratio = alpha_ratio
        self.solver = solver
        self.learning_rate = learning_rate
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.fit_intercept = fit_intercept
        self.tol = tol
        self.debias = debias
        self.threshold = threshold
        self.warm_start = warm_start
        self.random_state = random_state

    def _fit_targets(self, X, T, loss=None):
        """Fit coefficients ``(d, k)`` to targets ``T`` (n, k) with ``loss`` (default: the class's);
        sets coef_ and intercept_."""
        self._validate_params()
        loss = self._loss if loss is None else loss
        check.check_reparameterization(self.K, self.M, self.eps)
        _warn_on_feature_scales(X)
        n, d = X.shape
        k = T.shape[1]
        Xt, Tt = read_only_tensor(X), read_only_tensor(T)
        x_offset = torch.zeros(d, dtype=torch.float64)
        if self.fit_intercept:
            # centre X: the intercept is not decayed, so fitting (w, b') on X - mean(X) and
            # returning b = b' - mean(X) w is the same problem, better conditioned (features
            # with a large mean couple w and b); for the squared loss centre t too, the
            # intercept is then exact and needs no steps
            x_offset = Xt.mean(0)
            Xt = Xt - x_offset
            if loss == "squared":
                t_offset = Tt.mean(0)
                Tt = Tt - t_offset
        self.alpha_max_ = alpha_max(Xt, Tt, loss, self.fit_intercept)
        alpha = self.alpha_ratio * self.alpha_max_ if self.alpha == "auto" else float(self.alpha)
        self.alpha_ = alpha
        # Least squares on targets t / s, in units where the step 1/K fits (any scale of t:
        # 1e10 as well as 1e-10). The coefficients scale by s (w = s w'), the latents by
        # c = s^(1/K); the fixed point |y|^M ratio g + alpha y = 0 of the user's problem is that
        # of the scaled one with alpha' = alpha / s^(1 + (M-1)/K) and eps' = eps / s^((K-1)/K).
        scale, eps = 1.0, float(self.eps)
        if loss == "squared":
            spread = float(Tt.square().mean().sqrt())
            if 0 < spread < math.inf:
                scale = spread
                Tt = Tt / scale
                alpha = alpha / scale ** (1 + (self.M - 1) / self.K)
                eps = eps / scale ** ((self.K - 1) / self.K)
        intercept = torch.zeros(k, dtype=torch.float64)
        latent = torch.zeros(d, k, dtype=torch.float64)
        if self.warm_start and hasattr(self, "coef_") and self._coef_matrix().shape == (d, k):
            latent = latent_from_weight(torch.from_numpy(self._coef_matrix()) / scale, self.K)
            if loss != "squared" and self.fit_intercept:  # in the centred coordinates
                intercept = torch.from_numpy(np.atleast_1d(self.intercept_).astype(np.float64).copy())
                intercept = intercept + x_offset @ power_map(latent, self.K)
        fit_intercept = self.fit_intercept and loss != "squared"
        if self.solver == "gd":
            solver = Solver(
                Xt,
                Tt,
                loss,
                K=self.K,
                M=self.M,
                eps=eps,
                alpha=alpha,
                fit_intercept=fit_intercept,
                tol=self.tol,
                max_iter=self.max_iter,
            )
            latent, intercept = solver.fit(latent, intercept, debias=self.debias)
            self.n_iter_ = solver.n_iter
            if not solver.converged:
                warnings.warn(
                    f"ReWA solver did not converge within max_iter={self.max_iter} iterations per "
                    "phase; increase max_iter or tol",
                    ConvergenceWarning,
                    stacklevel=3,
                )
        else:
            seed = check_random_state(self.random_state).randint(2**31)
            if self.learning_rate == "auto":
                # 1/K over the loss's curvature in w (largest eigenvalue of X^T X / n, a quarter
                # of it for the logistic loss, half for softmax): the step on w near |y| = 1 is
                # then at most 1/L
                curvature = float(torch.linalg.matrix_norm(Xt, ord=2)) ** 2 / n
                curvature *= CURVATURE[loss]
                lr = 1.0 / (self.K * max(curvature, 1e-12))
            else:
                lr = float(self.learning_rate)
            # the warm-up's budget does not depend on the epochs (max_iter) of SGD
            warm = Solver(
                Xt,
                Tt,
                loss,
                K=self.K,
                M=0,
                eps=eps,
                alpha=alpha,
                fit_intercept=fit_intercept,
                tol=self.tol,
                max_iter=WARMUP_ITER,
            )
            latent, intercept = warm.fit(latent, intercept, debias=False)
            steps, first_lr = 0, lr
            for _ in range(SGD_RETRIES):
                gen = torch.Generator().manual_seed(int(seed))
                new_latent, new_intercept, steps = sgd_fit(
                    Xt,
                    Tt,
                    loss,
                    latent,
                    intercept,
                    K=self.K,
                    M=self.M,
                    eps=eps,
                    alpha=alpha,
                    fit_intercept=fit_intercept,
                    epochs=self.max_iter,
                    batch_size=min(self.batch_size, n),
                    lr=lr,
                    generator=gen,
                )
                if torch.isfinite(new_latent).all() and torch.isfinite(new_intercept).all():
                    break
                lr /= 10  # diverged: the same run with a smaller step
            else:
                raise FloatingPointError(
                    f"{type(self).__name__}(solver='sgd') diverged at every learning rate down to {lr * 10:.3g}; "
                    "standardize X"
                )
            if lr != first_lr:
                warnings.warn(
                    f"solver='sgd' diverged; refitted with learning_rate={lr:.3g}", ConvergenceWarning, stacklevel=3
                )
            latent, intercept = new_latent, new_intercept
            self.n_iter_ = warm.n_iter + steps
        coef = power_map(latent, self.K) * scale
        if not (torch.isfinite(coef).all() and torch.isfinite(intercept).all()):
            raise FloatingPointError(
                f"{type(self).__name__}: the {self.solver!r} solver diverged (non-finite coefficients); "
                "standardize X or lower learning_rate"
            )
        if self.threshold is not None:
            coef[coef.abs() <= self.threshold] = 0
        # the contribution of each feature to the prediction, against the targets' spread
        effect = float((coef.abs() * Xt.std(0).unsqueeze(1)).max()) if d else 0.0
        if effect <= NULL * max(float(Tt.std()) * scale, 1e-300):
            warnings.warn(
                f"{type(self).__name__}: every coefficient is (numerically) 0 with alpha={self.alpha_:.4g}; "
                f"alpha_max={self.alpha_max_:.4g} (the largest |X_j^T r|/n at w = 0) zeroes every coefficient. "
                "Lower alpha (or alpha_ratio with alpha='auto'), standardize X, or raise max_iter",
                ConvergenceWarning,
                stacklevel=3,
            )
        if self.fit_intercept:  # back to the uncentred X
            intercept = (t_offset if loss == "squared" else intercept) - x_offset @ coef
        self._set_coefficients(coef.numpy(), intercept.numpy())
        return self


class ReWARegressor(RegressorMixin, _ReWALinearModel):
    """Sparse least squares fitted with ReWA (see the module docstring for the math).

    The solver works on the (centred) targets divided by their root mean square ``s``, so
    targets in any unit fit (``y * 1e10`` as well as ``y``); ``alpha`` and ``eps`` keep their
    meaning for the targets given (internally ``alpha / s^(1 + (M-1)/K)`` and
    ``eps / s^((K-1)/K)``, the values with the same fixed point), and ``coef_`` comes back
    in the targets' unit. Fitting ``y * s`` with ``alpha * s^(1 + (M-1)/K)`` gives ``s``
    times the coefficients of fitting ``y`` with ``alpha``.

    Parameters:
        K: reparameterization power, ``>= 1``.
        M: adaptive learning-rate power, ``0 <= M <= K - 1``; ``M > 1`` (with ``eps = 0``)
            gives sparsity, ``p = 1 + (1 - M)/K < 1``.
        eps: the paper's epsilon, ``>= 0``.
        alpha: weight decay of the latent (the regularization strength), ``>= 0``, or
            ``"auto"`` (default): ``alpha_ratio * alpha_max_`` (see the module docstring).
        alpha_ratio: the fraction of ``alpha_max_`` used by ``alpha="auto"``, in ``(0, 1)``.
        solver: ``"gd"`` (full batch, three phases; default) or ``"sgd"`` (the paper's recipe).
        learning_rate: ``"auto"`` (``"gd"``: ``1/K``, halved when the loss rises; ``"sgd"``:
            ``1/(K L)`` with ``L`` the loss's curvature, ``||X||_2^2/n``) or a positive number
            (``"sgd"`` only).
        max_iter: iteration budget of the ``"gd"`` phases (warm-up and debiasing get a
            quarter, each selection round a half) or epochs of ``"sgd"``.
        batch_size: mini-batch size of ``"sgd"``.
        fit_intercept: fit an intercept (the data are centred; the intercept is not decayed).
        tol: relative change of the loss that ends a phase.
        debias: refit the selected support without decay (phase 3).
        threshold: set coefficients with ``|w| <= threshold`` to 0 at the end; ``None`` keeps all.
        warm_start: start from the previous ``coef_`` (its latent) instead of 0.
        random_state: seed of the mini-batch order of ``"sgd"``.

    Attributes:
        coef_: ndarray of shape ``(n_features,)`` or ``(n_targets, n_features)``.
        intercept_: the intercept (a float for one target, else one per target).
        n_iter_: iterations run.
        n_features_in_: number of features seen by ``fit``.
        alpha_: the alpha used.
        alpha_max_: the smallest alpha at which ``w = 0`` is stationary.
    """

    _loss = "squared"

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.regressor_tags.poor_score = True
        tags.target_tags.multi_output = True
        return tags

    def fit(self, X, y):
        """Fit to ``X`` (n_samples, n_features) and ``y`` (n_samples,) or (n_samples, n_targets)."""
        X, y = validate_data(self, X, y, dtype=np.float64, y_numeric=True, multi_output=True, ensure_min_samples=2)
        T = y.reshape(-1, 1) if y.ndim == 1 else y
        self._y_ndim = y.ndim
        return self._fit_targets(X, T)

    def _coef_matrix(self):
        return np.atleast_2d(self.coef_).T

    def _set_coefficients(self, coef, intercept):
        if self._y_ndim == 1:
            self.coef_, self.intercept_ = coef[:, 0], float(intercept[0])
        else:
            self.coef_, self.intercept_ = coef.T.copy(), intercept

    def predict(self, X):
        """``X @ coef_.T + intercept_``."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return X @ self.coef_.T + self.intercept_


class ReWAClassifier(ClassifierMixin, _ReWALinearModel):
    """Sparse logistic regression fitted with ReWA (multinomial for more than two classes).

    The parameters are those of :class:`ReWARegressor`, plus ``multi_class``. With two classes
    the loss is the mean logistic loss of one coefficient vector ``w``,
    ``(1/n) sum_i log(1 + exp(-s_i (x_i^T w + b)))`` with ``s_i = +-1``. With ``k > 2`` classes,
    ``multi_class="multinomial"`` (default) fits one coefficient vector per class to the mean
    softmax cross-entropy, ``L(W) = -(1/n) sum_i log softmax(x_i^T W + b)_{c_i}``, gradient
    ``X^T (softmax(XW + b) - T)/n`` for one-hot ``T`` (as ``LogisticRegression``'s default);
    ``multi_class="ovr"`` instead fits ``k`` independent logistic losses (class against the
    rest), whose linear boundaries cannot separate a class lying between two others (iris's
    versicolor) as well as the joint softmax does. The intercept is fitted by gradient steps
    (not decayed). ``debias`` defaults to False here: without decay, logistic regression on
    separable data has no finite minimizer.

    Parameters:
        multi_class: ``"multinomial"`` (softmax cross-entropy, default) or ``"ovr"``
            (one-vs-rest logistic losses); ignored with two classes.

    Attributes:
        classes_: the class labels seen by ``fit``.
        coef_: ndarray of shape ``(1, n_features)`` for two classes, else ``(n_classes, n_features)``.
        intercept_: the intercepts.
        n_iter_: iterations run.
        n_features_in_: number of features seen by ``fit``.

    Example:
        >>> from sklearn.datasets import load_breast_cancer
        >>> from sklearn.preprocessing import StandardScaler
        >>> X, y = load_breast_cancer(return_X_y=True)
        >>> X = StandardScaler().fit_transform(X)
        >>> clf = ReWAClassifier(alpha=0.05).fit(X, y)
        >>> clf.score(X, y) > 0.9
        True
    """

    _loss = "logistic"
    _parameter_constraints: dict = {
        **_ReWALinearModel._parameter_constraints,
        "multi_class": [StrOptions({"multinomial", "ovr"})],
    }

    def __init__(
        self,
        *,
        K=9,
        M=2,
        eps=0.0,
        alpha="auto",
        alpha_ratio=0.01,
        solver="gd",
        learning_rate="auto",
        max_iter=5000,
        batch_size=25,
        fit_intercept=True,
        tol=1e-6,
        debias=False,
        threshold=None,
        warm_start=False,
        random_state=None,
        multi_class="multinomial",
    ):
        super().__init__(
            K=K,
            M=M,
            eps=eps,
            alpha=alpha,
            alpha_ratio=alpha_ratio,
            solver=solver,
            learning_rate=learning_rate,
            max_iter=max_iter,
            batch_size=batch_size,
            fit_intercept=fit_intercept,
            tol=tol,
            debias=debias,
            threshold=threshold,
            warm_start=warm_start,
            random_state=random_state,
        )
        self.multi_class = multi_class

    def fit(self, X, y):
        """Fit to ``X`` (n_samples, n_features) and class labels ``y`` (n_samples,)."""
        X, y = validate_data(self, X, y, dtype=np.float64, ensure_min_samples=2)
        check_classification_targets(y)
        binarizer = LabelBinarizer().fit(y)
        self.classes_ = binarizer.classes_
        if len(self.classes_) < 2:
            raise ValueError(f"ReWAClassifier needs samples of at least 2 classes; got one class: {self.classes_[0]!r}")
        T = binarizer.transform(y).astype(np.float64)
        self._multinomial = T.shape[1] > 1 and self.multi_class == "multinomial"
        return self._fit_targets(X, T, "multinomial" if self._multinomial else "logistic")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.poor_score = True
        return tags

    def _coef_matrix(self):
        return self.coef_.T

    def _set_coefficients(self, coef, intercept):
        self.coef_, self.intercept_ = coef.T.copy(), intercept.copy()

    def decision_function(self, X):
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        scores = X @ self.coef_.T + self.intercept_
        return scores[:, 0] if scores.shape[1] == 1 else scores

    def predict_proba(self, X):
        scores = self.decision_function(X)
        if scores.ndim == 1:
            p = 1 / (1 + np.exp(-scores))
            return np.column_stack([1 - p, p])
        if self._multinomial:  # softmax
            p = np.exp(scores - scores.max(1, keepdims=True))
        else:  # one-vs-rest, normalized
            p = 1 / (1 + np.exp(-scores))
        return p / p.sum(1, keepdims=True)

    def predict(self, X):
        scores = self.decision_function(X)
        index = (scores > 0).astype(int) if scores.ndim == 1 else scores.argmax(1)
        return self.classes_[index]


class ReWARegressorCV(RegressorMixin, BaseEstimator):
    """:class:`ReWARegressor` with ``alpha`` chosen by cross-validated mean squared error.

    Fits every ``alpha`` of ``alphas`` (default: 8 values log-spaced over
    ``[0.01, 1] * max_j |X_j^T (t - mean t)| / n``) on each of ``cv`` folds, picks the
    smallest mean validation MSE, and refits on all data.

    Attributes:
        alpha_: the chosen alpha.
        alphas_: the alphas tried.
        mse_path_: validation MSE of shape ``(n_alphas, n_folds)``.
        coef_: the coefficients refitted on all data at ``alpha_``.
        intercept_: the intercept of that refit.
        best_estimator_: the refitted ``ReWARegressor``.
    """

    _parameter_constraints: dict = {
        "alphas": [None, "array-like"],
        "cv": ["cv_object"],
        **{k: v for k, v in _ReWALinearModel._parameter_constraints.items() if k not in ("alpha", "warm_start")},
    }

    def __init__(
        self,
        *,
        alphas=None,
        cv=5,
        K=9,
        M=2,
        eps=0.0,
        solver="gd",
        learning_rate="auto",
        max_iter=2000,
        batch_size=25,
        fit_intercept=True,
        tol=1e-7,
        debias=True,
        threshold=None,
        random_state=None,
    ):
        self.alphas = alphas
        self.cv = cv
        self.K = K
        self.M = M
        self.eps = eps
        self.solver = solver
        self.learning_rate = learning_rate
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.fit_intercept = fit_intercept
        self.tol = tol
        self.debias = debias
        self.threshold = threshold
        self.random_state = random_state

    def _regressor(self, alpha):
        params = {
            k: getattr(self, k)
            for k in (
                "K",
                "M",
                "eps",
                "solver",
                "learning_rate",
                "max_iter",
                "batch_size",
                "fit_intercept",
                "tol",
                "debias",
                "threshold",
                "random_state",
            )
        }
        return ReWARegressor(alpha=alpha, **params)

    def fit(self, X, y):
        self._validate_params()
        X, y = validate_data(self, X, y, dtype=np.float64, y_numeric=True, ensure_min_samples=2)
        if self.alphas is None:
            centred = y - y.mean() if self.fit_intercept else y
            scale = float(np.abs(X.T @ centred).max()) / X.shape[0]
            alphas = np.geomspace(1.0, 0.01, 8) * (scale if scale > 0 else 1.0)
        else:
            alphas = np.asarray(self.alphas, dtype=np.float64).ravel()
            if alphas.size == 0 or not np.all(np.isfinite(alphas)) or np.any(alphas < 0):
                raise ValueError(f"alphas={self.alphas!r} must be a non-empty list of finite numbers >= 0")
        folds = list(check_cv(self.cv if self.cv is not None else KFold(5)).split(X, y))
        mse = np.empty((len(alphas), len(folds)))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            for j, (train, test) in enumerate(folds):
                for i, alpha in enumerate(alphas):
                    model = self._regressor(alpha).fit(X[train], y[train])
                    mse[i, j] = np.mean((model.predict(X[test]) - y[test]) ** 2)
        best = int(np.argmin(mse.mean(1)))
        self.alphas_, self.mse_path_, self.alpha_ = alphas, mse, float(alphas[best])
        self.best_estimator_ = self._regressor(self.alpha_).fit(X, y)
        self.coef_, self.intercept_ = self.best_estimator_.coef_, self.best_estimator_.intercept_
        self.n_iter_ = self.best_estimator_.n_iter_
        return self

    def predict(self, X):
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return X @ self.coef_ + self.intercept_

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.regressor_tags.poor_score = True
        return tags
