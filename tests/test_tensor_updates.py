"""The per-tensor updates, the ground truth of every code path, tested directly.

Each optimizer file holds one tensor's step as a function (``_rewa_sgd_tensor``,
``_rewa_adamw_tensor``, ``_pwd_sgd_tensor``, ``_pwd_adamw_tensor``): the single-tensor loop calls
it with Python numbers, and the fused path traces it with the numbers as 0-dim float64 tensors.
Here both forms run eagerly in float64 against the paper-literal reference (numpy, float64),
to 1e-12 relative: the two forms are the same update, whatever compiles them.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rewa.optim import reference
from rewa.optim.pwd import _pwd_adamw_tensor, _pwd_sgd_tensor
from rewa.optim.rewa import _rewa_sgd_tensor
from rewa.optim.rewa_adamw import _rewa_adamw_tensor

TOL = dict(rtol=1e-12, atol=1e-14)


def _numbers(as_tensors: bool, **values):
    return {k: torch.tensor(v, dtype=torch.float64) if as_tensors else v for k, v in values.items()}


SGD_CASES = {
    "plain": dict(K=9, M=2, eps=0.0, weight_decay=0.0, momentum=0.0, dampening=0.0, nesterov=False, decoupled=False),
    "coupled-momentum": dict(
        K=9, M=2, eps=0.0, weight_decay=0.1, momentum=0.9, dampening=0.0, nesterov=False, decoupled=False
    ),
    "decoupled-dampening": dict(
        K=3, M=1.5, eps=1e-3, weight_decay=0.05, momentum=0.8, dampening=0.3, nesterov=False, decoupled=True
    ),
    "nesterov-oddM": dict(
        K=5, M=3, eps=0.0, weight_decay=0.02, momentum=0.9, dampening=0.0, nesterov=True, decoupled=False
    ),
    "sgd": dict(K=1, M=0, eps=0.0, weight_decay=0.1, momentum=0.9, dampening=0.0, nesterov=False, decoupled=False),
}


@pytest.mark.parametrize("as_tensors", [False, True], ids=["floats", "tensors"])
@pytest.mark.parametrize("case", list(SGD_CASES), ids=str)
def test_rewa_sgd_tensor_matches_the_reference(case, as_tensors):
    c = SGD_CASES[case]
    torch.manual_seed(0)
    y = torch.randn(6, 5, dtype=torch.float64)
    x = torch.sign(y) * y.abs() ** c["K"]
    y_ref, buf_ref, buf = y.numpy().copy(), None, None
    lr = 0.05
    for step in range(4):
        g = torch.randn_like(y)
        # the loop's first step makes the buffer (b = d); the compiled one runs (0, 1) on zeros
        first = buf is None
        if as_tensors and c["momentum"] and first:
            buf = torch.zeros_like(y)
        beta, alpha = (0.0, 1.0) if first else (c["momentum"], 1 - c["dampening"])
        nums = _numbers(as_tensors, lr=lr, weight_decay=c["weight_decay"], beta=beta, alpha=alpha)
        buf = _rewa_sgd_tensor(
            x,
            g,
            y,
            buf,
            lr=nums["lr"],
            weight_decay=nums["weight_decay"],
            K=c["K"],
            M=c["M"],
            eps=c["eps"],
            momentum=c["momentum"],
            buffer_coefficients=(nums["beta"], nums["alpha"]),
            nesterov=c["nesterov"],
            decoupled_weight_decay=c["decoupled"],
        )
        y_ref, x_ref, buf_ref = reference.rewa_sgd_step(
            y_ref,
            g.numpy(),
            lr=lr,
            K=c["K"],
            M=c["M"],
            eps=c["eps"],
            weight_decay=c["weight_decay"],
            momentum=c["momentum"],
            dampening=c["dampening"],
            nesterov=c["nesterov"],
            buf=buf_ref,
            decoupled_weight_decay=c["decoupled"],
        )
        torch.testing.assert_close(y, torch.from_numpy(y_ref), **TOL, msg=f"y, step {step}")
        torch.testing.assert_close(x, torch.from_numpy(np.asarray(x_ref)), **TOL, msg=f"x, step {step}")
        if c["momentum"]:
            torch.testing.assert_close(buf, torch.from_numpy(buf_ref), **TOL, msg=f"buffer, step {step}")
        else:
            assert buf is None


def test_rewa_sgd_tensor_with_scratch_leaves_the_gradient_alone():
    """The loop passes the weights as working memory; the gradient is only read."""
    torch.manual_seed(1)
    y = torch.randn(50)
    x = torch.sign(y) * y.abs() ** 9
    g = torch.randn(50)
    before = g.clone()
    for M, eps in ((0, 0.0), (2, 0.0)):  # M = eps = 0: the direction is the gradient itself
        _rewa_sgd_tensor(
            x,
            g,
            y,
            None,
            lr=0.1,
            weight_decay=0.1,
            K=9,
            M=M,
            eps=eps,
            momentum=0.0,
            buffer_coefficients=(0.0, 1.0),
            nesterov=False,
            decoupled_weight_decay=False,
            scratch=x,
        )
        assert torch.equal(g, before)
        torch.testing.assert_close(x, torch.sign(y) * y.abs() ** 9, rtol=1e-5, atol=0)


@pytest.mark.parametrize("as_tensors", [False, True], ids=["floats", "tensors"])
def test_rewa_adamw_tensor_matches_the_reference(as_tensors):
    torch.manual_seed(2)
    K, M, eps, lr, wd, beta1, beta2, adam_eps = 9, 2, 1e-4, 0.01, 0.05, 0.9, 0.999, 1e-8
    y = torch.randn(7, dtype=torch.float64)
    x = torch.sign(y) * y.abs() ** K
    m, v = torch.zeros_like(y), torch.zeros_like(y)
    y_ref, m_ref, v_ref = y.numpy().copy(), np.zeros(7), np.zeros(7)
    for t in range(1, 5):
        g = torch.randn_like(y)
        nums = _numbers(as_tensors, lr=lr, weight_decay=wd, step_size=lr / (1 - beta1**t), bc2=(1 - beta2**t) ** 0.5)
        _rewa_adamw_tensor(
            x,
            g,
            y,
            m,
            v,
            lr=nums["lr"],
            weight_decay=nums["weight_decay"],
            step_size=nums["step_size"],
            bias_correction2_sqrt=nums["bc2"],
            beta1=beta1,
            beta2=beta2,
            adam_eps=adam_eps,
            K=K,
            M=M,
            eps=eps,
        )
        y_ref, x_ref, m_ref, v_ref = reference.rewa_adamw_step(
            y_ref, g.numpy(), m_ref, v_ref, t, lr=lr, beta1=beta1, beta2=beta2, adam_eps=adam_eps, K=K, M=M, eps=eps,
            weight_decay=wd,
        )  # fmt: skip
        torch.testing.assert_close(y, torch.from_numpy(y_ref), **TOL)
        torch.testing.assert_close(x, torch.from_numpy(np.asarray(x_ref)), **TOL)
        torch.testing.assert_close(m, torch.from_numpy(m_ref), **TOL)


def _pwd_shrink(w, lr, lambda_p, p):
    return 1.0 / (1.0 + lr * lambda_p * np.abs(w) ** (p - 2))


@pytest.mark.parametrize("as_tensors", [False, True], ids=["floats", "tensors"])
@pytest.mark.parametrize("p", [0.5, 1.0, 0.7])
def test_pwd_tensor_updates_match_their_formulas(p, as_tensors):
    """pWD-SGD with momentum and pWD-AdamW, against their formulas written out in numpy."""
    torch.manual_seed(3)
    lr, lambda_p, mu = 0.05, 1e-2, 0.9
    w = torch.randn(9, dtype=torch.float64)
    w_ref, buf, buf_ref = w.numpy().copy(), None, None
    for _ in range(3):
        g = torch.randn_like(w)
        first = buf is None
        if as_tensors and first:
            buf = torch.zeros_like(w)
        beta, alpha = (0.0, 1.0) if first else (mu, 1.0)
        nums = _numbers(as_tensors, lr=lr, lambda_p=lambda_p, beta=beta, alpha=alpha)
        buf = _pwd_sgd_tensor(
            w,
            g,
            buf,
            lr=nums["lr"],
            lambda_p=nums["lambda_p"],
            p=p,
            momentum=mu,
            buffer_coefficients=(nums["beta"], nums["alpha"]),
            nesterov=False,
        )
        buf_ref = g.numpy().copy() if buf_ref is None else mu * buf_ref + g.numpy()
        w_ref = (w_ref - lr * buf_ref) * _pwd_shrink(w_ref, lr, lambda_p, p)
        torch.testing.assert_close(w, torch.from_numpy(w_ref), **TOL)
    beta1, beta2, eps = 0.9, 0.99, 1e-8
    m, v = torch.zeros_like(w), torch.zeros_like(w)
    m_ref, v_ref = np.zeros(9), np.zeros(9)
    for t in range(1, 4):
        g = torch.randn_like(w)
        nums = _numbers(as_tensors, lr=lr, lambda_p=lambda_p, step_size=lr / (1 - beta1**t), bc2=(1 - beta2**t) ** 0.5)
        _pwd_adamw_tensor(
            w,
            g,
            m,
            v,
            lr=nums["lr"],
            lambda_p=nums["lambda_p"],
            step_size=nums["step_size"],
            bias_correction2_sqrt=nums["bc2"],
            p=p,
            beta1=beta1,
            beta2=beta2,
            eps=eps,
        )
        shrink = _pwd_shrink(w_ref, lr, lambda_p, p)
        m_ref = beta1 * m_ref + (1 - beta1) * g.numpy()
        v_ref = beta2 * v_ref + (1 - beta2) * g.numpy() ** 2
        step = lr / (1 - beta1**t) * m_ref / (np.sqrt(v_ref) / (1 - beta2**t) ** 0.5 + eps)
        w_ref = (w_ref - step) * shrink
        torch.testing.assert_close(w, torch.from_numpy(w_ref), **TOL)


def test_pwd_shrink_is_one_without_decay_even_at_zero_weights():
    """lr * lambda_p = 0: the factor is exactly 1 (no 0 * inf at w = 0), as a number and as a tensor."""
    from rewa.optim.pwd import pwd_shrink_factor

    w = torch.tensor([0.0, 1e-300, 2.0], dtype=torch.float64)
    for lr in (0.0, torch.tensor(0.0, dtype=torch.float64)):
        assert torch.equal(pwd_shrink_factor(w, lr=lr, lambda_p=1.0, p=0.5), torch.ones_like(w))
    assert torch.equal(pwd_shrink_factor(w, lr=0.1, lambda_p=1.0, p=0.5)[:2], torch.zeros(2, dtype=torch.float64))
