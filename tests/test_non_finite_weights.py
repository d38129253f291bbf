"""Non-finite weights have no sparsity: measuring them is refused, naming the tensor."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from rewa.controller import TargetSparsityController
from rewa.optim.rewa import ReWA
from rewa.param_groups import param_groups
from rewa.sparsity import sparsity_report, threshold_sweep


def _model(bad: float | None, where: str = "1.weight", count: int = 2) -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 2))
    if bad is not None:
        with torch.no_grad():
            model.get_parameter(where).view(-1)[:count] = bad
    return model


@pytest.mark.parametrize(("bad", "counts"), [(math.nan, "2 nan and 0 inf"), (math.inf, "0 nan and 2 inf")])
def test_sparsity_report_refuses_non_finite_weights_naming_the_tensor(bad, counts):
    with pytest.raises(ValueError, match=rf"tensor '2.weight' \(shape \(2, 6\)\) has {counts} entries"):
        sparsity_report(_model(bad, "2.weight"))
    with pytest.raises(ValueError, match=r"tensor '0.bias' \(shape \(6,\)\) has"):
        sparsity_report(_model(bad, "0.bias"))  # listed, not counted: still refused
    mixed = _model(math.nan, "0.weight", count=3)
    with torch.no_grad():
        mixed[0].weight[-1, -1] = -math.inf
    with pytest.raises(ValueError, match="tensor '0.weight' .* has 3 nan and 1 inf entries"):
        sparsity_report(mixed)
    assert sparsity_report(_model(None)).compression == 1.0


def test_threshold_sweep_refuses_nan_weights_that_thresholding_would_zero():
    x = torch.ones(1, 4)
    with pytest.raises(ValueError, match="tensor '0.weight' .* has 2 nan and 0 inf entries"):
        threshold_sweep(_model(math.nan, "0.weight"), lambda m: float(m(x).sum()), [0.0, 0.1])
    result = threshold_sweep(_model(None), lambda m: float(m(x).sum()), [0.0, 0.1])
    assert len(result.points) == 2


def test_the_controller_refuses_non_finite_weights_naming_the_tensor():
    model = _model(None)
    opt = ReWA(param_groups(model), lr=0.05, K=3, M=1.5, weight_decay=1e-3)
    ctl = TargetSparsityController(opt, model, target_sparsity=0.5, threshold=1e-3, total_calls=4)
    ctl.step()
    with torch.no_grad():
        model[2].weight[0, 0] = math.nan
    with pytest.raises(ValueError, match="tensor '2.weight' .* has 1 nan and 0 inf entries"):
        ctl.step()
