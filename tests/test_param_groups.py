from __future__ import annotations

import pytest
import torch
from torch import nn

import rewa
from rewa.param_groups import split_parameters


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(10, 4)
        self.conv = nn.Conv1d(4, 6, 3)
        self.bn = nn.BatchNorm1d(6)
        self.head = nn.Linear(6, 10)
        self.norm = nn.LayerNorm(10)
        self.tied = nn.Linear(4, 10, bias=False)
        self.tied.weight = self.embed.weight  # shared: listed once
        self.scale = nn.Parameter(torch.ones(1))
        self.frozen = nn.Linear(2, 2)
        self.frozen.requires_grad_(False)


def test_split_parameters_default():
    sparse, dense = split_parameters(Net())
    assert [n for n, _ in sparse] == ["embed.weight", "conv.weight", "head.weight"]
    assert [n for n, _ in dense] == [
        "scale",
        "conv.bias",
        "bn.weight",
        "bn.bias",
        "head.bias",
        "norm.weight",
        "norm.bias",
    ]


def test_include_bias_and_norm_sparsifies_everything_trainable():
    sparse, dense = split_parameters(Net(), include_bias_and_norm=True)
    assert dense == [] and len(sparse) == 10


def test_param_groups_hyperparameters_and_empty_groups():
    net = Net()
    groups = rewa.param_groups(net, sparse={"weight_decay": 1e-4}, dense={"weight_decay": 1e-5})
    assert groups[0]["weight_decay"] == 1e-4 and "K" not in groups[0]
    assert groups[1] == {"params": groups[1]["params"], "K": 1, "M": 0, "eps": 0.0, "weight_decay": 1e-5}
    assert len(rewa.param_groups(nn.Linear(3, 3, bias=False))) == 1
    opt = rewa.ReWA(groups, lr=0.1)
    assert opt.param_groups[0]["K"] == 9 and opt.param_groups[1]["K"] == 1


def test_model_without_trainable_parameters_is_an_error():
    with pytest.raises(ValueError, match="ReLU has no trainable parameters"):
        rewa.param_groups(nn.ReLU())
