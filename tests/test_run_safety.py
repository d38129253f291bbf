"""The training layer under hostile or careless use: crafted and damaged run files, bad data,
divergence, signals, a full disk, a hung peer. Each test failed on the code before these checks."""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from rewa.cli import main
from rewa.experiments.train import (
    RunFileError,
    TrainConfig,
    TrainingDiverged,
    TrainingInterrupted,
    train,
)
from rewa.training import files
from rewa.training.files import load_checkpoint, save_checkpoint
from rewa.training.interrupts import handle_signals, signals_deferred

FAST = dict(epochs=2, max_steps_per_epoch=3, progress=False, figures=False)


def _strict_json(text: str):
    def refuse(name):
        raise AssertionError(f"non-standard JSON constant {name}")

    return json.loads(text, parse_constant=refuse)


def _user_data(n=64, classes=2, features=6):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, features, generator=gen)
    y = torch.arange(n) % classes
    return torch.utils.data.TensorDataset(x, y)


# -- no code from files ----------------------------------------------------------------------


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_a_crafted_checkpoint_is_refused_and_runs_no_code(tmp_path):
    out = tmp_path / "run"
    config = TrainConfig(out=str(out), **FAST)
    train(config)
    marker = tmp_path / "ran"
    torch.save({"epoch": 1, "model": _Payload(str(marker))}, out / "checkpoint.pt")
    with pytest.raises(RunFileError, match="checkpoint.pt' cannot be read"):
        train(TrainConfig(out=str(out), resume=True, **FAST))
    assert not marker.exists()


def test_a_crafted_payload_inside_a_checksummed_checkpoint_runs_no_code(tmp_path):
    import hashlib
    import io

    marker = tmp_path / "ran"
    inner = io.BytesIO()
    torch.save({"model": _Payload(str(marker))}, inner)
    body = inner.getvalue()
    torch.save(
        {
            "format": files.CHECKPOINT_FORMAT,
            "version": files.CHECKPOINT_VERSION,
            "sha256": hashlib.sha256(body).hexdigest(),
            "payload": torch.frombuffer(bytearray(body), dtype=torch.uint8),
        },
        tmp_path / "checkpoint.pt",
    )
    with pytest.raises(RunFileError, match="cannot be read"):
        load_checkpoint(tmp_path / "checkpoint.pt")
    assert not marker.exists()


def test_checkpoint_round_trip_keeps_rng_states_and_tensors(tmp_path):
    import random

    import numpy as np

    payload = {"w": torch.randn(3), "rng": files.rng_state(), "metrics": [{"loss": 0.5, "x": None}]}
    expected = (torch.rand(2), np.random.rand(2), random.random())
    save_checkpoint(tmp_path / "c.pt", payload)
    loaded = load_checkpoint(tmp_path / "c.pt")
    assert torch.equal(loaded["w"], payload["w"]) and loaded["metrics"] == payload["metrics"]
    files.set_rng_state(loaded["rng"])
    again = (torch.rand(2), np.random.rand(2), random.random())
    assert torch.equal(expected[0], again[0]) and (expected[1] == again[1]).all() and expected[2] == again[2]


def test_a_flipped_bit_in_the_checkpoint_is_refused_on_resume(tmp_path):
    out = tmp_path / "run"
    train(TrainConfig(out=str(out), **FAST))
    path = out / "checkpoint.pt"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10
    path.write_bytes(bytes(data))
    with pytest.raises(RunFileError, match="checkpoint.pt'.*(checksum|cannot be read)"):
        train(TrainConfig(out=str(out), resume=True, **FAST))


@pytest.mark.parametrize("name", ["checkpoint.pt", "config.json"])
def test_truncated_run_files_give_one_line_naming_the_file(tmp_path, name, capsys):
    out = tmp_path / "run"
    train(TrainConfig(out=str(out), **FAST))
    path = out / name
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    code = main(["train", "--out", str(out), "--resume", "--no-progress", "--no-figures"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and name in err, err


def test_a_corrupt_sweep_json_gives_one_line_in_compare(tmp_path, capsys):
    out = tmp_path / "run"
    train(TrainConfig(out=str(out), **FAST))
    (out / "sweep.json").write_text('[{"threshold": 0.0, "compr')
    code = main(["compare", str(out), "--out", str(tmp_path / "c.png")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "sweep.json" in err, err


# -- no silent wrong result --------------------------------------------------------------------


def test_a_diverging_run_stops_with_an_error_and_keeps_its_last_good_checkpoint(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "--method", "sgd", "--lr", "1e4", "--epochs", "1", "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err
    assert code != 0 and "diverged" in err and "lr=10000" in err
    assert not (out / "summary.json").exists() and not (out / "checkpoint.pt").exists()
    with pytest.raises(TrainingDiverged, match="epoch 1"):
        train(TrainConfig(method="sgd", lr=1e4, epochs=1, out="", progress=False))


def test_run_files_are_standard_json(tmp_path):
    out = tmp_path / "run"
    # a threshold that prunes everything: compression is infinite, written as null
    train(TrainConfig(out=str(out), sweep_thresholds=(0.0, 1e9), **FAST))
    for name in ("config.json", "sweep.json", "summary.json"):
        _strict_json((out / name).read_text())
    for line in (out / "metrics.jsonl").read_text().splitlines():
        _strict_json(line)
    last = _strict_json((out / "sweep.json").read_text())[-1]
    assert last["compression"] is None and last["non_finite_as_null"] == {"compression": "inf"}
    assert _strict_json(files.json_text({"x": float("nan"), "y": [float("inf")]})) == {
        "x": None,
        "y": [None],
        "non_finite_as_null": {"x": "nan", "y/0": "inf"},
    }


def test_a_stray_label_is_refused_unless_num_classes_names_it():
    data = _user_data()
    x, y = data.tensors
    y = y.clone()
    y[5] = 50
    stray = torch.utils.data.TensorDataset(x, y)
    with pytest.raises(ValueError, match=r"0 to 50.*48 of those 51 classes have no training example.*num_classes=51"):
        train(TrainConfig(out="", **FAST), train_data=stray)
    result = train(TrainConfig(out="", num_classes=51, **FAST), train_data=stray)
    assert result.model(x[:2]).shape == (2, 51)
    with pytest.raises(ValueError, match=r"train labels must be in \[0, num_classes\) = \[0, 10\), got 50"):
        train(TrainConfig(out="", num_classes=10, **FAST), train_data=stray)


@pytest.mark.parametrize(
    "labels,message",
    [
        (lambda y: y.float(), "train labels must have an integer dtype, got torch.float32"),
        (lambda y: y.bool(), "train labels must have an integer dtype, got torch.bool"),
        (lambda y: y[:, None], r"train labels must be 1-D .* got shape \(\d+, 1\)"),
        (lambda y: y - 1, "train labels must be >= 0"),
    ],
)
def test_bad_train_labels_are_refused_before_training(labels, message):
    x, y = _user_data().tensors
    with pytest.raises(ValueError, match=message):
        train(TrainConfig(out="", **FAST), train_data=torch.utils.data.TensorDataset(x, labels(y)))


def test_val_and_test_labels_outside_the_classes_and_empty_splits_are_refused():
    data = _user_data()
    x, y = data.tensors
    bad = torch.utils.data.TensorDataset(x[:8], torch.full((8,), 2))
    with pytest.raises(ValueError, match=r"test_data labels must be in \[0, 2\) .* got 2"):
        train(TrainConfig(out="", **FAST), train_data=data, test_data=bad)
    with pytest.raises(ValueError, match=r"val_data labels must be in \[0, 2\)"):
        train(TrainConfig(out="", **FAST), train_data=data, val_data=bad)
    empty = torch.utils.data.TensorDataset(x[:0], y[:0])
    for kind in ("train_data", "val_data", "test_data"):
        given = {"train_data": data, kind: empty}
        with pytest.raises(ValueError, match=f"{kind} is empty"):
            train(TrainConfig(out="", **FAST), **given)


def test_features_that_do_not_fit_the_model_are_refused_before_the_first_step():
    x, y = _user_data().tensors
    train_part = torch.utils.data.TensorDataset(x, y)
    odd_val = torch.utils.data.TensorDataset(torch.randn(8, 9), y[:8])
    with pytest.raises(ValueError, match=r"validation features of shape \(9,\) .* do not fit the model .* \(6,\)"):
        train(TrainConfig(out="", **FAST), train_data=train_part, val_data=odd_val)
    ints = torch.utils.data.TensorDataset(torch.randint(0, 5, (64, 6)), y)
    with pytest.raises(ValueError, match="train features must be floating point"):
        train(TrainConfig(out="", **FAST), train_data=ints)


# -- the run directory ---------------------------------------------------------------------------


def test_an_out_holding_the_users_own_files_is_refused_and_left_alone(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "summary.json").write_text('{"my": "results"}')
    with pytest.raises(ValueError, match="no config.json of a rewa train run"):
        train(TrainConfig(out=str(out), **FAST))
    assert (out / "summary.json").read_text() == '{"my": "results"}' and sorted(os.listdir(out)) == ["summary.json"]
    (out / "notes.txt").write_text("keep")
    with pytest.raises(ValueError, match="not a run of rewa train .*notes.txt"):
        train(TrainConfig(out=str(out), **FAST))
    assert (out / "notes.txt").read_text() == "keep"


def test_resume_finds_the_run_however_its_path_is_spelled_and_after_a_move(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    partial = dict(epochs=3, max_steps_per_epoch=3, progress=False, figures=False)
    first = train(TrainConfig(out="run", **partial))
    for spelling in ("./run", str(tmp_path / "run"), "run/"):
        again = train(TrainConfig(out=spelling, resume=True, **partial))
        assert again.metrics == first.metrics
    os.rename("run", "moved")
    assert main(["train", "--out", "moved", "--resume", "--no-progress", "--no-figures"]) == 0
    assert _strict_json(Path("moved", "config.json").read_text())["config"]["out"] == "moved"


@pytest.mark.slow
def test_resume_from_out_alone_after_sigkill_and_explicit_differences_refused(tmp_path):
    out = tmp_path / "run"
    args = ["--epochs", "40", "--method", "sgd", "--out", str(out), "--no-progress", "--no-figures", "--threads", "1"]
    proc = subprocess.Popen([sys.executable, "-m", "rewa", "train", *args], stdout=subprocess.DEVNULL)
    _wait_for_checkpoint(out, proc)
    proc.kill()
    proc.wait()
    done = subprocess.run(
        [sys.executable, "-m", "rewa", "train", "--out", str(out), "--resume", "--no-progress", "--no-figures"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert "resuming the run" not in done.stderr or "from epoch" in done.stderr
    whole = train(TrainConfig(method="sgd", epochs=40, out="", progress=False, figures=False))
    resumed = load_checkpoint(out / "checkpoint.pt")["model"]
    assert all(torch.equal(resumed[k], v) for k, v in whole.model.state_dict().items())
    refused = subprocess.run(
        [sys.executable, "-m", "rewa", "train", "--out", str(out), "--resume", "--epochs", "50", "--lr", "0.1"],
        capture_output=True,
        text=True,
    )
    assert (
        refused.returncode == 2 and "epochs=50 (run: 40)" in refused.stderr and "lr=0.1 (run: 0.05)" in refused.stderr
    )


def _wait_for_checkpoint(out: Path, proc, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not (out / "checkpoint.pt").exists():
        assert proc.poll() is None, "the run ended before its first checkpoint"
        assert time.monotonic() < deadline, "no checkpoint in time"
        time.sleep(0.05)


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signals_end_cleanly_with_the_saved_epoch_and_the_resume_command(tmp_path, signum):
    out = tmp_path / "run"
    for attempt, delay in enumerate((0.0, 0.13, 0.31, 0.57)):
        run_dir = out.with_name(f"run{attempt}")
        proc = subprocess.Popen(
            [sys.executable, "-m", "rewa", "train", "--epochs", "300", "--out", str(run_dir), "--no-figures"]
            + ["--no-progress", "--threads", "1"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        _wait_for_checkpoint(run_dir, proc)
        time.sleep(delay)
        proc.send_signal(signum)
        err = proc.communicate(timeout=60)[1]
        assert proc.returncode == 128 + signum, err
        assert not list(run_dir.glob("*.tmp")), sorted(os.listdir(run_dir))
        line = err.strip().splitlines()[-1]
        assert f"interrupted by {signal.Signals(signum).name}: epoch " in line, err
        assert f"resume with: rewa train --out {run_dir} --resume" in line, err
        saved = int(line.split("epoch ")[1].split(" ")[0])
        assert load_checkpoint(run_dir / "checkpoint.pt")["epoch"] == saved
        assert len((run_dir / "metrics.jsonl").read_text().splitlines()) == saved


def test_a_signal_in_a_deferred_block_waits_for_the_block():
    done = []
    with pytest.raises(TrainingInterrupted) as caught:
        with handle_signals():
            with signals_deferred():
                os.kill(os.getpid(), signal.SIGTERM)
                done.append("written")
            done.append("never")
    assert done == ["written"] and caught.value.signum == signal.SIGTERM


def test_a_full_disk_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    out = tmp_path / "run"
    config = TrainConfig(out=str(out), epochs=4, max_steps_per_epoch=3, progress=False, figures=False)
    real_fsync, calls = os.fsync, []

    def fsync(fd):
        calls.append(fd)
        if os.path.basename(os.readlink(f"/proc/self/fd/{fd}")) == "checkpoint.pt.tmp" and len(calls) > 6:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_fsync(fd)

    monkeypatch.setattr(files.os, "fsync", fsync)
    with pytest.raises(RunFileError, match=r"cannot write .*checkpoint.pt': No space left on device; the previous"):
        train(config)
    monkeypatch.undo()
    assert not list(out.glob("*.tmp"))
    saved = load_checkpoint(out / "checkpoint.pt")
    assert saved["epoch"] >= 1 and len((out / "metrics.jsonl").read_text().splitlines()) == saved["epoch"]
    resumed = train(TrainConfig(**{**config.__dict__, "resume": True}))
    assert resumed.metrics[-1]["epoch"] == 4


def test_a_corrupt_validation_image_is_found_before_the_first_epoch(tmp_path):
    pil = pytest.importorskip("PIL.Image")
    import numpy as np

    for part in ("train", "val"):
        for label in ("a", "b"):
            folder = tmp_path / part / label
            folder.mkdir(parents=True)
            for i in range(2):
                pil.fromarray(np.full((12, 12, 3), 40 * i, dtype=np.uint8)).save(folder / f"{i}.png")
    (tmp_path / "val" / "b" / "1.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    config = TrainConfig(
        dataset="imagefolder", data_dir=str(tmp_path), model="mlp", val_fraction=0, num_workers=0, out="", **FAST
    )
    started = []
    with pytest.raises(ValueError, match=r"test_data: '.*val/b/1.png' cannot be read"):
        import rewa.training.loop as module

        original = module._train_epoch
        module._train_epoch = lambda *a, **k: started.append(1) or original(*a, **k)
        try:
            train(config)
        finally:
            module._train_epoch = original
    assert not started


# -- distributed ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_stopped_peer_ends_the_other_rank_with_an_error_naming_it(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, WORLD_SIZE="2", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), OMP_NUM_THREADS="1")
    args = [sys.executable, "-m", "rewa", "train", "--epochs", "500", "--out", str(tmp_path / "run")]
    args += ["--dist-timeout-s", "5", "--no-figures", "--no-progress", "--method", "sgd"]
    ranks = [
        subprocess.Popen(args, env={**env, "RANK": str(r), "LOCAL_RANK": str(r)}, stderr=subprocess.PIPE, text=True)
        for r in (0, 1)
    ]
    try:
        _wait_for_checkpoint(tmp_path / "run", ranks[0], timeout=90)
        ranks[1].send_signal(signal.SIGSTOP)
        stopped = time.monotonic()
        err = ranks[0].communicate(timeout=60)[1]
        assert time.monotonic() - stopped < 45
        assert ranks[0].returncode == 1
        assert "rank 0: no answer from rank(s) 1 within dist_timeout_s=5" in err, err
    finally:
        ranks[1].kill()
        ranks[1].wait()


def test_a_preset_run_resumes_with_the_explicit_options_it_stands_for(tmp_path, capsys):
    out = str(tmp_path / "run")
    quick = ["--epochs", "2", "--max-steps-per-epoch", "2", "--no-progress", "--no-figures"]
    assert main(["train", "--preset", "rewa-recipe", "--out", out, *quick]) == 0
    capsys.readouterr()
    # the preset's values given explicitly: the same plan, the same run (finished: nothing to train)
    assert main(["train", "--out", out, "--resume", "--lr", "0.2", "--method", "rewa", "--weight-decay", "0.01"]) == 0
    assert "is finished (2 of 2 epochs): nothing to train" in capsys.readouterr().err
    assert main(["train", "--out", out, "--resume", "--preset", "rewa-recipe", "--epochs", "2"]) == 0
    capsys.readouterr()
    assert main(["train", "--out", out, "--resume", "--grad-clip-norm", "0.5"]) == 2
    assert "grad_clip_norm=0.5 (run: 1.0)" in capsys.readouterr().err


def test_your_own_module_and_loss_on_your_own_data_through_rewa_train(tmp_path):
    import rewa

    class Net(torch.nn.Module):  # a module of the user's, not one of make_model's
        def __init__(self):
            super().__init__()
            self.hidden = torch.nn.Linear(12, 32)
            self.head = torch.nn.Linear(32, 3)

        def forward(self, x):
            return self.head(torch.relu(self.hidden(x.flatten(1))))

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(600, 2, 6, generator=gen)
    y = x[:, 0, :3].argmax(1)
    data = torch.utils.data.TensorDataset(x, y)
    calls = []

    def loss(logits, labels):
        calls.append(len(labels))
        return torch.nn.functional.cross_entropy(logits, labels)

    torch.manual_seed(0)
    net = Net()
    config = rewa.TrainConfig(epochs=30, out=str(tmp_path / "run"), progress=False, figures=False)
    result = rewa.train(config, model=net, train_data=data, test_data=data, loss=loss)
    assert isinstance(result, rewa.TrainResult) and result.model is net and calls
    assert result.summary["test_accuracy"] > 0.8 and result.summary["model"] == "module Net"
    record = _strict_json((tmp_path / "run" / "config.json").read_text())
    assert record["plan"]["model"] == "module Net" and record["plan"]["num_classes"] == 3
    # the same module class resumes its own run; the finished run has nothing left to train
    again = rewa.train(dataclasses.replace(config, resume=True), model=Net(), train_data=data, test_data=data)
    assert all(torch.equal(a, b) for a, b in zip(again.model.state_dict().values(), net.state_dict().values()))
    with pytest.raises(TypeError, match="model must be an nn.Module"):
        rewa.train(config, model="mlp")


def test_a_run_recorded_before_a_new_option_existed_resumes_at_its_default(tmp_path, capsys):
    """A config.json without a field added since (its run behaved as the field's default) resumes;
    asking for a non-default value of that field on resume is refused, naming it."""
    out = tmp_path / "run"
    quick = ["--epochs", "1", "--max-steps-per-epoch", "2", "--no-progress", "--no-figures"]
    assert main(["train", "--method", "sgd", "--out", str(out), *quick]) == 0
    path = out / "config.json"
    record = _strict_json(path.read_text())
    for part in ("config", "plan"):
        for name in ("norm", "transform"):
            assert name in record[part], (part, name)
            del record[part][name]
    path.write_text(json.dumps(record, indent=1))
    capsys.readouterr()
    assert main(["train", "--out", str(out), "--resume"]) == 0
    assert "is finished (1 of 1 epochs): nothing to train" in capsys.readouterr().err
    assert main(["train", "--out", str(out), "--resume", "--norm", "sparsify"]) == 2
    assert "norm='sparsify' (run: 'dense')" in capsys.readouterr().err
