"""Defaults that do what their names promise (issue 10): ReWAAdamW's, create_optimizer's dense
group, sparsity counting under a parametrization, the controller and learning-rate schedules."""

import warnings

import pytest
import torch

import rewa
from rewa.controller import TargetSparsityWarning
from rewa.optim.registry import create_optimizer


def test_rewa_adamw_defaults_are_the_papers_adamw_setting():
    model = torch.nn.Linear(4, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error", rewa.SparsityConfigWarning)
        opt = rewa.ReWAAdamW(rewa.param_groups(model))
        registry_opt = create_optimizer("rewa-adamw", model)
    for o in (opt, registry_opt):
        sparse = o.param_groups[0]
        assert (sparse["K"], sparse["M"], sparse["eps"]) == (9, 2, 0.0)
        assert rewa.implicit.lp_exponent(sparse["K"], sparse["M"]) < 1


def test_rewa_adamw_warns_on_settings_that_do_not_sparsify():
    model = torch.nn.Linear(4, 2)
    with pytest.warns(
        rewa.SparsityConfigWarning, match=r"K=9, M=0, eps=0 does not induce .*p = 1 \+ \(1 - M\)/K = 1.111"
    ):
        rewa.ReWAAdamW(rewa.param_groups(model), M=0)
    with pytest.warns(rewa.SparsityConfigWarning):
        create_optimizer("rewa-adamw", model, M=1)


@pytest.mark.parametrize("name", ["rewa", "rewa-adamw", "sgd", "adamw", "pwd-sgd", "l1-prox", "hadamard"])
def test_create_optimizer_sets_the_dense_groups_hyperparameters(name):
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.LayerNorm(3), torch.nn.Linear(3, 1))
    opt = create_optimizer(name, model, lr=0.05, dense={"lr": 0.01})
    sparse, dense = opt.param_groups
    assert sparse["lr"] == 0.05 and dense["lr"] == 0.01
    assert len(dense["params"]) == 4  # two biases and the LayerNorm's weight and bias


def test_create_optimizer_dense_weight_decay_and_bad_keys():
    model = torch.nn.Linear(4, 1)
    opt = create_optimizer("adamw", model, weight_decay=0.1, dense={"weight_decay": 1e-4})
    assert [g["weight_decay"] for g in opt.param_groups] == [0.1, 1e-4]
    with pytest.raises(TypeError, match=r"dense=\{'momentum': \.\.\.\}: method 'adamw' has no such hyperparameter"):
        create_optimizer("adamw", model, dense={"momentum": 0.9})
    with pytest.raises(ValueError, match="lr=-1 must be >= 0"):
        create_optimizer("sgd", model, dense={"lr": -1})
    with pytest.raises(ValueError, match="needs the nn.Module"):
        create_optimizer("sgd", model.parameters(), dense={"lr": 0.1})


def test_sparsity_report_and_sweep_refuse_a_parametrized_model():
    model = torch.nn.Sequential(torch.nn.Linear(6, 4), torch.nn.Linear(4, 1))
    create_optimizer("hadamard", model, K=3)
    with pytest.raises(ValueError, match=r"call rewa.reparam.collapse\(model\) first"):
        rewa.sparsity_report(model, 1e-3)
    with pytest.raises(ValueError, match="still carry a parametrization"):
        rewa.sparsity.threshold_sweep(model, lambda m: 1.0, [0.0])
    rewa.collapse(model)
    assert rewa.sparsity_report(model, 0.0).total == 6 * 4 + 4  # the weights, not their 3 factors each


def _digits_opt():
    model = torch.nn.Linear(8, 2)
    return model, rewa.ReWAAdamW(rewa.param_groups(model, sparse={"weight_decay": 1e-2}), lr=1e-2)


@pytest.mark.parametrize("schedule", ["cosine", "step", "warmup-cosine"])
def test_controller_refuses_an_lr_schedule_at_construction(schedule):
    model, opt = _digits_opt()
    sched = torch.optim.lr_scheduler
    scheduler = {
        "cosine": lambda: sched.CosineAnnealingLR(opt, T_max=10),
        "step": lambda: sched.StepLR(opt, step_size=3),
        "warmup-cosine": lambda: sched.SequentialLR(
            opt,
            [sched.LinearLR(opt, start_factor=0.1, total_iters=2), sched.CosineAnnealingLR(opt, T_max=8)],
            milestones=[2],
        ),
    }[schedule]()
    with pytest.raises(ValueError, match="needs a constant learning rate"):
        rewa.TargetSparsityController(opt, model, target_sparsity=0.5, threshold=1e-3, total_calls=10)
    ctl = rewa.TargetSparsityController(
        opt, model, target_sparsity=0.5, threshold=1e-3, total_calls=10, allow_lr_schedule=True
    )
    assert ctl.step().call == 1 and scheduler is not None


def test_controller_warns_when_the_lr_changes_later_and_when_the_target_is_missed():
    model, opt = _digits_opt()
    ctl = rewa.TargetSparsityController(opt, model, target_sparsity=0.9, threshold=1e-3, total_calls=3)
    ctl.step()
    for group in opt.param_groups:
        group["lr"] = 1e-3
    with pytest.warns(TargetSparsityWarning, match="learning rate changed from 0.01 to 0.001"):
        ctl.step()
    with pytest.warns(
        TargetSparsityWarning, match="missed its target: sparsity 0.0000 at the last call, target 0.9000"
    ):
        ctl.step()  # no training in between: the sparsity is far from 90%
