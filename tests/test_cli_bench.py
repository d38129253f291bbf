"""``rewa bench``: the command runs and prints its tables (tiny sizes; timings not checked)."""

from __future__ import annotations

import torch

from rewa import cli
from rewa.cli_bench import _STREAMS, step_table, table2


def test_bench_table2_runs_both_methods(capsys):
    assert cli.main(["bench", "--no-steps", "--table2", "--epochs", "1", "--d", "50"]) == 0
    out = capsys.readouterr().out
    assert "| ReWA (K=9, M=2) |" in out and "| SGD-l1" in out


def test_table2_memory_is_one_latent_for_rewa_and_nothing_for_sgd():
    rewa_row, sgd_row = table2(epochs=1, d=40)
    assert rewa_row["state_bytes"] == rewa_row["weights_bytes"] == 40 * 4
    assert sgd_row["state_bytes"] == 0


def test_step_table_rows_and_state_memory(monkeypatch):
    import rewa.cli_bench as bench

    monkeypatch.setattr(bench, "resnet18_cifar_shapes", lambda: [(8, 4), (8,)])
    torch.manual_seed(0)
    rows = step_table(["float32"], ["loop"], repeats=1, rounds=1)
    by_name = {r["optimizer"]: r for r in rows}
    assert {"copy", "SGD", "AdamW", "ReWA", "ReWA-AdamW", "pWD-SGD"} <= by_name.keys()
    # y + momentum buffer; y + two moments; torch SGD's buffer; AdamW's two moments
    assert by_name["ReWA"]["state_bytes_per_weight"] == 8
    assert by_name["ReWA-AdamW"]["state_bytes_per_weight"] == 12
    assert by_name["SGD"]["state_bytes_per_weight"] == 4
    assert by_name["AdamW"]["state_bytes_per_weight"] == 8
    assert all(r["bandwidth_fraction"] > 0 for r in rows if r["optimizer"] in _STREAMS)
