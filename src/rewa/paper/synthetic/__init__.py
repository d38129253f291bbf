"""The paper's Section 4.1 at full scale: sparse linear regression (Appendix D.1), batched.

The problem: ``x ~ N(0, I_d)``, ``target = x_1 + noise`` with ``noise ~ N(0, sigma^2)``
(``beta* = e_1``, Bayes test MSE ``sigma^2 = 1``); a linear model without intercept is trained
on the mean squared error ``mean((x.w - target)^2)`` with mini-batch SGD under ReWA.

**The batched sweep engine.** :func:`run_sweep` trains every pair (method, seed) at once. The
latents of all runs are one tensor ``y`` of shape ``(S, G, d)`` (``S`` seeds, ``G`` methods);
each method has its own ``K``, ``M``, ``eps``, decay ``lambda`` and l1 strength. Decay and
l1 strength are tensors of shape ``(G, 1)`` that broadcast against ``y``; the factor and the
map run once per run of consecutive methods sharing ``(K, M, eps)``, on views of ``y``, through
the optimizer's scalar code path. One step for all runs is

.. math::

    x &= \\mathrm{sign}(y)|y|^K, \\qquad
    g = \\tfrac{2}{b} (x X_B^\\top - t_B) X_B + \\mu\\, \\mathrm{sign}(x) \\\\
    y &\\leftarrow (1 - \\eta_t \\lambda)\\, y - \\eta_t\\, |y|^M
        \\frac{|y|^{K-1}}{|y|^{K-1} + \\epsilon}\\, g

with one batched matrix product per direction over the seeds (runs of one seed share the data
and the batch order). The factor and the map are :func:`rewa.functional.rewa_direction`
and :func:`~rewa.functional.power_map`, the functions :class:`rewa.optim.rewa.ReWA` calls,
so the engine computes what the optimizer computes (the tests check this against ``ReWA`` run
one configuration at a time, in float64). The l1 term ``mu sign(x)`` is
:meth:`rewa.penalties.L1.grad`; with ``K = 1, M = 0, lambda = 0`` it is SGD-l1, the baseline
of Figure 2(a).

**Units of the weight decay.** ``lambda`` is Algorithm 1's: ``y <- (1 - eta_t lambda) y``.
Appendix D.1 quotes ``5e-5``, which the paper's code applies as a per-step shrink
``kappa_t = 5e-5 * eta_t / eta_0``; that is ``lambda = kappa / eta_0 = 5e-5 / 2e-4 = 0.25``.
Every decay of the appendix is converted the same way (:func:`decay_from_appendix`): Figure 1
uses ``lambda = 0.25``, Figure 2(d) ``lambda`` in ``{0.05, 0.125, 0.25, 0.5}``, and SGD-l1's
l1 strength is ``0.25`` in the same units. A literal ``lambda = 5e-5`` barely decays.

Notes on departures from the paper:
    * Powers are of ``|y|`` (Remark C.3): for odd ``M`` (Figure 2's ``M = 5``) the paper's code,
      which takes ``y^M``, flips the gradient of negative coordinates, so its ``M = 5`` is a
      different algorithm.
    * The paper does not state its initialization or test-set size: weights start from
      ``U(-1/sqrt(d), 1/sqrt(d))`` (``torch.nn.Linear``'s default), the test set has
      ``n_test`` fresh samples (2,000 at paper scale), and the model has no intercept.
    * The learning rate follows ``eta_t = eta_0 (1 + cos(pi t / T)) / 2`` for step
      ``t = 0..T-1`` of ``T`` steps (``CosineAnnealingLR`` with ``T_max = T``, closed form).
    * Lasso (Figure 2(a)) is scikit-learn's ``LassoCV`` (5-fold, 10 alphas from ``alpha_max``
      to ``alpha_max / 20``) on the training set of each seed; the paper does not state its
      alpha.

Reference:
    Theoretical Analysis of Sparse Optimization with Reparameterization, Weight Decay, and
    Adaptive Learning Rate (ICML 2026), Section 4.1, Figures 1-2, Appendix D.1.

Example:
    >>> from rewa.paper.synthetic import Method, SyntheticConfig, run_sweep
    >>> config = SyntheticConfig(d=200, n_train=100, n_test=200, epochs=20, lr=2e-3)
    >>> result = run_sweep([Method(K=9, M=2), Method(K=1, M=0, weight_decay=0.0, l1=0.25)],
    ...                    seeds=(0, 1), config=config, progress=False)
    >>> len(result.runs)
    4
"""

from .checkpoints import CheckpointWarning
from .config import (
    PAPER_DECAY,
    PAPER_LR,
    THRESHOLDS,
    Method,
    RunResult,
    SyntheticConfig,
    SyntheticSweepResult,
    decay_from_appendix,
)
from .data import cosine_lr, epoch_order, initial_w0, make_problem
from .engine import run_one_at_a_time, run_sweep
from .figures import FIGURE1_K, FIGURE1_M, FigureResult, figure1_methods, figure2_panels, run_figure, write_results
from .lasso import LASSO_LABEL, run_lasso

__all__ = [
    "CheckpointWarning",
    "FIGURE1_K",
    "FIGURE1_M",
    "LASSO_LABEL",
    "PAPER_DECAY",
    "THRESHOLDS",
    "PAPER_LR",
    "Method",
    "SyntheticConfig",
    "RunResult",
    "SyntheticSweepResult",
    "FigureResult",
    "decay_from_appendix",
    "make_problem",
    "initial_w0",
    "cosine_lr",
    "epoch_order",
    "run_sweep",
    "run_one_at_a_time",
    "run_lasso",
    "figure1_methods",
    "figure2_panels",
    "run_figure",
    "write_results",
]
