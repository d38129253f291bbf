"""Penalties: hand-computed values, the l1 prox against a brute-force grid, Definition 3.6 and
Theorem 3.7's trade-off."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rewa.penalties import L1, ClippedLp, Lp, make_penalty


def test_l1_value_grad_prox_by_hand():
    x = torch.tensor([-2.0, -0.25, 0.0, 0.3, 1.5], dtype=torch.float64)
    psi = L1()
    assert float(psi.value(x)) == pytest.approx(4.05, abs=1e-15)
    assert psi.grad(x).tolist() == [-1.0, -1.0, 0.0, 1.0, 1.0]
    assert psi.prox(x, 0.5).tolist() == [-1.5, 0.0, 0.0, 0.0, 1.0]
    assert psi.support(psi.prox(x, 0.5)).tolist() == [True, False, False, False, True]


@pytest.mark.parametrize("step", [0.05, 0.7, 2.0])
def test_l1_prox_beats_every_point_of_a_dense_grid(step):
    """prox(x, t) minimizes (z - x)^2/2 + t|z|: nothing on a grid of spacing 1e-4 does better."""
    xs = torch.tensor([-3.1, -0.69, -0.05, 0.0, 0.04, 0.7, 1.3, 2.9], dtype=torch.float64)
    z = L1().prox(xs, step).numpy()
    grid = np.linspace(-4, 4, 80001)
    for x, z_star in zip(xs.numpy(), z):
        objective = lambda v: (v - x) ** 2 / 2 + step * np.abs(v)  # noqa: E731
        assert objective(z_star) <= objective(grid).min() + 1e-12
        # and it is the closed form: exact zero inside the threshold
        assert (z_star == 0) == (abs(x) <= step)


def test_lp_value_and_gradient():
    x = torch.tensor([-4.0, 0.0, 0.25, 9.0], dtype=torch.float64)
    psi = Lp(0.5)
    assert float(psi.value(x)) == pytest.approx(2 + 0 + 0.5 + 3, abs=1e-14)
    # p sign(x)|x|^(p-1): -0.5/2, 0 by convention, 0.5/0.5, 0.5/3
    torch.testing.assert_close(
        psi.grad(x), torch.tensor([-0.25, 0.0, 1.0, 1 / 6], dtype=torch.float64), rtol=1e-14, atol=0
    )
    assert not psi.has_prox
    # away from 0 the gradient is autograd's
    y = torch.tensor([-1.3, 0.2, 2.0], dtype=torch.float64, requires_grad=True)
    Lp(0.7).value(y).backward()
    torch.testing.assert_close(Lp(0.7).grad(y.detach()), y.grad, rtol=1e-13, atol=0)


def test_clipped_lp_values_by_hand():
    """Definition 3.6 with p = 1/2, u = 1/4: u^p = 1/2, tangent p u^(p-1)|x| + (1-p)u^p = |x| + 1/4."""
    x = torch.tensor([0.0, -0.1, 0.25, -1.0], dtype=torch.float64)
    constant = ClippedLp(0.5, 0.25, "constant")
    tangent = ClippedLp(0.5, 0.25, "l1")
    assert float(constant.value(x)) == pytest.approx(0.5 + 0.5 + 0.5 + 1.0, abs=1e-15)
    assert float(tangent.value(x)) == pytest.approx(0.25 + 0.35 + 0.5 + 1.0, abs=1e-15)
    # beyond u both are |x|^p: the tangent (1.25 at |x| = 1) is not used there
    assert float(tangent.value(torch.tensor([4.0]))) == 2.0
    # gradients: constant clipping is flat inside, l1 clipping has slope p u^(p-1) = 1 inside
    assert constant.grad(x).tolist() == [0.0, 0.0, 1.0, -0.5]
    assert tangent.grad(x).tolist() == [0.0, -1.0, 1.0, -0.5]


@pytest.mark.parametrize("kind", ["constant", "l1"])
def test_clipped_lp_bounds_are_the_ones_theorem_3_7_uses(kind):
    """E_1 = max ||grad|| and E_2 = max |psi - ||x||_p^p|, checked on a grid (d = 3)."""
    p, u, d = 0.4, 0.3, 3
    psi = ClippedLp(p, u, kind)
    t = torch.arange(-2000, 2001, dtype=torch.float64) / 1000  # holds 0 exactly, at index 2000
    errors = torch.stack([psi.value(v.reshape(1)) - Lp(p).value(v.reshape(1)) for v in t])
    assert bool((errors >= -1e-15).all())  # clipping only raises the penalty
    per_coordinate_error = errors.max()
    assert float(d * per_coordinate_error) == pytest.approx(psi.approximation_error(d), rel=1e-12)
    assert float(errors[2000]) == pytest.approx(float(per_coordinate_error), rel=1e-12)  # at x = 0
    largest_slope = psi.grad(t).abs().max()
    assert float(math.sqrt(d) * largest_slope) == pytest.approx(psi.gradient_bound(d), rel=1e-3)
    # autograd agrees with grad away from the kinks
    y = torch.tensor([-1.1, -0.2, 0.1, 0.7], dtype=torch.float64, requires_grad=True)
    psi.value(y).backward()
    torch.testing.assert_close(psi.grad(y.detach()), y.grad, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("p", [0.1, 0.3, 0.5, 0.7, 0.9, 0.99])
def test_theorem_3_7_tradeoff(p):
    """The smallest threshold with E_1 <= sqrt(d) is u = p^(1/(1-p)); there E_2 is already too big."""
    d = 10
    u = p ** (1 / (1 - p))
    constant, tangent = ClippedLp(p, u, "constant"), ClippedLp(p, u, "l1")
    assert constant.gradient_bound(d) == pytest.approx(math.sqrt(d), rel=1e-12)
    # E_1 only grows for smaller u, E_2 only grows for larger u: checking u is enough
    assert constant.approximation_error(d) > d / (2 * math.e)
    for c in (1, 2, 5, 50):
        if p < 1 - 1 / (c * d):
            assert tangent.approximation_error(d) > 1 / (c * math.e)


def test_bad_penalties_raise():
    with pytest.raises(ValueError, match=r"p=0 must be > 0"):
        Lp(0)
    with pytest.raises(ValueError, match=r"p=1.0 must be in \(0, 1\)"):
        ClippedLp(1.0, 0.1)
    with pytest.raises(ValueError, match=r"threshold=-1 must be > 0"):
        ClippedLp(0.5, -1)
    with pytest.raises(ValueError, match=r"kind='huber' must be one of"):
        ClippedLp(0.5, 0.1, "huber")
    with pytest.raises(ValueError, match=r"penalty='l0' must be one of \('l1', 'lp', 'lp-clipped'\)"):
        make_penalty("l0")
    with pytest.raises(ValueError, match="needs a clipping threshold"):
        make_penalty("lp-clipped", p=0.5)
    with pytest.raises(TypeError, match="must be a real number"):
        Lp("0.5")
