"""The GPT: shapes, causality, weight tying, options, and which tensors are sparsified."""

from __future__ import annotations

import pytest
import torch

from rewa import sparsity_report
from rewa.experiments.models import MODELS, make_model
from rewa.optim.registry import create_optimizer
from rewa.param_groups import dense_names_by_role, split_parameters
from rewa.sparsity import prune

SMALL = dict(layers=2, heads=2, width=16)


def test_logits_have_shape_batch_context_vocab():
    assert "gpt" in MODELS
    model = make_model("gpt", (12,), 30, **SMALL)
    assert model(torch.randint(0, 30, (3, 12))).shape == (3, 12, 30)
    assert model(torch.randint(0, 30, (3, 5))).shape == (3, 5, 30)  # shorter than the context
    with pytest.raises(ValueError, match="longer than its context 12"):
        model(torch.randint(0, 30, (1, 13)))


def test_defaults_are_small():
    model = make_model("gpt", (128,), 104)
    o = model.options
    assert (o["layers"], o["heads"], o["width"], model.context) == (4, 4, 128, 128)
    assert len(model.blocks) == 4 and model.tok_emb.weight.shape == (104, 128)


@pytest.mark.parametrize("t", [0, 5, 10])
def test_a_position_never_sees_later_tokens(t):
    torch.manual_seed(0)
    model = make_model("gpt", (12,), 20, **SMALL).eval()
    x = torch.randint(0, 20, (4, 12))
    changed = x.clone()
    changed[:, t + 1 :] = torch.randint(0, 20, (4, 12 - t - 1))
    changed[:, t + 1 :] = (changed[:, t + 1 :] + 1) % 20  # surely different
    a, b = model(x), model(changed)
    assert torch.equal(a[:, : t + 1], b[:, : t + 1])
    if t + 1 < 12:
        assert not torch.allclose(a[:, t + 1 :], b[:, t + 1 :])


def test_weight_tying_is_optional():
    tied = make_model("gpt", (8,), 10, **SMALL)
    untied = make_model("gpt", (8,), 10, **SMALL, tie=False)
    assert tied.head.weight is tied.tok_emb.weight
    assert untied.head.weight is not untied.tok_emb.weight
    assert sum(p.numel() for p in untied.parameters()) - sum(p.numel() for p in tied.parameters()) == 10 * 16


def test_attention_and_mlp_matrices_are_sparsified_the_rest_dense():
    model = make_model("gpt", (8,), 10, **SMALL, tie=False)
    sparse, dense = split_parameters(model)
    sparse_names = {n for n, _ in sparse}
    assert sparse_names == {
        f"blocks.{i}.{m}"
        for i in range(2)
        for m in ("attn.qkv.weight", "attn.proj.weight", "mlp.fc.weight", "mlp.proj.weight")
    }
    assert {"tok_emb.weight", "pos_emb.weight", "head.weight", "ln_f.weight"} <= {n for n, _ in dense}
    # every tool agrees: optimizer groups, measurement, pruning
    opt = create_optimizer("rewa-adamw", model, lr=1e-3)
    assert {id(p) for p in opt.param_groups[0]["params"]} == {id(p) for _, p in sparse}
    assert sparsity_report(model).total == sum(p.numel() for _, p in sparse)
    assert set(prune(model, sparsity=0.5)) == sparse_names


def test_which_roles_are_sparsified_is_configurable():
    model = make_model("gpt", (8,), 10, **SMALL, tie=False, sparsify=("attention", "embeddings", "head"))
    names = {n for n, _ in split_parameters(model)[0]}
    assert "tok_emb.weight" in names and "head.weight" in names and "blocks.0.mlp.fc.weight" not in names
    assert {n for n, _ in split_parameters(model, include_bias_and_norm=True)[1]} == set()
    assert dense_names_by_role({"a": "mlp", "b": "embeddings", "c": "norm"}, ("mlp",)) == {"b"}
    with pytest.raises(ValueError, match="sparsify"):
        make_model("gpt", (8,), 10, sparsify=("everything",))


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(width=10, heads=3), "divisible by heads"),
        (dict(layers=0), "layers=0"),
        (dict(depth=3), "depth"),
        (dict(dropout=1.0), "dropout"),
        (dict(tie="yes"), "tie"),
    ],
)
def test_bad_options_are_refused(options, message):
    with pytest.raises(ValueError, match=message):
        make_model("gpt", (8,), 10, **options)


def test_other_models_take_no_options_and_gpt_needs_token_inputs():
    with pytest.raises(ValueError, match="takes no options"):
        make_model("mlp", (4,), 2, width=3)
    with pytest.raises(ValueError, match=r"shape \(context,\)"):
        make_model("gpt", (1, 8), 10)
