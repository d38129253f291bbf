"""Unit tests of rewa.implicit and rewa.paper.formulas against hand-derived values and numerical derivatives."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import rewa
from rewa.functional import power_map, rewa_sgd
from rewa.paper import formulas as theory  # re-exports rewa.implicit's names

# ----------------------------------------------------------------------------------------
# p(K, M) and Proposition 3.4
# ----------------------------------------------------------------------------------------


def test_lp_exponent_is_the_one_formula():
    # Proposition 3.4 lives once, in the library; the paper's formulas re-export it
    assert rewa.optim.rewa.sparsity_problem is rewa.implicit.sparsity_problem is theory.sparsity_problem
    assert theory.lp_exponent(9, 4) == pytest.approx(2 / 3)
    assert theory.lp_exponent(3, 2) == pytest.approx(2 / 3)
    assert theory.lp_exponent(1, 0) == 2


@pytest.mark.parametrize(
    "K, M, eps, configuration, sparse",
    [
        (9, 4, 0.0, "A", True),
        (3, 2, 0.0, "A", True),
        (9, 1, 0.0, None, False),  # p = 1 exactly
        (3, 0, 0.0, None, False),
        (3, 0, 1e-3, "B", True),  # q = 2/3
        (5, 1.5, 0.1, "B", True),
        (1, 0, 0.1, "B", False),  # q = 2: B by the letter, but l2
        (3, 2, 0.1, None, True),  # log term, p = 2/3
        (5, 3, 0.1, None, True),
    ],
)
def test_sparsity_configuration(K, M, eps, configuration, sparse):
    result = theory.sparsity_configuration(K, M, eps)
    assert result.configuration == configuration
    assert result.sparse is sparse
    assert result.p == pytest.approx(1 + (1 - M) / K)
    assert result.reason  # always explained
    if configuration is None:
        assert result.reason.startswith("Neither")


def test_sparsity_configuration_reasons_name_the_numbers():
    assert "M = 1" in theory.sparsity_configuration(9, 1, 0.0).reason
    assert "q = (2 - M)/K = 2" in theory.sparsity_configuration(1, 0, 0.1).reason
    assert "eps*log|x|" in theory.sparsity_configuration(3, 2, 0.1).reason


@pytest.mark.parametrize(
    "K, M, eps, message",
    [
        (9, 9, 0.0, r"M=9 must be in \[0, K-1\] = \[0, 8\]"),
        (3, -1, 0.0, r"M=-1 must be in \[0, K-1\]"),
        (3, 1, -0.1, r"eps=-0.1 must be >= 0"),
        (0.5, 0, 0.0, r"K=0.5 must be in \[1, 256\]"),
    ],
)
def test_invalid_settings_raise(K, M, eps, message):
    with pytest.raises(ValueError, match=message):
        theory.sparsity_configuration(K, M, eps)
    with pytest.raises(ValueError, match=message):
        theory.implicit_regularizer(1.0, K, M, eps)
    with pytest.raises(ValueError, match=message):
        theory.implicit_regularizer_grad(1.0, K, M, eps)


# ----------------------------------------------------------------------------------------
# Theorem 3.3
# ----------------------------------------------------------------------------------------


def test_implicit_regularizer_hand_values():
    # K=3, M=2, eps=0: R = 3/2 |x|^(2/3); at 8: 1.5 * 4 = 6.
    assert theory.implicit_regularizer(8.0, 3, 2, 0.0) == pytest.approx(6.0)
    assert theory.implicit_regularizer(-8.0, 3, 2, 0.0) == pytest.approx(6.0)
    # K=3, M=0, eps=0.5: 3/4 |x|^(4/3) + 0.5 * 3/2 |x|^(2/3); at 8: 12 + 3.
    assert theory.implicit_regularizer(8.0, 3, 0, 0.5) == pytest.approx(15.0)
    # M=2, eps>0: the log limit; K=3, x=e^3: 3/2 e^2 + 0.5 * 3.
    assert theory.implicit_regularizer(math.e**3, 3, 2, 0.5) == pytest.approx(1.5 * math.e**2 + 1.5)
    # K=1, M=0 is l2 weight decay: R = |x|^2 / 2.
    assert theory.implicit_regularizer(3.0, 1, 0, 0.0) == pytest.approx(4.5)


@pytest.mark.parametrize(
    "K, M, eps", [(3, 2, 0.0), (9, 4, 0.0), (3, 0, 0.1), (5, 1, 0.01), (3, 2, 0.3), (5, 3, 0.2), (9, 1.5, 0.05)]
)
def test_implicit_regularizer_grad_matches_central_differences(K, M, eps):
    x = np.array([-2.3, -0.7, -0.05, 0.03, 0.4, 1.0, 3.1])
    h = 1e-6 * np.maximum(np.abs(x), 1e-3)
    numeric = (theory.implicit_regularizer(x + h, K, M, eps) - theory.implicit_regularizer(x - h, K, M, eps)) / (2 * h)
    np.testing.assert_allclose(theory.implicit_regularizer_grad(x, K, M, eps), numeric, rtol=1e-6)


def test_implicit_regularizer_grad_hand_value():
    assert theory.implicit_regularizer_grad(8.0, 3, 2, 0.0) == pytest.approx(0.5)  # 8^(-1/3)
    # eps term at M = 2: eps / x.
    assert theory.implicit_regularizer_grad(8.0, 3, 2, 0.4) == pytest.approx(0.5 + 0.4 / 8)


def test_stationarity_weight_matches_the_proof():
    K, M, eps = 5, 2, 0.1
    x = np.array([-1.7, 0.2, 2.5])
    a = np.abs(x)
    proof = a ** (M / (2 * K)) / np.sqrt(a ** (1 - 1 / K) + eps) * a ** (1 - 1 / K)
    np.testing.assert_allclose(theory.stationarity_weight(x, K, M, eps), proof, rtol=1e-12)
    assert theory.stationarity_weight(0.0, K, M, eps) == 0


@pytest.mark.parametrize("K, M, eps", [(3, 2, 0.0), (9, 4, 0.0), (3, 0, 0.1), (5, 1, 0.01)])
def test_stationarity_residual_closed_form_equals_the_product(K, M, eps):
    x = np.array([-1.3, -0.02, 0.5, 2.0])
    g = np.array([0.3, -1.0, 0.7, -0.2])
    lam = 0.07
    direct = theory.stationarity_weight(x, K, M, eps) * (g + lam * theory.implicit_regularizer_grad(x, K, M, eps))
    np.testing.assert_allclose(theory.stationarity_residual(x, g, K, M, eps, lam), direct, rtol=1e-10)
    # Finite at x = 0, where grad R is infinite: V * grad R -> 0 for eps = 0 or M < 2.
    assert theory.stationarity_residual(0.0, 1.0, K, M, eps, lam) == 0


def test_stationarity_residual_vanishes_at_a_fixed_point_of_rewa():
    # At a fixed point of ReWA with y != 0, lambda*y + scale*grad f = 0, i.e. grad(f + lambda R) = 0.
    K, M, eps, lam = 3, 2, 0.0, 0.1
    target = torch.tensor([1.5, -2.0, 0.05], dtype=torch.float64)
    y = torch.tensor([1.0, -1.0, 0.5], dtype=torch.float64)
    x = power_map(y, K)
    for _ in range(3000):
        rewa_sgd(
            [x],
            [x - target],
            [y],
            [None],
            lr=0.1,
            K=K,
            M=M,
            eps=eps,
            weight_decay=lam,
            momentum=0.0,
            dampening=0.0,
            nesterov=False,
        )
    residual = theory.stationarity_residual(x.numpy(), (x - target).numpy(), K, M, eps, lam)
    assert np.abs(residual).max() < 1e-12
    assert abs(float(x[2])) < 1e-6  # the small target is cut to 0 by the l_{2/3} term


# ----------------------------------------------------------------------------------------
# Definition 3.6 and Theorem 3.7
# ----------------------------------------------------------------------------------------


def test_clipped_penalties_hand_values():
    # p = 1/2, u = 4: u^p = 2, tangent at 0 is (1-p) u^p = 1, slope p u^(p-1) = 1/4.
    assert theory.clipped_lp_penalty(1.0, 0.5, 4.0, "constant") == pytest.approx(2.0)
    assert theory.clipped_lp_penalty(9.0, 0.5, 4.0, "constant") == pytest.approx(3.0)
    assert theory.clipped_lp_penalty(2.0, 0.5, 4.0, "l1") == pytest.approx(1.5)
    assert theory.clipped_lp_penalty(-2.0, 0.5, 4.0, "l1") == pytest.approx(1.5)
    assert theory.clipped_lp_penalty(16.0, 0.5, 4.0, "l1") == pytest.approx(4.0)  # |x|^p beyond u


@pytest.mark.parametrize("kind", ["constant", "l1"])
@pytest.mark.parametrize("p, u", [(0.3, 0.2), (0.5, 1.0), (0.8, 3.0)])
def test_clipping_bounds_match_a_dense_grid(kind, p, u):
    t = np.linspace(0, 5 * u, 200_001)
    clipped = theory.clipped_lp_penalty(t, p, u, kind)
    max_slope = np.abs(np.diff(clipped) / np.diff(t)).max()
    max_gap = np.abs(clipped - theory.lp_penalty(t, p)).max()
    d = 7
    assert theory.clipping_gradient_bound(p, u, d, kind) == pytest.approx(math.sqrt(d) * max_slope, rel=1e-3)
    assert theory.clipping_approximation_error(p, u, d, kind) == pytest.approx(d * max_gap, rel=1e-9)


@pytest.mark.parametrize("kind", ["constant", "l1"])
def test_smallest_clipping_error_sits_on_the_gradient_budget(kind):
    p, d = 0.4, 10
    u, e2 = theory.smallest_clipping_error(p, d, kind)
    assert theory.clipping_gradient_bound(p, u, d, kind) == pytest.approx(math.sqrt(d))
    assert e2 == pytest.approx(theory.clipping_approximation_error(p, u, d, kind))
    # A larger threshold also meets the budget but costs more error; a smaller one breaks it.
    assert theory.clipping_approximation_error(p, 1.01 * u, d, kind) > e2
    assert theory.clipping_gradient_bound(p, 0.99 * u, d, kind) > math.sqrt(d)
    factor = 1.0 if kind == "constant" else 1 - p
    assert e2 == pytest.approx(d * factor * p ** (p / (1 - p)))


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: theory.clipped_lp_penalty(1.0, 1.0, 1.0, "l1"), r"p=1.0 must be in \(0, 1\)"),
        (lambda: theory.clipped_lp_penalty(1.0, 0.5, 0.0, "l1"), r"u=0.0 must be > 0"),
        (lambda: theory.clipped_lp_penalty(1.0, 0.5, 1.0, "hard"), r"kind='hard' must be one of"),
        (lambda: theory.clipping_gradient_bound(0.5, 1.0, 0, "l1"), r"d=0 must be a positive integer"),
        (lambda: theory.lp_penalty(1.0, 2.5), r"p=2.5 must be in \(0, 2\]"),
        (lambda: theory.lp_penalty(1.0, 0.0), r"p=0.0 must be in \(0, 2\]"),
    ],
)
def test_clipping_input_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# ----------------------------------------------------------------------------------------
# Theorem 3.10
# ----------------------------------------------------------------------------------------


def test_stagnation_radii_hand_values():
    assert theory.stagnation_ratio(lr=0.5, weight_decay=0.2, grad_bound=2.0) == pytest.approx(0.9)
    assert theory.stagnation_radius_adaptive_m(4.0, 3) == pytest.approx(2.0)
    assert theory.stagnation_radius_plain(8.0, 5) == pytest.approx(2.0)
    # K = 3: U + eps/U = 1/C has the small root (1/C - sqrt(1/C^2 - 4 eps)) / 2.
    C, eps = 2.0, 0.02
    expected = (1 / C - math.sqrt(1 / C**2 - 4 * eps)) / 2
    assert theory.stagnation_radius_adaptive_eps(C, 3, eps) == pytest.approx(expected, rel=1e-12)
    # No root when eps > 1/(4 C^2): no |y| can cross 0 under the worst-case gradient.
    assert theory.stagnation_radius_adaptive_eps(C, 3, 1 / (4 * C**2) * 1.01) == math.inf


@pytest.mark.parametrize("K, eps, C", [(5, 1e-3, 0.5), (9, 1e-4, 0.9), (4, 1e-2, 2.0)])
def test_u2_solves_its_equation(K, eps, C):
    u2 = theory.stagnation_radius_adaptive_eps(C, K, eps)
    assert u2 + eps * u2 ** (-(K - 2)) == pytest.approx(1 / C, rel=1e-10)
    assert u2 <= (eps * (K - 2)) ** (1 / (K - 1))  # on the falling branch


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: theory.stagnation_radius_adaptive_m(1.0, 1), r"M=1 must be > 1"),
        (lambda: theory.stagnation_radius_plain(1.0, 2), r"K=2 must be > 2"),
        (lambda: theory.stagnation_radius_adaptive_eps(1.0, 5, 0.0), r"eps=0.0 must be > 0"),
        (lambda: theory.stagnation_radius_plain(-1.0, 5), r"C=-1.0 must be > 0"),
        (lambda: theory.stagnation_ratio(0.5, 3.0, 1.0), r"lr\*weight_decay=1.5 must be < 1"),
        (lambda: theory.stagnation_ratio(0.1, 0.0, 0.0), r"grad_bound=0.0 must be > 0"),
    ],
)
def test_stagnation_input_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# ----------------------------------------------------------------------------------------
# Example 3.12
# ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("d", [2, 5, 50])
@pytest.mark.parametrize("p, support", [(0, 1), (0.25, 1), (0.5, 1), (1, None), (2, None)])
def test_constrained_solution(d, p, support):
    u = 0.7
    theta = theory.constrained_solution(d, u, p)
    assert ((theta - u) ** 2).sum() <= (d - 1) * u**2 * (1 + 1e-12)  # feasible
    assert (theta != 0).sum() == (support or d)
    if p == 1:  # on the boundary, at the l1 value d(1 - sqrt((d-1)/d)) u
        assert np.abs(theta).sum() == pytest.approx(d * (1 - math.sqrt((d - 1) / d)) * u)


@pytest.mark.parametrize(
    "args, message",
    [
        ((3, 1.0, 0.7), r"p=0.7 is in \(0.5, 1\)"),
        ((3, 1.0, 2.5), r"p=2.5 must be in \(0, 2\]"),
        ((3, 1.0, -0.5), r"p=-0.5 must be in \(0, 2\]"),
        ((1, 1.0, 0.5), r"d=1 must be an integer >= 2"),
        ((3, 0.0, 0.5), r"u=0.0 must be > 0"),
    ],
)
def test_constrained_solution_errors(args, message):
    with pytest.raises(ValueError, match=message):
        theory.constrained_solution(*args)
