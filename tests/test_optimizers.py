"""Generic tests, driven by the table of optimizers in methods_table.py."""

from __future__ import annotations

import copy
import re
import warnings

import pytest
import torch
from torch import nn

import rewa
from tests.methods_table import ALL_CASES, CASES, METHOD_CASES


def make_model(seed: int = 0, dtype=torch.float64) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 8), nn.LayerNorm(8), nn.Tanh(), nn.Linear(8, 2)).to(dtype)


def make_data(seed: int = 1, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    X = torch.randn(32, 6, generator=gen, dtype=dtype)
    Y = torch.randn(32, 2, generator=gen, dtype=dtype)
    return X, Y


def loss_of(model, X, Y):
    return nn.functional.mse_loss(model(X), Y)


def train(model, opt, steps, X, Y):
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = loss_of(model, X, Y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def build(case, model, **overrides):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rewa.SparsityConfigWarning)
        return case.build(model, **overrides)


def assert_states_equal(s1: dict, s2: dict, exact: bool = True):
    assert s1.keys() == s2.keys()
    for key in s1:
        a, b = s1[key], s2[key]
        if isinstance(a, torch.Tensor):
            assert a.dtype == b.dtype, key
            if exact:
                assert torch.equal(a, b), key
            else:
                torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14, msg=key)
        else:
            assert a == b, key


@pytest.mark.parametrize("case", ALL_CASES, ids=repr)
def test_loss_goes_down(case):
    model = make_model()
    X, Y = make_data()
    losses = train(model, build(case, model), 60, X, Y)
    assert losses[-1] < 0.8 * losses[0]


@pytest.mark.parametrize("case", CASES, ids=repr)
def test_foreach_matches_forloop(case):
    """float64: the multi-tensor path agrees with the single-tensor loop on weights and state."""
    X, Y = make_data()
    results = []
    for foreach in (False, True):
        model = make_model()
        opt = build(case, model, foreach=foreach)
        train(model, opt, 25, X, Y)
        results.append((model, opt))
    (m1, o1), (m2, o2) = results
    for p1, p2 in zip(m1.parameters(), m2.parameters()):
        torch.testing.assert_close(p1, p2, rtol=1e-12, atol=1e-14)
    for s1, s2 in zip(o1.state_dict()["state"].values(), o2.state_dict()["state"].values()):
        assert_states_equal(s1, s2, exact=False)


# foreach=None: the method has no foreach switch (peer methods through the registry).
RESUME_CASES = [(c, f) for f in (False, True) for c in CASES] + [(c, None) for c in METHOD_CASES]


@pytest.mark.parametrize("case,foreach", RESUME_CASES, ids=lambda v: repr(v) if v is not None else "-")
def test_state_dict_resume_is_exact(case, foreach, tmp_path):
    """20 steps, save, load into a fresh model + optimizer, 20 more: same as 40 uninterrupted."""
    X, Y = make_data()
    model = make_model()
    switch = {} if foreach is None else {"foreach": foreach}
    opt = build(case, model, **switch)
    train(model, opt, 20, X, Y)
    path = tmp_path / "checkpoint.pt"
    torch.save({"model": model.state_dict(), "opt": opt.state_dict()}, path)
    train(model, opt, 20, X, Y)

    for order in ("model-first", "optimizer-first"):
        checkpoint = torch.load(path)
        fresh = make_model(seed=123)
        fresh_opt = build(case, fresh, **switch)
        if order == "model-first":
            fresh.load_state_dict(checkpoint["model"])
            fresh_opt.load_state_dict(checkpoint["opt"])
        else:
            fresh_opt.load_state_dict(checkpoint["opt"])
            fresh.load_state_dict(checkpoint["model"])
        train(fresh, fresh_opt, 20, X, Y)
        for p, q in zip(model.parameters(), fresh.parameters()):
            assert torch.equal(p, q), order
        for s1, s2 in zip(opt.state_dict()["state"].values(), fresh_opt.state_dict()["state"].values()):
            assert_states_equal(s1, s2)


@pytest.mark.parametrize("case", CASES, ids=repr)
def test_bad_hyperparameters_raise_clear_errors(case):
    model = make_model()
    for bad, message in case.bad:
        with pytest.raises(ValueError, match=re.escape(message)):
            case.cls(model.parameters(), **{**case.kwargs, **bad})
    # also when a per-group value is bad, and when it is changed later (as a scheduler could)
    with pytest.raises(ValueError, match=re.escape("M=-1 must be in")):
        case.cls([{"params": list(model.parameters()), "M": -1}], **case.kwargs)
    opt = build(case, model)
    opt.param_groups[0]["K"] = 0.5
    loss_of(model, *make_data()).backward()
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(ValueError, match=re.escape("K=0.5 must be in [1, 256]")):
        opt.step()
    assert all(torch.equal(b, p) for b, p in zip(before, model.parameters()))
    with pytest.raises(TypeError, match="must be a real number"):
        case.cls(model.parameters(), **{**case.kwargs, "K": "9"})
    with pytest.raises(TypeError, match="real floating-point"):
        case.cls([torch.zeros(3, dtype=torch.complex64, requires_grad=True)], **case.kwargs)


@pytest.mark.parametrize("case", METHOD_CASES, ids=repr)
def test_bad_method_hyperparameters_raise_and_leave_the_model_untouched(case):
    """Peer methods: each bad value raises ValueError naming it, before the model is changed."""
    assert case.bad
    for bad, message in case.bad:
        model = make_model()
        names = [n for n, _ in model.named_parameters()]
        values = [p.detach().clone() for p in model.parameters()]
        with pytest.raises(ValueError, match=re.escape(message)):
            build(case, model, **bad)
        assert [n for n, _ in model.named_parameters()] == names
        assert all(torch.equal(v, p) for v, p in zip(values, model.parameters()))


@pytest.mark.parametrize("case", CASES, ids=repr)
def test_non_finite_gradient_raises_before_touching_state(case):
    model = make_model()
    X, Y = make_data()
    opt = build(case, model)
    train(model, opt, 3, X, Y)
    weights = copy.deepcopy(model.state_dict())
    state = copy.deepcopy(opt.state_dict())
    opt.zero_grad()
    loss_of(model, X, Y).backward()
    model[3].weight.grad[0, 0] = float("nan")
    with pytest.raises(FloatingPointError, match=r"parameter 1 of param group 0, shape \(2, 8\)"):
        opt.step()
    for key, value in model.state_dict().items():
        assert torch.equal(value, weights[key])
    for s1, s2 in zip(state["state"].values(), opt.state_dict()["state"].values()):
        assert_states_equal(s1, s2)


@pytest.mark.parametrize("case", ALL_CASES, ids=repr)
def test_user_gradients_are_not_modified(case):
    model = make_model()
    X, Y = make_data()
    opt = build(case, model)
    for _ in range(3):
        opt.zero_grad()
        loss_of(model, X, Y).backward()
        grads = [p.grad.clone() for p in model.parameters()]
        opt.step()
        assert all(torch.equal(g, p.grad) for g, p in zip(grads, model.parameters()))


@pytest.mark.parametrize("case", CASES, ids=repr)
def test_weights_hold_power_map_of_latent(case):
    model = make_model()
    X, Y = make_data()
    opt = build(case, model)
    train(model, opt, 5, X, Y)
    for group in opt.param_groups:
        for p in group["params"]:
            y = opt.state[p]["y"]
            torch.testing.assert_close(p.detach(), torch.sign(y) * y.abs() ** group["K"], rtol=1e-12, atol=0)


@pytest.mark.parametrize("case", CASES, ids=repr)
def test_closure_scheduler_and_params_without_grad(case):
    model = make_model()
    X, Y = make_data()
    frozen = model[0].bias
    frozen.requires_grad_(False)
    opt = case.cls([p for p in model.parameters() if p is not frozen] + [frozen], **case.kwargs)
    schedule = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    frozen_before = frozen.detach().clone()

    def closure():
        opt.zero_grad()
        loss = loss_of(model, X, Y)
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert isinstance(loss, torch.Tensor)
    schedule.step()
    assert opt.param_groups[0]["lr"] == case.kwargs["lr"] / 2
    opt.step(closure)
    assert torch.equal(frozen, frozen_before)
    assert frozen not in opt.state
    assert opt.state[model[0].weight]["step"] == 2


@pytest.mark.parametrize("case", ALL_CASES, ids=repr)
def test_zero_learning_rate_changes_nothing_after_first_sync(case):
    """With lr = 0 the update is the identity: y stays, x = power_map(y) stays."""
    model = make_model()
    X, Y = make_data()
    opt = build(case, model, lr=0.0)
    train(model, opt, 1, X, Y)
    after_one = [p.detach().clone() for p in model.parameters()]
    train(model, opt, 3, X, Y)
    assert all(torch.equal(a, p) for a, p in zip(after_one, model.parameters()))


@pytest.mark.parametrize("case", CASES, ids=repr)
def test_low_precision_weights_keep_float32_latent_through_checkpoints(case):
    model = make_model(dtype=torch.bfloat16)
    X, Y = make_data(dtype=torch.bfloat16)
    opt = build(case, model)
    train(model, opt, 5, X, Y)
    sd = opt.state_dict()
    fresh = make_model(seed=7, dtype=torch.bfloat16)
    fresh.load_state_dict(model.state_dict())
    fresh_opt = build(case, fresh)
    fresh_opt.load_state_dict(sd)
    for p, q in zip(model.parameters(), fresh.parameters()):
        for key, value in opt.state[p].items():
            if isinstance(value, torch.Tensor):
                assert fresh_opt.state[q][key].dtype == torch.float32
                assert torch.equal(fresh_opt.state[q][key], value)
    train(model, opt, 3, X, Y)
    train(fresh, fresh_opt, 3, X, Y)
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), fresh.parameters()))


@pytest.mark.parametrize("foreach", [False, True])
def test_K1_with_eps_scales_the_step_by_one_over_one_plus_eps(foreach):
    """K = 1 and eps > 0: the factor |y|^0 / (|y|^0 + eps) is 1 / (1 + eps) everywhere (this
    raised ZeroDivisionError before): ReWA is SGD with the learning rate lr / (1 + eps)."""
    eps = 0.25
    torch.manual_seed(0)
    w = nn.Parameter(torch.randn(5, 3, dtype=torch.float64))
    v = nn.Parameter(w.detach().clone())
    opt = rewa.ReWA([w], lr=0.1, K=1, M=0, eps=eps, momentum=0.9, foreach=foreach)
    sgd = torch.optim.SGD([v], lr=0.1 / (1 + eps), momentum=0.9)
    for _ in range(5):
        g = torch.randn_like(w)
        w.grad, v.grad = g.clone(), g.clone()
        opt.step()
        sgd.step()
    torch.testing.assert_close(w, v, rtol=1e-12, atol=1e-14)
