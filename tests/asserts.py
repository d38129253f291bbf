"""Assertions shared by the test modules."""

from __future__ import annotations

import torch


def assert_optimizer_state_unchanged(opt: torch.optim.Optimizer, before: dict, *, version_may_change: bool = False):
    """Every entry of ``opt.state`` equals ``before`` (``id(param) -> copy of its state``).

    The parameter version counter (``param_version``) is bookkeeping, never compared by value;
    with ``version_may_change`` it may also appear or disappear. Of the carried bounds
    (``update_bounds``) the bounds are compared.
    """
    ignored = {"param_version"} if version_may_change else set()
    assert set(before) == {id(p) for p in opt.state}
    for p, s in opt.state.items():
        old = before[id(p)]
        assert set(s) - ignored == set(old) - ignored
        for key, value in s.items():
            if key == "param_version":
                continue
            if key == "update_bounds":  # the carried bounds; what they describe holds tensors
                assert (value.bounds, value.K) == (old[key].bounds, old[key].K)
            elif isinstance(value, torch.Tensor):
                assert torch.equal(value, old[key]), key
            else:
                assert value == old[key], key
