"""A parameter listed twice is refused by every optimizer of the table (torch only warns)."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from rewa.optim.registry import create_optimizer, list_methods

from .methods_table import ALL_CASES

_REPARAMETERIZING = {m.name for m in list_methods() if m.reparameterizes}


def _build(case, groups):
    if case.method is not None:
        return create_optimizer(case.method, groups, **case.kwargs)
    return case.cls(groups, **case.kwargs)


def _tensors():
    torch.manual_seed(0)
    return [nn.Parameter(torch.randn(3, 2)), nn.Parameter(torch.randn(4)), nn.Parameter(torch.randn(2, 2))]


@pytest.mark.parametrize("case", ALL_CASES, ids=repr)
def test_a_parameter_listed_twice_in_a_group_is_refused(case):
    a, b, c = _tensors()
    if case.method in _REPARAMETERIZING:
        # these build their groups from the module: a module used twice gives each factor once
        layer = nn.Linear(3, 3)
        model = nn.Sequential(layer, nn.ReLU(), layer)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            opt = create_optimizer(case.method, model, **case.kwargs)
        for group in opt.param_groups:
            assert len({id(p) for p in group["params"]}) == len(group["params"])
        return
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # refused, not warned about
        with pytest.raises(
            ValueError, match=r"param group 1 lists the same parameter \(shape \(3, 2\)\) at positions 0 and 2"
        ):
            _build(case, [{"params": [c]}, {"params": [a, b, a]}])
    with pytest.raises(ValueError, match="some parameters appear in more than one parameter group"):
        _build(case, [{"params": [a, b]}, {"params": [c, a]}])
    opt = _build(case, [{"params": [a, b]}])
    if type(opt).__module__.startswith("torch."):
        return  # torch's own add_param_group only warns (create_optimizer refused the group above)
    with pytest.raises(
        ValueError, match=r"param group 1 lists the same parameter \(shape \(2, 2\)\) at positions 0 and 1"
    ):
        opt.add_param_group({"params": [c, c]})
    assert len(opt.param_groups) == 1  # the refused group is not kept
