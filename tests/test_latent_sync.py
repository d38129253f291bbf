"""The latent y is kept exactly, and re-derived only when the weights change outside the optimizer."""

from __future__ import annotations

import warnings

import pytest
import torch

import rewa
from rewa.functional import latent_from_weight

OPTIMIZERS = [
    lambda ps, **kw: rewa.ReWA(ps, lr=0.05, K=9, M=2, weight_decay=0.01, momentum=0.9, **kw),
    lambda ps, **kw: rewa.ReWAAdamW(ps, lr=0.01, K=9, M=2, weight_decay=0.01, **kw),
]


def step(model, opt, X):
    opt.zero_grad()
    model(X).pow(2).mean().backward()
    opt.step()


@pytest.mark.parametrize("make", OPTIMIZERS)
def test_loading_weights_into_the_model_re_derives_the_latent(make):
    torch.manual_seed(0)
    model = torch.nn.Linear(8, 3, bias=False)
    opt = make(model.parameters())
    X = torch.randn(16, 8)
    for _ in range(3):
        step(model, opt, X)
    new_weights = torch.randn(3, 8)
    model.load_state_dict({"weight": new_weights})
    y_before_update = latent_from_weight(new_weights, 9, torch.float32)
    opt.param_groups[0]["lr"] = 0.0
    step(model, opt, X)
    assert torch.equal(opt.state[model.weight]["y"], y_before_update * (1 - 0.0))
    torch.testing.assert_close(model.weight.detach(), new_weights, rtol=1e-6, atol=0)


@pytest.mark.parametrize("make", OPTIMIZERS)
def test_pruning_mask_applied_in_place_re_derives_the_latent(make):
    torch.manual_seed(1)
    model = torch.nn.Linear(10, 4, bias=False)
    opt = make(model.parameters())
    X = torch.randn(32, 10)
    step(model, opt, X)
    mask = (torch.rand(4, 10) > 0.5).float()
    with torch.no_grad():
        model.weight.mul_(mask)
    y_before = opt.state[model.weight]["y"].clone()
    opt.param_groups[0]["lr"] = 0.0
    step(model, opt, X)
    y = opt.state[model.weight]["y"]
    assert torch.all(y[mask == 0] == 0) and torch.all(model.weight[mask == 0] == 0)
    # the coordinates the mask kept keep their latent exactly, not a round trip through x
    assert torch.equal(y[mask == 1], y_before[mask == 1])


def test_pruned_weights_stay_zero_under_rewa_without_momentum():
    """M > 0: the step at y = 0 is |y|^M * g = 0, so pruned weights stay exactly zero.

    (Momentum buffers and Adam moments still carry earlier steps; keeping a mask under those
    is the job of mask fine-tuning, not of the latent.)
    """
    torch.manual_seed(1)
    model = torch.nn.Linear(10, 4, bias=False)
    opt = rewa.ReWA(model.parameters(), lr=0.05, K=9, M=2, weight_decay=0.01)
    X = torch.randn(32, 10)
    step(model, opt, X)
    mask = (torch.rand(4, 10) > 0.5).float()
    with torch.no_grad():
        model.weight.mul_(mask)
    for _ in range(5):
        step(model, opt, X)
    assert torch.all(opt.state[model.weight]["y"][mask == 0] == 0)
    assert torch.all(model.weight[mask == 0] == 0)
    assert torch.all(model.weight[mask == 1] != 0)


def test_editing_other_coordinates_keeps_the_latent_of_an_underflowed_weight():
    """Re-deriving y where x changed must not kill a weight that underflowed to x = 0."""
    p = torch.nn.Parameter(torch.tensor([1e-30, 0.5]))  # y = 1e-30^(1/9) = 4.6e-4: x is normal
    opt = rewa.ReWA([p], lr=0.0, K=9, M=2)
    p.grad = torch.zeros(2)
    opt.step()
    opt.state[p]["y"][0] = 1e-5  # as if decayed: x = 1e-45 is flushed to 0
    with torch.no_grad():
        p[0] = 0.0
        p[1] = 0.25  # someone edits the other weight in place
    opt.step()
    assert opt.state[p]["y"][0].item() == pytest.approx(1e-5)
    assert opt.state[p]["y"][1].item() == pytest.approx(0.25 ** (1 / 9))


def test_weight_that_underflows_keeps_its_latent_and_grows_back():
    """K = 9 in float32: x = y^9 underflows to 0 for |y| < ~1e-5, but y is kept."""
    p = torch.nn.Parameter(torch.tensor([0.5]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rewa.SparsityConfigWarning)
        opt = rewa.ReWA([p], lr=1.0, K=9, M=0, eps=0.0, weight_decay=0.9)
    for _ in range(7):  # y shrinks by 10x per step with a zero gradient
        p.grad = torch.zeros(1)
        opt.step()
    y = opt.state[p]["y"].item()
    assert p.item() == 0.0 and 1e-8 < y < 1e-6
    opt.param_groups[0]["weight_decay"] = 0.0
    opt.param_groups[0]["lr"] = 1e-2
    for _ in range(3):
        p.grad = torch.tensor([-1.0])
        opt.step()
    assert p.item() > 0.0  # recomputing y from x = 0 would have left it at 0 forever


def test_changing_K_re_derives_the_latent():
    torch.manual_seed(2)
    p = torch.nn.Parameter(torch.randn(6))
    opt = rewa.ReWA([p], lr=0.0, K=9, M=2)
    p.grad = torch.ones(6)
    opt.step()
    x = p.detach().clone()
    opt.param_groups[0]["K"] = 3
    opt.param_groups[0]["M"] = 2
    opt.step()
    torch.testing.assert_close(opt.state[p]["y"], latent_from_weight(x, 3))
    torch.testing.assert_close(p.detach(), x, rtol=1e-6, atol=0)


def test_warns_once_when_setting_does_not_induce_sparsity():
    params = [torch.nn.Parameter(torch.randn(3)) for _ in range(2)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rewa.ReWA([{"params": [params[0]]}, {"params": [params[1]]}], K=9, M=1, eps=0.0)
    messages = [str(w.message) for w in caught if w.category is rewa.SparsityConfigWarning]
    assert len(messages) == 1 and "p = 1 + (1 - M)/K = 1 >= 1" in messages[0]
    for kwargs in (dict(K=1, M=0), dict(K=9, M=2), dict(K=9, M=0, eps=1e-3), dict(K=3, M=1.5)):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            rewa.ReWA(params, **kwargs)


def test_check_finite_false_takes_the_step():
    p = torch.nn.Parameter(torch.ones(2))
    opt = rewa.ReWA([p], lr=0.1, K=3, M=2, check_finite=False)
    p.grad = torch.tensor([float("nan"), 1.0])
    opt.step()
    assert torch.isnan(p[0]) and p[1] < 1
