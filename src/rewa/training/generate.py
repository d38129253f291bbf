"""Text from a trained language-model run: ``rewa generate RUN_DIR --prompt "..."``.

The run directory of ``rewa train --dataset text`` holds what sampling needs, none of it
pickled: ``config.json`` (the model's sizes), ``vocab.json`` (the characters) and
``checkpoint.pt`` (read by :func:`rewa.training.files.load_checkpoint`, i.e.
``torch.load(weights_only=True)`` after its checksum matched). A pruned run's checkpoint holds
its zeros, so the sample shows what that sparsity costs; ``sparsity=`` prunes a dense run's
copy (global magnitude over the sparsified matrices) to see the same without training again.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ..experiments.gpt import GPT
from ..experiments.models import make_model
from ..experiments.text import CharVocab
from .config import parse_model_options
from .files import RunFileError, load_checkpoint, read_json
from .run_dir import read_record

__all__ = ["LanguageModelRun", "load_language_model", "generate_text"]


@dataclass
class LanguageModelRun:
    model: GPT
    vocab: CharVocab
    epoch: int  # the checkpoint's epoch
    total_epochs: int


def load_language_model(run_dir, *, device="cpu") -> LanguageModelRun:
    """The GPT and vocabulary of the run in ``run_dir`` (eval mode, on ``device``).

    Raises ``ValueError`` (:class:`~rewa.training.files.RunFileError` for its files) naming the
    directory or the file: not a directory, not a run of ``rewa train``, not a ``gpt`` run,
    no vocabulary or checkpoint, a file that does not fit the model.
    """
    root = Path(run_dir)
    where = repr(str(run_dir))
    if not root.is_dir():
        raise ValueError(f"RUN_DIR {where}: no such directory (give the --out of a rewa train run on text)")
    if not (root / "config.json").is_file():
        raise ValueError(f"RUN_DIR {where} holds no config.json: it is not a run directory of rewa train")
    plan = read_record(root)["plan"]
    if plan.get("model") != "gpt":
        raise ValueError(
            f"RUN_DIR {where} is a run of model {plan.get('model')!r} on {plan.get('dataset')!r}; "
            "rewa generate needs a gpt run (rewa train --dataset text --model gpt)"
        )
    for name in ("vocab.json", "checkpoint.pt"):
        if not (root / name).is_file():
            raise ValueError(
                f"RUN_DIR {where} has no {name}: the run has not saved an epoch yet, or the file was removed"
            )
    vocab = CharVocab.from_json(
        read_json(root / "vocab.json", what="the run's vocabulary"), repr(str(root / "vocab.json"))
    )
    try:
        shape = tuple(int(s) for s in plan["data"]["input_shape"])
        classes = int(plan["num_classes"])
        model = make_model("gpt", shape, classes, **parse_model_options(plan.get("model_options", [])))
    except (KeyError, TypeError, ValueError) as error:
        raise RunFileError(f"{str(root / 'config.json')!r} does not describe a gpt ({error})") from None
    if classes != len(vocab):
        raise RunFileError(
            f"{str(root / 'vocab.json')!r} holds {len(vocab)} ids, the run's model {classes}: not this run's vocabulary"
        )
    path = root / "checkpoint.pt"
    checkpoint = load_checkpoint(path, map_location=device)
    state = checkpoint.get("model")
    if not isinstance(state, dict):
        raise RunFileError(f"{str(path)!r} holds no model weights")
    if any(".parametrizations." in k for k in state):
        raise ValueError(
            f"{str(path)!r} holds a reparameterized model (method {plan.get('method')!r}); "
            "rewa generate reads runs of the methods that train the weights directly"
        )
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        first = str(error).splitlines()[0]
        raise RunFileError(f"{str(path)!r} does not fit the run's gpt ({first})") from None
    total = int(plan.get("epochs", 0)) + int(plan.get("finetune_epochs", 0))
    assert isinstance(model, GPT)  # make_model("gpt", ...) builds one
    return LanguageModelRun(model.to(device).eval(), vocab, int(checkpoint.get("epoch", 0)), total)


def generate_text(
    run: LanguageModelRun,
    prompt: str,
    *,
    max_new_tokens: int = 200,
    temperature: float = 0.8,
    seed: int = 0,
) -> str:
    """``max_new_tokens`` characters sampled after ``prompt`` (temperature 0: the most likely
    each time; the same seed gives the same text). Characters of the prompt outside the
    vocabulary enter the model as the unknown id. An empty prompt starts from a newline (or the
    unknown id where the text had none)."""
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 0:
        raise ValueError(f"max_new_tokens={max_new_tokens!r} must be an integer >= 0")
    if not (isinstance(temperature, (int, float)) and temperature >= 0 and temperature < float("inf")):
        raise ValueError(f"temperature={temperature!r} must be a finite number >= 0 (0: greedy)")
    device = next(run.model.parameters()).device
    ids = run.vocab.encode(prompt if prompt else "\n")
    generator = torch.Generator(device=device).manual_seed(seed)
    out = run.model.generate(ids[None].to(device), max_new_tokens, temperature=temperature, generator=generator)
    return run.vocab.decode(out[0, len(ids) :].tolist())
