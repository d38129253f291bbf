"""The registry: names, descriptions, defaults, errors, and which tensors are sparsified."""

from __future__ import annotations

import re

import pytest
import torch
from torch import nn

import rewa
from rewa.optim.penalized import PenalizedSGD
from rewa.optim.pwd import PWDSGD
from rewa.optim.registry import create_optimizer, list_methods, method_names
from rewa.reparam import factor_parameters

REQUIRED = (
    "sgd",
    "adamw",
    "rewa",
    "rewa-adamw",
    "pwd-sgd",
    "pwd-adamw",
    "l1-prox",
    "l1-subgradient",
    "hadamard",
    "hadamard-signed",
    "spred",
    "powerprop",
    "lp-clipped",
)


def make_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2))


def test_every_required_method_is_registered_and_described():
    infos = {m.name: m for m in list_methods()}
    assert set(REQUIRED) <= set(infos) and list(infos) == method_names()
    for info in infos.values():
        assert info.description and info.reference and "lr" in info.hyperparameters
        assert str(info).startswith(f"{info.name}: ")
    assert infos["hadamard"].hyperparameters["K"] == 3 and infos["hadamard"].reparameterizes
    assert not infos["pwd-sgd"].reparameterizes
    with pytest.raises(TypeError):
        infos["sgd"].hyperparameters["lr"] = 1.0  # read-only view


def test_list_methods_is_a_list_that_prints_a_table():
    table = rewa.list_methods()
    assert isinstance(table, list) and [m.name for m in table] == method_names()
    for text in (str(table), repr(table)):
        header, rule, *rows = text.splitlines()
        assert header.split()[:2] == ["method", "description"] and set(rule) == {"-"}
        assert [row.split()[0] for row in rows] == method_names()
        assert "lr=0.001, K=9, M=2" in rows[method_names().index("rewa")]
        assert "MethodInfo(" not in text
    assert table[0].name == "sgd" and table[1:3] == list(table)[1:3]  # still a list for callers


def test_unknown_name_and_hyperparameter_list_the_valid_ones():
    model = make_model()
    with pytest.raises(ValueError, match=r"unknown method 'rewa-sgd'; registered methods: sgd, adamw, rewa"):
        create_optimizer("rewa-sgd", model)
    with pytest.raises(
        TypeError,
        match=re.escape(
            "method 'pwd-sgd' has no hyperparameter 'weight_decay'; "
            "valid: lr, lambda_p, p, momentum, dampening, nesterov"
        ),
    ):
        create_optimizer("pwd-sgd", model, weight_decay=0.1)
    with pytest.raises(TypeError, match=r"has no hyperparameter 'weight_decay'; valid: alpha, lr"):
        create_optimizer("powerprop", model, weight_decay=0.1)  # PowerPropagation has no decay
    assert [type(m) for m in model.modules()][1] is nn.Linear  # nothing was parametrized


def test_defaults_and_overrides_land_in_the_param_groups():
    model = make_model()
    opt = create_optimizer("pwd-sgd", model, lr=0.2)
    assert isinstance(opt, PWDSGD)
    sparse, dense = opt.param_groups
    assert (sparse["lr"], sparse["lambda_p"], sparse["p"]) == (0.2, 1e-4, 0.5)
    assert dense["lambda_p"] == 0.0 and dense["lr"] == 0.2
    opt = create_optimizer("l1-prox", model)
    assert isinstance(opt, PenalizedSGD)
    assert opt.param_groups[0]["proximal"] and opt.param_groups[0]["penalty"] == "l1"
    assert opt.param_groups[1]["strength"] == 0.0


@pytest.mark.parametrize("name", [n for n in method_names() if not n.startswith(("hadamard", "spred", "powerprop"))])
def test_biases_and_norms_dense_by_default_one_switch_includes_them(name):
    model = make_model()
    weights = {id(model[0].weight), id(model[3].weight)}
    opt = create_optimizer(name, model)
    assert [{id(p) for p in g["params"]} for g in opt.param_groups][0] == weights
    assert len(opt.param_groups) == 2 and len(opt.param_groups[1]["params"]) == 4  # 2 biases, BN weight+bias
    everything = create_optimizer(name, model, include_bias_and_norm=True)
    assert len(everything.param_groups) == 1 and len(everything.param_groups[0]["params"]) == 6


def test_rewa_through_the_registry_matches_param_groups():
    model = make_model()
    opt = create_optimizer("rewa", model, lr=0.05, K=3, M=1.5, eps=1e-3, weight_decay=0.1)
    reference = rewa.ReWA(rewa.param_groups(model), lr=0.05, K=3, M=1.5, eps=1e-3, weight_decay=0.1)
    assert [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups] == [
        {k: v for k, v in g.items() if k != "params"} for g in reference.param_groups
    ]


@pytest.mark.parametrize("name", ["hadamard", "hadamard-signed", "spred", "powerprop"])
def test_reparameterized_methods_train_factors_and_keep_dense_parameters_plain(name):
    model = make_model()
    opt = create_optimizer(name, model)
    factors = factor_parameters(model)
    expected = {"hadamard": 3, "hadamard-signed": 2, "spred": 2, "powerprop": 1}[name] * 2
    assert len(factors) == expected
    assert {id(p) for p in opt.param_groups[0]["params"]} == {id(p) for p in factors}
    dense = opt.param_groups[1]
    assert dense["weight_decay"] == 0.0 and len(dense["params"]) == 4
    assert model[0].bias is dense["params"][0]  # biases were not reparameterized
    if name != "powerprop":
        assert opt.param_groups[0]["weight_decay"] == 1e-4
    with pytest.raises(TypeError, match="pass the nn.Module"):
        create_optimizer(name, make_model().parameters())


def test_parameters_instead_of_a_module_pass_through():
    model = make_model()
    opt = create_optimizer("l1-subgradient", model.parameters(), lr=0.1)
    assert len(opt.param_groups) == 1 and len(opt.param_groups[0]["params"]) == 6
    opt = create_optimizer("adamw", [{"params": [model[0].weight], "weight_decay": 0.5}], lr=0.1)
    assert opt.param_groups[0]["weight_decay"] == 0.5


def test_lp_clipped_penalty_object_in_a_training_loop():
    """The other way to use clipped l_p: add the penalty's value to the loss, any optimizer."""
    from rewa.penalties import ClippedLp

    model = make_model()
    psi = ClippedLp(p=0.5, threshold=0.05, kind="l1")
    x, y = torch.randn(16, 5), torch.randn(16, 2)
    opt = create_optimizer("sgd", model, lr=0.05)
    loss = nn.functional.mse_loss(model(x), y) + 1e-3 * psi.value(model[0].weight)
    loss.backward()
    grad_with = model[0].weight.grad.clone()
    model.zero_grad()
    nn.functional.mse_loss(model(x), y).backward()
    torch.testing.assert_close(grad_with - model[0].weight.grad, 1e-3 * psi.grad(model[0].weight.detach()))
    opt.step()
