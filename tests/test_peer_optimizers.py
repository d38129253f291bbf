"""pWD and penalized SGD: hand-computed updates, safety at zero, the pWD toy, exact zeros."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rewa.optim.penalized import PenalizedSGD
from rewa.optim.pwd import PWDSGD, PWDAdamW, pwd_shrink_factor

F64 = torch.float64


def one_step(opt_factory, w0, grads):
    w = torch.nn.Parameter(torch.tensor(w0, dtype=F64))
    opt = opt_factory([w])
    out = []
    for g in grads:
        w.grad = torch.tensor(g, dtype=F64)
        opt.step()
        out.append(w.detach().clone())
    return out


def test_pwd_sgd_by_hand_with_momentum():
    """lr=0.1, lambda_p=0.5, p=0.5, momentum 0.9 on w = [1, -4], two steps."""
    w1, w2 = one_step(
        lambda ps: PWDSGD(ps, lr=0.1, lambda_p=0.5, p=0.5, momentum=0.9), [1.0, -4.0], [[2.0, 1.0], [1.0, -1.0]]
    )
    # step 1: b = g; shrink 1/(1 + 0.05 |w|^-1.5): 1/1.05 and 1/(1 + 0.05/8)
    expected1 = np.array([(1 - 0.2) / 1.05, (-4 - 0.1) / (1 + 0.05 / 8)])
    np.testing.assert_allclose(w1.numpy(), expected1, rtol=1e-15)
    # step 2: b = 0.9 b + g = [2.8, -0.1]; shrink uses |w1|
    b = np.array([2.8, -0.1])
    expected2 = (expected1 - 0.1 * b) / (1 + 0.05 * np.abs(expected1) ** -1.5)
    np.testing.assert_allclose(w2.numpy(), expected2, rtol=1e-15)


def test_pwd_adamw_by_hand():
    lr, b1, b2, eps, lam, p = 0.01, 0.9, 0.99, 1e-8, 0.3, 0.7
    w0, g1, g2 = np.array([0.5, -2.0]), np.array([1.0, -3.0]), np.array([-0.5, 2.0])
    w1, w2 = one_step(
        lambda ps: PWDAdamW(ps, lr=lr, betas=(b1, b2), eps=eps, lambda_p=lam, p=p),
        w0.tolist(),
        [g1.tolist(), g2.tolist()],
    )
    m = v = np.zeros(2)
    w = w0
    for t, g in ((1, g1), (2, g2)):
        m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
        proposal = w - lr * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)
        w = proposal / (1 + lr * lam * np.abs(w) ** (p - 2))
        np.testing.assert_allclose((w1 if t == 1 else w2).numpy(), w, rtol=1e-14)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_pwd_shrink_is_zero_at_zero_and_denormals_never_nan(dtype):
    info = torch.finfo(dtype)
    w = torch.tensor([0.0, -0.0, info.smallest_normal / 4, -info.smallest_normal, 1e-3, 1.0, 1e4], dtype=dtype)
    for p in (0.1, 0.5, 1.0, 1.5):
        factor = pwd_shrink_factor(w, lr=0.1, lambda_p=0.5, p=p)
        assert factor.dtype == dtype and bool(factor.isfinite().all())
        assert bool(((factor >= 0) & (factor <= 1)).all())
        assert factor[:2].tolist() == [0.0, 0.0]  # |0|^(p-2) = inf -> factor exactly 0
        if p <= 1:  # the sparsifying range: a denormal weight is shrunk to exactly 0
            assert (w * factor)[:3].tolist() == [0.0, 0.0, 0.0]
    assert pwd_shrink_factor(w, lr=0.1, lambda_p=0.0, p=0.5).tolist() == [1.0] * 7  # no 0 * inf
    assert pwd_shrink_factor(w, lr=0.1, lambda_p=0.5, p=3.0)[0] == 1  # p > 2: no singularity at 0
    torch.testing.assert_close(pwd_shrink_factor(w, lr=0.1, lambda_p=0.5, p=2.0), torch.full_like(w, 1 / 1.05))
    # a whole optimizer step at w = 0 with a non-zero gradient: exactly 0, no nan
    w = torch.nn.Parameter(torch.tensor([0.0, 1e-310, 5e-324], dtype=F64))
    opt = PWDAdamW([w], lr=0.1, lambda_p=1.0, p=0.5)
    w.grad = torch.tensor([1.0, -1.0, 1.0], dtype=F64)
    opt.step()
    assert w.detach().tolist() == [0.0, 0.0, 0.0]


def test_pwd_toy_converges_to_zero_where_the_p_norm_gradient_fails():
    """The pWD paper's Figure 1: L = (w - 1)^2/2 + |w|^p/p, p = 1/2, whose minimizer is 0
    (L' = w - 1 + w^(-1/2) > 0 for w > 0). pWD with lambda_p = 1 reaches exactly 0; gradient
    descent with the p-norm gradient (strength 1/p on |w|^p) keeps oscillating around it."""
    p, lr, steps = 0.5, 0.1, 1000

    def run(opt_factory):
        w = torch.nn.Parameter(torch.tensor([1.0], dtype=F64))
        opt = opt_factory([w])
        trajectory = []
        for _ in range(steps):
            opt.zero_grad()
            ((w - 1) ** 2 / 2).sum().backward()
            opt.step()
            trajectory.append(w.item())
        return np.array(trajectory)

    pwd = run(lambda ps: PWDSGD(ps, lr=lr, lambda_p=1.0, p=p))
    plain = run(lambda ps: PenalizedSGD(ps, lr=lr, strength=1 / p, penalty="lp", p=p))
    assert np.all(pwd[-100:] == 0.0)
    assert np.all(pwd[:-1] >= pwd[1:])  # monotone, no overshoot
    tail = np.abs(plain[-200:])
    assert tail.min() > 0 and tail.max() > 0.1  # never reaches 0, still bouncing at the end


def test_l1_prox_and_subgradient_by_hand():
    lr, lam = 0.1, 2.0
    w0, g = [0.5, -0.1, 0.05, 0.0], [1.0, -0.5, 0.0, 0.3]
    (prox,) = one_step(lambda ps: PenalizedSGD(ps, lr=lr, strength=lam, penalty="l1", proximal=True), w0, [g])
    # z = w - lr g = [0.4, -0.05, 0.05, -0.03]; soft-threshold at lr * lam = 0.2
    np.testing.assert_allclose(prox.numpy(), [0.2, 0.0, 0.0, 0.0], rtol=1e-15, atol=0)
    assert prox[1:].tolist() == [0.0, 0.0, 0.0]  # exact zeros
    (sub,) = one_step(lambda ps: PenalizedSGD(ps, lr=lr, strength=lam, penalty="l1", proximal=False), w0, [g])
    # w - lr (g + lam sign(w)); sign(0) = 0
    np.testing.assert_allclose(sub.numpy(), [0.5 - 0.1 * 3.0, -0.1 - 0.1 * (-2.5), 0.05 - 0.2, -0.03], rtol=1e-15)


def test_l1_prox_with_momentum_by_hand():
    ws = one_step(
        lambda ps: PenalizedSGD(ps, lr=0.5, strength=0.2, penalty="l1", proximal=True, momentum=0.5),
        [1.0],
        [[1.0], [1.0]],
    )
    # step 1: b = 1, z = 0.5, prox at 0.1 -> 0.4; step 2: b = 1.5, z = 0.4 - 0.75 = -0.35 -> -0.25
    np.testing.assert_allclose([w.item() for w in ws], [0.4, -0.25], rtol=1e-15)


def test_clipped_lp_subgradient_step_by_hand():
    """p = 1/2, u = 1/4: slope p u^(p-1) = 1 inside u (l1 clipping), 0 (constant clipping)."""
    w0, g = [0.1, -1.0], [0.0, 0.0]
    for clip, inside in (("l1", 1.0), ("constant", 0.0)):
        (w,) = one_step(
            lambda ps: PenalizedSGD(ps, lr=0.1, strength=0.5, penalty="lp-clipped", p=0.5, threshold=0.25, clip=clip),
            w0,
            [g],
        )
        outside = 0.5 * 1.0**-0.5  # p |w|^(p-1) at |w| = 1
        np.testing.assert_allclose(w.numpy(), [0.1 - 0.05 * inside, -1.0 + 0.05 * outside], rtol=1e-15)


def test_prox_only_for_l1_and_clear_errors():
    w = [torch.nn.Parameter(torch.zeros(2))]
    with pytest.raises(ValueError, match=r"proximal=True needs a penalty with a closed-form prox"):
        PenalizedSGD(w, penalty="lp", p=0.5, proximal=True)
    with pytest.raises(ValueError, match=r"penalty='l0' must be one of"):
        PenalizedSGD(w, penalty="l0")
    with pytest.raises(ValueError, match=r"threshold=None"):
        PenalizedSGD(w, penalty="lp-clipped", p=0.5)
    with pytest.raises(ValueError, match=r"p=0 must be > 0"):
        PWDSGD(w, p=0)
    with pytest.raises(TypeError, match="real floating-point"):
        PWDSGD([torch.zeros(2, dtype=torch.int64)])
    opt = PWDSGD(w, lr=0.1)
    opt.param_groups[0]["lambda_p"] = -1.0  # as a scheduler could
    w[0].grad = torch.ones(2)
    with pytest.raises(ValueError, match=r"lambda_p=-1.0 must be >= 0"):
        opt.step()
    assert w[0].detach().tolist() == [0.0, 0.0]


def test_prox_sgd_finds_an_exactly_sparse_lasso_solution():
    """Prox-SGD on a small lasso reaches the coordinate-descent solution with exact zeros;
    the subgradient form ends near it but with no exact zero."""
    gen = torch.Generator().manual_seed(0)
    A = torch.randn(40, 6, generator=gen, dtype=F64)
    x_true = torch.tensor([1.5, 0, 0, -2.0, 0, 0], dtype=F64)
    b = A @ x_true + 0.1 * torch.randn(40, generator=gen, dtype=F64)
    lam = 0.5

    def solve(proximal):
        x = torch.nn.Parameter(torch.zeros(6, dtype=F64))
        opt = PenalizedSGD([x], lr=0.01, strength=lam, penalty="l1", proximal=proximal)
        for _ in range(1500):
            opt.zero_grad()
            ((A @ x - b).pow(2).sum() / (2 * len(b))).backward()
            opt.step()
        return x.detach()

    # reference: cyclic coordinate descent on the same objective (numpy, float64)
    An, bn, ref = A.numpy(), b.numpy(), np.zeros(6)
    n = len(bn)
    for _ in range(2000):
        for j in range(6):
            r = bn - An @ ref + An[:, j] * ref[j]
            rho = An[:, j] @ r / n
            ref[j] = math.copysign(max(abs(rho) - lam, 0.0), rho) / (An[:, j] @ An[:, j] / n)
    prox = solve(True)
    np.testing.assert_allclose(prox.numpy(), ref, atol=1e-5)  # 1500 steps of lr 0.01
    assert (prox == 0).tolist() == (ref == 0).tolist() and int((ref == 0).sum()) >= 3
    assert int((solve(False) == 0).sum()) == 0
