"""`rewa reproduce theory --quick`: every Section 3 check passes and its files are written."""

from __future__ import annotations

import json
import math

import pytest

from rewa.cli import main
from rewa.paper.theory import (
    CHECKS,
    ClaimRecord,
    TheoryConfig,
    TheoryResults,
    run_theory,
    summary_table,
)


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("theory")
    code = main(["reproduce", "theory", "--quick", "--out", str(out)])
    return code, out


def test_quick_run_passes_every_claim(quick_run, capsys):
    code, out = quick_run
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["passed"] is True
    assert summary["config"]["quick"] is True
    failed = [r["claim"] for r in summary["records"] if not r["passed"]]
    assert failed == []
    assert [r["claim"] for r in summary["records"]] == [
        "Lemma 3.1",
        "Example 3.2",
        "Theorem 3.3",
        "Theorem 3.7",
        "Example 3.8 / Theorem 3.9",
        "Theorem 3.10 / Prop. 3.11",
        "Example 3.12",
    ]


def test_quick_run_writes_a_record_per_claim_and_the_figures(quick_run):
    _, out = quick_run
    for name in (
        "lemma_3_1",
        "example_3_2",
        "theorem_3_3",
        "theorem_3_7",
        "example_3_8",
        "theorem_3_10",
        "example_3_12",
    ):
        record = json.loads((out / f"{name}.json").read_text())
        assert set(record) >= {"claim", "statement", "checked", "inputs", "measured", "passed", "summary"}
        assert record["passed"] is True
        for figure in record["figures"]:
            png = out / f"{figure}.png"
            assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "summary.md").read_text().startswith("| claim | measured | verdict |")


def test_quick_run_numbers_match_the_paper(quick_run):
    _, out = quick_run
    example = json.loads((out / "example_3_2.json").read_text())
    for run in example["measured"]["runs"]:
        assert run["final_error_adaptive"] <= run["final_bound"]
        assert run["min_error_non_adaptive"] >= 1
    decay = json.loads((out / "example_3_8.json").read_text())
    d, R = decay["inputs"]["d"], decay["inputs"]["R"]
    for run in decay["measured"]["runs"]:
        if run["weight_decay"]:
            assert run["final_nonzeros"] == 0
        else:
            assert run["min_nonzeros"] >= d - R and run["null_coordinates_unchanged"]
    radii = json.loads((out / "theorem_3_10.json").read_text())
    for row in radii["measured"]["rows"]:
        predicted, measured = (float(row["predicted"]), float(row["measured"]))
        if math.isfinite(predicted) and predicted < 100:
            assert measured == pytest.approx(predicted, rel=1e-3)


def test_summary_table_marks_failures():
    record = ClaimRecord(
        key="x", claim="Claim X", statement="s", checked="c", inputs={}, measured={}, passed=False, summary="|a| = 1"
    )
    table = summary_table(TheoryResults(config=TheoryConfig(quick=True), records=[record], seconds=0.0))
    assert "| Claim X | \\|a\\| = 1 | FAIL |" in table


def test_run_theory_rejects_unknown_claims():
    with pytest.raises(ValueError, match=r"only=\['Lemma 9.9'\] are not claims"):
        run_theory(TheoryConfig(quick=True), only=["Lemma 9.9"])
    assert len(CHECKS) == 7


def test_config_validation():
    with pytest.raises(ValueError, match=r"seed=-1 must be a non-negative integer"):
        TheoryConfig(seed=-1)
