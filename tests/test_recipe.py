"""rewa.recipe: the recommended ReWA setup as torch objects, the same one `rewa train --method rewa`
runs; its lambda fixed at every run length, the opt-in decay budget's cap; the end-of-run warnings."""

import math
import warnings

import pytest
import torch

import rewa
from rewa.experiments.outcome import UntrainedWarning, near_chance, warn_if_untrained
from rewa.experiments.train import METHOD_DEFAULTS, METHOD_LOOP_DEFAULTS, TrainConfig, lr_sum, train
from rewa.recipe import (
    GRAD_CLIP_NORM,
    MAX_WEIGHT_DECAY,
    OPTIMIZER_DEFAULTS,
    WEIGHT_DECAY,
    budget_weight_decay,
    cosine_lr_sum,
)
from rewa.training import loop as train_module

QUIET = dict(out="", progress=False, figures=False, device="cpu")


def _data(n=64, d=5, seed=0):
    x = torch.randn(n, d, generator=torch.Generator().manual_seed(seed))
    return torch.utils.data.TensorDataset(x, (x[:, 0] > x[:, 0].median()).long())  # balanced


def test_budget_weight_decay_never_grows_as_the_run_gets_shorter():
    # long runs: the budget; short runs: the cap (the old rule gave 0.5 / 5.7 = 0.088 to a
    # 2-epoch digits run, ten times the 30-epoch lambda, and every weight died)
    assert budget_weight_decay(0.5, 100.0) == pytest.approx(0.005)
    assert budget_weight_decay(0.5, 5.7) == MAX_WEIGHT_DECAY
    sums = [0.1 * 1.5**k for k in range(30)]
    values = [budget_weight_decay(0.5, s) for s in sums]
    assert all(a >= b for a, b in zip(values, values[1:]))  # shorter (smaller sum) -> never larger
    assert max(values) == MAX_WEIGHT_DECAY
    assert budget_weight_decay(0.5, 5.0, max_weight_decay=1.0) == 0.1
    with pytest.raises(ValueError, match=r"lr_sum=0 must be a finite number > 0"):
        budget_weight_decay(0.5, 0)
    with pytest.raises(ValueError, match=r"decay_budget=-1 must be a finite number >= 0"):
        budget_weight_decay(-1, 1.0)


@pytest.mark.parametrize("epochs, steps", [(2, 19), (30, 19), (7, 50), (1, 3)])
@pytest.mark.parametrize("per", ["epoch", "step"])
def test_recipe_sum_of_learning_rates_is_rewa_trains(epochs, steps, per):
    c = TrainConfig(epochs=epochs, schedule_per=per)
    assert cosine_lr_sum(0.2, epochs, steps, per) == pytest.approx(lr_sum(c, 0.2, steps), rel=1e-12)


def test_rewa_train_defaults_come_from_the_recipe():
    for key, value in OPTIMIZER_DEFAULTS.items():
        assert METHOD_DEFAULTS["rewa"][key] == value, key
    assert METHOD_LOOP_DEFAULTS["rewa"] == {"grad_clip_norm": GRAD_CLIP_NORM}
    assert METHOD_DEFAULTS["rewa"]["weight_decay"] == WEIGHT_DECAY


@pytest.mark.parametrize("epochs, steps", [(1, 1), (2, 10), (30, 20), (300, 400)])
def test_the_recipes_lambda_does_not_change_with_the_runs_length(epochs, steps):
    # the strength of the regularizer is part of the objective f + lambda R: a longer run solves
    # the same problem (the earlier budget gave 0.0052 at 60 digits epochs, 0.01 at 20)
    model = torch.nn.Linear(4, 2)
    r = rewa.recipe(model, epochs=epochs, steps_per_epoch=steps)
    assert r.weight_decay == WEIGHT_DECAY == r.optimizer.param_groups[0]["weight_decay"]


def test_the_decay_budget_is_opt_in_and_exclusive_with_weight_decay():
    model = torch.nn.Linear(4, 2)
    # 30 epochs x 20 steps at lr 0.2, cosine per epoch: sum lr = 0.2 * 20 * 15 = 60
    r = rewa.recipe(model, epochs=30, steps_per_epoch=20, decay_budget=0.5)
    assert r.weight_decay == pytest.approx(0.5 / cosine_lr_sum(0.2, 30, 20)) and r.weight_decay < WEIGHT_DECAY
    with pytest.raises(ValueError, match=r"decay_budget=0.5 and weight_decay=0.001: give only one"):
        rewa.recipe(model, epochs=30, steps_per_epoch=20, decay_budget=0.5, weight_decay=1e-3)


def _groups(opt):
    return [
        # initial_lr: what a torch scheduler adds when it is built on the optimizer
        {
            **{k: v for k, v in g.items() if k not in ("params", "initial_lr")},
            "shapes": [tuple(p.shape) for p in g["params"]],
        }
        for g in opt.param_groups
    ]


@pytest.mark.parametrize("extra", [{}, {"decay_budget": 0.01}])  # the cap, then the budget, decides lambda
def test_rewa_train_builds_exactly_the_recipes_optimizer(monkeypatch, extra):
    built, clips = [], []
    original_create, original_clip = train_module.create_optimizer, torch.nn.utils.clip_grad_norm_

    def spy_create(*args, **kwargs):
        opt = original_create(*args, **kwargs)
        built.append(_groups(opt))
        return opt

    def spy_clip(parameters, max_norm, *args, **kwargs):
        clips.append(max_norm)
        return original_clip(parameters, max_norm, *args, **kwargs)

    monkeypatch.setattr(train_module, "create_optimizer", spy_create)
    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", spy_clip)
    result = train(
        TrainConfig(method="rewa", epochs=3, batch_size=16, val_fraction=0.0, **extra, **QUIET), train_data=_data()
    )
    steps = 4
    r = rewa.recipe(result.model, epochs=3, steps_per_epoch=steps, **extra)
    assert built == [_groups(r.optimizer)]
    assert built[0][0]["weight_decay"] > 0 and built[0][1]["weight_decay"] == 0.0
    assert built[0][1]["K"] == 1 and built[0][1]["shapes"] == [(300,), (100,), (2,)]  # biases: a dense group
    assert set(clips) == {r.clip_grad_norm} and len(clips) == 3 * steps
    # the same learning rate each epoch: rewa train's schedule and the recipe's scheduler
    lrs = []
    for _ in range(3):
        lrs.append(r.optimizer.param_groups[0]["lr"])
        r.optimizer.step()  # no gradients: changes nothing
        r.scheduler.step()
    assert [m["lr"] for m in result.metrics] == pytest.approx(lrs, rel=1e-12)
    assert r.scheduler_per == "epoch"


def test_recipe_per_step_schedule_and_its_checks():
    model = torch.nn.Linear(4, 2)
    r = rewa.recipe(model, epochs=2, steps_per_epoch=5, scheduler_per="step")
    lrs = []
    for _ in range(10):
        lrs.append(r.optimizer.param_groups[0]["lr"])
        r.optimizer.step()
        r.scheduler.step()
    assert lrs[0] == 0.2 and lrs[5] == pytest.approx(0.1) and lrs == sorted(lrs, reverse=True)
    assert r.weight_decay == WEIGHT_DECAY
    assert (
        rewa.recipe(model, epochs=1, steps_per_epoch=1, weight_decay=0.0, lr=0.1, K=3).optimizer.param_groups[0]["K"]
        == 3
    )
    with pytest.raises(ValueError, match=r"scheduler_per='batch' must be one of"):
        rewa.recipe(model, epochs=1, steps_per_epoch=1, scheduler_per="batch")
    with pytest.raises(ValueError, match=r"epochs=0"):
        rewa.recipe(model, epochs=0, steps_per_epoch=1)
    with pytest.raises(TypeError, match=r"needs the nn.Module"):
        rewa.recipe(model.parameters(), epochs=1, steps_per_epoch=1)
    with pytest.raises(TypeError, match=r"no hyperparameter 'betas'"):
        rewa.recipe(model, epochs=1, steps_per_epoch=1, betas=(0.9, 0.99))


def test_recipe_is_public():
    assert "recipe" in rewa.__all__ and callable(rewa.recipe)


# -- short runs on digits ---------------------------------------------------------------------


@pytest.mark.parametrize("fields", [dict(epochs=2), dict(epochs=10, max_steps_per_epoch=5)])
def test_short_rewa_runs_on_digits_train_close_to_dense_sgd(fields):
    # With lambda = budget / sum_t lr_t both ended at 10% (chance): lambda 0.088 and 0.091, ten
    # times the 30-epoch run's. Measured with lambda 0.01: 88.7% and 94.7% against SGD's 93.3% and 94.2%.
    pytest.importorskip("sklearn")
    torch.set_num_threads(1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UntrainedWarning)
        rewa_run = train(TrainConfig(method="rewa", **fields, **QUIET))
    sgd_run = train(TrainConfig(method="sgd", **fields, **QUIET))
    assert rewa_run.summary["test_accuracy"] >= sgd_run.summary["test_accuracy"] - 0.06
    assert rewa_run.metrics[-1]["weight_decay"] == WEIGHT_DECAY


# -- the end-of-run warnings ----------------------------------------------------------------


def test_near_chance():
    assert near_chance(0.1, 10) and near_chance(0.19, 10) and not near_chance(0.2, 10)
    assert near_chance(0.55, 2) and not near_chance(0.56, 2)


def test_warn_if_untrained_names_each_problem():
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert warn_if_untrained({"test_accuracy": 0.9}, model, num_classes=2, threshold=1e-3) == []
    with pytest.warns(UntrainedWarning, match=r"test accuracy 50.0%, near chance \(50.0% for 2 classes\)"):
        warn_if_untrained({"test_accuracy": 0.5, "val_accuracy": 0.9}, model, num_classes=2, threshold=1e-3)
    with pytest.warns(UntrainedWarning, match=r"val accuracy 10.0%"):
        warn_if_untrained({"test_accuracy": None, "val_accuracy": 0.1}, model, num_classes=10, threshold=1e-3)
    with torch.no_grad():
        for layer in model:
            layer.weight.mul_(1e-6)
            layer.bias.fill_(1.0)  # dense parameters do not count
    with pytest.warns(UntrainedWarning, match=r"every sparsified weight ended at \|w\| <= 0.001"):
        warn_if_untrained({"test_accuracy": 0.9}, model, num_classes=2, threshold=1e-3)


def test_a_collapsed_run_warns_at_the_end():
    data = _data(n=128)
    config = TrainConfig(method="rewa", weight_decay=4.0, epochs=3, batch_size=16, val_fraction=0.0, **QUIET)
    with pytest.warns(UntrainedWarning) as record:
        result = train(config, train_data=data, test_data=data)
    messages = [str(w.message) for w in record if issubclass(w.category, UntrainedWarning)]
    assert any("near chance" in m for m in messages), messages
    assert any("every sparsified weight" in m for m in messages), messages
    assert math.isclose(result.summary["test_accuracy"], 0.5, abs_tol=0.1)


def test_a_run_that_trains_does_not_warn():
    data = _data(n=128)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UntrainedWarning)
        train(TrainConfig(method="sgd", epochs=3, batch_size=16, val_fraction=0.0, **QUIET), train_data=data)
