"""The target-sparsity controller: its control law on hand-set weights, its checks, and a run."""

from __future__ import annotations

import logging
import math

import pytest
import torch
from torch import nn

from rewa.controller import TargetSparsityController
from rewa.paper.digits import DigitsConfig, run_digits
from rewa.param_groups import param_groups


def setup(**kwargs):
    torch.manual_seed(0)
    model = nn.Linear(10, 10)
    with torch.no_grad():
        model.weight.uniform_(0.5, 1.0)
    opt = torch.optim.SGD(param_groups(model, dense={"weight_decay": 0.0}), lr=0.1, weight_decay=0.01)
    for group in opt.param_groups:  # torch's SGD does not know ReWA's K, M, eps
        for key in ("K", "M", "eps"):
            group.pop(key, None)
    options = dict(target_sparsity=0.5, threshold=1e-3, total_calls=10, ramp=0.5, lookahead=0)
    options.update(kwargs)
    return model, opt, TargetSparsityController(opt, model, **options)


def set_zeros(model, count):
    with torch.no_grad():
        model.weight.uniform_(0.5, 1.0)
        model.weight.view(-1)[:count] = 0.0


def test_control_law_on_hand_set_weights(caplog):
    model, opt, ctl = setup()
    sparse_group, dense_group = opt.param_groups

    with caplog.at_level(logging.DEBUG, logger="rewa.controller"):
        first = ctl.step()  # nothing pruned, target 0.5 * (1 - (1 - 0.2)^3) = 0.244: raise
    q = float(model.weight.detach().abs().flatten().kthvalue(math.ceil(first.target * 100)).values)
    expected = 0.01 * math.exp(min(0.2, 0.1 * math.log(q / 1e-3)))
    assert first.sparsity == 0.0 and first.target == pytest.approx(0.5 * (1 - 0.8**3))
    assert sparse_group["weight_decay"] == pytest.approx(expected) == first.weight_decay
    assert dense_group["weight_decay"] == 0.0  # biases are not controlled
    assert "call 1: sparsity 0.0000" in caplog.text

    set_zeros(model, 90)  # far past the target: cut fast
    second = ctl.step()
    assert second.weight_decay == pytest.approx(expected * math.exp(-1.5))

    for _ in range(3):  # target reached at call 5 (ramp 0.5 of 10 calls)
        ctl.step()
    set_zeros(model, 50)
    held = ctl.step()  # exactly on target: dead band, unchanged
    assert held.target == 0.5 and held.sparsity == 0.5
    assert held.weight_decay == ctl.history[-2].weight_decay
    assert [r.call for r in ctl.history] == [1, 2, 3, 4, 5, 6]


def test_lookahead_cuts_before_overshoot():
    model, opt, ctl = setup(lookahead=3, total_calls=4, ramp=1.0)
    set_zeros(model, 10)
    ctl.step()
    set_zeros(model, 30)  # rising 20 points per call: in 3 calls 0.9 > 0.5
    record = ctl.step()
    assert record.sparsity == pytest.approx(0.3) and record.target < 0.5
    assert record.weight_decay < ctl.history[0].weight_decay


def test_target_compression_and_bounds():
    _, _, ctl = setup(target_sparsity=None, target_compression=20.0)
    assert ctl.target_sparsity == pytest.approx(0.95)
    _, opt, ctl = setup(max_weight_decay=0.0105)
    ctl.step()
    assert opt.param_groups[0]["weight_decay"] == 0.0105


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(target_sparsity=1.0), r"target_sparsity=1.0 must be in \[0, 1\)"),
        (dict(target_sparsity=-0.2), r"target_sparsity=-0.2 must be in \[0, 1\)"),
        (dict(target_sparsity=None), "exactly one of"),
        (dict(target_compression=10.0), "exactly one of"),
        (dict(target_sparsity=None, target_compression=0.5), "target_compression=0.5 must be >= 1"),
        (dict(threshold=-1e-3), "threshold=-0.001 must be >= 0"),
        (dict(threshold=0.0), "threshold=0 must be > 0"),
        (dict(total_calls=0), "total_calls=0 must be a positive integer"),
        (dict(ramp=0.0), r"ramp=0.0 must be in \(0, 1\]"),
        (dict(gain=-1.0), "gain=-1.0 must be > 0"),
        (dict(initial_weight_decay=100.0), "initial_weight_decay=100.0 must be in"),
    ],
)
def test_bad_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        setup(**kwargs)


def test_needs_positive_start_and_a_weight_decay_key():
    model = nn.Linear(4, 4)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)  # weight_decay 0
    with pytest.raises(ValueError, match="initial_weight_decay > 0"):
        TargetSparsityController(opt, model, target_sparsity=0.5, threshold=1e-3, total_calls=5)
    ctl = TargetSparsityController(
        opt, model, target_sparsity=0.5, threshold=1e-3, total_calls=5, initial_weight_decay=1e-3
    )
    assert opt.param_groups[0]["weight_decay"] == 1e-3 and ctl.weight_decay == 1e-3
    rprop = torch.optim.Rprop(model.parameters())
    with pytest.raises(ValueError, match="no 'weight_decay'"):
        TargetSparsityController(rprop, model, target_sparsity=0.5, threshold=1e-3, total_calls=5)
    with pytest.raises(ValueError, match="no weight tensors"):
        TargetSparsityController(opt, nn.LayerNorm(4), target_sparsity=0.5, threshold=1e-3, total_calls=5)


def test_digits_short_run_meets_target():
    """A shortened version of the digits demonstration (full run: `rewa reproduce sparsity`, docs/sparsity.md)."""
    result = run_digits(DigitsConfig(hidden=(64, 32), epochs=60, controller_ramp=0.5, target_sparsity=0.9))
    assert abs(result.sparsity - 0.9) <= 0.01, result.sparsity
    assert result.pruned_test_accuracy > 0.85
    assert len(result.history) == 60


def test_state_dict_resume_continues_exactly():
    """Save after 3 calls, load into a fresh controller: the next calls match an uninterrupted one."""
    counts = [5, 12, 20, 31, 40, 48]
    model, opt, ctl = setup(total_calls=6, lookahead=1)
    fresh_model, fresh_opt, fresh = setup(total_calls=6, lookahead=1)
    for count in counts[:3]:
        set_zeros(model, count)
        ctl.step()
    fresh.load_state_dict(ctl.state_dict())
    assert fresh_opt.param_groups[0]["weight_decay"] == ctl.weight_decay
    for count in counts[3:]:
        set_zeros(model, count)
        set_zeros(fresh_model, count)
        assert ctl.step() == fresh.step()
    assert fresh.history == ctl.history
    with pytest.raises(ValueError, match="missing"):
        fresh.load_state_dict({"weight_decay": 0.1})
    with pytest.raises(ValueError, match="weight_decay=100.0 must be in"):
        fresh.load_state_dict({**ctl.state_dict(), "weight_decay": 100.0})
