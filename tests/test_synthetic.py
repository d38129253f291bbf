"""The batched sweep engine of Section 4.1 against the ReWA optimizer, run one at a time."""

from __future__ import annotations

import json
import math

import pytest
import torch

from rewa.paper.synthetic import (
    THRESHOLDS,
    Method,
    SyntheticConfig,
    decay_from_appendix,
    figure1_methods,
    figure2_panels,
    make_problem,
    run_figure,
    run_one_at_a_time,
    run_sweep,
)

TINY = SyntheticConfig(d=40, n_train=50, n_test=60, batch_size=10, epochs=2, lr=3e-3, dtype="float64")

METHODS = [
    Method(K=9, M=5),  # odd M: the |y|^M of Remark C.3
    Method(K=3, M=0, weight_decay=0.1),
    Method(K=5, M=2, eps=1e-3, weight_decay=0.5),
    Method(K=1, M=0, weight_decay=0.0, l1=0.25),  # SGD-l1
    Method(K=2.5, M=1.5, weight_decay=0.0),  # real K and M
]


def _final_weights(result):
    return {(r.method, r.seed): r.w0 for r in result.runs}


def test_batched_engine_matches_the_optimizer_one_at_a_time():
    """float64, 10 steps (2 epochs, last batch included): every run agrees with ReWA + autograd."""
    result = run_sweep(METHODS, seeds=(0, 7), config=TINY, progress=False)
    # weights of every coordinate, not only w0: rerun the sweep's last state via w0 and sparsity
    for run in result.runs:
        reference = run_one_at_a_time(run.method, run.seed, TINY)
        assert math.isclose(run.w0, float(reference[0]), rel_tol=1e-10, abs_tol=1e-14), run.method.label
        assert math.isclose(run.max_other, float(reference[1:].abs().max()), rel_tol=1e-10), run.method.label
        below = {t: float((reference.abs() < t).double().mean()) for t in THRESHOLDS}
        assert run.below == pytest.approx(below, abs=1 / TINY.d)  # a coordinate may sit on a threshold


def test_runs_do_not_depend_on_the_other_runs_of_the_sweep():
    both = _final_weights(run_sweep(METHODS[:2], seeds=(0, 1), config=TINY, progress=False))
    alone = _final_weights(run_sweep(METHODS[1:2], seeds=(1,), config=TINY, progress=False))
    assert both[(METHODS[1], 1)] == pytest.approx(alone[(METHODS[1], 1)], rel=1e-12)


def test_checkpoint_resume_gives_the_uninterrupted_result(tmp_path):
    config = TINY
    full = run_sweep(METHODS[:2], (0,), config, progress=False)
    path = tmp_path / "sweep.ckpt"
    first = run_sweep(
        METHODS[:2], (0,), SyntheticConfig(**{**TINY.__dict__, "epochs": 1}), progress=False, checkpoint=path
    )
    assert first.resumed_from_epoch == 0 and path.exists()
    # A checkpoint of another sweep (different epochs) is not used...
    rerun = run_sweep(METHODS[:2], (0,), config, progress=False, checkpoint=path)
    assert rerun.resumed_from_epoch == 0
    # ... but the finished one is: nothing is redone.
    again = run_sweep(METHODS[:2], (0,), config, progress=False, checkpoint=path)
    assert again.resumed_from_epoch == config.epochs
    assert _final_weights(again) == _final_weights(full)


def test_resume_mid_sweep(tmp_path, monkeypatch):
    """Interrupt after epoch 1 of 2 and resume: identical to the uninterrupted run."""
    import rewa.paper.synthetic.engine as synthetic  # the engine draws each epoch's order

    full = run_sweep(METHODS[:1], (3,), TINY, progress=False)
    path = tmp_path / "s.ckpt"
    calls = {"n": 0}
    real_order = synthetic.epoch_order

    def interrupting_order(seed, epoch, n):
        if epoch == 1:
            raise KeyboardInterrupt
        return real_order(seed, epoch, n)

    monkeypatch.setattr(synthetic, "epoch_order", interrupting_order)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(METHODS[:1], (3,), TINY, progress=False, checkpoint=path, checkpoint_every=0)
    monkeypatch.setattr(synthetic, "epoch_order", real_order)
    resumed = run_sweep(METHODS[:1], (3,), TINY, progress=False, checkpoint=path)
    assert resumed.resumed_from_epoch == 1
    assert _final_weights(resumed) == _final_weights(full)
    del calls


def test_progress_without_tqdm_prints_to_stderr(capsys):
    run_sweep(METHODS[:1], (0,), TINY, progress=True)
    err = capsys.readouterr().err
    try:
        import tqdm  # noqa: F401
    except ImportError:
        assert f"epoch {TINY.epochs}/{TINY.epochs}" in err and "ETA" in err


def test_quick_figure2_writes_csv_json_and_png(tmp_path):
    pytest.importorskip("sklearn")
    config = SyntheticConfig(d=60, n_train=50, n_test=50, epochs=3, lr=2e-3)
    result = run_figure(2, "quick", seeds=(0, 1), out_dir=tmp_path, progress=False, config=config)
    names = {p.name for p in tmp_path.iterdir()}
    assert {"figure2_quick_runs.csv", "figure2_quick_summary.csv", "figure2_quick.json"} <= names
    data = json.loads((tmp_path / "figure2_quick.json").read_text())
    labels = {row["label"] for row in data["summary"]}
    assert any(label.startswith("Lasso") for label in labels) and any("SGD-l1" in label for label in labels)
    assert len(data["runs"]) == 2 * (len(result.sweep.methods) + 1)
    from rewa.paper.plotting.synthetic import plot_figure2, save_figures

    fig = plot_figure2(result)
    assert len(fig.axes) == 4
    (png,) = save_figures(result, tmp_path)
    assert png.stat().st_size > 10_000


def test_figure1_heat_map_leaves_invalid_cells_blank():
    from rewa.paper.plotting.synthetic import plot_figure1

    config = SyntheticConfig(d=30, n_train=25, n_test=30, epochs=1, lr=1e-3)
    result = run_figure(1, "quick", seeds=(0,), progress=False, config=config)
    assert len(result.sweep.methods) == 26
    image = plot_figure1(result).axes[0].images[0].get_array()
    assert image.mask.sum() == 36 - 26  # M > K - 1


def test_paper_grid_and_units():
    assert len(figure1_methods()) == 26
    assert all(m.M <= m.K - 1 for m in figure1_methods())
    panels = figure2_panels()
    assert [m.weight_decay for m in panels["d"]] == pytest.approx([0.05, 0.125, 0.25, 0.5])
    assert decay_from_appendix(5e-5) == 0.25 and decay_from_appendix(1e-5) == pytest.approx(0.05)
    sgd_l1 = panels["a"][1]
    assert (sgd_l1.K, sgd_l1.M, sgd_l1.weight_decay, sgd_l1.l1) == (1, 0, 0.0, 0.25)


def test_the_data_follow_appendix_d1():
    config = SyntheticConfig(d=50, n_train=4000, n_test=10)
    X, target, w_init = make_problem(0, config)
    residual = target - X[:, 0]
    assert abs(float(residual.std()) - 1.0) < 0.05  # noise N(0, 1)
    assert float(w_init.abs().max()) <= 1 / math.sqrt(50)


@pytest.mark.parametrize(
    "bad, message",
    [
        (dict(K=0.5), r"K=0.5 must be in \[1, 256\]"),
        (dict(K=3, M=4), r"M=4 must be in \[0, K-1\]"),
        (dict(weight_decay=-1), "weight_decay=-1 must be >= 0"),
        (dict(l1=-0.1), "l1=-0.1 must be >= 0"),
    ],
)
def test_bad_methods_name_the_value(bad, message):
    with pytest.raises(ValueError, match=message):
        Method(**bad)


def test_bad_config_and_sweep_inputs():
    with pytest.raises(ValueError, match="batch_size=30 must be <= n_train=20"):
        SyntheticConfig(n_train=20, batch_size=30)
    with pytest.raises(ValueError, match="scale='huge'"):
        SyntheticConfig.scale("huge")
    with pytest.raises(ValueError, match="seeds has duplicates"):
        run_sweep(METHODS[:1], (0, 0), TINY, progress=False)
    with pytest.raises(ValueError, match="figure=3"):
        run_figure(3)


def test_float32_engine_runs_the_paper_dtype():
    config = SyntheticConfig(**{**TINY.__dict__, "dtype": "float32"})
    result = run_sweep(METHODS[:2], (0,), config, progress=False)
    for run in result.runs:
        reference = run_one_at_a_time(run.method, run.seed, config)
        assert math.isclose(run.w0, float(reference[0]), rel_tol=1e-4, abs_tol=1e-7)
    assert torch.get_default_dtype() == torch.float32
