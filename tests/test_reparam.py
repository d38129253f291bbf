"""Parametrizations: exact initialization, collapse, deepcopy, state_dict, and Lemma 3.1."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from rewa.optim.registry import create_optimizer
from rewa.reparam import (
    HadamardProduct,
    PowerPropagation,
    SignedSquares,
    collapse,
    factor_parameters,
    lp_weight_of_factor_decay,
    parametrize_model,
    spred,
)

FACTORIES = {
    "hadamard-K2": lambda: HadamardProduct(2),
    "hadamard-K3": lambda: HadamardProduct(3),
    "hadamard-K4": lambda: HadamardProduct(4),
    "spred": spred,
    "signed": SignedSquares,
    "signed-offset": lambda: SignedSquares(offset=0.1),
    "powerprop": lambda: PowerPropagation(3.0),
}
REPARAM_METHODS = {  # registry name -> hyperparameters
    "hadamard": dict(K=3, lr=0.05, weight_decay=1e-3),
    "hadamard-signed": dict(lr=0.05, weight_decay=1e-3, offset=0.05),
    "spred": dict(lr=0.05, weight_decay=1e-3),
    "powerprop": dict(lr=0.05, alpha=2.0),
}


class Net(nn.Module):
    """Linear, Conv, Embedding and a norm layer, in float64."""

    def __init__(self, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.embed = nn.Embedding(7, 4)
        self.conv = nn.Conv1d(4, 3, kernel_size=2)
        self.norm = nn.LayerNorm(3)
        self.head = nn.Linear(3, 2)
        self.double()

    def forward(self, tokens):
        h = self.embed(tokens).transpose(1, 2)  # (batch, 4, length)
        h = torch.tanh(self.conv(h)).mean(dim=2)
        return self.head(self.norm(h))


def tokens():
    return torch.tensor([[0, 3, 6, 2], [5, 1, 1, 4]])


def step_a_few(model, opt, n=3):
    for _ in range(n):
        opt.zero_grad()
        model(tokens()).pow(2).mean().backward()
        opt.step()


@pytest.mark.parametrize("name", FACTORIES)
def test_initialization_reproduces_the_weights_and_keeps_signs(name):
    x = torch.tensor([[-2.0, -0.3, 0.0, 1e-6, 0.5, 7.0]], dtype=torch.float64)
    param = FACTORIES[name]()
    factors = param.right_inverse(x)
    factors = factors if isinstance(factors, tuple) else (factors,)
    # up to rounding: a few units in the last place (offset^2 * eps for the offset form)
    torch.testing.assert_close(param(*factors), x, rtol=4e-16, atol=1e-17)
    if isinstance(param, HadamardProduct):
        magnitudes = torch.stack([f.abs() for f in factors])
        assert bool((magnitudes == magnitudes[0]).all())  # balanced
        assert bool((factors[0].sign() == x.sign()).all())  # the sign sits on the first factor
        assert all(bool((f >= 0).all()) for f in factors[1:])


def test_signed_squares_picks_the_pair_of_least_penalty():
    x = torch.tensor([-4.0, 0.0, 9.0], dtype=torch.float64)
    u, v = SignedSquares().right_inverse(x)
    assert u.tolist() == [0.0, 0.0, 3.0] and v.tolist() == [2.0, 0.0, 0.0]
    assert float((u**2 + v**2).sum()) == float(x.abs().sum())


@pytest.mark.parametrize("name", FACTORIES)
def test_parametrize_then_collapse_gives_the_same_outputs(name):
    model = Net()
    before = model(tokens())
    names = parametrize_model(model, FACTORIES[name])
    assert names == ["embed.weight", "conv.weight", "head.weight"]  # biases and norm stay dense
    torch.testing.assert_close(model(tokens()), before, rtol=1e-13, atol=1e-14)
    parametrized_out = model(tokens())
    assert collapse(model) == names
    assert torch.equal(model(tokens()), parametrized_out)
    assert not any(parametrize.is_parametrized(m) for m in model.modules())
    assert type(model.head) is nn.Linear and type(model.embed) is nn.Embedding
    assert sorted(n for n, _ in model.named_parameters()) == sorted(n for n, _ in Net().named_parameters())


@pytest.mark.parametrize("method", REPARAM_METHODS)
def test_trained_model_collapses_to_plain_weights_with_identical_outputs(method):
    model = Net()
    opt = create_optimizer(method, model, **REPARAM_METHODS[method])
    step_a_few(model, opt)
    out = model(tokens())
    collapse(model)
    assert torch.equal(model(tokens()), out)
    # the collapsed state_dict loads into a model that never saw this library
    plain = Net(seed=5)
    plain.load_state_dict(model.state_dict())
    assert torch.equal(plain(tokens()), out)


@pytest.mark.parametrize("method", REPARAM_METHODS)
def test_deepcopy_and_state_dict_round_trips(method):
    model = Net()
    opt = create_optimizer(method, model, **REPARAM_METHODS[method])
    step_a_few(model, opt)
    out = model(tokens())

    twin = copy.deepcopy(model)
    assert torch.equal(twin(tokens()), out)
    twin_factors, factors = factor_parameters(twin), factor_parameters(model)
    assert len(twin_factors) == len(factors) and all(a is not b for a, b in zip(twin_factors, factors))
    step_a_few(twin, create_optimizer("sgd", twin, lr=0.1))  # training the copy leaves the original
    assert torch.equal(model(tokens()), out)

    fresh = Net(seed=9)
    fresh_opt = create_optimizer(method, fresh, **REPARAM_METHODS[method])
    fresh.load_state_dict(model.state_dict())
    fresh_opt.load_state_dict(opt.state_dict())
    assert torch.equal(fresh(tokens()), out)
    step_a_few(model, opt)
    step_a_few(fresh, fresh_opt)
    assert torch.equal(fresh(tokens()), model(tokens()))


def test_bias_and_norm_switch_and_double_parametrization():
    model = Net()
    names = parametrize_model(model, spred, include_bias_and_norm=True)
    assert "head.bias" in names and "norm.weight" in names
    before = [n for n, _ in model.named_parameters()]
    with pytest.raises(ValueError, match="already parametrized"):
        parametrize_model(model, spred)
    assert [n for n, _ in model.named_parameters()] == before


def test_collapse_leaves_other_parametrizations_alone():
    class Doubled(nn.Module):
        def forward(self, b):
            return 2 * b

    model = nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 2)).double()
    parametrize.register_parametrization(model[0], "bias", Doubled())
    assert parametrize_model(model, spred) == ["0.weight", "1.weight"]
    assert collapse(model) == ["0.weight", "1.weight"]
    assert parametrize.is_parametrized(model[0], "bias")
    assert not parametrize.is_parametrized(model[0], "weight")
    # a weight under someone else's parametrization is refused, and nothing is changed
    parametrize.register_parametrization(model[1], "weight", Doubled())
    with pytest.raises(ValueError, match=r"1.weight is already parametrized"):
        parametrize_model(model, spred)
    assert not parametrize.is_parametrized(model[0], "weight")


# ----------------------------------------------------------------------------------------
# Lemma 3.1: minimizers through [Cp] are minimizers of f(x) + lambda_p ||x||_p^p, p = 2/K,
# lambda_p = K lambda / 2 for SGD decay lambda on every factor.
# ----------------------------------------------------------------------------------------


def minimize_through_factors(method, f, x0, steps=3000, **hp):
    """SGD (heavy ball) on the factors of a 1 x d weight starting at x0; returns x."""
    holder = nn.Linear(len(x0), 1, bias=False).double()
    with torch.no_grad():
        holder.weight.copy_(torch.tensor([x0], dtype=torch.float64))
    opt = create_optimizer(method, holder, momentum=0.9, **hp)
    for _ in range(steps):
        opt.zero_grad()
        f(holder.weight[0]).backward()
        opt.step()
    return holder.weight[0].detach().numpy()


def brute_force(objective, grids):
    mesh = np.meshgrid(*grids, indexing="ij")
    values = objective(*mesh)
    index = np.unravel_index(np.argmin(values), values.shape)
    return np.array([m[index] for m in mesh])


@pytest.mark.parametrize("K", [2, 3, 4])
@pytest.mark.parametrize("weight_decay", [0.2, 2.0])
def test_lemma_3_1_one_dimensional(K, weight_decay):
    """f(x) = (x - 1.5)^2 / 2. The GD limit through [Cp] from x0 = 1.5 is the grid minimizer of
    f + (K lambda/2)|x|^(2/K) (to the grid spacing), and not that of f + K lambda |x|^(2/K)."""
    p, a = 2 / K, 1.5
    lambda_p = lp_weight_of_factor_decay(weight_decay, K)
    assert lambda_p == K * weight_decay / 2
    x = minimize_through_factors(
        "hadamard", lambda w: (w - a).pow(2).sum() / 2, [a], K=K, lr=0.02, weight_decay=weight_decay
    )
    grid = np.linspace(-3, 3, 60001)
    best = brute_force(lambda t: (t - a) ** 2 / 2 + lambda_p * np.abs(t) ** p, [grid])
    assert abs(x[0] - best[0]) <= 2e-4
    if weight_decay == 0.2:  # an interior minimizer, where the constant convention shows
        assert best[0] > 0.5
        wrong = brute_force(lambda t: (t - a) ** 2 / 2 + K * weight_decay * np.abs(t) ** p, [grid])
        assert abs(wrong[0] - best[0]) > 1e-2
    else:  # a penalty strong enough that 0 is the global minimizer: GD through [Cp] reaches it
        assert best[0] == 0 and abs(x[0]) <= 1e-6


@pytest.mark.parametrize("K", [2, 3])
def test_lemma_3_1_two_dimensional(K):
    """f(x) = ||A x - b||^2 / 2 in 2-D, with a correlated A so the penalty changes the answer."""
    A = np.array([[1.0, 0.6], [0.3, 1.2], [0.5, -0.4]])
    b = np.array([1.0, 0.2, 0.9])
    weight_decay, p = 0.3, 2 / K
    lambda_p = K * weight_decay / 2
    At, bt = torch.tensor(A), torch.tensor(b)
    x_ls = np.linalg.lstsq(A, b, rcond=None)[0]
    x = minimize_through_factors(
        "hadamard",
        lambda w: (At @ w - bt).pow(2).sum() / 2,
        list(x_ls),
        steps=4000,
        K=K,
        lr=0.02,
        weight_decay=weight_decay,
    )

    def objective(u, v):
        r = A[:, 0, None, None] * u + A[:, 1, None, None] * v - b[:, None, None]
        return (r**2).sum(axis=0) / 2 + lambda_p * (np.abs(u) ** p + np.abs(v) ** p)

    grid = np.linspace(-1.5, 1.5, 1201)  # spacing 2.5e-3
    coarse = brute_force(objective, [grid, grid])
    fine = brute_force(objective, [np.linspace(c - 5e-3, c + 5e-3, 401) for c in coarse])
    np.testing.assert_allclose(x, fine, atol=1e-4)
    assert np.abs(x - x_ls).max() > 0.05  # the regularizer moved the solution


def test_signed_and_spred_match_l1_with_their_constants():
    """x = u*u - v*v with decay lambda matches (lambda/2)|x|; Spred u*v matches lambda|x|."""
    a, weight_decay = 0.8, 0.5
    grid = np.linspace(-2, 2, 40001)
    for method, l1_weight, hp in (("hadamard-signed", weight_decay / 2, dict(offset=0.0)), ("spred", weight_decay, {})):
        x = minimize_through_factors(
            method, lambda w: (w - a).pow(2).sum() / 2, [a], lr=0.02, weight_decay=weight_decay, **hp
        )
        best = brute_force(lambda t: (t - a) ** 2 / 2 + l1_weight * np.abs(t), [grid])
        assert abs(x[0] - best[0]) <= 2e-4, method


def test_factor_updates_by_hand():
    """One SGD step (lr 0.1, decay 0.2) on the factors for loss = sum(c * x), so g = c."""
    c = torch.tensor([[0.5, -2.0]], dtype=torch.float64)
    x0 = torch.tensor([[2.0, -1.0]], dtype=torch.float64)

    def step(method, **hp):
        layer = nn.Linear(2, 1, bias=False).double()
        with torch.no_grad():
            layer.weight.copy_(x0)
        opt = create_optimizer(method, layer, lr=0.1, **hp)
        (c * layer.weight).sum().backward()
        opt.step()
        return layer.weight.detach()

    # Spred: u = sign(x)sqrt|x|, v = sqrt|x|; u' = u - lr (v g + lambda u), v' = v - lr (u g + lambda v)
    u, v = x0.sign() * x0.abs().sqrt(), x0.abs().sqrt()
    u1, v1 = u - 0.1 * (v * c + 0.2 * u), v - 0.1 * (u * c + 0.2 * v)
    torch.testing.assert_close(step("spred", weight_decay=0.2), u1 * v1, rtol=1e-15, atol=0)
    # signed squares: u = sqrt(x+), v = sqrt(x-); dx/du = 2u, dx/dv = -2v
    u, v = x0.clamp_min(0).sqrt(), (-x0).clamp_min(0).sqrt()
    u1, v1 = u - 0.1 * (2 * u * c + 0.2 * u), v - 0.1 * (-2 * v * c + 0.2 * v)
    torch.testing.assert_close(step("hadamard-signed", weight_decay=0.2), u1**2 - v1**2, rtol=1e-15, atol=0)
    # PowerPropagation alpha = 3: y = sign(x)|x|^(1/3); y' = y - lr * 3|y|^2 g; x' = y'|y'|^2
    y = x0.sign() * x0.abs() ** (1 / 3)
    y1 = y - 0.1 * 3 * y.abs() ** 2 * c
    torch.testing.assert_close(step("powerprop", alpha=3.0), y1 * y1.abs() ** 2, rtol=1e-14, atol=0)
