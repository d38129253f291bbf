"""Options the networks benchmark applies to every method alike: where normalization parameters
go, LAMP scores, batch-norm statistics re-estimated after pruning, the small BN ResNet."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import rewa
from rewa.experiments.models import make_model
from rewa.param_groups import split_parameters
from rewa.sparsity import lamp_scores, prune, recalibrate_batchnorm, sparsity_report


def _bn_net():
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2), nn.LayerNorm(2))


# -- norm="dense" | "sparsify" -----------------------------------------------------------------


def test_norm_sparsify_puts_norm_scales_and_shifts_in_the_sparsified_group():
    net = _bn_net()
    sparse, dense = split_parameters(net, norm="sparsify")
    assert [n for n, _ in sparse] == ["0.weight", "1.weight", "1.bias", "3.weight", "4.weight", "4.bias"]
    assert [n for n, _ in dense] == ["0.bias", "3.bias"]
    assert [n for n, _ in split_parameters(net)[0]] == ["0.weight", "3.weight"]  # default unchanged
    groups = rewa.param_groups(net, norm="sparsify", sparse={"weight_decay": 0.1})
    assert [len(g["params"]) for g in groups] == [6, 2] and groups[0]["weight_decay"] == 0.1


def test_norm_sparsify_does_not_change_what_counts_as_weights():
    net = _bn_net()
    assert [t.name for t in sparsity_report(net).tensors if t.counted] == ["0.weight", "3.weight"]


@pytest.mark.parametrize("method", ["rewa", "l1-prox", "sgd", "pwd-sgd", "rewa-adamw"])
def test_create_optimizer_norm_sparsify_decays_the_norm_parameters(method):
    net = _bn_net()
    hp = {"rewa": dict(weight_decay=0.1), "l1-prox": dict(strength=0.1), "sgd": dict(weight_decay=0.1)}
    hp.update({"pwd-sgd": dict(lambda_p=0.1), "rewa-adamw": dict(weight_decay=0.1)})
    opt = rewa.create_optimizer(method, net, lr=0.1, norm="sparsify", **hp[method])
    norm_ids = {id(p) for p in list(net[1].parameters()) + list(net[4].parameters())}
    first = {id(p) for p in opt.param_groups[0]["params"]}
    assert norm_ids <= first
    key = next(iter(hp[method]))
    assert opt.param_groups[0][key] == 0.1 and opt.param_groups[1][key] == 0.0
    if method == "rewa":
        assert opt.param_groups[0]["K"] == 9 and opt.param_groups[1]["K"] == 1


def test_norm_option_errors():
    with pytest.raises(ValueError, match="norm='all' must be one of 'dense', 'sparsify'"):
        rewa.param_groups(_bn_net(), norm="all")
    with pytest.raises(ValueError, match="norm='sparsify' with method 'hadamard'"):
        rewa.create_optimizer("hadamard", _bn_net(), lr=0.1, norm="sparsify")
    with pytest.raises(ValueError, match="needs the nn.Module"):
        rewa.create_optimizer("rewa", _bn_net().parameters(), lr=0.1, norm="sparsify")


def test_train_config_norm_reaches_the_optimizer():
    from rewa.experiments.train import TrainConfig, train

    common = dict(
        dataset="digits", model="cnn-bn", method="sgd", lr=0.05, weight_decay=0.5, epochs=1, max_steps_per_epoch=3
    )
    common.update(out="", progress=False, figures=False, device="cpu")
    scales = {
        norm: train(TrainConfig(norm=norm, **common)).model[1].weight.detach().clone() for norm in ("dense", "sparsify")
    }
    # the same run, but the batch-norm scales decayed (coupled l2 of 0.5 over three steps)
    assert scales["sparsify"].mean() < scales["dense"].mean() - 0.03
    with pytest.raises(ValueError, match="norm='x' must be one of"):
        TrainConfig(norm="x")


# -- LAMP -----------------------------------------------------------------------------------------


def _two_layers(a, b):
    net = nn.Sequential(nn.Linear(3, 1, bias=False), nn.Linear(2, 1, bias=False))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([a]))
        net[1].weight.copy_(torch.tensor([b]))
    return net


def test_lamp_scores_by_hand():
    # squares 1, 4, 9: tails 14, 13, 9 -> 1/14, 4/13, 1; order kept for unsorted input
    got = lamp_scores(torch.tensor([3.0, -1.0, 2.0]))
    torch.testing.assert_close(got, torch.tensor([1.0, 1 / 14, 4 / 13], dtype=torch.float64))
    torch.testing.assert_close(lamp_scores(torch.zeros(2)), torch.zeros(2, dtype=torch.float64))


def test_prune_lamp_differs_from_global_magnitude_as_computed_by_hand():
    net = _two_layers([1.0, 2.0, 3.0], [4.0, 40.0])
    # magnitude: the two smallest |w| overall are 1 and 2 (both in the first layer)
    magnitude = prune(net, sparsity=0.4)
    assert magnitude["0.weight"].tolist() == [[0.0, 0.0, 1.0]] and magnitude["1.weight"].tolist() == [[1.0, 1.0]]
    # LAMP: first layer 1/14, 4/13, 1; second 16/1616, 1 -> prune 4 (0.0099) and 1 (0.071)
    lamp = prune(net, sparsity=0.4, score="lamp")
    assert lamp["0.weight"].tolist() == [[0.0, 1.0, 1.0]] and lamp["1.weight"].tolist() == [[0.0, 1.0]]
    # per layer, LAMP orders as |w| does
    assert all(
        torch.equal(a, b)
        for a, b in zip(
            prune(net, sparsity=0.5, scope="layer", score="lamp").values(),
            prune(net, sparsity=0.5, scope="layer").values(),
        )
    )


def test_prune_lamp_errors():
    net = _two_layers([1.0, 2.0, 3.0], [4.0, 40.0])
    with pytest.raises(ValueError, match="score='l2' must be 'magnitude' or 'lamp'"):
        prune(net, sparsity=0.5, score="l2")
    with pytest.raises(ValueError, match="score='lamp' ranks weights for sparsity="):
        prune(net, threshold=0.1, score="lamp")


# -- batch-norm statistics -------------------------------------------------------------------


def test_recalibrate_batchnorm_recomputes_the_running_statistics_and_restores_modes():
    torch.manual_seed(0)
    net = _bn_net().eval()
    bn = net[1]
    bn.momentum = 0.3
    net[3].train()  # a module left in train mode stays so
    batches = [torch.randn(8, 3) * 2 + 1 for _ in range(3)]
    weights_before = [p.detach().clone() for p in net.parameters()]
    assert recalibrate_batchnorm(net, [(x, torch.zeros(8)) for x in batches]) is net
    with torch.no_grad():
        h = torch.cat([net[0](x) for x in batches])
    torch.testing.assert_close(bn.running_mean, h.mean(0))
    # the average of the per-batch unbiased variances (momentum None: the plain mean)
    torch.testing.assert_close(bn.running_var, torch.stack([net[0](x).var(0) for x in batches]).mean(0).detach())
    assert bn.momentum == 0.3 and not net.training and not bn.training and net[3].training
    assert all(torch.equal(a, b) for a, b in zip(weights_before, net.parameters()))


def test_recalibrate_batchnorm_empty_batches_is_an_error_and_keeps_the_statistics():
    net = _bn_net()
    net[1].running_mean.fill_(3.0)
    with pytest.raises(ValueError, match="batches is empty"):
        recalibrate_batchnorm(net, [])
    assert torch.all(net[1].running_mean == 3.0)


def test_recalibrate_batchnorm_fixes_a_pruned_networks_statistics():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(10, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 2))
    x = torch.randn(256, 10)
    net.train()
    for _ in range(20):
        net(x)
    net.eval()
    prune(net, sparsity=0.9, apply=True)
    with torch.no_grad():
        h = net[0](x)
    stale = (net[1].running_mean - h.mean(0)).abs().max()
    recalibrate_batchnorm(net, x.split(64))
    assert (net[1].running_mean - h.mean(0)).abs().max() < 1e-5 < stale


# -- the small ResNet ------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 40)])
def test_resnet_small_has_batch_norm_and_basic_blocks(shape):
    model = make_model("resnet-small", shape, 10)
    assert model(torch.randn(4, *shape)).shape == (4, 10)
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert [m.num_features for m in norms] == [16, 16, 16, 32, 32, 32, 64, 64, 64]
    convs = [m for m in model.modules() if isinstance(m, (nn.Conv1d, nn.Conv2d))]
    assert all(m.bias is None for m in convs) and len(convs) == 9
    assert isinstance(convs[0], nn.Conv1d if len(shape) == 2 else nn.Conv2d)
    with pytest.raises(ValueError, match="'resnet-small' needs inputs"):
        make_model("resnet-small", (40,), 10)
