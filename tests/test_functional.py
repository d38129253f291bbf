"""The update math, tested directly on tiny tensors."""

from __future__ import annotations

import math

import pytest
import torch

from rewa.functional import abs_pow, gradient_scale, latent_from_weight, power_map, rewa_direction


def t(*values, dtype=torch.float64):
    return torch.tensor(values, dtype=dtype)


def test_gradient_scale_hand_values():
    y = t(-2.0, 0.5, 0.0)
    # K=3, M=1, eps=0.25: |y| * |y|^2 / (|y|^2 + 0.25)
    expected = t(2.0 * 4.0 / 4.25, 0.5 * 0.25 / 0.5, 0.0)
    torch.testing.assert_close(gradient_scale(y, K=3, M=1, eps=0.25), expected, rtol=1e-15, atol=0)


def test_factor_is_one_at_zero_when_eps_is_zero_and_M_is_zero():
    y = t(0.0, 1e-30, -3.0)
    assert torch.equal(gradient_scale(y, K=9, M=0, eps=0.0), t(1.0, 1.0, 1.0))
    # with eps > 0 the factor at y = 0 is 0, never nan
    scale = gradient_scale(y, K=9, M=0, eps=1e-3)
    assert scale[0] == 0 and torch.isfinite(scale).all()


@pytest.mark.parametrize("M", [1, 3, 5, 0.5, 2.7])
def test_odd_and_real_M_keep_the_gradient_sign(M):
    y = t(-1.5, -0.2, 0.3, 2.0)
    g = t(1.0, -1.0, 1.0, -1.0)
    d = rewa_direction(y, g, K=9, M=M, eps=1e-4)
    assert torch.isfinite(d).all()
    assert torch.equal(torch.sign(d), torch.sign(g))


def test_overflowing_power_gives_ratio_one_not_nan():
    y = torch.tensor([1e6], dtype=torch.float32)  # |y|^8 overflows float32
    assert gradient_scale(y, K=9, M=0, eps=1e-3).item() == 1.0


def test_power_map_and_latent_round_trip():
    x = t(-8.0, -1e-12, 0.0, 0.027, 5.0)
    for K in (1, 3, 9, 2.5):
        y = latent_from_weight(x, K)
        torch.testing.assert_close(power_map(y, K), x, rtol=1e-12, atol=0)
        torch.testing.assert_close(torch.sign(y), torch.sign(x))
    torch.testing.assert_close(latent_from_weight(t(-8.0, 27.0), 3), t(-2.0, 3.0), rtol=1e-15, atol=0)
    # the latent is a new tensor in the requested dtype
    x32 = torch.tensor([0.5], dtype=torch.bfloat16)
    y = latent_from_weight(x32, 3, torch.float32)
    assert y.dtype == torch.float32 and y.data_ptr() != x32.data_ptr()


def test_tensor_hyperparameters_broadcast_like_scalars():
    """The batched sweep engine passes K, M, eps as tensors along a leading dimension."""
    y = torch.randn(3, 5, dtype=torch.float64)
    K = t(3.0, 9.0, 5.0).unsqueeze(1)
    M = t(0.0, 2.0, 1.5).unsqueeze(1)
    eps = t(0.0, 1e-3, 0.0).unsqueeze(1)
    stacked = gradient_scale(y, K=K, M=M, eps=eps)
    for i in range(3):
        one = gradient_scale(y[i], K=K[i].item(), M=M[i].item(), eps=eps[i].item())
        torch.testing.assert_close(stacked[i], one, rtol=1e-14, atol=0)
    torch.testing.assert_close(power_map(y, K)[1], power_map(y[1], 9.0))


def test_rewa_direction_never_modifies_grad():
    y = t(0.5, -0.5)
    g = t(1.0, 2.0)
    for M, eps in ((2, 0.0), (0, 1e-2), (1.5, 1e-3)):
        d = rewa_direction(y, g, K=3, M=M, eps=eps)
        d.mul_(7.0)  # a caller may scale its own result in place
        assert torch.equal(g, t(1.0, 2.0))
    # with a factor of exactly 1 the gradient itself comes back, to be read only
    assert torch.equal(rewa_direction(y, g, K=3, M=0, eps=0.0), g)


def test_float32_latent_keeps_weights_that_underflow():
    """K = 9: |y| < ~1e-5 gives x = 0 in float32, but y is kept, not recomputed."""
    y = torch.tensor([1e-6], dtype=torch.float32)
    assert power_map(y, 9).item() == 0.0
    assert math.isclose(float(latent_from_weight(power_map(y, 9), 9)), 0.0)


@pytest.mark.parametrize("K", [9, 3, 2.5])
def test_weights_that_would_be_subnormal_are_written_as_zero(K):
    """Subnormal weights are slow on CPUs; the latent keeps the exact value instead."""
    tiny = torch.finfo(torch.float32).tiny
    floor = tiny ** (1 / K)
    y = torch.tensor([0.5 * floor, -0.5 * floor, 2 * floor, -2 * floor, 0.3, 0.0])
    x = power_map(y, K)
    assert torch.equal(x[:2], torch.zeros(2)) and x[:2].abs().min() == 0
    assert torch.all(x[2:4].abs() >= tiny)  # normal numbers, kept
    torch.testing.assert_close(x[2:], torch.sign(y[2:]) * y[2:].double().abs().pow(K).float(), rtol=1e-5, atol=0)
    # every intermediate stays normal or zero too: no subnormal anywhere in |y|^(K-1)
    w = gradient_scale(y, K=K, M=0, eps=1e-3)
    assert torch.all((w == 0) | (w.abs() >= tiny))


def test_abs_pow_flushes_and_keeps_pow_of_zero():
    tiny = torch.finfo(torch.float32).tiny
    y = torch.tensor([1e-20, 1e-3, 0.0])
    square = y[1] * y[1]
    assert torch.equal(abs_pow(y, 2), torch.stack([torch.tensor(0.0), square, torch.tensor(0.0)]))
    exponent = torch.tensor([0.0, 2.0, 0.0])  # the tensor form (sweep engine): pow(0, 0) = 1
    assert torch.equal(abs_pow(y, exponent), torch.stack([torch.tensor(1.0), square, torch.tensor(1.0)]))
    assert abs_pow(torch.tensor([1e-19]), 2.0).item() == 0.0 and (1e-19) ** 2 < tiny


@pytest.mark.parametrize("K", [1, 2, 3, 2.5, 5, 9])
def test_power_map_is_differentiable(K):
    """PowerPropagation's forward is power_map under autograd: d x / d y = K |y|^(K-1)."""
    y = torch.randn(7, dtype=torch.float64, requires_grad=True)
    power_map(y, K).sum().backward()
    torch.testing.assert_close(y.grad, K * y.detach().abs() ** (K - 1), rtol=1e-12, atol=0)
