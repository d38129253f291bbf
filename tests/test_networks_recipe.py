"""ReWA's recommended recipe on networks: gradient clipping, defaults, preset, benchmark."""

import importlib.util
import math
import sys
from pathlib import Path

import pytest
import torch

from rewa.experiments.presets import preset
from rewa.experiments.train import (
    METHOD_DEFAULTS,
    TrainConfig,
    decay_budget,
    grad_clip_norm,
    lr_sum,
    resolve_config,
    train,
)
from rewa.param_groups import split_parameters
from rewa.recipe import MAX_WEIGHT_DECAY, WEIGHT_DECAY

pytest.importorskip("sklearn")

BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "networks.py"


def _run(**fields):
    return train(TrainConfig(dataset="digits", out="", progress=False, figures=False, device="cpu", **fields))


@pytest.mark.parametrize("seed", [1, 2])
def test_rewa_trains_at_the_recipe_learning_rate_without_diverging(seed):
    # Without clipping, ReWA (K=9, M=2, momentum 0.9) at lr 0.2 on the digits MLP produced a
    # non-finite gradient within 4 epochs for seeds 1 and 2 (check_finite raised
    # FloatingPointError); the recipe's default gradient-norm clip keeps every seed finite.
    torch.set_num_threads(1)
    result = _run(method="rewa", lr=0.2, weight_decay=1e-2, epochs=4, seed=seed)
    assert all(torch.isfinite(p).all() for p in result.model.parameters())
    losses = [m["loss"] for m in result.metrics]
    assert losses[-1] < 0.5 * losses[0], losses
    assert result.summary["grad_clip_norm"] == 1.0


def test_rewa_defaults_are_the_recipe():
    assert grad_clip_norm(TrainConfig(method="rewa")) == 1.0
    assert decay_budget(TrainConfig(method="rewa")) is None  # lambda is fixed: the same objective at any length
    assert METHOD_DEFAULTS["rewa"]["weight_decay"] == WEIGHT_DECAY
    recipe = preset("rewa-recipe")
    for key in ("lr", "momentum", "K", "M", "eps"):
        assert METHOD_DEFAULTS["rewa"][key] == recipe[key], key
    c = resolve_config("rewa-recipe", epochs=2)
    assert (c.method, c.lr, c.grad_clip_norm, c.decay_budget, c.K, c.M, c.eps) == ("rewa", 0.2, 1.0, None, 9, 2, 0.0)
    assert c.weight_decay == WEIGHT_DECAY


def _tiny(n=64):
    x = torch.randn(n, 5, generator=torch.Generator().manual_seed(0))
    return torch.utils.data.TensorDataset(x, (x[:, 0] > 0).long())


def test_decay_budget_sets_the_weight_decay_from_the_sum_of_learning_rates():
    common = dict(
        method="rewa", epochs=3, batch_size=16, val_fraction=0.0, out="", progress=False, figures=False, device="cpu"
    )
    result = train(TrainConfig(**common, decay_budget=0.5), train_data=_tiny())
    steps = 4
    # cosine set per epoch over 3 epochs: factors 1, 0.75, 0.25 -> sum 2 -> lr_sum = 0.2 * 4 * 2 = 1.6
    assert lr_sum(TrainConfig(**common), 0.2, steps) == pytest.approx(1.6)
    # 0.5 / 1.6 = 0.31 is over the cap: a run this short keeps the cap's regularization strength
    assert [m["weight_decay"] for m in result.metrics] == [MAX_WEIGHT_DECAY] * 3
    assert result.summary["decay_budget"] == 0.5
    small = train(TrainConfig(**common, decay_budget=0.008), train_data=_tiny())
    assert [m["weight_decay"] for m in small.metrics] == [pytest.approx(0.008 / 1.6)] * 3
    explicit = train(TrainConfig(weight_decay=1e-3, **common), train_data=_tiny())
    assert [m["weight_decay"] for m in explicit.metrics] == [1e-3] * 3
    assert explicit.summary["decay_budget"] is None
    default = train(TrainConfig(**common), train_data=_tiny())  # no budget: the recipe's fixed lambda
    assert [m["weight_decay"] for m in default.metrics] == [WEIGHT_DECAY] * 3
    assert default.summary["decay_budget"] is None
    other = train(TrainConfig(**{**common, "method": "sgd"}, decay_budget=0.002), train_data=_tiny())
    assert other.metrics[0]["weight_decay"] == pytest.approx(0.002 / lr_sum(TrainConfig(**common), 0.05, steps))


@pytest.mark.parametrize(
    "fields, message",
    [
        (dict(decay_budget=-1.0), r"decay_budget=-1.0 must be a finite number >= 0"),
        (dict(decay_budget=math.inf), r"decay_budget=inf must be a finite number >= 0"),
        (dict(decay_budget=0.5, weight_decay=1e-3), r"give only one"),
        (dict(decay_budget=0.5, target_sparsity=0.9), r"target_sparsity sets the weight decay"),
        (dict(decay_budget=0.5, schedule=("weight_decay=0:0,1:1e-3",)), r"drop weight_decay from schedule"),
    ],
)
def test_decay_budget_rejects_bad_combinations(fields, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(method="rewa", **fields)


def test_benchmark_budget_uses_the_sum_of_the_learning_rates_its_loop_applies():
    module = _benchmark()
    setting = module.Setting("digits-mlp", max_steps=5)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.2)
    applied = []
    opt.register_step_post_hook(lambda o, args, kwargs: applied.append(o.param_groups[0]["lr"]))
    assert module.train_steps(model, opt, setting, 7, seed=0)
    _, hp, _ = module.hyperparameters("rewa A (K9 M2)", {"lr": 0.2, "budget:weight_decay": 0.5}, 7)
    assert len(applied) == 7 and hp["weight_decay"] == pytest.approx(0.5 / sum(applied), rel=1e-12)


@pytest.mark.parametrize("method", ["sgd", "adamw", "l1-prox", "rewa-adamw"])
def test_other_methods_do_not_clip_by_default(method):
    assert grad_clip_norm(TrainConfig(method=method)) == 0.0


@pytest.mark.parametrize("bad", [-1.0, math.nan, math.inf, "1"])
def test_grad_clip_norm_rejects_bad_values(bad):
    with pytest.raises(ValueError, match=r"grad_clip_norm=.* must be a finite number >= 0"):
        TrainConfig(grad_clip_norm=bad)


def test_grad_clip_norm_is_applied_every_step_and_zero_turns_it_off(monkeypatch):
    calls = []
    original = torch.nn.utils.clip_grad_norm_

    def spy(parameters, max_norm, *args, **kwargs):
        calls.append(max_norm)
        return original(parameters, max_norm, *args, **kwargs)

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", spy)
    x = torch.randn(64, 5)
    data = torch.utils.data.TensorDataset(x, (x[:, 0] > 0).long())
    config = dict(
        method="sgd", epochs=2, batch_size=16, val_fraction=0.0, out="", progress=False, figures=False, device="cpu"
    )
    train(TrainConfig(grad_clip_norm=0.25, **config), train_data=data, test_data=data)
    assert calls == [0.25] * 8  # 2 epochs of 4 steps
    calls.clear()
    train(TrainConfig(grad_clip_norm=0, **config), train_data=data, test_data=data)
    assert calls == []


def test_clipping_bounds_the_first_step():
    # Plain SGD with lr 1 and one step: the parameters move by exactly the (clipped) gradient.
    x = torch.randn(32, 4, generator=torch.Generator().manual_seed(0)) * 100
    data = torch.utils.data.TensorDataset(x, (x[:, 0] > 0).long())
    common = dict(
        method="sgd",
        momentum=0.0,
        weight_decay=0.0,
        epochs=1,
        batch_size=32,
        val_fraction=0.0,
        max_steps_per_epoch=1,
        lr_schedule="constant",
        seed=3,
        out="",
        progress=False,
        figures=False,
        device="cpu",
    )
    start = train(TrainConfig(lr=0.0, **common), train_data=data).model
    unclipped = train(TrainConfig(lr=1.0, grad_clip_norm=0, **common), train_data=data).model
    clipped = train(TrainConfig(lr=1.0, grad_clip_norm=0.5, **common), train_data=data).model

    @torch.no_grad()
    def moved(model):
        return float(torch.sqrt(sum(((p - q) ** 2).sum() for p, q in zip(model.parameters(), start.parameters()))))

    assert moved(unclipped) > 0.6
    assert moved(clipped) == pytest.approx(0.5, rel=1e-4)


def _load(file_name: str):
    """A script of benchmarks/ as a module, loaded once."""
    pytest.importorskip("optuna")  # networks.py's search (the `bench` extra)
    name = file_name.removesuffix(".py") + "_benchmark"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, BENCHMARK.with_name(file_name))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def _benchmark():
    return _load("networks.py")


def test_networks_benchmark_smoke(tmp_path):
    module = _benchmark()
    assert module.main(["--scale", "smoke", "--out", str(tmp_path), "--no-figures"]) == 0
    text = (tmp_path / "table.md").read_text()
    for name in ("| sgd |", "| rewa A (K9 M2) |", "| l1-prox |", "**lamp + fine-tune**", "**magnitude**"):
        assert name in text
    results = __import__("json").loads((tmp_path / "results.json").read_text())
    methods = results["settings"]["digits-mlp"]["methods"]
    # the same number of trials for every method; the rerun of each chosen trial has every seed
    assert {len(m["trials"]) for m in methods.values()} == {2}
    assert all(len(runs) == 2 for m in methods.values() for runs in m["reruns"].values())
    assert set(methods["sgd"]["summary"]) >= {"dense", "lamp/100", "magnitude+ft/300"}


def test_networks_benchmark_search_spaces_include_the_learning_rate():
    module = _benchmark()
    for name, (_, _, space) in module.METHODS.items():
        assert "lr" in space and space["lr"][0] == "log", name
    assert module.METHODS["rewa A+ (K9 M 2-4)"][2]["M"] == ("uniform", 2.0, 4.0)
    method, hp, norm = module.hyperparameters("l1-prox", {"lr": 0.1, "budget:strength": 0.5}, 4)
    # budget / sum of the cosine lr over 4 steps: 0.1 * (1 + 0.854 + 0.5 + 0.146) = 0.25
    assert method == "l1-prox" and hp["strength"] == pytest.approx(2.0) and norm == "dense"


@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 40)])
def test_cnn_bn_is_the_cnn_with_batch_norm_kept_dense(shape):
    from rewa.experiments.models import make_model

    plain, bn = make_model("cnn", shape, 10), make_model("cnn-bn", shape, 10)
    norms = [m for m in bn.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert [m.num_features for m in norms] == [32, 64]
    sparse, dense = split_parameters(bn)
    assert [p.shape for _, p in sparse] == [p.shape for _, p in split_parameters(plain)[0]]
    norm_params = {id(p) for m in norms for p in m.parameters()}
    assert norm_params <= {id(p) for _, p in dense}
    assert bn(torch.randn(4, *shape)).shape == (4, 10)


def test_networks_benchmark_runs_a_batch_norm_resnet_setting(tmp_path):
    module = _benchmark()
    args = ["--scale", "smoke", "--settings", "digits-resnet", "--methods", "rewa A (K9 M2)", "--trials", "1"]
    assert module.main([*args, "--seeds", "1", "--out", str(tmp_path), "--no-figures"]) == 0
    assert "### digits-resnet" in (tmp_path / "table.md").read_text()
    results = __import__("json").loads((tmp_path / "results.json").read_text())
    trial = results["settings"]["digits-resnet"]["methods"]["rewa A (K9 M2)"]["trials"][0]
    assert trial["params"]["norm"] in ("dense", "sparsify")  # searched on batch-norm networks
    assert "no_recal" in trial["result"]["lamp/10"]  # the accuracy before re-estimating BN statistics


def test_recipe_check_chooses_on_validation_and_keeps_the_decay_per_step(tmp_path):
    module = _load("recipe_check.py")
    assert module.main(["--smoke", "--seeds", "2", "--out", str(tmp_path)]) == 0
    record = __import__("json").loads((tmp_path / "results.json").read_text())
    scores = record["scores"]
    assert record["chosen"] == max(scores, key=scores.get)
    # a fixed candidate's decay does not depend on the run's length; the recipe's capped budget does
    digits = module.networks.Setting("digits-mlp", 0)
    fixed = "A lr 0.25, wd 0.01"
    assert (
        module.trial_params(fixed, digits, 2)["weight_decay"] == module.trial_params(fixed, digits, 60)["weight_decay"]
    )
    short, long = (module.trial_params(module.TODAY, digits, e)["weight_decay"] for e in (2, 60))
    assert short == 0.01 and long < 0.01
    # batch-norm networks train with their norm parameters sparsified
    assert module.trial_params(fixed, module.networks.Setting("digits-resnet", 3), 1)["norm"] == "sparsify"
    assert "Run length" in (tmp_path / "table.md").read_text()


def test_networks_layers_traces_every_weight_and_the_kept_fraction(tmp_path):
    module = _load("networks_layers.py")
    assert module.main(["--smoke", "--out", str(tmp_path)]) == 0
    (result,) = __import__("json").loads((tmp_path / "results.json").read_text())
    kept = result["trace"]["kept_at_100x"]
    assert set(kept) == set(result["sizes"]) == set(result["trace"]["history"][-1])
    # global pruning to 100x keeps 1% of all counted weights, however it spreads them
    total = sum(result["sizes"].values())
    assert sum(kept[n] * result["sizes"][n] for n in kept) == pytest.approx(total / 100, abs=1)
