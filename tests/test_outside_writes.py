"""Writes to weights and optimizer state from outside the optimizer: what a checked step sees.

Rebinding a tensor's storage (``t.data = other``) does not move torch's version counter; the
optimizer notices it by the storage. Writes in place through ``.data`` / ``.numpy()`` change
neither (the documented limit); the step after the one they spoil says what happened.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import rewa


def _trained(path):
    """``path``: False (the loop), True (foreach) or "fused" (the one-kernel step and its plan)."""
    torch.manual_seed(0)
    model = nn.Linear(4, 3)
    paths = {"fused": dict(fused=True)}.get(path, dict(foreach=path))
    opt = rewa.ReWA(rewa.param_groups(model), lr=0.05, K=9, M=2, weight_decay=0.01, **paths)
    x = torch.randn(8, 4)
    for _ in range(3):
        _backward(model, opt, x)
        opt.step()
    if path == "fused":
        assert "_one_kernel_plan" in opt.__dict__  # the steady state: the plan repeats the step
    return model, opt, x


def _backward(model, opt, x):
    opt.zero_grad()
    model(x).square().mean().backward()


@pytest.mark.parametrize("foreach", [False, True, pytest.param("fused", marks=pytest.mark.slow)])
def test_a_latent_rebound_through_data_is_measured_and_the_overflowing_step_refused(foreach):
    model, opt, x = _trained(foreach)
    y = opt.state[model.weight]["y"]
    version = y._version
    y.data = torch.full_like(y, 1e10)  # |y|^9 overflows float32
    assert y._version == version  # torch's version counter does not see it
    _backward(model, opt, x)
    before = model.weight.detach().clone()
    with pytest.raises(FloatingPointError, match="would make the weights of parameter 0 of param group 0"):
        opt.step()
    assert torch.equal(model.weight, before)


@pytest.mark.parametrize("foreach", [False, True, pytest.param("fused", marks=pytest.mark.slow)])
def test_weights_rebound_through_data_are_taken_in(foreach):
    model, opt, x = _trained(foreach)
    opt.param_groups[0]["weight_decay"] = 0.0
    opt.param_groups[0]["lr"] = 1e-3
    new = torch.full_like(model.weight, 0.5)
    model.weight.data = new.clone()  # e.g. weights loaded or pruned by another library
    _backward(model, opt, x)
    opt.step()
    assert float((model.weight.detach() - new).abs().max()) < 0.01  # a small step from the new weights


def test_an_in_place_write_through_data_is_the_documented_limit_and_the_next_step_names_it():
    model, opt, x = _trained(False)
    opt.state[model.weight]["y"].data.fill_(1e10)  # neither version nor storage moves
    _backward(model, opt, x)
    opt.step()  # the bounds carried from the last step still look valid
    assert not bool(model.weight.isfinite().all())
    _backward(model, opt, x)
    with pytest.raises(FloatingPointError, match=r"weights of parameter 0 of param group 0 .* already nan or inf"):
        opt.step()
