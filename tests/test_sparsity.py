"""Sparsity reports, threshold sweeps, pruning masks and fine-tuning with a fixed mask."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn
from torch.nn.utils import prune as torch_prune

from rewa.optim.rewa import ReWA, SparsityConfigWarning
from rewa.optim.rewa_adamw import ReWAAdamW
from rewa.param_groups import param_groups
from rewa.sparsity import (
    FixedMask,
    SweepResult,
    attach_masks,
    make_masks_permanent,
    prune,
    sparsity_report,
    threshold_sweep,
)


def hand_built() -> nn.Sequential:
    """Linear(4, 3) - LayerNorm(3) - Linear(3, 2) with known values."""
    model = nn.Sequential(nn.Linear(4, 3), nn.LayerNorm(3), nn.Linear(3, 2))
    with torch.no_grad():
        model[0].weight.copy_(
            torch.tensor(
                [
                    [0.0, 1e-4, 0.5, -2.0],
                    [0.0, 0.0, 0.0, 3e-3],
                    [-1e-6, 0.7, 0.0, 0.0],
                ]
            )
        )
        model[0].bias.copy_(torch.tensor([0.0, 0.1, 1e-5]))
        model[2].weight.copy_(torch.tensor([[1.0, 0.0, -1e-3], [0.0, 0.0, 2e-2]]))
        model[2].bias.zero_()
    return model


def random_model(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(10, 20), nn.ReLU(), nn.Linear(20, 5))


def test_report_exact_counts():
    model = hand_built()
    report = sparsity_report(model)
    by_name = {t.name: t for t in report.tensors}
    assert list(by_name) == ["0.weight", "0.bias", "1.weight", "1.bias", "2.weight", "2.bias"]
    assert (by_name["0.weight"].numel, by_name["0.weight"].nonzeros) == (12, 6)
    assert (by_name["2.weight"].numel, by_name["2.weight"].nonzeros) == (6, 3)
    assert report.counted_names == ["0.weight", "2.weight"]
    assert not by_name["1.weight"].counted and not by_name["0.bias"].counted
    assert (report.total, report.nonzeros) == (18, 9)
    assert report.compression == 2.0 and report.sparsity == 0.5

    at = sparsity_report(model, threshold=1e-3)  # 1e-3 itself counts as zero: |w| > t is nonzero
    assert {t.name: t.nonzeros for t in at.tensors if t.counted} == {"0.weight": 4, "2.weight": 2}
    assert at.nonzeros == 6 and at.compression == 3.0


def test_report_switch_counts_bias_and_norm():
    report = sparsity_report(hand_built(), threshold=1e-3, include_bias_and_norm=True)
    # + bias0 (0.1), LayerNorm weight (3 ones), LayerNorm bias (zeros), bias2 (zeros)
    assert (report.total, report.nonzeros) == (18 + 3 + 3 + 3 + 2, 6 + 1 + 3)


def test_report_table_and_records():
    report = sparsity_report(hand_built(), threshold=1e-3)
    text = str(report)
    assert "0.weight" in text and "total (counted)" in text and "3.00x" in text
    records = report.to_records()
    assert len(records) == 6 and records[0]["name"] == "0.weight" and records[0]["nonzeros"] == 4
    assert report.to_dict()["compression"] == 3.0


def test_report_all_zero_has_infinite_compression():
    model = nn.Linear(3, 3)
    with torch.no_grad():
        model.weight.zero_()
    assert sparsity_report(model).compression == float("inf")


@pytest.mark.parametrize(
    "threshold, message", [(-1e-3, "threshold=-0.001 must be >= 0"), (float("nan"), "must be finite")]
)
def test_bad_threshold(threshold, message):
    with pytest.raises(ValueError, match=message):
        sparsity_report(hand_built(), threshold)


def test_model_without_weights():
    with pytest.raises(ValueError, match="no weight tensors"):
        sparsity_report(nn.LayerNorm(4))
    with pytest.raises(ValueError, match="no weight tensors"):
        prune(nn.LayerNorm(4), threshold=0.1)


def test_report_sees_torch_pruned_effective_weight():
    model = random_model()
    torch_prune.l1_unstructured(model[0], "weight", amount=0.3)
    report = sparsity_report(model)
    assert report.counted_names == ["0.weight", "2.weight"]
    assert {t.name: t.nonzeros for t in report.tensors}["0.weight"] == 200 - 60


def test_sweep_leaves_model_untouched_and_counts():
    model = hand_built()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    seen = []

    def evaluate(m):
        seen.append(int((m[0].weight == 0).sum()))
        return torch.tensor(0.5)

    result = threshold_sweep(model, evaluate, [0.0, 1e-3, 0.6])
    assert isinstance(result, SweepResult)
    assert seen == [6, 8, 10]
    assert [p.compression for p in result.points] == [2.0, 3.0, 18 / 3]
    assert [p.metric for p in result.points] == [0.5, 0.5, 0.5]
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]) and v.dtype == before[k].dtype, k


def test_sweep_checks_every_threshold_first():
    calls = []
    with pytest.raises(ValueError, match="threshold=-1 must be >= 0"):
        threshold_sweep(hand_built(), lambda m: calls.append(1) or 1.0, [0.1, -1])
    assert calls == []
    with pytest.raises(TypeError, match="must return a real number"):
        threshold_sweep(hand_built(), lambda m: "high", [0.1])


@pytest.mark.parametrize("amount", [0.3, 0.75])
def test_layer_masks_match_torch_l1_unstructured(amount):
    model = random_model()
    masks = prune(model, sparsity=amount, scope="layer")
    reference = random_model()
    for name in ("0", "2"):
        torch_prune.l1_unstructured(reference.get_submodule(name), "weight", amount=amount)
        expected = reference.get_submodule(name).weight_mask
        assert masks[f"{name}.weight"].dtype == expected.dtype
        assert torch.equal(masks[f"{name}.weight"], expected)


def test_global_masks_match_torch_global_unstructured():
    model = random_model()
    masks = prune(model, sparsity=0.8, scope="global")
    reference = random_model()
    torch_prune.global_unstructured(
        [(reference[0], "weight"), (reference[2], "weight")], pruning_method=torch_prune.L1Unstructured, amount=0.8
    )
    assert torch.equal(masks["0.weight"], reference[0].weight_mask)
    assert torch.equal(masks["2.weight"], reference[2].weight_mask)
    assert int(sum(m.sum() for m in masks.values())) == 300 - 240


def test_prune_by_threshold_and_apply():
    model = hand_built()
    before = model[0].weight.clone()
    masks = prune(model, threshold=1e-3)
    assert torch.equal(model[0].weight, before)  # apply=False: untouched
    assert masks["0.weight"].tolist() == [[0, 0, 1, 1], [0, 0, 0, 1], [0, 1, 0, 0]]
    prune(model, threshold=1e-3, apply=True)
    assert torch.equal(model[0].weight, before * masks["0.weight"])
    assert not torch.signbit(model[0].weight[2, 0])  # pruned to +0.0, not -0.0


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(sparsity=1.0), ValueError, r"sparsity=1.0 must be in \[0, 1\)"),
        (dict(sparsity=-0.1), ValueError, r"sparsity=-0.1 must be in \[0, 1\)"),
        (dict(threshold=-2.0), ValueError, "threshold=-2.0 must be >= 0"),
        (dict(), ValueError, "exactly one of"),
        (dict(threshold=0.1, sparsity=0.5), ValueError, "exactly one of"),
        (dict(sparsity=0.5, scope="net"), ValueError, "scope='net'"),
    ],
)
def test_prune_bad_input(kwargs, error, message):
    model = hand_built()
    before = model[0].weight.clone()
    with pytest.raises(error, match=message):
        prune(model, apply=True, **kwargs)
    assert torch.equal(model[0].weight, before)


def test_attach_and_make_permanent_like_torch():
    model, reference = random_model(), random_model()
    attach_masks(model, prune(model, sparsity=0.5, scope="layer"))
    for name in ("0", "2"):
        torch_prune.l1_unstructured(reference.get_submodule(name), "weight", amount=0.5)
    x = torch.randn(4, 10)
    assert torch.equal(model(x), reference(x))
    make_masks_permanent(model)
    for name in ("0", "2"):
        torch_prune.remove(reference.get_submodule(name), "weight")
    assert sorted(n for n, _ in model.named_parameters()) == ["0.bias", "0.weight", "2.bias", "2.weight"]
    assert torch.equal(model[0].weight, reference[0].weight)


def _make(kind, model):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SparsityConfigWarning)
        if kind == "rewa":  # M = 0, eps = 0: the scale at y = 0 is 1, so zeros would move
            return ReWA(param_groups(model), lr=0.05, K=3, M=0, weight_decay=1e-3, momentum=0.9)
        if kind == "rewa_adamw":
            return ReWAAdamW(param_groups(model), lr=1e-2, K=9, M=2, weight_decay=1e-2)
        if kind == "sgd":
            return torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-3)
        return torch.optim.AdamW(model.parameters(), lr=1e-2)


@pytest.mark.parametrize("kind", ["rewa", "rewa_adamw", "sgd", "adamw"])
def test_fixed_mask_keeps_pruned_weights_at_zero(kind):
    model = random_model()
    X, Y = torch.randn(32, 10), torch.randn(32, 5)
    opt = _make(kind, model)

    def train(steps):
        for _ in range(steps):
            opt.zero_grad()
            nn.functional.mse_loss(model(X), Y).backward()
            opt.step()

    train(5)  # momentum / Adam moments built up before pruning
    masks = prune(model, sparsity=0.7, apply=True)
    kept_before = {n: model.get_submodule(n[0]).weight.detach().clone() for n in masks}
    fixed = FixedMask(model, masks).attach(opt)
    for _ in range(10):
        train(1)
        for name, mask in masks.items():
            p = model.get_submodule(name[0]).weight
            assert torch.all(p[mask == 0] == 0), name
            assert torch.all(p.grad[mask == 0] == 0), name
            if kind.startswith("rewa"):
                assert torch.all(opt.state[p]["y"][mask == 0] == 0), name
    for name, mask in masks.items():
        p = model.get_submodule(name[0]).weight
        assert not torch.equal(p[mask == 1], kept_before[name][mask == 1])  # the rest trains
    fixed.remove()
    train(1)  # hooks gone: pruned weights may move again (not under ReWA with M > 0: y = 0 is fixed)
    moved = not torch.all(model[0].weight[masks["0.weight"] == 0] == 0)
    assert moved == (kind != "rewa_adamw")


def test_without_fixed_mask_rewa_resurrects_pruned_weights():
    """Why FixedMask exists: with M = 0, eps = 0 a weight set to zero moves on the next step."""
    model = random_model()
    opt = _make("rewa", model)
    masks = prune(model, sparsity=0.7, apply=True)
    opt.zero_grad()
    nn.functional.mse_loss(model(torch.randn(32, 10)), torch.randn(32, 5)).backward()
    opt.step()
    assert not torch.all(model[0].weight[masks["0.weight"] == 0] == 0)


def test_fixed_mask_bad_names():
    with pytest.raises(KeyError, match="tensors the model does not have"):
        FixedMask(random_model(), {"9.weight": torch.ones(2, 2)})
    with pytest.raises(ValueError, match="has shape"):
        FixedMask(random_model(), {"0.weight": torch.ones(2, 2)})


def test_plot_accuracy_vs_compression():
    from rewa.plotting.sparsity import plot_accuracy_vs_compression

    sweep = threshold_sweep(hand_built(), lambda m: 1.0, [0.0, 1e-3, 0.6, 10.0])
    fig = plot_accuracy_vs_compression({"hand": sweep}, title="t")
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    assert list(ax.lines[0].get_xdata()) == [2.0, 3.0, 6.0]  # the all-pruned point (inf) is left out
