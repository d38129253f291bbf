"""bfloat16 / float16 weights with a float32 latent; autocast; GradScaler's skipped steps."""

from __future__ import annotations

import warnings

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
    state = {p: {k: v.clone() if torch.is_tensor(v) else v for k, v in opt.state[p].items()}
             for p in model.parameters()}
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
