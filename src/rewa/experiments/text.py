"""Character-level language modelling data: the ``text`` dataset of :func:`rewa.train`.

The text is Python's own ``pydoc_data.topics`` (the documentation topics ``help()`` shows, about
465,000 characters of English and code, on every Python install; nothing is downloaded), or a
user's UTF-8 text file. It is cut into three contiguous parts, in order: training (the first
90%), validation (the next 5%) and test (the last 5%), so no test character was ever seen next
to a training one. The vocabulary is the sorted set of characters of the training part, plus one
*unknown* id (0): a character that appears only in the validation or test part (or in a prompt
given to ``rewa generate``) maps to it, and is counted as a miss, never dropped.

A sample is a window of ``context`` consecutive token ids; its target is the same window shifted
by one (the next character at each position). Windows do not overlap (stride ``context``), so an
epoch reads each training character once; they are views of one token stream (no copy):
:class:`rewa.experiments.data.TokenWindows`, cut by :func:`rewa.experiments.data.text_splits`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch
from torch import Tensor

__all__ = [
    "TEXT_SPLITS",
    "UNKNOWN_ID",
    "CharVocab",
    "builtin_text",
    "min_characters",
    "read_text_file",
]

TEXT_SPLITS = (0.90, 0.05, 0.05)  # train, validation, test: contiguous, in this order
UNKNOWN_ID = 0
UNKNOWN_SHOWN = "\ufffd"  # what an unknown id decodes to (the Unicode replacement character)
VOCAB_FORMAT = "rewa-char-vocab"


class CharVocab:
    """Characters <-> ids: id 0 is *unknown*, the training characters (sorted) are 1..n."""

    def __init__(self, chars: Sequence[str]):
        chars = list(chars)
        bad = [c for c in chars if not (isinstance(c, str) and len(c) == 1)]
        if bad:
            raise ValueError(f"vocabulary entries must be single characters, got {bad[0]!r}")
        if len(set(chars)) != len(chars):
            raise ValueError("vocabulary characters must be distinct")
        self.chars = chars
        self.index = {c: i + 1 for i, c in enumerate(chars)}

    @classmethod
    def from_text(cls, text: str) -> CharVocab:
        return cls(sorted(set(text)))

    def __len__(self) -> int:
        """The number of ids, the unknown one included (the model's output size)."""
        return len(self.chars) + 1

    def encode(self, text: str) -> Tensor:
        return torch.tensor([self.index.get(c, UNKNOWN_ID) for c in text], dtype=torch.int64)

    def unknown(self, text: str) -> list[str]:
        """The distinct characters of ``text`` outside the vocabulary, in order of appearance."""
        return list(dict.fromkeys(c for c in text if c not in self.index))

    def decode(self, ids: Iterable[int]) -> str:
        return "".join(self.chars[i - 1] if 0 < i <= len(self.chars) else UNKNOWN_SHOWN for i in ids)

    def to_json(self) -> dict:
        return {"format": VOCAB_FORMAT, "version": 1, "unknown_id": UNKNOWN_ID, "chars": self.chars}

    @classmethod
    def from_json(cls, record, where: str = "vocabulary") -> CharVocab:
        """The vocabulary of a :meth:`to_json` record (as read from ``vocab.json``); a record of
        another shape is refused with a message naming ``where``."""
        if not isinstance(record, dict) or record.get("format") != VOCAB_FORMAT:
            raise ValueError(f"{where} is not a character vocabulary of rewa (format {VOCAB_FORMAT!r})")
        if record.get("unknown_id") != UNKNOWN_ID or not isinstance(record.get("chars"), list):
            raise ValueError(f"{where}: needs unknown_id {UNKNOWN_ID} and a list of characters")
        try:
            return cls(record["chars"])
        except ValueError as error:
            raise ValueError(f"{where}: {error}") from None


def builtin_text() -> str:
    """The text of ``pydoc_data.topics`` (topics in sorted order, joined by blank lines)."""
    from pydoc_data.topics import topics

    return "\n\n".join(topics[k] for k in sorted(topics))


def min_characters(context: int) -> int:
    """The shortest text whose validation and test parts each hold one window of ``context``."""
    return math.ceil((context + 1) / min(TEXT_SPLITS[1:]))


def read_text_file(path: str, context: int) -> str:
    """The UTF-8 text of the file ``path``; refused (naming the file): missing, a directory,
    binary (a NUL byte or not UTF-8), empty, or too short for ``context``."""
    p = Path(path).expanduser()
    where = repr(str(path))
    if not p.exists():
        raise FileNotFoundError(f"dataset 'text': data_dir={where}: no such file. Nothing is downloaded.")
    if not p.is_file():
        raise ValueError(
            f"dataset 'text': data_dir={where} is not a file; give a UTF-8 text file (or nothing: Python's docs)"
        )
    raw = p.read_bytes()
    if not raw:
        raise ValueError(f"dataset 'text': {where} is empty")
    nul = raw.find(b"\x00")
    if nul >= 0:
        raise ValueError(f"dataset 'text': {where} is binary (a NUL byte at offset {nul}), not text")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(
            f"dataset 'text': {where} is not UTF-8 text (byte {error.start}: {raw[error.start : error.start + 1]!r})"
        ) from None
    text = text.removeprefix("\ufeff")  # a byte-order mark is not part of the text
    need = min_characters(context)
    if len(text) < need:
        raise ValueError(
            f"dataset 'text': {where} holds {len(text)} characters; context={context} needs at least {need} "
            f"(each of validation and test, {TEXT_SPLITS[1]:.0%}, must hold one window of context + 1)"
        )
    return text
