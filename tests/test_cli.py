import json

from rewa.cli import main


def test_demo_recovers_the_support(capsys):
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "support recovered: yes" in out
    assert "weights with |w| > 1e-06 :     1 of 2000" in out


def test_demo_json(capsys):
    assert main(["demo", "--d", "500", "--epochs", "30", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["config"]["d"] == 500 and record["support_recovered"] is True


def test_demo_bad_input_names_the_value(capsys):
    assert main(["demo", "--M", "9"]) == 2
    assert "M=9.0 must be in [0, K-1] = [0, 8]" in capsys.readouterr().err


def test_reproduce_sparsity_writes_a_record(tmp_path, capsys):
    code = main(["reproduce", "sparsity", "--targets", "0.5", "--epochs", "8", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert "| 50% |" in out
    record = json.loads((tmp_path / "target_sparsity.json").read_text())
    assert record[0]["config"]["target_sparsity"] == 0.5 and 0 <= record[0]["sparsity"] <= 1
    assert_exit_status_says_whether_the_targets_were_met(code, out, record)


def assert_exit_status_says_whether_the_targets_were_met(code, out, record):
    """``rewa reproduce sparsity`` exits 0 when every target is met within 1 point, else 1."""
    met = all(abs(r["sparsity"] - r["config"]["target_sparsity"]) <= 0.01 for r in record)
    assert code == (0 if met else 1), (code, [(r["config"]["target_sparsity"], r["sparsity"]) for r in record])
    assert f"every target met within 1 point: {'yes' if met else 'no'}" in out


def test_reproduce_synthetic_quick(tmp_path, capsys):
    assert main(["reproduce", "synthetic", "--figure", "2", "--seeds", "2", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "ReWA K=9 M=5 lambda=0.25" in out and "Lasso" in out
    assert (tmp_path / "figure2_quick.png").exists()
    assert list(tmp_path.glob("*.csv")) and list(tmp_path.glob("*.json"))
