"""benchmarks/transformer.py: the fair protocol on the GPT runs end to end at its smoke scale."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest

BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "transformer.py"


def _module():
    pytest.importorskip("optuna")
    if "transformer_benchmark" not in sys.modules:
        spec = importlib.util.spec_from_file_location("transformer_benchmark", BENCHMARK)
        module = importlib.util.module_from_spec(spec)
        sys.modules["transformer_benchmark"] = module
        spec.loader.exec_module(module)
    return sys.modules["transformer_benchmark"]


def test_budgets_become_strengths_over_the_schedule():
    bench = _module()
    method, hp = bench.hyperparameters("pwd-adamw p=0.5", {"lr": 1e-3, "budget:lambda_p": 0.1}, 100)
    assert method == "pwd-adamw" and hp["p"] == 0.5
    assert hp["lambda_p"] == pytest.approx(0.1 / (1e-3 * sum(bench.lr_factors(100))))
    factors = bench.lr_factors(100)
    assert factors[0] == pytest.approx(1 / 5) and factors[4] == 1.0 and factors[-1] < 0.01  # warm-up, then cosine


def test_smoke_scale_runs_every_stage(tmp_path):
    bench = _module()
    assert bench.main(["--scale", "smoke", "--out", str(tmp_path), "--no-figures"]) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    methods = results["methods"]
    assert set(methods) == set(bench.SCALES["smoke"]["methods"])
    for r in methods.values():
        assert len(r["trials"]) == 2  # the same budget for every method
        for k, i in r["chosen"].items():  # chosen on validation only
            vals = [t["result"][k]["val"] for t in r["trials"]]
            assert vals[i] == min(vals)
            assert len(r["reruns"][str(i)]) == 2
            s = r["summary"][k]
            assert s["test_ppl"][0] == pytest.approx(sum(math.exp(run[k]["test"]) for run in r["reruns"][str(i)]) / 2)
        assert set(r["summary"]) == {"dense", "50%", "70%", "80%", "90%", "95%"}
        assert r["median_step_seconds"] > 0
    table = (tmp_path / "table.md").read_text()
    assert "| magnitude pruning |" in table and "time / step vs AdamW" in table and "- 90%: best" in table


def test_a_fixed_configuration_runs_over_the_seeds_without_a_search(tmp_path):
    bench = _module()
    argv = ["--scale", "smoke", "--out", str(tmp_path), "--fixed", "adamw:lr=0.003,weight_decay=0.01"]
    assert bench.main(argv) == 0
    row = json.loads((tmp_path / "fixed.json").read_text())["fixed"][0]
    assert row["method"] == "adamw" and len(row["runs"]) == 2 and row["90%"]["test_ppl"][0] > 1
    with pytest.raises(SystemExit):
        bench.main(["--scale", "smoke", "--out", str(tmp_path), "--fixed", "adamw:lr=0.003"])
