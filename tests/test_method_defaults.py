"""Every sparsifying method's defaults in `rewa train` give a sparse network on digits (MLP, 30
epochs): at least 10x compression at |w| <= 1e-2 with the pruned network's test accuracy within
2 points of dense SGD's. The defaults were chosen on the validation split (rewa/training/config.py)."""

import pytest
import torch

from rewa.experiments.train import TrainConfig, train
from rewa.optim.registry import method_names

pytest.importorskip("sklearn")

THRESHOLD = 1e-2
SPARSE = ("rewa", "rewa-adamw", "pwd-sgd", "pwd-adamw", "l1-prox", "l1-subgradient", "lp-clipped", "hadamard-signed")
# methods whose defaults are not held to the bar, and why
NOT_HELD = {
    "sgd": "the dense reference",
    "adamw": "dense",
    "powerprop": "no regularizer: its sparsity needs pruning",
    "hadamard": "no point of its grid reached 10x within 2 validation points (chosen: 4x)",
    "spred": "no point of its grid reached 10x within 2 validation points (chosen: 6x)",
    "lp-subgradient": "its unbounded gradient near 0 keeps weights oscillating (chosen: 4x)",
}
FAST = ("l1-prox", "pwd-sgd")  # the two whose defaults left 0.04% and 13% zeros before


def _run(method):
    torch.set_num_threads(1)
    return train(TrainConfig(method=method, epochs=30, out="", progress=False, figures=False, device="cpu"))


@pytest.fixture(scope="module")
def dense_sgd_accuracy():
    return _run("sgd").summary["test_accuracy"]


def test_every_method_is_held_to_the_bar_or_says_why_not():
    assert set(SPARSE) | set(NOT_HELD) == set(method_names()) and not set(SPARSE) & set(NOT_HELD)


@pytest.mark.parametrize("method", [m if m in FAST else pytest.param(m, marks=pytest.mark.slow) for m in SPARSE])
def test_defaults_give_a_sparse_network_on_digits(method, dense_sgd_accuracy):
    result = _run(method)
    (row,) = [r for r in result.sweep if r["threshold"] == THRESHOLD]
    assert row["compression"] >= 10, row
    # (1e-9: rewa-adamw sits on the bar at seed 0, 434 against 443 of 450 test images)
    assert row["test_accuracy"] >= dense_sgd_accuracy - 0.02 - 1e-9, (row, dense_sgd_accuracy)
