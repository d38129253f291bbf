"""Every TrainConfig value is checked when the config is built, before any data or model: through
``TrainConfig(...)``, ``resolve_config(file_values=...)`` and ``rewa train --config FILE``, a bad
value gives one ValueError line naming the field and the value."""

from __future__ import annotations

import dataclasses
import json
import math
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest

from rewa.cli import main
from rewa.cli_train import _read_config_file
from rewa.experiments.presets import PRESETS
from rewa.experiments.train import TrainConfig, method_options, parse_schedule, resolve_config

nan, inf = math.nan, math.inf

_BOOLS = ("augment", "bf16", "channels_last", "resume", "progress", "figures")
_POSITIVE_INTS = ("epochs", "batch_size", "eval_batch_size")
_NON_NEGATIVE_INTS = ("finetune_epochs", "zero_M_epochs", "num_workers", "max_steps_per_epoch", "seed")
_SHORTCUTS = ("lr", "momentum", "weight_decay", "K", "M", "eps")
_UNIT_INTERVAL = ("val_fraction", "label_smoothing", "target_sparsity", "prune_sparsity")
_STRINGS = (
    "dataset",
    "data_dir",
    "model",
    "method",
    "lr_schedule",
    "schedule_per",
    "prune_scope",
    "norm",
    "device",
    "out",
)

# (field, bad value, what the message must show of it)
BAD = (
    [(name, bad, repr(bad)) for name in _BOOLS for bad in ("no", "false", "true", 0, 1, None)]
    + [(name, bad, repr(bad)) for name in _POSITIVE_INTS for bad in (0, -1, True, 1.5, 2.0, "3", None)]
    + [(name, bad, repr(bad)) for name in _NON_NEGATIVE_INTS for bad in (-1, True, 0.5, "1", None)]
    + [(name, bad, repr(bad)) for name in _SHORTCUTS for bad in ("0.1", True, nan, inf, -inf, [1])]
    + [(name, bad, repr(bad)) for name in _UNIT_INTERVAL for bad in (-0.1, 1, 1.5, nan, inf, "0.5", False)]
    + [(name, bad, repr(bad)) for name in ("val_fraction", "label_smoothing") for bad in (None,)]
    + [(name, bad, repr(bad)) for name in ("decay_budget", "grad_clip_norm") for bad in (-1.0, nan, inf, "1", True)]
    + [(name, bad, repr(bad)) for name in ("finetune_lr", "target_threshold") for bad in (0, -1e-3, nan, inf, "1")]
    + [("target_threshold", None, "None")]
    + [("finetune_weight_decay", bad, repr(bad)) for bad in (-1e-4, nan, inf, "0", None, True)]
    + [("step_gamma", bad, repr(bad)) for bad in (-1, 0, nan, inf, "0.1", None, True)]
    + [("dist_timeout_s", bad, repr(bad)) for bad in (0, -5, nan, inf, "300", None, True)]
    + [("num_classes", bad, repr(bad)) for bad in (0, -1, True, 2.0, "3")]
    + [("warmup_epochs", bad, repr(bad)) for bad in (-1, nan, inf, 11, "1", None, True)]
    + [(name, bad, repr(bad)) for name in _STRINGS for bad in (3, None, True, ["cpu"])]
    + [
        (name, "nope", "'nope'")
        for name in ("dataset", "model", "method", "lr_schedule", "device", "prune_scope", "norm")
    ]
    + [
        ("sweep_thresholds", "abc", "'abc'"),
        ("sweep_thresholds", ["abc"], "'abc'"),
        ("sweep_thresholds", [0.0, nan], "nan"),
        ("sweep_thresholds", [-1e-3], "-0.001"),
        ("sweep_thresholds", [True], "True"),
        ("sweep_thresholds", [], "()"),
        ("sweep_thresholds", 0.1, "0.1"),
        ("step_milestones", "5", "'5'"),
        ("step_milestones", ["5"], "'5'"),
        ("step_milestones", [1.5], "1.5"),
        ("step_milestones", [True], "True"),
        ("step_milestones", [0], "0"),
        ("step_milestones", [11], "11"),
        ("schedule", "M=0:0,3:2", "'M=0:0,3:2'"),
        ("schedule", [3], "3"),
        ("schedule", ["M"], "'M'"),
        ("schedule", ["M=0:nan"], "nan"),
        ("schedule", ["M=0:0,2:inf"], "inf"),
        ("schedule", ["M=1:0"], "[1]"),
        ("schedule", ["M=0:0", "M=0:1"], "'M'"),
        ("schedule", ["lr=0:0.1"], "lr"),
        ("options", "strength=1", "'strength=1'"),
        ("options", [3], "3"),
        ("options", ["strength"], "'strength'"),
        ("options", ["strength=NaN"], "nan"),
        ("options", ["strength=Infinity"], "inf"),
        ("options", ["strength=1", "strength=2"], "strength"),
        ("options", ["K=5"], "K"),  # with the K shortcut, below
        ("options", ["nope=1"], "nope"),
        ("options", [["strength", nan]], "nan"),
        ("options", [["strength", {"a": 1}]], "{'a': 1}"),
        ("options", [["betas", [0.9, "x"]]], "'x'"),
        ("options", [["betas", [0.9, 1.5]]], "1.5"),
        ("options", ["adam_eps=-1"], "-1"),
        ("options", ["check_finite=3"], "3"),
        # the method's own range checks, run when the config is built
        ("lr", -1, "-1"),
        ("M", 9, "9"),
        ("momentum", 1.5, "1.5"),
        ("K", 0.5, "0.5"),
        ("schedule", ["M=0:0,3:20"], "20"),
        ("schedule", ["foo=0:1"], "'foo'"),
    ]
)
_CONTEXT = {  # the other fields a bad value needs to be the only problem
    "resume": dict(out="run"),
    "finetune_epochs": dict(prune_sparsity=0.5, method="sgd"),
    "prune_sparsity": dict(method="sgd"),
    "options": dict(method="rewa-adamw", K=3),
    "eps": dict(method="rewa"),
}


def _case_id(case):
    name, bad, _ = case
    return f"{name}={bad!r}"


def _check_message(message: str, name: str, shown: str) -> None:
    assert "\n" not in message, message
    assert re.search(rf"\b{name.rstrip('s')}", message), f"{message!r} does not name {name}"
    assert shown in message, f"{message!r} does not show the value {shown}"


def _values(name, bad):
    return {**_CONTEXT.get(name, {}), name: bad}


@pytest.mark.parametrize("case", BAD, ids=_case_id)
def test_a_bad_value_is_refused_when_the_config_is_built(case):
    name, bad, shown = case
    for build in (lambda: TrainConfig(**_values(name, bad)), lambda: resolve_config(file_values=_values(name, bad))):
        with pytest.raises(ValueError) as error:
            build()
        _check_message(str(error.value), name, shown)


def _toml(value) -> str | None:
    """``value`` as a TOML value, or None where TOML has no such value (None)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, (int, float, str)):
        return json.dumps(value)
    if isinstance(value, list):
        items = [_toml(v) for v in value]
        return None if None in items else "[" + ", ".join(items) + "]"
    if isinstance(value, dict):
        items = [f"{k} = {_toml(v)}" for k, v in value.items()]
        return "{" + ", ".join(items) + "}"
    raise AssertionError(value)


def _write(tmp_path: Path, suffix: str, values: dict) -> Path | None:
    path = tmp_path / f"config{suffix}"
    if suffix == ".json":
        path.write_text(json.dumps(values))
        return path
    if suffix == ".toml":
        lines = [f"{k} = {_toml(v)}" for k, v in values.items()]
        if any(line.endswith(" = None") for line in lines):
            return None
        path.write_text("\n".join(lines) + "\n")
        return path
    yaml = pytest.importorskip("yaml")
    path.write_text(yaml.safe_dump(values))
    return path


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a check that let a bad value through would write runs/train here


def _cli(capsys, *argv) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["train", *argv])
    captured = capsys.readouterr()
    assert "config:" not in captured.out, "the config was printed: it passed the checks"
    return code, captured.err


@pytest.mark.parametrize("suffix", [".toml", ".json", ".yaml"])
@pytest.mark.parametrize("case", BAD, ids=_case_id)
def test_a_bad_value_in_a_config_file_is_one_line_and_exit_2(case, suffix, tmp_path, capsys):
    name, bad, shown = case
    path = _write(tmp_path, suffix, _values(name, bad))
    if path is None:
        pytest.skip("TOML has no None")
    code, err = _cli(capsys, "--config", str(path))
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rewa train: error: "), err
    _check_message(lines[0], name, shown)
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_the_command_line_prints_one_line_without_a_traceback(tmp_path):
    """In a fresh process: exit 2, one line, no traceback (TOML's augment = "no" and resume = "false")."""
    for text, name in (('augment = "no"\n', "augment='no'"), ('out = "r"\nresume = "false"\n', "resume='false'")):
        path = tmp_path / "c.toml"
        path.write_text(text)
        result = subprocess.run(
            [sys.executable, "-m", "rewa", "train", "--config", str(path)],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=120,
        )
        assert result.returncode == 2, result
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
        assert name in result.stderr and "must be true or false, got str" in result.stderr
        assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--K", "3", "--options", "K=5"], "K=3.0 and options K=5: give K once"),
        (["--method", "l1-prox", "--options", "strength=1e-5", "strength=1e-4"], "option strength given twice"),
        (["--lr", "nan"], "lr=nan must be a finite number"),
        (["--finetune-lr", "nan"], "finetune_lr=nan must be a finite number > 0"),
        (["--step-gamma", "-1"], "step_gamma=-1.0 must be a finite number > 0"),
        (["--sweep-thresholds", "nan"], "sweep_thresholds[0]=nan must be a finite number >= 0"),
        (["--method", "sgd", "--K", "3"], "K=3.0 is not a hyperparameter of method 'sgd'"),
        (["--method", "sgd", "--options", "K=3"], "option(s) K are not hyperparameters of method 'sgd'"),
        (["--method", "sgd", "--zero-M-epochs", "2"], "zero_M_epochs=2: method 'sgd' has no M"),
        (["--options", "weight_decay=1e-3", "--decay-budget", "0.5"], "decay_budget=0.5 and options weight_decay"),
        (["--schedule", "M=0:0", "M=0:1"], "schedule sets 'M' twice"),
    ],
)
def test_conflicts_and_bad_values_on_the_command_line(argv, message, tmp_path, capsys):
    code, err = _cli(capsys, *argv, "--out", str(tmp_path / "run"))
    assert code == 2 and err.count("\n") == 1 and message in err, err


def test_a_shortcut_in_a_file_and_the_same_option_on_the_command_line_conflict(tmp_path, capsys):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"K": 3}))
    code, err = _cli(capsys, "--config", str(path), "--options", "K=5", "--out", str(tmp_path / "run"))
    assert code == 2 and "K=3 and options K=5" in err


@pytest.mark.parametrize(
    "name, text, message",
    [
        ("c.json", "[1, 2]", "the top level must be a table of config fields (NAME = VALUE), got a list"),
        ("c.json", '"epochs"', "got a str"),
        ("c.json", "{epochs: 3", "is not valid JSON"),
        ("c.json", "", "is not valid JSON"),
        ("c.toml", "epochs = = 3", "is not valid TOML"),
        ("c.toml", "[epochs\n", "is not valid TOML"),
        ("c.yaml", "3", "got a int"),
        ("c.yaml", "- epochs\n- 3\n", "got a list"),
        ("c.yaml", "epochs: [3\n", "is not valid YAML"),
    ],
)
def test_an_unreadable_config_file_is_one_line_naming_the_file(name, text, message, tmp_path, capsys):
    if name.endswith(".yaml"):
        pytest.importorskip("yaml")
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ValueError, match=re.escape(message)) as error:
        _read_config_file(str(path))
    assert repr(str(path)) in str(error.value) and "\n" not in str(error.value)
    code, err = _cli(capsys, "--config", str(path), "--out", str(tmp_path / "run"))
    assert code == 2 and err.count("\n") == 1 and message in err and repr(str(path)) in err


def test_a_config_file_that_is_not_utf8_is_one_line(tmp_path):
    path = tmp_path / "c.toml"
    path.write_bytes(b'method = "\xff"\n')
    with pytest.raises(ValueError, match="is not valid TOML"):
        _read_config_file(str(path))


def test_an_empty_yaml_file_is_no_values(tmp_path):
    pytest.importorskip("yaml")
    path = tmp_path / "c.yaml"
    path.write_text("")
    assert _read_config_file(str(path)) == {}


def test_unknown_config_keys_are_still_refused():
    with pytest.raises(ValueError, match="unknown config field"):
        resolve_config(file_values={"epoch": 3})


def test_options_are_read_and_checked():
    c = TrainConfig(method="rewa-adamw", options=("betas=[0.8, 0.99]", ("check_finite", False)))
    assert method_options(c) == {"betas": [0.8, 0.99], "check_finite": False}
    assert method_options(TrainConfig(method="l1-prox", options=("strength=1e-5",))) == {"strength": 1e-5}


def test_schedule_forms_are_read_and_equal():
    assert parse_schedule(("M=0:0,3:2",)) == parse_schedule((("M", ((0, 0), (3, 2))),)) == {"M": [(0, 0.0), (3, 2.0)]}


def test_every_preset_resolves_and_round_trips_through_json():
    for name in PRESETS:
        c = resolve_config(name)
        assert resolve_config(file_values=json.loads(json.dumps(c.to_dict()))) == c, name


def _random_config(rng: random.Random) -> TrainConfig:
    method = rng.choice(["rewa", "sgd", "l1-prox", "rewa-adamw", "adamw"])
    epochs = rng.randint(1, 40)
    values: dict = dict(
        method=method,
        epochs=epochs,
        batch_size=rng.randint(1, 512),
        seed=rng.randint(0, 2**40),
        val_fraction=rng.choice([0, 0.0, 0.1, rng.random() * 0.99]),
        label_smoothing=rng.random() * 0.5,
        warmup_epochs=rng.choice([0, rng.random() * epochs, rng.randint(0, epochs)]),
        step_gamma=rng.choice([0.1, 1e-300, 2.5, rng.random() + 1e-9]),
        step_milestones=sorted(rng.sample(range(1, epochs + 1), rng.randint(0, min(3, epochs)))),
        sweep_thresholds=[rng.random() / rng.choice([1, 7, 1e5]) for _ in range(rng.randint(1, 5))],
        target_threshold=rng.choice([1e-3, 5e-324, rng.random() + 1e-12]),
        augment=rng.random() < 0.5,
        lr=rng.choice([None, 0.1, 1 / 3, 1e-300]),
        out=rng.choice(["", "runs/x", "ünïcode dir"]),
    )
    if method in ("rewa", "rewa-adamw"):
        values.update(K=rng.choice([None, 3, 9.5]), M=rng.choice([None, 2]))
        values["schedule"] = rng.choice([[], ["weight_decay=0:0,2:1e-4"], [["weight_decay", [[0, 0.0], [1, 1e-3]]]]])
    if method == "l1-prox":
        values["options"] = rng.choice([["strength=1e-5"], [["strength", 0.1 + 0.2]]])
    if method == "rewa-adamw":
        values["options"] = [["betas", [0.9, 0.999]]]
    return resolve_config(file_values=values)


def test_configs_round_trip_through_json_equal():
    """What config.json holds reads back equal (resume compares them with ``!=``)."""
    rng = random.Random(0)
    for _ in range(300):
        c = _random_config(rng)
        back = resolve_config(file_values=json.loads(json.dumps(c.to_dict())))
        assert back == c and back.to_dict() == c.to_dict(), c
        assert hash(back) == hash(c)
        assert dataclasses.replace(c) == c


def test_lists_become_tuples():
    c = TrainConfig(sweep_thresholds=[0.0, 1e-3], schedule=[["weight_decay", [[0, 0.0]]]], step_milestones=[2])
    assert c.sweep_thresholds == (0.0, 1e-3) and c.schedule == (("weight_decay", ((0, 0.0),)),)
    assert c.step_milestones == (2,)
    assert c == TrainConfig(
        sweep_thresholds=(0.0, 1e-3), schedule=(("weight_decay", ((0, 0.0),)),), step_milestones=(2,)
    )
