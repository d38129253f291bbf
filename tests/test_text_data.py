"""The text dataset: Python's docs or a user's UTF-8 file, contiguous splits, a character
vocabulary from the training part with an unknown id, next-token windows."""

from __future__ import annotations

import pytest
import torch

from rewa.experiments.data import DATASETS, TokenWindows, load_dataset, text_splits
from rewa.experiments.text import UNKNOWN_ID, CharVocab, builtin_text, min_characters


def test_builtin_text_is_python_docs_split_in_order():
    text = builtin_text()
    assert len(text) > 400_000
    bundle = load_dataset("text", context=64)
    assert "text" in DATASETS and bundle.targets == "next-token"
    assert bundle.input_shape == (64,) and bundle.num_classes == len(bundle.vocab)
    n_train, n_val = int(len(text) * 0.9), int(len(text) * 0.05)
    # contiguous: the first training window is the text's start, the first validation window
    # starts where training ends, the test part is the rest
    assert bundle.vocab.decode(bundle.train.x[0].tolist()) == text[:64]
    assert bundle.vocab.decode(bundle.val.x[0].tolist()) == text[n_train : n_train + 64]
    assert bundle.vocab.decode(bundle.test.x[0].tolist()) == text[n_train + n_val : n_train + n_val + 64]
    # the vocabulary is the training part's characters, plus the unknown id
    assert set(bundle.vocab.chars) == set(text[:n_train]) and len(bundle.vocab) == len(set(text[:n_train])) + 1


def test_windows_have_next_token_targets_and_do_not_copy():
    tokens = torch.arange(1, 22)
    w = TokenWindows(tokens, 5)
    assert w.x.shape == (4, 5) and w.y.shape == (4, 5)
    assert torch.equal(w.y[:, :-1], w.x[:, 1:]) and torch.equal(w.y[:, -1], w.x[:, -1] + 1)
    assert w.x.untyped_storage().data_ptr() == tokens.untyped_storage().data_ptr()  # a view
    assert w.to("cpu").x.shape == (4, 5)


def test_unseen_characters_map_to_the_unknown_id():
    text = "ab" * 2000 + "abz" * 100  # z only after the training part
    train, val, test, vocab = text_splits(text, 8)
    assert vocab.chars == ["a", "b"] and len(vocab) == 3
    assert (test.y == UNKNOWN_ID).any() and not (train.y == UNKNOWN_ID).any()
    assert vocab.encode("abz").tolist() == [1, 2, UNKNOWN_ID]
    assert vocab.unknown("azzy") == ["z", "y"] and vocab.decode([1, 0, 2]) == "a\ufffdb"


def test_vocab_round_trips_as_json_and_refuses_other_records():
    vocab = CharVocab.from_text("hello, world")
    assert CharVocab.from_json(vocab.to_json()).chars == vocab.chars
    with pytest.raises(ValueError, match="not a character vocabulary"):
        CharVocab.from_json({"chars": ["a"]}, "x.json")
    with pytest.raises(ValueError, match="single characters"):
        CharVocab.from_json({**vocab.to_json(), "chars": ["ab"]}, "x.json")


def test_user_text_file_is_read(tmp_path):
    path = tmp_path / "mine.txt"
    path.write_text("é to be or not to be. " * 400, encoding="utf-8")
    bundle = load_dataset("text", str(path), context=16)
    assert "é" in bundle.vocab.chars and bundle.input_shape == (16,)


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "no such file"),
        (b"", "is empty"),
        (b"abc\x00def" * 1000, "binary"),
        (b"\xff\xfe\xfa" * 1000, "not UTF-8"),
        (b"short text", "holds 10 characters"),
    ],
)
def test_bad_text_files_are_refused_naming_them(tmp_path, content, message):
    path = tmp_path / "bad.txt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises((ValueError, FileNotFoundError), match=message) as info:
        load_dataset("text", str(path), context=16)
    assert "bad.txt" in str(info.value)


def test_a_directory_is_not_a_text_file(tmp_path):
    with pytest.raises(ValueError, match="is not a file"):
        load_dataset("text", str(tmp_path), context=16)


def test_minimum_length_follows_the_context():
    assert min_characters(16) == 340
    text_splits("x" * 340, 16)
    with pytest.raises(ValueError, match="needs at least 340"):
        text_splits("x" * 339, 16)
