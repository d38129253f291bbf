"""Training a language model through rewa.train: per-position labels are checked (not waved
through), the loss is over every position, the records carry loss, perplexity and tokens per
second, the vocabulary is saved as JSON, the sparsity tools work on the GPT."""

from __future__ import annotations

import json
import math
import warnings

import pytest
import torch

import rewa
from rewa.cli import main
from rewa.experiments.models import make_model
from rewa.experiments.text import CharVocab
from rewa.experiments.train import TrainConfig, train
from rewa.training.data_checks import check_features, check_labels

TINY = ("layers=1", "heads=2", "width=32")


def _config(tmp_path, **kw):
    values = dict(
        dataset="text",
        context=32,
        model_options=TINY,
        method="adamw",
        lr=3e-3,
        epochs=3,
        batch_size=32,
        max_steps_per_epoch=25,
        schedule_per="step",
        warmup_epochs=0.5,
        grad_clip_norm=1.0,
        eval_batch_size=256,
        out=str(tmp_path / "run") if tmp_path is not None else "",
        progress=False,
        figures=False,
        sweep_thresholds=(0.0, 1e-2),
    )
    values.update(kw)
    return TrainConfig(**values)


def test_per_position_labels_are_checked_not_waved_through():
    y = torch.randint(0, 5, (4, 6))
    assert check_labels(y, {"val": torch.randint(0, 5, (2, 6))}, 5, per_position=True) == 5
    with pytest.raises(ValueError, match="must be 1-D"):
        check_labels(y, {}, 5)  # a classifier's labels stay 1-D
    with pytest.raises(ValueError, match="must be 2-D"):
        check_labels(torch.randint(0, 5, (4,)), {}, 5, per_position=True)
    with pytest.raises(ValueError, match="7 positions per sample, the training labels 6"):
        check_labels(y, {"val": torch.randint(0, 5, (2, 7))}, 5, per_position=True)
    with pytest.raises(ValueError, match=r"in \[0, 5\)"):
        check_labels(y, {"val": torch.full((2, 6), 5)}, 5, per_position=True)


def test_model_outputs_must_give_a_logit_per_class_at_each_position():
    gpt = make_model("gpt", (6,), 5, layers=1, heads=1, width=8)
    check_features(gpt, torch.randint(0, 5, (2, 6)), 5, input_shape=(6,), positions=6)
    with pytest.raises(ValueError, match=r"must give \(2, 6, 7\)"):
        check_features(gpt, torch.randint(0, 5, (2, 6)), 7, input_shape=(6,), positions=6)
    with pytest.raises(ValueError, match="integer token ids"):
        check_features(gpt, torch.rand(2, 6), 5, input_shape=(6,), positions=6)


def test_a_classifier_given_per_position_labels_is_refused():
    x, y = torch.rand(64, 6), torch.randint(0, 3, (64, 6))
    net = torch.nn.Linear(6, 3)
    data = torch.utils.data.TensorDataset(x, y)
    with pytest.raises(ValueError, match=r"must be 1-D \(one class index per sample\)"):
        train(TrainConfig(epochs=1, out="", progress=False), model=net, train_data=data)


def test_a_short_run_lowers_the_loss_and_records_what_a_language_modeller_reads(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = train(_config(tmp_path))
    m = result.metrics
    assert m[-1]["loss"] < m[0]["loss"] - 0.2 and m[-1]["val_loss"] < m[0]["val_loss"]
    assert m[0]["loss"] < math.log(len(json.loads((tmp_path / "run" / "vocab.json").read_text())["chars"]) + 1) + 0.5
    for record in m:
        assert record["val_perplexity"] == pytest.approx(math.exp(record["val_loss"]))
        assert record["test_perplexity"] == pytest.approx(math.exp(record["test_loss"]))
        assert record["tokens_per_second"] > 0
    s = result.summary
    assert s["model"] == "gpt" and s["dataset"] == "text"
    assert s["best_val_loss"] == min(r["val_loss"] for r in m) and s["tokens_per_second"] > 0
    assert {"val_loss", "val_perplexity", "test_loss", "test_perplexity"} <= set(s)
    assert {"val_loss", "val_perplexity", "test_perplexity"} <= set(result.sweep[0])
    # the vocabulary is JSON in the run directory; the plan records the model's sizes
    vocab = CharVocab.from_json(json.loads((tmp_path / "run" / "vocab.json").read_text(encoding="utf-8")))
    assert len(vocab) == result.plan.data.num_classes
    record = json.loads((tmp_path / "run" / "config.json").read_text())
    assert record["plan"]["model_options"] == list(TINY) and record["plan"]["context"] == 32


@pytest.mark.parametrize("method, lr", [("rewa-adamw", 3e-3), ("pwd-adamw", 3e-3), ("rewa", 0.05)])
def test_sparse_bases_train_the_gpt(method, lr):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = train(_config(None, method=method, lr=lr, epochs=1, max_steps_per_epoch=5))
    assert math.isfinite(result.metrics[-1]["val_loss"])


def test_pruning_and_fine_tuning_a_gpt_prunes_only_the_block_matrices(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = train(
            _config(tmp_path, epochs=1, max_steps_per_epoch=5, prune_sparsity=0.8, finetune_epochs=1, finetune_lr=1e-3)
        )
    model = result.model
    assert rewa.sparsity_report(model).sparsity == pytest.approx(0.8, abs=1e-3)
    assert (model.tok_emb.weight != 0).all() and (model.pos_emb.weight != 0).all()
    assert result.metrics[-1]["stage"] == "finetune" and math.isfinite(result.metrics[-1]["val_loss"])


def test_model_options_are_checked_when_the_config_is_built():
    with pytest.raises(ValueError, match="only gpt"):
        TrainConfig(dataset="digits", model_options=("layers=2",))
    with pytest.raises(ValueError, match="divisible by heads"):
        TrainConfig(dataset="text", model_options=("width=10", "heads=3"))
    with pytest.raises(ValueError, match="given twice"):
        TrainConfig(dataset="text", model_options=("layers=2", "layers=3"))
    with pytest.raises(ValueError, match="context=0"):
        TrainConfig(dataset="text", context=0)


def test_model_options_are_refused_with_a_module_passed_in():
    data = torch.utils.data.TensorDataset(torch.randint(0, 5, (40, 6)), torch.randint(0, 5, (40, 6)))
    gpt = make_model("gpt", (6,), 5, layers=1, heads=1, width=8)
    with pytest.raises(ValueError, match="built by name"):
        train(TrainConfig(model="gpt", model_options=("layers=1",), out="", progress=False), model=gpt, train_data=data)


def test_a_user_language_model_trains_on_token_tensors():
    torch.manual_seed(0)
    x = torch.randint(1, 5, (80, 6))
    data = torch.utils.data.TensorDataset(x, (x + 1) % 5)  # next token: a fixed map
    gpt = make_model("gpt", (6,), 5, layers=1, heads=1, width=16)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = train(
            TrainConfig(method="adamw", lr=1e-2, epochs=15, batch_size=16, num_classes=5, out="", progress=False),
            model=gpt,
            train_data=data,
        )
    assert result.metrics[-1]["val_accuracy"] > 0.9 and "val_perplexity" in result.metrics[-1]


def test_rewa_train_text_gpt_on_the_command_line(tmp_path, capsys):
    out = tmp_path / "cli"
    argv = ["train", "--dataset", "text", "--model", "gpt", "--context", "16", "--model-options", *TINY]
    argv += ["--method", "adamw", "--epochs", "1", "--batch-size", "16", "--max-steps-per-epoch", "3"]
    argv += ["--eval-batch-size", "512", "--out", str(out), "--no-progress", "--no-figures", "--threads", "1"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(argv) == 0
    assert (out / "vocab.json").is_file() and "val_perplexity" in json.loads((out / "summary.json").read_text())
    assert "perplexity val " in capsys.readouterr().out
