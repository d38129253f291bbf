"""bfloat16 / float16 weights with a float32 latent; autocast; GradScaler's skipped steps."""

from __future__ import annotations

import copy
import warnings

import pytest
import torch

import rewa

warnings.simplefilter("ignore", rewa.SparsityConfigWarning)


def test_bf16_weight_below_underflow_recovers_through_its_float32_latent():
    w = torch.nn.Parameter(torch.full((3,), 0.5, dtype=torch.bfloat16))
    opt = rewa.ReWA([w], lr=1e-3, K=9, M=0)
    w.grad = torch.zeros_like(w)
    opt.step()
    y = opt.state[w]["y"]
    assert y.dtype == torch.float32
    y.fill_(1e-5)  # |y|^9 = 1e-45: below bfloat16's (and float32's) smallest normal 1.2e-38
    w.grad = -torch.ones_like(w)  # the loss -w asks the weight to grow
    opt.param_groups[0]["lr"] = 1e-6
    opt.step()
    assert torch.all(w == 0)  # the weight underflowed ...
    assert torch.all(y > 1e-5)  # ... but the latent moved and holds the information
    opt.param_groups[0]["lr"] = 1e-3
    for _ in range(40):
        opt.step()
    expected = (1e-5 + 1e-6 + 40e-3) ** 9
    torch.testing.assert_close(w.float(), torch.full((3,), expected), rtol=1e-2, atol=0)


def test_autocast_bf16_training_with_float32_weights():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))
    opt = rewa.ReWA(rewa.param_groups(model), lr=0.05, K=3, M=2, momentum=0.9)
    x, target = torch.randn(64, 8), torch.randn(64, 1)
    losses = []
    for _ in range(30):
        opt.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = torch.nn.functional.mse_loss(model(x).float(), target)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert losses[-1] < 0.8 * losses[0]


def test_grad_scaler_float16_skipped_step_leaves_everything_unchanged():
    torch.manual_seed(0)
    model = torch.nn.Linear(8, 1)
    opt = rewa.ReWA(model.parameters(), lr=0.05, K=9, M=2, momentum=0.9)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**8)
    x, target = torch.randn(32, 8), torch.randn(32, 1)

    def step(scale_inf: bool = False):
        opt.zero_grad()
        with torch.autocast("cpu", dtype=torch.float16):
            loss = torch.nn.functional.mse_loss(model(x).float(), target)
        if scale_inf:
            loss = loss * float("inf")
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    for _ in range(3):
        step()
    weights = [p.detach().clone() for p in model.parameters()]
    state = {
        p: {k: v.clone() if torch.is_tensor(v) else v for k, v in opt.state[p].items()} for p in model.parameters()
    }
    scale = scaler.get_scale()
    step(scale_inf=True)
    assert scaler.get_scale() < scale  # the step was skipped
    for p, w in zip(model.parameters(), weights):
        assert torch.equal(p, w)
        for key, value in state[p].items():
            now = opt.state[p][key]
            assert torch.equal(now, value) if torch.is_tensor(value) else now == value, key
    step()
    assert not torch.equal(next(model.parameters()), weights[0])


# ----------------------------------------------------------------------------------------
# torch.compile(model) with ReWA in the same loop (issue 14, "Sharded training and checkpoints")
# ----------------------------------------------------------------------------------------


@pytest.mark.slow
def test_compiled_model_trains_with_rewa_like_the_eager_model():
    """A compiled MLP and its eager twin, ReWA on each, a few steps: the same weights and latents
    (to the compiled forward/backward's rounding), the loss falls, nothing recompiles on steps
    after the first (the optimizer writes the weights in place; the graph sees the same tensors)."""
    torch.manual_seed(0)
    eager = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3))
    twin = copy.deepcopy(eager)
    compiled = torch.compile(twin)
    x, target = torch.randn(32, 8), torch.randint(0, 3, (32,))
    opts = [rewa.ReWA(rewa.param_groups(m), lr=0.1, K=3, M=2, weight_decay=1e-3, momentum=0.9) for m in (eager, twin)]
    losses = []

    def step():
        for model, opt in zip((eager, compiled), opts):
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x), target)
            loss.backward()
            opt.step()
        losses.append(loss.item())  # the compiled model's

    step()  # compiles the forward and backward
    with torch._dynamo.config.patch(error_on_recompile=True):
        for _ in range(5):
            step()
    assert losses[-1] < losses[0]
    for a, b in zip(eager.parameters(), twin.parameters()):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(opts[1].state[b]["y"], opts[0].state[a]["y"], rtol=1e-4, atol=1e-6)


def test_bf16_weights_train_like_float32_weights_on_digits():
    """Fast variant of benchmarks/bf16_weights.py: the digits MLP (one hidden layer of 64,
    10 epochs, ReWA-AdamW K = 9, M = 2, weight decay 0.3) with float32 weights and with
    bfloat16 weights (float32 latents) ends within 0.5 point of test accuracy and 1 point of
    sparsity."""
    pytest.importorskip("sklearn")
    from dataclasses import replace

    from rewa.paper.digits import DigitsConfig, _make_optimizer, evaluate_accuracy, load_digits_split, make_mlp
    from rewa.sparsity import sparsity_report

    config = replace(DigitsConfig(), hidden=(64,), epochs=10, weight_decay=0.3)
    X_train, y_train, X_test, y_test = load_digits_split(config.test_fraction, config.seed)
    torch.manual_seed(0)
    init = make_mlp(config.hidden)
    results = {}
    for dtype in (torch.float32, torch.bfloat16):
        model = copy.deepcopy(init).to(dtype)
        opt = _make_optimizer(config, model)
        gen = torch.Generator().manual_seed(0)
        for _ in range(config.epochs):
            for batch in torch.randperm(len(X_train), generator=gen).split(config.batch_size):
                opt.zero_grad(set_to_none=True)
                torch.nn.functional.cross_entropy(model(X_train[batch].to(dtype)).float(), y_train[batch]).backward()
                opt.step()
        assert all(s["y"].dtype == torch.float32 for s in opt.state.values())
        results[dtype] = (
            evaluate_accuracy(model.float(), X_test, y_test),
            sparsity_report(model, config.threshold).sparsity,
        )
    (acc32, sparse32), (acc16, sparse16) = results[torch.float32], results[torch.bfloat16]
    assert acc32 > 0.9 and sparse32 > 0.1, results  # trained and sparse: the comparison means something
    assert abs(acc16 - acc32) <= 0.005 + 1e-9, results
    assert abs(sparse16 - sparse32) <= 0.01, results
