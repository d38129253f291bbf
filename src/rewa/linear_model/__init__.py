"""scikit-learn estimators fitted with ReWA: sparse least squares and sparse logistic regression.

The model's coefficients are ``w = sign(y)|y|^K``; the solver runs ReWA's update (paper,
Algorithm 1, full batch) on the latent ``y``:

.. math::

    y \\leftarrow (1 - \\eta\\alpha)\\, y - \\eta\\, |y|^M
        \\frac{|y|^{K-1}}{|y|^{K-1} + \\epsilon}\\, \\nabla_w L(w)

with ``L`` the mean squared error ``||Xw + b - t||^2 / (2n)`` (regressor), the mean
logistic loss (classifier, two classes) or the mean softmax cross-entropy
``-(1/n) sum_i log softmax(x_i^T W + b)_{c_i}`` (classifier, more than two classes; one-vs-rest
logistic losses with ``multi_class="ovr"``), using the functions of
:mod:`rewa.functional` (the same code as the ``ReWA`` optimizer). ReWA behaves like
l_p regularization with ``p = 1 + (1 - M)/K`` (Theorem 3.3); with the defaults ``K = 9,
M = 2`` that is ``p ~ 0.89``.

The default solver (``solver="gd"``) works in three phases, each a run of that update:

1. **Warm-up** (``M = 0``, ``eps = 0``) from ``y = 0``: without the ``|y|^M`` factor a latent at zero
   moves with its gradient, so every coordinate, the true ones included, starts on the right
   side of zero. This is how the solver handles the zero saddle of Example 3.2 (with
   ``M > 0`` a coordinate that starts with the wrong sign crosses zero very slowly).
   It stops when the loss improves by less than ``tol`` (relative) per iteration and the
   latent moves by less than ``sqrt(tol)`` times its largest entry (relative: at the flat start
   ``w = y^K ~ 0`` neither the loss nor ``y`` moves much in absolute terms).
2. **Selection** (``M`` as given, decay ``alpha``) on a working set: the coordinates whose
   latent is at least half the largest one. After it converges, every coordinate outside is
   checked with ReWA's own criterion: its update shrinks it when
   ``|y_j|^M |g_j| < alpha |y_j|``; coordinates outside that would not clearly shrink
   (push at least half the decay) join the working set and the phase repeats. Small
   entries (feature, output) that clearly shrink are set to exactly 0, which is a fixed
   point of each entry's update when ``M > 0``.
3. **Debiasing** (``debias=True``): the decay is switched off on the selected support, so the
   coefficients converge to least squares (or logistic regression) on that support. ``alpha``
   then only decides the support, as in a relaxed Lasso.

The step is ``eta = 1/K`` (``learning_rate="auto"``), halved whenever the loss rises: with
standardized features the effective step on a coefficient near 1 is ``eta K |y|^(K-1) = 1``,
so no tuning is needed. With ``fit_intercept`` the features are centred first (the intercept
is not decayed, so ``b = b' - mean(X) w`` makes this the same problem, better conditioned when
features have large means, as raw iris does). ``solver="sgd"`` instead runs the paper's recipe (mini-batches,
cosine schedule, ``max_iter`` epochs, from the warm-up start) for comparison.

**Choosing alpha.** ``alpha`` is the size of correlation ``|X_j^T r|/n`` a coordinate needs
to survive. The default ``alpha="auto"`` scales with the data: ``alpha = alpha_ratio *
alpha_max``, with ``alpha_max = max_j |X_j^T r_0|/n`` the smallest value at which ``w = 0`` is
stationary (as ``Lasso``/``LassoCV`` define it; ``r_0`` the centred target, or the logistic
gradient at ``w = 0``); ``alpha_ratio`` is 0.1 for the regressor and 0.01 for the classifier.
The fitted ``alpha_`` and ``alpha_max_`` are stored. To choose alpha by cross-validation use
:class:`ReWARegressorCV`. Larger ``alpha`` gives sparser models. A fit whose coefficients are
all (numerically) zero warns (``ConvergenceWarning``); a diverging solver never returns
non-finite coefficients (``solver="sgd"`` retries with a 10x smaller step, then raises
``FloatingPointError``).

Notes on departures from the paper:
    * Full-batch updates, a three-phase schedule of ``M`` and ``alpha``, working sets and the
      debiasing phase are this solver's choices, not the paper's (which trains with SGD and a
      cosine schedule: ``solver="sgd"``).
    * Coefficients set to 0 by the working-set check keep latent 0, a fixed point of ReWA when
      ``M > 0`` (Example 3.2's saddle), so the result is a stationary point of the update.

Reference:
    Theoretical Analysis of Sparse Optimization with Reparameterization, Weight Decay, and
    Adaptive Learning Rate (ICML 2026), Algorithm 1, Theorem 3.3, Example 3.2, Section 4.1.

Example:
    >>> import numpy as np
    >>> from rewa.linear_model import ReWARegressor
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((200, 50))
    >>> y = 2 * X[:, 0] - X[:, 3] + 0.1 * rng.standard_normal(200)
    >>> model = ReWARegressor().fit(X, y)
    >>> np.flatnonzero(model.coef_).tolist()
    [0, 3]
"""

from .estimators import FeatureScaleWarning, ReWAClassifier, ReWARegressor, ReWARegressorCV

__all__ = ["FeatureScaleWarning", "ReWAClassifier", "ReWARegressor", "ReWARegressorCV"]
