"""rewa generate: a sample from a trained, pruned text run; unknown prompt characters; bad run
directories refused with one line naming them."""

from __future__ import annotations

import json
import shutil
import warnings

import pytest

from rewa.cli import main
from rewa.experiments.train import TrainConfig, train
from rewa.training.generate import generate_text, load_language_model


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("gen") / "run"
    config = TrainConfig(
        dataset="text",
        context=32,
        model_options=("layers=1", "heads=2", "width=32"),
        method="adamw",
        lr=3e-3,
        epochs=2,
        batch_size=32,
        max_steps_per_epoch=25,
        prune_sparsity=0.7,
        finetune_epochs=1,
        finetune_lr=1e-3,
        eval_batch_size=512,
        sweep_thresholds=(0.0,),
        out=str(out),
        progress=False,
        figures=False,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        train(config)
    return out


def _generate(argv, capsys):
    code = main(["generate", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_generation_from_a_pruned_run(run_dir, capsys):
    argv = [str(run_dir), "--prompt", "def ", "--max-new-tokens", "40", "--seed", "3"]
    code, out, err = _generate(argv, capsys)
    assert code == 0, err
    assert out.startswith("def ") and len(out) == len("def ") + 40 + 1  # + the newline
    assert "sparsity of the sparsified matrices 70.0%" in err and "not finished" not in err
    assert _generate(argv, capsys)[1] == out  # the same seed, the same text
    greedy = [str(run_dir), "--prompt", "def ", "--max-new-tokens", "20", "--temperature", "0"]
    assert _generate(greedy, capsys)[1] == _generate([*greedy, "--seed", "9"], capsys)[1]


def test_generation_can_prune_a_copy_further(run_dir, capsys):
    code, out, err = _generate([str(run_dir), "--max-new-tokens", "10", "--sparsity", "0.95"], capsys)
    assert code == 0 and "95.0%" in err and len(out) == 10 + 1  # the sample and the newline


def test_a_prompt_with_unknown_characters_is_noted_not_dropped(run_dir, capsys):
    code, out, err = _generate([str(run_dir), "--prompt", "x = \u00fc\u20ac", "--max-new-tokens", "5"], capsys)
    assert code == 0 and out.startswith("x = \u00fc\u20ac")
    assert "unknown id" in err and "'\u00fc'" in err and "'\u20ac'" in err
    run = load_language_model(run_dir)
    assert run.vocab.encode("\u00fc")[0] == 0 and len(generate_text(run, "\u00fc\u00fc", max_new_tokens=3)) == 3


def test_bad_run_directories_are_refused_naming_them(run_dir, tmp_path, capsys):
    code, _, err = _generate([str(tmp_path / "missing")], capsys)
    assert code == 2 and "no such directory" in err and "missing" in err
    code, _, err = _generate([str(tmp_path)], capsys)
    assert code == 2 and "no config.json" in err
    no_vocab = tmp_path / "no_vocab"
    shutil.copytree(run_dir, no_vocab)
    (no_vocab / "vocab.json").unlink()
    code, _, err = _generate([str(no_vocab)], capsys)
    assert code == 2 and "has no vocab.json" in err
    bad_vocab = tmp_path / "bad_vocab"
    shutil.copytree(run_dir, bad_vocab)
    (bad_vocab / "vocab.json").write_text(json.dumps({"format": "rewa-char-vocab", "unknown_id": 0, "chars": ["a"]}))
    code, _, err = _generate([str(bad_vocab)], capsys)
    assert code == 2 and "not this run's vocabulary" in err
    damaged = tmp_path / "damaged"
    shutil.copytree(run_dir, damaged)
    data = bytearray((damaged / "checkpoint.pt").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (damaged / "checkpoint.pt").write_bytes(bytes(data))
    code, _, err = _generate([str(damaged)], capsys)
    assert code == 2 and "checkpoint.pt" in err and err.count("\n") == 1


def test_a_classifier_run_is_not_a_language_model(tmp_path, capsys):
    out = tmp_path / "digits"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        train(TrainConfig(epochs=1, max_steps_per_epoch=2, out=str(out), progress=False, figures=False))
    code, _, err = _generate([str(out)], capsys)
    assert code == 2 and "model 'mlp'" in err and "needs a gpt run" in err


@pytest.mark.parametrize("argv", [["--max-new-tokens", "-1"], ["--temperature", "-0.5"], ["--sparsity", "1"]])
def test_bad_options_are_refused(run_dir, argv, capsys):
    with pytest.raises(SystemExit) as info:
        main(["generate", str(run_dir), *argv])
    assert info.value.code == 2
