"""rewa.experiments.train, `rewa train` and `rewa compare` (issue 12): short CPU runs."""

from __future__ import annotations

import json
import math
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import rewa
from rewa.cli import main
from rewa.cli_train import compare_runs
from rewa.experiments.data import load_dataset
from rewa.experiments.presets import PRESETS
from rewa.experiments.train import RUN_FILES, STANDARD_THRESHOLDS, TrainConfig, lr_factor, resolve_config, train
from rewa.training import loop as train_module
from rewa.training.files import load_checkpoint

FAST = dict(
    dataset="digits",
    epochs=1,
    batch_size=64,
    max_steps_per_epoch=3,
    progress=False,
    figures=False,
    sweep_thresholds=(0.0, 1e-3, 3e-2),
)


def _python_env():
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    return env


@pytest.mark.parametrize("method", rewa.optim.registry.method_names())
def test_every_method_trains_one_short_epoch_on_digits(method):
    result = train(TrainConfig(method=method, out="", **FAST))
    (record,) = result.metrics
    assert math.isfinite(record["loss"]) and record["stage"] == "train"
    assert 0 <= record["test_accuracy"] <= 1 and 0 <= record["val_accuracy"] <= 1
    assert set(record["sparsity"]) == {f"{t:g}" for t in STANDARD_THRESHOLDS}
    assert result.sweep and all(0 <= r["test_accuracy"] <= 1 for r in result.sweep)


def test_run_directory_files_and_fields(tmp_path):
    out = tmp_path / "run"
    config = TrainConfig(
        out=str(out), **dict(FAST, epochs=2, figures=True), zero_M_epochs=1, schedule=("weight_decay=0:0,1:1e-3",)
    )
    result = train(config)
    for name in RUN_FILES:
        assert (out / name).is_file(), name
    record = json.loads((out / "config.json").read_text())
    assert record["config"] == {k: v for k, v in config.to_dict().items() if v is not None}
    plan = record["plan"]  # every value the run used, the method's defaults resolved
    assert (plan["lr"], plan["momentum"], plan["K"], plan["M"], plan["grad_clip_norm"]) == (0.2, 0.9, 9, 2, 1.0)
    assert plan["model"] == "mlp" and plan["num_classes"] == 10 and plan["hyperparameters"]["decoupled_weight_decay"]
    assert plan["hyper_schedule"] == {"weight_decay": [[0, 0.0], [1, 1e-3]], "M": [[0, 0.0], [1, 2]]}

    def nulls(value, path=""):
        if isinstance(value, dict):
            return [n for k, v in value.items() for n in nulls(v, f"{path}.{k}")]
        if isinstance(value, list):
            return [n for i, v in enumerate(value) for n in nulls(v, f"{path}[{i}]")]
        return [path] if value is None else []

    assert nulls(record) == []
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in lines] == [1, 2]
    for m in lines:
        assert {
            "loss",
            "train_accuracy",
            "val_accuracy",
            "test_accuracy",
            "sparsity",
            "compression",
            "lr",
            "M",
            "weight_decay",
            "epoch_seconds",
            "wall_seconds",
            "latent_max_abs",
        } <= set(m)
    # the largest |y| of the sparsified tensors: the largest weight is its K-th power
    largest_weight = max(float(p.abs().max()) for p in result.model.parameters() if p.dim() > 1)
    assert lines[-1]["latent_max_abs"] ** lines[-1]["K"] == pytest.approx(largest_weight, rel=1e-5)
    # the schedules: M = 0 then the method's 2; weight decay 0 then 1e-3
    assert [(m["M"], m["weight_decay"]) for m in lines] == [(0.0, 0.0), (2, 1e-3)]
    sweep = json.loads((out / "sweep.json").read_text())
    assert {"threshold", "compression", "sparsity", "val_accuracy", "test_accuracy"} <= set(sweep[0])
    assert sweep[0]["threshold"] == 0.0 and sweep[0]["compression"] == 1.0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["test_accuracy"] == lines[-1]["test_accuracy"] == result.summary["test_accuracy"]
    ckpt = load_checkpoint(out / "checkpoint.pt")
    assert {"epoch", "model", "optimizer", "rng", "schedule", "controller", "masks"} <= set(ckpt)
    assert ckpt["epoch"] == 2
    assert not list(out.glob("*.tmp"))
    with pytest.raises(FileExistsError, match="--resume"):
        train(config)


def test_lr_schedules_follow_the_paper_code():
    # STR's cosine_lr with warm-up (CIFAR-10, D.2): per epoch e of 100, warm-up 5
    for e in range(100):
        expected = (e + 1) / 5 if e < 5 else 0.5 * (1 + math.cos(math.pi * (e - 5) / 95))
        assert lr_factor("cosine", e, 5, 100) == pytest.approx(expected, abs=1e-15)
    # FFCV's cyclic (ImageNet, D.3): np.interp over [0, 2, 88] of [1e-4, 1, 0]
    for t in (0, 0.5, 2, 40.25, 88):
        assert lr_factor("cyclic", t, 2, 88) == pytest.approx(np.interp(t, [0, 2, 88], [1e-4, 1, 0]))
    assert lr_factor("step", 7, 0, 10, milestones=(3, 6), gamma=0.1, epoch=7) == pytest.approx(0.01)


def test_presets_are_table_3_settings():
    c = resolve_config("cifar10-resnet18-rewa")
    assert (
        c.lr,
        c.momentum,
        c.batch_size,
        c.epochs,
        c.warmup_epochs,
        c.K,
        c.M,
        c.eps,
        c.weight_decay,
        c.label_smoothing,
        c.model,
        c.dataset,
    ) == (0.256, 0.875, 256, 100, 5, 9, 2, 0.0, 1e-4, 0.1, "resnet18-imagenet-nobias", "cifar10")
    c = resolve_config("imagenet-resnet50-rewa")
    assert (c.lr, c.momentum, c.batch_size, c.epochs, c.lr_schedule, c.K, c.M, c.eps, c.weight_decay) == (
        1.0,
        0.9,
        512,
        88,
        "cyclic",
        3,
        2,
        1e-3 / 3,
        5e-5,
    )
    for name in PRESETS:  # every preset builds a valid config
        resolve_config(name)
    with pytest.raises(ValueError, match="must be one of"):
        resolve_config("no-such-preset")


def test_bad_config_values_are_named():
    with pytest.raises(ValueError, match=r"val_fraction=1.5 must be in \[0, 1\)"):
        TrainConfig(val_fraction=1.5)
    with pytest.raises(ValueError, match="method='nope' must be one of"):
        TrainConfig(method="nope")
    with pytest.raises(ValueError, match="K=3 is not a hyperparameter of method 'sgd'"):
        train(TrainConfig(method="sgd", K=3, out="", **FAST))
    with pytest.raises(ValueError, match="finetune_epochs=2 needs prune_sparsity"):
        TrainConfig(finetune_epochs=2)


def _weights(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def _assert_bitwise_equal(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_resume_after_an_interruption_gives_bitwise_the_same_weights(tmp_path, monkeypatch):
    # target sparsity control and prune + fine-tune stages are part of what must resume exactly
    common = dict(
        FAST,
        epochs=2,
        max_steps_per_epoch=5,
        batch_size=128,
        target_sparsity=0.3,
        prune_sparsity=0.5,
        finetune_epochs=2,
        M=2.5,
    )
    whole = train(TrainConfig(out=str(tmp_path / "whole"), **common))
    assert whole.metrics[-1]["stage"] == "finetune"
    real_epoch = train_module._train_epoch
    for stop in (1, 3):  # during training, and during fine-tuning
        calls = {"n": 0}

        def interrupted(*args, **kwargs):
            if calls["n"] == stop:
                raise KeyboardInterrupt  # stands for a kill between two checkpoints
            calls["n"] += 1
            return real_epoch(*args, **kwargs)

        out = tmp_path / f"cut{stop}"
        monkeypatch.setattr(train_module, "_train_epoch", interrupted)
        with pytest.raises(KeyboardInterrupt):
            train(TrainConfig(out=str(out), **common))
        monkeypatch.setattr(train_module, "_train_epoch", real_epoch)
        assert load_checkpoint(out / "checkpoint.pt")["epoch"] == stop
        resumed = train(TrainConfig(out=str(out), resume=True, **common))
        _assert_bitwise_equal(_weights(whole.model), _weights(resumed.model))
        assert resumed.metrics == [
            dict(m, wall_seconds=r["wall_seconds"], epoch_seconds=r["epoch_seconds"])
            for m, r in zip(whole.metrics, resumed.metrics)
        ]
    with pytest.raises(ValueError, match="different config"):
        train(TrainConfig(out=str(tmp_path / "whole"), resume=True, **dict(common, seed=1)))


def _cli(*args):
    return [
        sys.executable,
        "-m",
        "rewa",
        "train",
        "--dataset",
        "digits",
        "--no-progress",
        "--no-figures",
        "--threads",
        "1",
        *args,
    ]


def _in_process(argv):
    """``rewa train`` in this process with one thread (as the subprocesses run)."""
    threads = torch.get_num_threads()
    try:
        assert main(["train", "--dataset", "digits", "--no-progress", "--no-figures", "--threads", "1", *argv]) == 0
    finally:
        torch.set_num_threads(threads)


@pytest.mark.slow
def test_resume_after_sigkill_equals_an_uninterrupted_run(tmp_path):
    args = ["--epochs", "8", "--batch-size", "32", "--method", "rewa", "--M", "2"]
    _in_process([*args, "--out", str(tmp_path / "whole")])
    out = tmp_path / "killed"
    proc = subprocess.Popen(
        _cli(*args, "--out", str(out)), env=_python_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.time() + 90
    while not (out / "checkpoint.pt").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    assert not (out / "summary.json").exists()
    resumed = subprocess.run(
        _cli(*args, "--out", str(out), "--resume"), env=_python_env(), capture_output=True, text=True, timeout=120
    )
    assert resumed.returncode == 0, resumed.stderr
    a = load_checkpoint(tmp_path / "whole" / "checkpoint.pt")
    b = load_checkpoint(out / "checkpoint.pt")
    assert a["epoch"] == b["epoch"] == 8
    _assert_bitwise_equal(a["model"], b["model"])


@pytest.mark.slow
def test_two_processes_equal_one_process_with_the_same_global_batch(tmp_path):
    args = ["--epochs", "2", "--batch-size", "64", "--method", "rewa", "--M", "2", "--weight-decay", "1e-3"]
    _in_process([*args, "--out", str(tmp_path / "one")])
    two = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            *_cli(*args, "--out", str(tmp_path / "two"))[1:],
        ],
        env=_python_env(),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert two.returncode == 0, two.stderr[-3000:]
    assert json.loads((tmp_path / "two" / "summary.json").read_text())["processes"] == 2
    a = load_checkpoint(tmp_path / "one" / "checkpoint.pt")["model"]
    b = load_checkpoint(tmp_path / "two" / "checkpoint.pt")["model"]
    for k in a:  # gradient all-reduce sums in another order: float rounding only
        torch.testing.assert_close(b[k], a[k], rtol=1e-4, atol=1e-6)


def _write_cifar(root: Path, n_per_batch: int = 8):
    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        entry = {
            b"data": rng.integers(0, 256, (n_per_batch, 3072), dtype=np.uint8),
            b"labels": rng.integers(0, 10, n_per_batch).tolist(),
        }
        with open(root / name, "wb") as f:
            pickle.dump(entry, f)


def test_cifar_pickle_directory_and_its_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="data_batch_1.*python-pickle.*Nothing is downloaded"):
        load_dataset("cifar10", str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="needs data_dir"):
        load_dataset("cifar100", "")
    with pytest.raises(FileNotFoundError, match="train/<class>"):
        load_dataset("imagefolder", str(tmp_path))
    _write_cifar(tmp_path / "c10" / "cifar-10-batches-py")
    bundle = load_dataset("cifar10", str(tmp_path / "c10"))
    assert bundle.train.x.shape == (40, 3, 32, 32) and bundle.train.x.dtype == torch.uint8
    assert len(bundle.test) == 8 and bundle.augment == "cifar"
    result = train(
        TrainConfig(
            dataset="cifar10",
            data_dir=str(tmp_path / "c10"),
            model="cnn",
            epochs=1,
            batch_size=16,
            val_fraction=0.2,
            out="",
            progress=False,
        )
    )
    assert math.isfinite(result.metrics[0]["loss"])


def test_augmentation_crops_and_flips_each_image():
    x = torch.arange(2 * 1 * 4 * 4, dtype=torch.float32).reshape(2, 1, 4, 4) + 1
    gen = torch.Generator().manual_seed(0)
    out = rewa.experiments.data.augment_batch(x, gen, padding=1)
    assert out.shape == x.shape
    for i in range(2):  # each output is a shifted (maybe flipped) window of the zero-padded image
        padded = torch.nn.functional.pad(x[i], (1, 1, 1, 1))
        windows = [padded[:, r : r + 4, c : c + 4] for r in range(3) for c in range(3)]
        assert any(torch.equal(out[i], w) or torch.equal(out[i], w.flip(-1)) for w in windows)


def test_tensor_dataset_and_plain_dataset_through_the_python_api():
    x = torch.randn(300, 1, 12)
    y = (x[:, 0, 0] > 0).long()
    data = torch.utils.data.TensorDataset(x, y)
    # sgd: the data path is under test, not rewa's recipe (whose decay budget is spent in 3 epochs)
    result = train(
        TrainConfig(method="sgd", epochs=3, batch_size=32, out="", progress=False, model="cnn"),
        train_data=data,
        test_data=data,
    )
    assert result.summary["dataset"] == "user" and result.summary["test_accuracy"] > 0.6

    class Plain(torch.utils.data.Dataset):  # no tensors to take: read through a DataLoader
        def __len__(self):
            return len(y)

        def __getitem__(self, i):
            return x[i], int(y[i])

    result = train(
        TrainConfig(epochs=1, batch_size=32, out="", progress=False, num_workers=0), train_data=Plain(), val_data=data
    )
    assert result.metrics[0]["val_accuracy"] is not None and result.metrics[0]["test_accuracy"] is None


def test_mnist1d_is_generated_locally(monkeypatch):
    pytest.importorskip("mnist1d", reason="the mnist1d extra is not installed")
    import requests

    def no_network(*args, **kwargs):
        raise AssertionError("mnist1d tried to download")

    monkeypatch.setattr(requests, "get", no_network)
    state = np.random.get_state()
    bundle = load_dataset("mnist1d")
    assert (len(bundle.train), len(bundle.test), bundle.input_shape) == (4000, 1000, (1, 40))
    assert np.array_equal(np.random.get_state()[1], state[1])  # the caller's numpy stream is untouched


def test_compare_two_runs(tmp_path, capsys):
    runs = []
    for name, method in (("dense", "sgd"), ("sparse", "rewa")):
        out = tmp_path / name
        train(TrainConfig(method=method, out=str(out), **dict(FAST, epochs=2)))
        runs.append(str(out))
    figure = tmp_path / "cmp.png"
    assert main(["compare", *runs, "--out", str(figure)]) == 0
    text = capsys.readouterr().out
    assert figure.is_file() and "max compr. within 0.5 pt" in text and runs[1] in text
    rows = compare_runs(runs)
    assert rows[0]["reference_accuracy"] == rows[0]["dense_accuracy"]
    assert rows[0]["max_compression_within_0.5pt"] >= 1.0


def test_compare_table_numbers(tmp_path):
    sweep = [
        {"compression": 1.0, "test_accuracy": 0.90},
        {"compression": 10.0, "test_accuracy": 0.896},
        {"compression": 100.0, "test_accuracy": 0.85},
        {"compression": None, "test_accuracy": 0.1},
    ]
    for name, acc in (("ref", 0.90), ("run", 0.90)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "sweep.json").write_text(json.dumps(sweep))
        (tmp_path / name / "summary.json").write_text(json.dumps({"method": "x", "test_accuracy": acc}))
    (row,) = compare_runs([str(tmp_path / "run")], reference=str(tmp_path / "ref"))
    assert row["max_compression_within_0.5pt"] == 10.0 and row["max_compression_within_1.0pt"] == 10.0
    assert row["accuracy_at_10x"] == pytest.approx(0.896)
    assert row["accuracy_at_50x"] == pytest.approx(0.896 + math.log(5) / math.log(10) * (0.85 - 0.896))
    assert row["accuracy_at_100x"] == pytest.approx(0.85)


def test_cli_config_file_and_printed_config(tmp_path, capsys):
    cfg = tmp_path / "run.toml"
    cfg.write_text('method = "rewa"\nepochs = 1\nmax_steps_per_epoch = 2\nschedule = ["M=0:0"]\n')
    out = tmp_path / "run"
    assert (
        main(["train", "--config", str(cfg), "--lr", "0.02", "--out", str(out), "--no-progress", "--no-figures"]) == 0
    )
    printed = capsys.readouterr().out
    saved = json.loads((out / "config.json").read_text())["config"]
    assert saved["lr"] == 0.02 and saved["epochs"] == 1 and saved["schedule"] == ["M=0:0"]
    assert "config: " + json.dumps(saved) in printed
    assert main(["train", "--config", str(tmp_path / "nope.toml")]) == 2


def test_resnets_have_the_reference_sizes():
    from rewa.experiments.models import make_model

    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    # torchvision's resnet50 (1000 classes) has 25,557,032 parameters; the CIFAR ResNet-18 11,173,962
    assert count(make_model("resnet50", (3, 224, 224), 1000)) == 25_557_032
    model = make_model("resnet18", (3, 32, 32), 10)
    assert count(model) == 11_173_962
    assert model.stem[0].kernel_size == (3, 3) and model.stem[0].stride == (1, 1)
    assert not any(isinstance(m, torch.nn.MaxPool2d) for m in model.modules())


def test_imagefolder_layout(tmp_path):
    from PIL import Image

    for part in ("train", "val"):
        for label in ("cat", "dog"):
            (tmp_path / part / label).mkdir(parents=True)
            for i in range(2):
                Image.new("RGB", (40, 30), (i * 100, 50, 200)).save(tmp_path / part / label / f"{i}.png")
    bundle = load_dataset("imagefolder", str(tmp_path))
    assert bundle.num_classes == 2 and len(bundle.train) == 4 and len(bundle.test) == 4
    x, y = bundle.train[3]
    assert x.shape == (3, 224, 224) and x.dtype == torch.float32 and y == 1
    assert bundle.test[0][0].shape == (3, 224, 224)
    (tmp_path / "val" / "bird").mkdir()
    with pytest.raises(ValueError, match="class folders of train/ and val/ differ"):
        load_dataset("imagefolder", str(tmp_path))


def test_bf16_autocast_and_channels_last_run_on_cpu():
    x = torch.randn(64, 3, 8, 8)
    data = torch.utils.data.TensorDataset(x, (x.mean((1, 2, 3)) > 0).long())
    result = train(
        TrainConfig(
            epochs=1,
            batch_size=32,
            out="",
            progress=False,
            model="cnn",
            bf16=True,
            channels_last=True,
            device="cpu",
            sweep_thresholds=(0.0,),
        ),
        train_data=data,
        test_data=data,
    )
    assert math.isfinite(result.metrics[0]["loss"])
