"""The fused (compiled) path against the single-tensor ground truth, and exact lr=0 steps.

Compiling costs seconds per configuration, so the fused tests share a few configurations that
together cover: both weight-decay variants, heavy-ball and Nesterov momentum, eps > 0, odd M,
float64 and float32, ReWA-AdamW and both pWD optimizers.
"""

from __future__ import annotations

import collections
import copy
import warnings

import pytest
import torch
from torch import nn

import rewa
from rewa.functional import latent_from_weight, power_map
from rewa.optim import _compile
from rewa.optim._base import BOUNDS_KEY
from rewa.optim.pwd import PWDSGD, PWDAdamW
from rewa.optim.rewa import _fused_rewa_sgd
from tests.asserts import assert_optimizer_state_unchanged

warnings.simplefilter("ignore", rewa.SparsityConfigWarning)

# every test here builds fused optimizers, which compile kernels
pytestmark = pytest.mark.slow

# Tolerances: the compiled kernel contracts multiplies and adds differently from the eager ops.
TOLERANCE = {torch.float64: dict(rtol=1e-12, atol=1e-15), torch.float32: dict(rtol=2e-5, atol=1e-7)}


@pytest.fixture(autouse=True)
def _fuse_every_tensor(monkeypatch):
    """The models here are small: every tensor counts as large, so the unfused runs take the
    single-tensor loop (the ground truth) rather than the foreach path."""
    monkeypatch.setattr(_compile, "FUSED_MIN_NUMEL", 1)


REWA = dict(lr=0.05, K=9, M=3, eps=1e-3, weight_decay=0.1, momentum=0.9, nesterov=True)


def _model(dtype):
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.Tanh(), torch.nn.Linear(5, 3)).to(dtype)


def _train_pair(make_optimizer, dtype, steps=4, scheduler=None):
    """The same model trained with the loop (``fused=False``) and with ``fused=True``."""
    torch.manual_seed(1)
    inputs, targets = torch.randn(16, 6, dtype=dtype), torch.randn(16, 3, dtype=dtype)
    models = [_model(dtype), _model(dtype)]
    optimizers = [make_optimizer(list(m.parameters()), fused) for m, fused in zip(models, (False, True))]
    for _ in range(steps):
        for model, opt in zip(models, optimizers):
            opt.zero_grad()
            torch.nn.functional.mse_loss(model(inputs), targets).backward()
            opt.step()
    return models, optimizers


def _assert_same(models, optimizers, dtype):
    (loop_model, fused_model), (loop_opt, fused_opt) = models, optimizers
    for a, b in zip(loop_model.parameters(), fused_model.parameters()):
        torch.testing.assert_close(b, a, **TOLERANCE[dtype])
        state_a, state_b = loop_opt.state[a], fused_opt.state[b]
        # the carried bounds are a cache: a plan of the one-kernel step holds them instead
        assert state_a.keys() - {BOUNDS_KEY} == state_b.keys() - {BOUNDS_KEY}
        for key, value in state_a.items():
            if isinstance(value, torch.Tensor):
                torch.testing.assert_close(state_b[key], value, **TOLERANCE[dtype], msg=key)
            elif key not in ("param_version", "update_bounds"):  # hold version counters: differ by path
                assert state_b[key] == value, key


@pytest.mark.parametrize("decoupled", [False, True], ids=["coupled", "decoupled"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_fused_rewa_matches_loop(dtype, decoupled):
    """Both weight-decay variants (the group's ``decoupled_weight_decay``) against the loop."""
    make = lambda ps, fused: rewa.ReWA(ps, **REWA, decoupled_weight_decay=decoupled, fused=fused)  # noqa: E731
    models, optimizers = _train_pair(make, dtype)
    _assert_same(models, optimizers, dtype)
    assert optimizers[1].state[models[1][0].weight]["momentum_buffer"] is not None
    assert all(group["decoupled_weight_decay"] is decoupled for group in optimizers[1].param_groups)


def test_the_two_decay_variants_differ_on_the_fused_path():
    """The flag reaches the kernel: with momentum the two variants give different weights."""
    fused_weights = []
    for decoupled in (False, True):
        make = lambda ps, fused: rewa.ReWA(ps, **REWA, decoupled_weight_decay=decoupled, fused=fused)  # noqa: E731
        (_, fused_model), _ = _train_pair(make, torch.float64)
        fused_weights.append(fused_model[0].weight.detach())
    assert not torch.allclose(*fused_weights, rtol=1e-6, atol=0)


def test_fused_rewa_adamw_matches_loop():
    make = lambda ps, fused: rewa.ReWAAdamW(ps, lr=0.01, K=9, M=2, weight_decay=0.1, fused=fused)  # noqa: E731
    _assert_same(*_train_pair(make, torch.float64), torch.float64)


@pytest.mark.parametrize("p", [0.5, 1.0, 0.7])  # the kernel has its own powers for 0.5 and 1
def test_fused_pwd_matches_loop(p):
    make = lambda ps, fused: PWDSGD(ps, lr=0.05, lambda_p=1e-3, p=p, momentum=0.9, fused=fused)  # noqa: E731
    _assert_same(*_train_pair(make, torch.float64), torch.float64)
    make = lambda ps, fused: PWDAdamW(ps, lr=0.01, lambda_p=1e-3, p=p, fused=fused)  # noqa: E731
    _assert_same(*_train_pair(make, torch.float64), torch.float64)


def test_fused_kernel_coupled_weight_decay_matches_torch_sgd_semantics():
    """``decoupled_weight_decay=False``: ``d' = d + wd*y``, ``b <- mu b + (1 - tau) d'``,
    ``y <- y - lr b``, against these formulas written out, for M=2, eps=0, heavy-ball."""
    torch.manual_seed(2)
    K, M, lr, wd, mu, tau = 9, 2, 0.05, 0.1, 0.9, 0.2
    ys = [torch.randn(7, 3, dtype=torch.float64), torch.randn(4, dtype=torch.float64)]
    grads = [[torch.randn_like(y) for y in ys] for _ in range(3)]
    xs = [power_map(y, K) for y in ys]
    buffers = [None, None]
    ref_y, ref_b = [y.clone() for y in ys], [None, None]
    for step_grads in grads:
        done = _fused_rewa_sgd(
            xs,
            step_grads,
            ys,
            buffers,
            lr=lr,
            K=K,
            M=M,
            eps=0.0,
            weight_decay=wd,
            momentum=mu,
            dampening=tau,
            nesterov=False,
            decoupled_weight_decay=False,
        )
        assert done == len(ys)
        for i, g in enumerate(step_grads):
            d = ref_y[i].abs() ** M * g + wd * ref_y[i]
            ref_b[i] = d.clone() if ref_b[i] is None else mu * ref_b[i] + (1 - tau) * d
            ref_y[i] = ref_y[i] - lr * ref_b[i]
    for x, y, b, y_ref, b_ref in zip(xs, ys, buffers, ref_y, ref_b):
        torch.testing.assert_close(y, y_ref, rtol=1e-12, atol=1e-15)
        torch.testing.assert_close(b, b_ref, rtol=1e-12, atol=1e-15)
        torch.testing.assert_close(x, power_map(y_ref, K), rtol=1e-12, atol=1e-15)


def test_scheduler_changing_lr_does_not_recompile():
    models, optimizers = _train_pair(lambda ps, fused: rewa.ReWA(ps, **REWA, fused=fused), torch.float64)
    schedulers = [torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5) for opt in optimizers]
    inputs, targets = torch.randn(16, 6, dtype=torch.float64), torch.randn(16, 3, dtype=torch.float64)
    kernels = len(_compile._kernels)
    for _ in range(3):
        for model, opt, scheduler in zip(models, optimizers, schedulers):
            opt.zero_grad()
            torch.nn.functional.mse_loss(model(inputs), targets).backward()
            opt.step()
            scheduler.step()
    assert len(_compile._kernels) == kernels
    assert optimizers[1].param_groups[0]["lr"] < REWA["lr"] / 4
    _assert_same(models, optimizers, torch.float64)


def test_fused_falls_back_to_the_loop_with_one_warning(monkeypatch):
    def unavailable(fn, args):
        raise torch._dynamo.exc.InternalTorchDynamoError("no C++ compiler")

    monkeypatch.setattr(_compile, "_kernels", {})
    monkeypatch.setattr(_compile, "failed", set())
    monkeypatch.setattr(_compile, "compile_seconds", {})
    monkeypatch.setattr(_compile, "_compile", unavailable)
    with pytest.warns(_compile.FusedFallbackWarning, match="no C\\+\\+ compiler") as record:
        models, optimizers = _train_pair(lambda ps, fused: rewa.ReWA(ps, **REWA, fused=fused), torch.float64)
    assert not _compile.compile_seconds
    assert len([w for w in record if w.category is _compile.FusedFallbackWarning]) == 1
    _assert_same(models, optimizers, torch.float64)  # the fallback (loop) path


def test_small_tensors_take_the_foreach_path(monkeypatch):
    monkeypatch.setattr(_compile, "FUSED_MIN_NUMEL", 100)
    big, small = _compile.split_for_fused([torch.zeros(10, 10), torch.zeros(99), torch.zeros(100)])
    assert (big, small) == ([0, 2], [1])


def test_fused_and_foreach_together_is_an_error():
    with pytest.raises(ValueError, match="fused=True and foreach=True"):
        rewa.ReWA([torch.nn.Parameter(torch.ones(2))], fused=True, foreach=True)


# ----------------------------------------------------------------------------------------
# Fused steps are all-or-nothing (issue 9's guarantee): the kernels run inside _step_group
# ----------------------------------------------------------------------------------------


def _state_copy(model, opt):
    weights = [p.detach().clone() for p in model.parameters()]
    state = {
        id(p): {k: (v.clone() if isinstance(v, torch.Tensor) else v) for k, v in s.items()}
        for p, s in opt.state.items()
    }
    return weights, state


def _assert_state_unchanged(model, opt, saved):
    weights, state = saved
    for p, before in zip(model.parameters(), weights):
        assert torch.equal(p.detach(), before)
    assert_optimizer_state_unchanged(opt, state, version_may_change=True)


FUSED_CASES = {
    "rewa-coupled": lambda groups: rewa.ReWA(groups, **REWA, fused=True),
    "rewa-decoupled": lambda groups: rewa.ReWA(groups, **REWA, decoupled_weight_decay=True, fused=True),
    "rewa-adamw": lambda groups: rewa.ReWAAdamW(groups, lr=0.01, K=9, M=2, weight_decay=0.1, fused=True),
}


def _spy_kernels(monkeypatch):
    """Count the fused drivers' calls, to show the failing step ran through the kernels."""
    import rewa.optim.rewa as rewa_module
    import rewa.optim.rewa_adamw as adamw_module

    calls = []
    for module, name in ((rewa_module, "_fused_rewa_sgd"), (adamw_module, "_fused_rewa_adamw")):
        original = getattr(module, name)

        def spy(*args, _original=original, **kwargs):
            done = _original(*args, **kwargs)
            calls.append(done)
            return done

        monkeypatch.setattr(module, name, spy)
    return calls


@pytest.mark.parametrize("case", list(FUSED_CASES), ids=str)
def test_fused_overflowing_step_raises_and_changes_nothing(case, monkeypatch):
    """Finite gradients, an lr that overflows one group's latents on the fused path:
    FloatingPointError, and weights, latents, buffers and step counts of both groups unchanged."""
    calls = _spy_kernels(monkeypatch)
    model = _model(torch.float32)
    groups = [{"params": list(model[0].parameters())}, {"params": list(model[2].parameters())}]
    opt = FUSED_CASES[case](groups)
    inputs, targets = torch.randn(16, 6), torch.randn(16, 3)

    def backward():
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(inputs), targets).backward()

    for _ in range(2):
        backward()
        opt.step()
    saved = _state_copy(model, opt)
    good_lr = opt.param_groups[1]["lr"]
    opt.param_groups[1]["lr"] = 1e39
    backward()
    calls.clear()
    with pytest.raises(FloatingPointError, match="param group 1.*nothing was updated"):
        opt.step()
    assert calls and all(done > 0 for done in calls)  # the compiled kernels did run (and wrote)
    _assert_state_unchanged(model, opt, saved)
    opt.param_groups[1]["lr"] = good_lr  # and training goes on, fused
    opt.step()
    assert all(bool(p.isfinite().all()) for p in model.parameters())
    assert all(s["step"] == 3 for s in opt.state.values())


def test_fused_overflow_of_the_weights_alone_is_caught():
    """K = 9, float32: |y| past 3.4e38^(1/9) = 1.9e4 keeps y finite but x = y^9 overflows."""
    p = torch.nn.Parameter(torch.tensor([1.0e17, 1.0]))  # y = 77.4
    opt = rewa.ReWA([p], **{**REWA, "lr": 1.0, "weight_decay": 0.0}, fused=True)
    p.grad = torch.tensor([-3.0e4, 0.0]) / 77.4**3  # |y|^M g with M = 3: a step of 3e4
    with pytest.raises(FloatingPointError, match="nothing was updated"):
        opt.step()
    assert torch.equal(p.detach(), torch.tensor([1.0e17, 1.0]))
    assert len(opt.state) == 0  # the first step's latent and buffer were not kept


# ----------------------------------------------------------------------------------------
# A step at lr 0 does not move the weights
# ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize(
    "make",
    [
        lambda ps: rewa.ReWA(ps, lr=0.0, K=9, M=2, weight_decay=1e-2, momentum=0.9),
        lambda ps: rewa.ReWA(ps, lr=0.0, K=9, M=2, weight_decay=1e-2, momentum=0.9, foreach=True),
        lambda ps: rewa.ReWAAdamW(ps, lr=0.0, K=9, M=2, weight_decay=1e-2),
    ],
    ids=["loop", "foreach", "adamw"],
)
def test_lr_zero_step_leaves_weights_bitwise_unchanged(make, dtype):
    torch.manual_seed(0)
    model = torch.nn.Linear(64, 32).to(dtype)
    before = [p.detach().clone() for p in model.parameters()]
    if dtype == torch.float32:  # the round trip x -> y -> x is not exact: it would move weights
        assert any(
            not torch.equal(power_map(latent_from_weight(p, 9, torch.float32), 9), p) for p in model.parameters()
        )
    opt = make(model.parameters())
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()  # the step torch.distributed.checkpoint takes to create the state
    opt.step()
    for p, p_before in zip(model.parameters(), before):
        assert torch.equal(p, p_before)


def test_distributed_checkpoint_round_trip_keeps_weights_and_state():
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict, set_optimizer_state_dict

    torch.manual_seed(0)
    model = torch.nn.Linear(8, 4)
    opt = rewa.ReWA(model.parameters(), lr=0.1, K=9, M=2, momentum=0.9)
    for _ in range(2):
        opt.zero_grad()
        model(torch.randn(3, 8)).square().sum().backward()
        opt.step()
    saved = get_optimizer_state_dict(model, opt)

    fresh_model = torch.nn.Linear(8, 4)
    fresh_before = [p.detach().clone() for p in fresh_model.parameters()]
    get_optimizer_state_dict(fresh_model, rewa.ReWA(fresh_model.parameters(), lr=0.1, K=9, M=2))
    assert all(torch.equal(a, b) for a, b in zip(fresh_before, fresh_model.parameters()))

    restored = torch.nn.Linear(8, 4)
    restored.load_state_dict(model.state_dict())
    restored_opt = rewa.ReWA(restored.parameters(), lr=0.1, K=9, M=2, momentum=0.9)
    set_optimizer_state_dict(restored, restored_opt, saved)
    for a, b in zip(model.parameters(), restored.parameters()):
        assert torch.equal(a, b)
        for key in ("y", "momentum_buffer"):
            assert torch.equal(opt.state[a][key], restored_opt.state[b][key])


def test_fused_none_compiles_only_large_cpu_groups():
    """``fused=None``: the compiled path for a CPU group whose large tensors hold >= 2**20
    elements (when inductor works here), never for small groups or with foreach=True."""
    from rewa.optim._base import FUSED_AUTO_MIN_NUMEL, default_fused

    big = [torch.zeros(FUSED_AUTO_MIN_NUMEL // 2), torch.zeros(FUSED_AUTO_MIN_NUMEL // 2), torch.zeros(10)]
    small = [torch.zeros(30_000), torch.zeros(1_000_000 // 64, 63)]  # each below 2**15 or the sum below 2**20
    assert default_fused(None, None, big) is _compile.fused_available()
    assert default_fused(None, None, small) is False
    assert default_fused(None, True, big) is False
    assert default_fused(None, False, big) is False  # foreach=False asks for the loop
    assert default_fused(False, None, big) is False
    assert default_fused(True, None, small) is True
    assert default_fused(None, None, [torch.zeros(FUSED_AUTO_MIN_NUMEL, device="meta")]) is False
    with pytest.raises(ValueError, match="fused=True and foreach=True"):
        default_fused(True, True, small)


def _group(**flags):
    return {"fused": flags.get("fused"), "foreach": flags.get("foreach")}


def test_step_paths_chooses_per_tensor_size_on_cpu(monkeypatch):
    """The default on CPU: large tensors through the loop, small ones through foreach;
    explicit flags win, and the fused path keeps taking the large ones."""
    from rewa.optim._base import step_paths

    monkeypatch.setattr(_compile, "FUSED_MIN_NUMEL", 100)
    params = [torch.zeros(10, 10), torch.zeros(99), torch.zeros(200)]
    assert step_paths(_group(), params) == ([], [0, 2], [1])
    assert step_paths(_group(), params[1:2]) == ([], [], [0])  # all small: one foreach call
    assert step_paths(_group(foreach=False), params) == ([], [0, 1, 2], [])
    assert step_paths(_group(foreach=True), params) == ([], [], [0, 1, 2])
    assert step_paths(_group(fused=True), params) == ([0, 1, 2], [], [])


@pytest.mark.parametrize(
    "make",
    [
        lambda ps, f: rewa.ReWA(ps, **REWA, foreach=f),
        lambda ps, f: rewa.ReWAAdamW(ps, lr=0.01, K=9, M=2, weight_decay=0.01, foreach=f),
    ],
    ids=["rewa", "rewa-adamw"],
)
def test_default_cpu_path_gives_the_loops_bits(make, monkeypatch):
    """float32: the default path (small tensors foreach, large ones loop) writes the same bits
    as the single-tensor loop everywhere."""
    monkeypatch.setattr(_compile, "FUSED_MIN_NUMEL", 100)
    results = []
    for foreach in (None, False):
        torch.manual_seed(0)
        params = [nn.Parameter(torch.randn(20, 10) * 0.5), nn.Parameter(torch.randn(30) * 0.5)]
        opt = make(params, foreach)
        for _ in range(10):
            for p in params:
                p.grad = torch.randn_like(p)
            opt.step()
        results.append(
            [
                t.clone()
                for p in params
                for t in (p.detach(), *[v for v in opt.state[p].values() if isinstance(v, torch.Tensor)])
            ]
        )
    for a, b in zip(*results):
        assert torch.equal(a, b)


def test_kernels_over_several_runs_and_late_buffers_match_the_loop(monkeypatch):
    """Groups split into runs of FUSED_MAX_TENSORS tensors per kernel, and a parameter whose
    gradient (so whose momentum buffer) only appears at the third step: same as the loop."""
    monkeypatch.setattr(_compile, "FUSED_MAX_TENSORS", 2)
    torch.manual_seed(0)
    shapes = [(4, 3), (5,), (2, 2), (7,), (3,)]
    runs = []
    for fused in (False, True):
        torch.manual_seed(0)
        params = [nn.Parameter(torch.randn(s, dtype=torch.float64) * 0.5) for s in shapes]
        opt = rewa.ReWA(params, **REWA, fused=fused)
        torch.manual_seed(1)
        for step in range(5):
            for i, p in enumerate(params):
                p.grad = None if (i == 3 and step < 2) else torch.randn_like(p)
            opt.step()
        runs.append((params, opt))
    (loop_params, loop_opt), (fused_params, fused_opt) = runs
    for a, b in zip(loop_params, fused_params):
        torch.testing.assert_close(b, a, **TOLERANCE[torch.float64])
        for key in ("y", "momentum_buffer"):
            torch.testing.assert_close(fused_opt.state[b][key], loop_opt.state[a][key], **TOLERANCE[torch.float64])
    assert len([k for k in _compile._kernels if k[0][0] == "ReWA"]) >= 3  # several runs, several kernels


# ----------------------------------------------------------------------------------------
# The one-kernel checked step of small fused models in steady state
# ----------------------------------------------------------------------------------------


def _two_group_models(count):
    models = [_model(torch.float32) for _ in range(count)]
    groups = [
        [{"params": list(m[0].parameters())}, {"params": list(m[2].parameters()), "K": 1, "M": 0, "eps": 0.0}]
        for m in models
    ]
    return models, groups


def _spy_routes(monkeypatch):
    """Per optimizer (by id), the route of each step: "repeat" (the plan the last one-kernel
    step left served), "kernel" (a one-kernel step from the general entry), "refused" (a kernel
    ran and refused the gradients; nothing written) or "general"."""
    from rewa.optim.rewa import ReWA

    routes = collections.defaultdict(list)
    repeat, first, run = ReWA._repeat_step, ReWA._checked_fused_step, ReWA._run_checked_kernel

    def spy_repeat(self):
        routes[id(self)].append("general")
        done = repeat(self)
        if done:
            routes[id(self)][-1] = "repeat"
        return done

    def spy_first(self, work):
        done = first(self, work)
        if done:
            routes[id(self)][-1] = "kernel"
        return done

    def spy_run(self, *args):
        result = run(self, *args)
        if result is False:
            routes[id(self)][-1] = "refused"
        return result

    monkeypatch.setattr(ReWA, "_repeat_step", spy_repeat)
    monkeypatch.setattr(ReWA, "_checked_fused_step", spy_first)
    monkeypatch.setattr(ReWA, "_run_checked_kernel", spy_run)
    return routes


def _backward(model, opt, inputs, targets):
    opt.zero_grad()
    torch.nn.functional.mse_loss(model(inputs), targets).backward()


@pytest.mark.parametrize(
    "settings",
    [REWA, dict(lr=0.05, K=5, M=2, eps=0.0, weight_decay=0.01, momentum=0.0, decoupled_weight_decay=True)],
    ids=["nesterov-coupled", "no-momentum-decoupled"],
)
def test_one_kernel_step_matches_the_per_group_kernels(settings, monkeypatch):
    """From the second step on (bounds carried, buffers made) a fused model of at most
    FUSED_MAX_TENSORS tensors steps through one kernel; weights and state follow the per-group
    kernels (the general path) and the loop."""
    routes = _spy_routes(monkeypatch)
    models, groups = _two_group_models(3)
    one = rewa.ReWA(groups[0], **settings, fused=True)
    general = rewa.ReWA(groups[1], **settings, fused=True)
    general._checked_fused_step = lambda work: False  # the per-group kernels
    loop = rewa.ReWA(groups[2], **settings, fused=False)
    torch.manual_seed(1)
    inputs, targets = torch.randn(16, 6), torch.randn(16, 3)
    for _ in range(6):
        for model, opt in zip(models, (one, general, loop)):
            _backward(model, opt, inputs, targets)
            opt.step()
    # the first step creates the buffers and bounds; the second leaves the plan the rest follow
    assert routes[id(one)] == ["general", "kernel"] + ["repeat"] * 4
    assert set(routes[id(general)]) == {"general"}
    _assert_same([models[1], models[0]], [general, one], torch.float32)
    _assert_same([models[2], models[0]], [loop, one], torch.float32)


def _fused_after_steps(steps):
    """A two-group model, its fused ReWA after ``steps`` steps, and the batch it steps on."""
    (model,), (groups,) = _two_group_models(1)
    opt = rewa.ReWA(groups, **REWA, fused=True)
    inputs, targets = torch.randn(16, 6), torch.randn(16, 3)
    for _ in range(steps):
        _backward(model, opt, inputs, targets)
        opt.step()
    return model, opt, inputs, targets


@pytest.mark.parametrize("bad", [float("nan"), float("inf")], ids=["nan", "inf"])
def test_one_kernel_step_refuses_a_nonfinite_gradient_and_changes_nothing(bad, monkeypatch):
    routes = _spy_routes(monkeypatch)
    model, opt, inputs, targets = _fused_after_steps(3)
    taken = routes[id(opt)]
    assert taken[-1] == "repeat"
    saved = _state_copy(model, opt)
    _backward(model, opt, inputs, targets)
    model[2].bias.grad[1] = bad  # the second group; the first must not move either
    with pytest.raises(FloatingPointError, match="non-finite gradient.*parameter 1 of param group 1"):
        opt.step()
    assert taken[-1] == "refused"  # the kernel ran, refused, and the general path raised
    _assert_state_unchanged(model, opt, saved)
    _backward(model, opt, inputs, targets)
    opt.step()
    _backward(model, opt, inputs, targets)
    opt.step()
    # the refused kernel's writes moved the version counters: one measured step, then the kernel
    assert taken[-2:] == ["general", "kernel"] and all(s["step"] == 5 for s in opt.state.values())


def test_a_gradient_past_the_kernels_limit_takes_the_general_path(monkeypatch):
    """A finite gradient far larger than the last step's (1e5 times) is beyond what the kernel may
    accept unchecked: nothing is written by it, and the general path takes the step (same result
    as the per-group kernels)."""
    routes = _spy_routes(monkeypatch)
    models, groups = _two_group_models(2)
    one = rewa.ReWA(groups[0], **REWA, fused=True)
    general = rewa.ReWA(groups[1], **REWA, fused=True)
    general._checked_fused_step = lambda work: False
    inputs, targets = torch.randn(16, 6), torch.randn(16, 3)
    for step in range(4):
        for model, opt in zip(models, (one, general)):
            _backward(model, opt, inputs, targets)
            if step == 2:
                for p in model.parameters():
                    p.grad.mul_(1e5)
            opt.step()
    # after the spike the carried bounds may no longer prove the next gradients safe: the
    # general path takes those steps too
    assert routes[id(one)][:3] == ["general", "kernel", "refused"]
    _assert_same([models[1], models[0]], [general, one], torch.float32)


def _halve_lr(model, opt, early):
    for group in opt.param_groups:
        group["lr"] *= 0.5


def _new_weight_decay(model, opt, early):
    opt.param_groups[0]["weight_decay"] = 0.05


def _lr_zero(model, opt, early):
    for group in opt.param_groups:
        group["lr"] = 0.0


def _write_weights(model, opt, early):
    with torch.no_grad():
        model[0].weight.mul_(0.5)


def _load_earlier_state(model, opt, early):
    opt.load_state_dict(early[id(opt)])


def _replace_latent(model, opt, early):
    state = opt.state[model[2].weight]
    state["y"] = state["y"].clone()


def _drop_a_gradient(model, opt, early):
    model[2].bias.grad = None


def _add_a_group(model, opt, early):
    extra = torch.nn.Parameter(torch.ones(4))
    extra.grad = torch.full((4,), 0.1)
    opt.add_param_group({"params": [extra], "K": 1, "M": 0, "eps": 0.0})


PLAN_EVENTS = {
    # event: the route of the step after it (while a plan serves, it holds the carried bounds:
    # a step the plan does not take measures them again)
    "lr scheduled": (_halve_lr, "repeat"),
    "new weight decay": (_new_weight_decay, "general"),
    "lr 0": (_lr_zero, "general"),
    "weights written": (_write_weights, "general"),
    "earlier state loaded": (_load_earlier_state, "general"),
    "latent replaced": (_replace_latent, "general"),
    "a gradient missing": (_drop_a_gradient, "general"),
    "a group added": (_add_a_group, "general"),
}


@pytest.mark.parametrize("event", PLAN_EVENTS)
def test_the_plan_of_the_last_one_kernel_step_serves_only_what_it_was_made_for(event, monkeypatch):
    """After a change between steps the next step follows the plan only if the change is one it
    takes in (a new lr); otherwise it takes the general entry, and weights and state follow the
    per-group kernels through the change."""
    change, expected = PLAN_EVENTS[event]
    routes = _spy_routes(monkeypatch)
    models, groups = _two_group_models(2)
    one = rewa.ReWA(groups[0], **REWA, fused=True)
    general = rewa.ReWA(groups[1], **REWA, fused=True)
    general._checked_fused_step = lambda work: False
    torch.manual_seed(1)
    inputs, targets = torch.randn(16, 6), torch.randn(16, 3)
    early = {}
    for step in range(6):
        for model, opt in zip(models, (one, general)):
            _backward(model, opt, inputs, targets)
            if step == 4:
                change(model, opt, early)
            before = [p.detach().clone() for p in model.parameters()]
            opt.step()
            if step == 0:
                early[id(opt)] = copy.deepcopy(opt.state_dict())
            if step == 4 and event == "lr 0":
                assert all(torch.equal(p, b) for p, b in zip(model.parameters(), before))
    assert routes[id(one)][:5] == ["general", "kernel", "repeat", "repeat", expected]
    _assert_same([models[1], models[0]], [general, one], torch.float32)


def test_a_bad_hyperparameter_after_repeated_steps_raises_and_changes_nothing():
    model, opt, inputs, targets = _fused_after_steps(4)
    saved = _state_copy(model, opt)
    _backward(model, opt, inputs, targets)
    opt.param_groups[1]["momentum"] = -0.5
    with pytest.raises(ValueError, match="momentum=-0.5"):
        opt.step()
    _assert_state_unchanged(model, opt, saved)


def test_a_gradient_limit_is_reused_only_within_what_it_was_proven_for():
    """The one-kernel step's gradient limit is proven for twice the carried bounds and reused
    while lr is the same and |y| and the buffer stay within them (the overflow bound grows with
    each), so every reuse is itself a proven limit; beyond them, or at another lr, it is proven again."""
    torch.manual_seed(0)
    model = nn.Linear(4, 3)
    opt = rewa.ReWA(model.parameters(), lr=0.05, K=9, M=2, weight_decay=0.01, momentum=0.9, fused=False)
    for _ in range(2):
        opt.zero_grad()
        model(torch.randn(8, 4)).square().mean().backward()
        opt.step()
    group = opt.param_groups[0]
    limits = opt._overflow_limits(group, group["params"])
    carried = opt.state[model.weight][BOUNDS_KEY].bounds
    first = opt._grad_limit(group, limits, carried, None)
    assert first.y_bound == 2 * carried.y_bound and first.others == [2 * carried.others[0]]
    assert first.grad_max >= 4096 * carried.grad_max
    for y_bound in (carried.y_bound, 1.5 * carried.y_bound, first.y_bound):
        for buffer in (0.0, carried.others[0], first.others[0]):
            within = carried._replace(y_bound=y_bound, others=[buffer])
            assert opt._grad_limit(group, limits, within, first) is first
            needed, _ = opt._bound_within(group, limits, [], y_bound, first.grad_max, [buffer])
            assert not needed
    beyond = carried._replace(y_bound=first.y_bound * 1.01)
    assert opt._grad_limit(group, limits, beyond, first) is not first
    beyond = carried._replace(others=[first.others[0] * 1.01])
    assert opt._grad_limit(group, limits, beyond, first) is not first
    group["lr"] = 0.2
    assert opt._grad_limit(group, limits, carried, first).lr == 0.2
    group["lr"] = 0.05
    # near overflow (|y|^9 is finite in float32 up to |y| = 19,110; the bound keeps a factor 4):
    # no room to spare, then no limit at all
    tight = carried._replace(y_bound=7000.0, others=[1.0], grad_max=1e-3)
    limit = opt._grad_limit(group, limits, tight, None)
    assert limit is not None and limit.y_bound == 7000.0
    assert opt._grad_limit(group, limits, tight._replace(y_bound=12000.0), None) is None


def test_the_plan_does_not_keep_gradients_alive(monkeypatch):
    """The plan keeps the state tensors for its kernel, not the gradients of the step that made
    it (they would hold a model's worth of memory between steps)."""
    import weakref

    routes = _spy_routes(monkeypatch)
    model, opt, inputs, targets = _fused_after_steps(1)
    _backward(model, opt, inputs, targets)
    grads = [weakref.ref(p.grad) for p in model.parameters()]
    opt.step()
    assert routes[id(opt)][-1] == "kernel"  # the step that makes the plan
    opt.zero_grad(set_to_none=True)
    assert all(g() is None for g in grads)


def test_the_fallback_warning_is_an_implementation_detail_not_a_top_level_name():
    import rewa
    import rewa.optim

    assert "FusedFallbackWarning" not in rewa.__all__ and not hasattr(rewa, "FusedFallbackWarning")
    assert rewa.optim.FusedFallbackWarning is _compile.FusedFallbackWarning
