"""Issue 9, items 2 and 3: finite steps, all-or-nothing steps and loads, clear errors."""

from __future__ import annotations

import copy
import re
import warnings

import pytest
import torch
from torch import nn

import rewa
from tests.asserts import assert_optimizer_state_unchanged
from tests.methods_table import CASES


def make_model(dtype=torch.float32, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 2)).to(dtype)


def backward(model, scale=1.0):
    torch.manual_seed(5)
    X, Y = torch.randn(16, 6, dtype=model[0].weight.dtype), torch.randn(16, 2, dtype=model[0].weight.dtype)
    model.zero_grad()
    (scale * nn.functional.mse_loss(model(X), Y)).backward()


def snapshot(model, opt):
    return copy.deepcopy(model.state_dict()), copy.deepcopy({id(p): dict(s) for p, s in opt.state.items()})


def assert_unchanged(model, opt, saved):
    weights, state = saved
    for key, value in model.state_dict().items():
        assert torch.equal(value, weights[key]), key
    assert_optimizer_state_unchanged(opt, state)


def build(case, model, **overrides):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rewa.SparsityConfigWarning)
        return case.build(model, **overrides)


@pytest.mark.parametrize("case", CASES, ids=repr)
@pytest.mark.parametrize("failing_group", [0, 1])
def test_overflowing_step_raises_and_leaves_every_group_as_it_was(case, failing_group):
    """Finite gradients, a learning rate that overflows y (or x = y|y|^(K-1)) in one group:
    FloatingPointError, and weights, latents, buffers and step counts of both groups unchanged."""
    model = make_model()
    opt = build(case, model)
    for _ in range(2):
        backward(model)
        opt.step()
    saved = snapshot(model, opt)
    opt.param_groups[failing_group]["lr"] = 1e39
    backward(model)
    with pytest.raises(FloatingPointError, match=f"param group {failing_group}.*nothing was updated"):
        opt.step()
    assert_unchanged(model, opt, saved)
    opt.param_groups[failing_group]["lr"] = case.kwargs["lr"]  # and training goes on
    opt.step()
    assert all(bool(p.isfinite().all()) for p in model.parameters())


@pytest.mark.parametrize("case", [c for c in CASES if c.name in ("rewa-plain", "rewa-adamw")], ids=repr)
def test_overflow_on_the_first_step_creates_no_state(case):
    model = make_model()
    opt = build(case, model, lr=1e39)
    saved = snapshot(model, opt)
    backward(model)
    with pytest.raises(FloatingPointError):
        opt.step()
    assert_unchanged(model, opt, saved)
    assert len(opt.state) == 0


def test_k9_float32_overflow_is_caught_where_it_used_to_write_inf():
    """|y| just past float32's 3.4e38^(1/9) = 1.9e4: the weights would be inf."""
    p = nn.Parameter(torch.tensor([1.0e17, 1.0]))  # y = 1e17^(1/9) = 77.4
    opt = rewa.ReWA([p], lr=1.0, K=9, M=0)
    p.grad = torch.tensor([-3.0e4, 0.0])
    with pytest.raises(FloatingPointError, match=r"overflows once \|y\| > 1\.9"):
        opt.step()
    assert torch.equal(p.detach(), torch.tensor([1.0e17, 1.0]))
    unchecked = rewa.ReWA([p], lr=1.0, K=9, M=0, check_finite=False)
    unchecked.step()  # check_finite=False removes every check
    assert torch.isinf(p.detach()[0])


def test_ordinary_steps_take_the_fast_path(monkeypatch):
    """Training at sane settings never copies the state (the guard's bound is far from overflow)."""
    model = make_model()
    opt = rewa.ReWA(rewa.param_groups(model), lr=0.1, K=9, M=2, weight_decay=1e-3, momentum=0.9)
    calls = []
    monkeypatch.setattr(rewa.optim._base, "snapshot", lambda state, params, in_sync: calls.append(1) or [])
    for _ in range(3):
        backward(model)
        opt.step()
    assert calls == []


# -- loads -------------------------------------------------------------------------------------


def test_load_state_dict_with_latents_of_another_shape_is_refused():
    big, small = nn.Linear(4, 3), nn.Linear(4, 1)
    opt_big = rewa.ReWA(rewa.param_groups(big), lr=0.1, K=9, M=2)
    big(torch.randn(2, 4)).sum().backward()
    opt_big.step()
    opt_small = rewa.ReWA(rewa.param_groups(small), lr=0.1, K=9, M=2)
    before = [p.detach().clone() for p in small.parameters()]
    with pytest.raises(
        ValueError,
        match=re.escape("state 'y' of the parameter of shape (1, 4) (loaded, parameter id 0) has shape (3, 4)"),
    ):
        opt_small.load_state_dict(opt_big.state_dict())
    assert len(opt_small.state) == 0
    assert all(torch.equal(b, p) for b, p in zip(before, small.parameters()))
    assert [tuple(p.shape) for p in small.parameters()] == [(1, 4), (1,)]


@pytest.mark.parametrize(
    "mutate,message",
    [
        (
            lambda sd: sd["param_groups"][0].__setitem__("K", 0),
            "param group 0 of the loaded state dict: K=0 must be in [1, 256]",
        ),
        (lambda sd: sd["param_groups"][0].__setitem__("lr", float("nan")), "lr=nan must be finite"),
        (lambda sd: sd["param_groups"][1].__setitem__("nesterov", "no"), "nesterov='no' must be True or False"),
        (lambda sd: sd["param_groups"][0].pop("decoupled_weight_decay"), "lacks decoupled_weight_decay"),
        (lambda sd: sd["state"][0].__setitem__("step", "3"), "state 'step' of the parameter of shape (2, 8)"),
        (
            lambda sd: sd["state"][0].__setitem__("y", [1.0]),
            "state 'y' of the parameter of shape (2, 8) (loaded, "
            "parameter id 0) must be a floating-point tensor, got list",
        ),
        (lambda sd: sd["state"][0].pop("y"), "but no latent 'y'"),
        (lambda sd: sd["state"].__setitem__(99, {}), "parameter id 99, which no param group lists"),
        (lambda sd: sd.pop("state"), "needs a dict with 'state' and 'param_groups'"),
    ],
)
def test_load_state_dict_checks_everything_before_writing(mutate, message):
    model = nn.Sequential(nn.Linear(8, 2))
    opt = rewa.ReWA(rewa.param_groups(model), lr=0.1, K=9, M=2, momentum=0.9)
    model(torch.randn(3, 8)).sum().backward()
    opt.step()
    sd = copy.deepcopy(opt.state_dict())
    saved = snapshot(model, opt)
    groups = copy.deepcopy(opt.param_groups)
    mutate(sd)
    with pytest.raises(ValueError, match=re.escape(message)):
        opt.load_state_dict(sd)
    assert_unchanged(model, opt, saved)
    assert [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups] == [
        {k: v for k, v in g.items() if k != "params"} for g in groups
    ]


def test_a_torch_sgd_state_dict_is_refused_with_the_missing_keys():
    model = nn.Linear(4, 1)
    sgd = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    opt = rewa.ReWA([{"params": list(model.parameters())}], lr=0.1, K=9, M=2)
    with pytest.raises(ValueError, match="lacks K, M, eps, .*not a ReWA state dict"):
        opt.load_state_dict(sgd.state_dict())


# -- groups, flags, bounds -----------------------------------------------------------------------


def test_add_param_group_with_a_bad_group_leaves_the_optimizer_as_it_was():
    a, b = nn.Linear(3, 2), nn.Linear(3, 2)
    opt = rewa.ReWA(a.parameters(), lr=0.1, K=9, M=2)
    with pytest.raises(ValueError, match=re.escape("M=9 must be in [0, K-1] = [0, 8]")):
        opt.add_param_group({"params": list(b.parameters()), "M": 9})
    assert len(opt.param_groups) == 1
    a(torch.randn(2, 3)).sum().backward()
    opt.step()  # later steps still work
    with pytest.raises(TypeError, match="nesterov=1 must be True or False"):
        opt.add_param_group({"params": list(b.parameters()), "nesterov": 1})
    assert len(opt.param_groups) == 1


@pytest.mark.parametrize(
    "flag,value,allowed",
    [
        ("nesterov", "yes", "True or False"),
        ("foreach", 1, "True, False or None"),
        ("check_finite", "no", "True or False"),
        ("decoupled_weight_decay", 0, "True or False"),
    ],
)
def test_boolean_flags_reject_non_bool(flag, value, allowed):
    with pytest.raises(TypeError, match=re.escape(f"{flag}={value!r} must be {allowed}")):
        rewa.ReWA([nn.Parameter(torch.ones(2))], lr=0.1, momentum=0.5, **{flag: value})


def test_adamw_flags_are_checked_too():
    with pytest.raises(TypeError, match="check_finite='yes' must be True or False"):
        rewa.ReWAAdamW([nn.Parameter(torch.ones(2))], check_finite="yes")


def test_K_has_an_upper_bound():
    with pytest.raises(ValueError, match=re.escape("K=1000000.0 must be in [1, 256]")):
        rewa.ReWA([nn.Parameter(torch.ones(2))], K=1e6, M=2)


def test_bad_state_in_a_later_group_updates_nothing():
    """Every group (hyperparameters, state shapes) is checked before the first is updated."""
    model = make_model()
    opt = rewa.ReWA(rewa.param_groups(model), lr=0.1, K=9, M=2)
    backward(model)
    opt.step()
    opt.state[model[2].bias]["y"] = torch.zeros(3)
    saved = snapshot(model, opt)
    backward(model)
    with pytest.raises(ValueError, match=re.escape("state 'y' of the parameter of shape (2,) has shape (3,)")):
        opt.step()
    assert_unchanged(model, opt, saved)
    opt.state[model[2].bias]["y"] = torch.zeros(2)
    opt.param_groups[1]["eps"] = -1.0
    with pytest.raises(ValueError, match="eps=-1.0 must be >= 0"):
        opt.step()
    assert torch.equal(model[0].weight.detach(), saved[0]["0.weight"])


@pytest.mark.parametrize("cls", [rewa.ReWA, rewa.ReWAAdamW])
def test_check_finite_on_the_meta_device(cls):
    p = nn.Parameter(torch.empty(4, 3, device="meta"))
    p.grad = torch.empty(4, 3, device="meta")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        opt = cls([p], lr=0.1, K=9, M=2, check_finite=True)
        opt.step()
    assert opt.state[p]["y"].device.type == "meta"


def test_zero_saddle_warns_once():
    model = make_model()
    with torch.no_grad():
        model[2].weight.zero_()
    opt = rewa.ReWA(rewa.param_groups(model), lr=0.1, K=9, M=2)
    with pytest.warns(
        rewa.ZeroSaddleWarning, match=r"1 sparsified tensor\(s\) start with exact zeros \(shape \(2, 8\): 100% zeros\)"
    ):
        backward(model)
        opt.step()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        backward(model)
        opt.step()
    assert torch.equal(model[2].weight.detach(), torch.zeros(2, 8))  # the saddle: it never moves


def test_no_zero_saddle_warning_when_zeros_can_move():
    model = make_model()
    with torch.no_grad():
        model[2].weight.zero_()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.simplefilter("ignore", rewa.SparsityConfigWarning)
        opt = rewa.ReWA(rewa.param_groups(model, sparse={"M": 0}), lr=0.1, K=9)
        backward(model)
        opt.step()


def test_sparsity_warning_follows_sparsity_configuration():
    """K=1.5, M=0, eps=0.1: Configuration B by letter but q = 1.33, p = 1.67: not sparse."""
    assert not rewa.implicit.sparsity_configuration(1.5, 0, 0.1).sparse
    with pytest.warns(rewa.SparsityConfigWarning, match="q = \\(2 - M\\)/K = 1.333"):
        rewa.ReWA([nn.Parameter(torch.ones(2))], K=1.5, M=0, eps=0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rewa.ReWA([nn.Parameter(torch.ones(2))], K=3, M=0, eps=0.1)


# -- bounds carried from step to step ----------------------------------------------------------

CARRYING = {
    "rewa-coupled": lambda ps: rewa.ReWA(ps, lr=0.005, K=9, M=2, weight_decay=0.01, momentum=0.9),
    "rewa-nesterov-decoupled": lambda ps: rewa.ReWA(
        ps, lr=0.005, K=9, M=2, weight_decay=0.01, momentum=0.9, nesterov=True, decoupled_weight_decay=True
    ),
    "rewa-adamw": lambda ps: rewa.ReWAAdamW(ps, lr=0.01, K=9, M=2, weight_decay=0.01),
}


@pytest.mark.parametrize("name", CARRYING)
def test_carried_bounds_stay_above_the_true_maxima(name):
    """The bounds a step leaves for the next one (instead of new reductions) hold: at every
    step |y| and the momentum buffer stay below them, and the weights follow the same path as
    with every bound measured anew (check_finite=False)."""
    torch.manual_seed(0)
    checked_params = [nn.Parameter(torch.randn(40, 30) * 0.5), nn.Parameter(torch.randn(7) * 0.5)]
    plain_params = [nn.Parameter(p.detach().clone()) for p in checked_params]
    checked = CARRYING[name](checked_params)
    plain = CARRYING[name](plain_params)
    for group in plain.param_groups:
        group["check_finite"] = False
    targets = [0.5 * torch.randn_like(p) for p in checked_params]
    for step in range(60):
        # a quadratic loss's gradient with noise, and now and then a large one
        noise = 3.0 if step % 17 == 5 else 0.1
        grads = [p.detach() - t + noise * torch.randn_like(p) for p, t in zip(checked_params, targets)]
        for params in (checked_params, plain_params):
            for p, g in zip(params, grads):
                p.grad = g.clone()
        checked.step()
        plain.step()
        for p, q in zip(checked_params, plain_params):
            assert torch.equal(p, q)
            state = checked.state[p]
            carried = state["update_bounds"]
            y_bound, others = carried.bounds.y_bound, carried.bounds.others
            assert state["y"].abs().max() <= y_bound
            if "momentum_buffer" in state:
                assert state["momentum_buffer"].abs().max() <= others[0]


@pytest.mark.parametrize("where", ["latent in place", "new buffer", "weights in place"])
def test_a_write_outside_the_optimizer_voids_the_carried_bounds(where):
    """After a few steps something outside the optimizer makes the state huge; the next step
    must measure it (not trust the last step's bounds), so it raises and changes nothing."""
    torch.manual_seed(0)
    p = nn.Parameter(torch.randn(50) * 0.5)
    opt = rewa.ReWA([p], lr=0.05, K=9, M=2, weight_decay=0.01, momentum=0.9)
    for _ in range(3):
        p.grad = torch.randn_like(p)
        opt.step()
    state = opt.state[p]
    with torch.no_grad():
        if where == "latent in place":
            state["y"][0] = 1.8e4  # x = y^9 is near float32's largest value
        elif where == "new buffer":
            state["momentum_buffer"] = torch.full_like(p, 1e6)
        else:
            p[0] = 3e38
    p.grad = torch.ones_like(p)
    weights, latent = p.detach().clone(), state["y"].clone()
    with pytest.raises(FloatingPointError):
        opt.step()
    assert torch.equal(p, weights) and torch.equal(state["y"], latent)


def test_carried_bounds_are_not_saved():
    p = nn.Parameter(torch.randn(5))
    opt = rewa.ReWA([p], lr=0.05, momentum=0.9)
    p.grad = torch.randn_like(p)
    opt.step()
    assert "update_bounds" in opt.state[p]
    assert "update_bounds" not in opt.state_dict()["state"][0]


def test_warnings_point_at_the_users_line():
    """ZeroSaddleWarning (raised deep inside step()) and SparsityConfigWarning (also through
    create_optimizer) name this file, the line that called the library."""
    model = nn.Linear(4, 3)
    with torch.no_grad():
        model.weight.zero_()
    opt = rewa.ReWA([model.weight], lr=0.1, K=9, M=2)
    model(torch.randn(2, 4)).sum().backward()
    with pytest.warns(rewa.ZeroSaddleWarning) as record:
        opt.step()
    assert record[0].filename == __file__
    with pytest.warns(rewa.SparsityConfigWarning) as record:
        rewa.create_optimizer("rewa", nn.Linear(4, 3), lr=0.1, K=9, M=0)
    assert record[0].filename == __file__
