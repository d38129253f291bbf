"""Fused steps: each optimizer's element-wise update as compiled kernels, one pass over memory.

The single-tensor and ``torch._foreach_*`` paths in :mod:`._functional` run one kernel per
operation, so every intermediate (the scale ``|y|^M``, the scaled gradient, ``|y|^(K-1)``)
makes a round trip through memory. Here each tensor's whole update is one function that
``torch.compile`` (inductor) turns into one loop: ReWA-SGD reads ``y``, the gradient
and the momentum buffer and writes ``y``, the buffer and the weights, six streams against
SGD-with-momentum's five. The kernels are internal; the optimizers' ``fused=True`` uses them.

How it is compiled (measured on CPU; ``rewa bench`` prints the numbers):

* One kernel per tensor, each tensor flattened to 1-D, compiled with ``dynamic=True``: one
  kernel serves every tensor size, so a model's differently shaped tensors cost one
  compilation per configuration (seconds on an idle CPU, up to a minute on a busy one). A
  single compiled function over a whole group (62 tensors of ResNet-18) ran faster per step
  but took minutes to compile, so it is not used.
* ``lr``, ``weight_decay``, the momentum coefficients and Adam's bias corrections enter as
  0-dim float64 tensors, so a scheduler changing them does not recompile. ``K``, ``M``,
  ``eps``, the betas, Nesterov and the decay variant are constants of the kernel: changing one
  compiles a new kernel (once). The first momentum step uses the steady-state kernel on a zero
  buffer with coefficients ``(0, 1)``, so there is no second kernel for it.
* Each configuration gets its own code object, so dynamo's per-function recompile limit
  counts one configuration's recompiles (new dtypes), not the number of configurations.
* The first call compiles in-process (``compile_threads=1``): on a loaded 2-core machine,
  inductor's worker pool made it slower (one configuration: 113 s with the pool, 4.6 s without).
* When compilation is unavailable (no C++ compiler, an unsupported Python, a backend error),
  the first failure warns once (:class:`FusedFallbackWarning`) and that configuration uses
  the unfused path from then on; the results are the same math. Tensors that are not
  contiguous plain tensors (e.g. DTensor) also take the unfused path.

The math is the single-tensor ground truth of :mod:`._functional` (same flushing of results
below the smallest normal number to 0); the compiled code may contract multiplies and adds
differently, so results agree to rounding, not bit for bit (tests state the tolerances).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable

import torch
from torch import Tensor

from .._math import squarings as _squarings
from ._checked import caller_stacklevel

__all__ = [
    "FusedFallbackWarning",
    "fused_available",
    "fused_rewa_sgd",
    "fused_rewa_adamw",
    "fused_pwd_sgd",
    "fused_pwd_adamw",
    "compile_seconds",
]


# Below this many elements a tensor's update is cheaper through the foreach path than through
# a compiled call, whose fixed cost (guards, wrappers: ~0.3-0.8 ms on a busy CPU) is more than
# the memory passes it saves. Measured on the ResNet-18 set (see ``rewa bench``).
FUSED_MIN_NUMEL = 1 << 15


def split_for_fused(params: list[Tensor]) -> tuple[list[int], list[int]]:
    """Indices of the tensors worth a compiled call, and of the rest."""
    big = [i for i, p in enumerate(params) if p.numel() >= FUSED_MIN_NUMEL]
    chosen = set(big)
    return big, [i for i in range(len(params)) if i not in chosen]


def pick(values: list, indices: list[int]) -> list:
    return [values[i] for i in indices]


def put(values: list, indices: list[int], new: list) -> None:
    for i, value in zip(indices, new):
        values[i] = value


class FusedFallbackWarning(UserWarning):
    """``fused=True`` was asked for but the kernels could not be compiled; the loop is used."""


# Kernels by configuration; ``None`` marks a configuration whose compilation failed.
_kernels: dict[tuple, Callable | None] = {}
# Seconds spent in first calls (tracing and compiling), by configuration, for reporting.
compile_seconds: dict[tuple, float] = {}


def fused_available() -> bool:
    """Whether ``torch.compile`` can be called at all here (it still may fail on first use)."""
    try:
        import torch._dynamo  # noqa: F401
    except ImportError:
        return False
    return hasattr(torch, "compile") and torch._dynamo.is_dynamo_supported()


def _compile_errors() -> tuple[type[BaseException], ...]:
    """The errors that mean "this code cannot be compiled here", not "the math is wrong"."""
    errors: list[type[BaseException]] = []
    try:
        from torch._dynamo.exc import TorchDynamoException

        errors.append(TorchDynamoException)
    except ImportError:
        pass
    try:
        from torch._inductor.exc import InductorError

        errors.append(InductorError)
    except ImportError:
        pass
    # A missing or broken C++ compiler surfaces from the build step as these.
    errors += [OSError, __import__("subprocess").CalledProcessError]
    return tuple(errors)


def _kernel(key: tuple, body: Callable, config: dict) -> Callable | None:
    """The compiled ``body`` with ``config`` bound, for configuration ``key`` (compiled on first call)."""
    if key not in _kernels:
        if not fused_available():
            _warn_fallback(key, "torch.compile is not supported in this environment")
            _kernels[key] = None
        else:

            def kernel(*args):
                return body(*args, **config)

            # A code object of its own per configuration: dynamo's recompile limit counts
            # per code object, and configurations are not recompiles of each other.
            kernel.__code__ = kernel.__code__.replace(co_name=f"{body.__name__}_{len(_kernels)}")
            _kernels[key] = torch.compile(kernel, dynamic=True, fullgraph=True)
    return _kernels[key]


def _warn_fallback(key: tuple, reason: str) -> None:
    warnings.warn(
        f"fused step for {key[0]} unavailable ({reason}); using the for-loop path "
        "(fused=False chooses it without this warning)",
        FusedFallbackWarning,
        stacklevel=caller_stacklevel(),
    )


def scalar(value: float, device: torch.device) -> Tensor:
    """A 0-dim float64 tensor: scalars that change between steps enter kernels as data."""
    return torch.tensor(float(value), dtype=torch.float64, device=device)


def fusable(tensors: list[Tensor]) -> bool:
    """Contiguous plain tensors (a DTensor's local shard qualifies, the DTensor does not)."""
    return all(type(t) in (Tensor, torch.nn.Parameter) and t.is_contiguous() for t in tensors)


# ----------------------------------------------------------------------------------------
# Element-wise math, traced into the kernels (mirrors _functional, without out= buffers)
# ----------------------------------------------------------------------------------------


def _abs_pow(y: Tensor, exponent: float, flush_exponent: float | None = None) -> Tensor:
    """``|y|^exponent``, 0 where ``|y|^flush_exponent`` would not be a normal number."""
    if exponent == 0:
        return torch.ones_like(y)
    a = y.abs()
    k = _squarings(exponent)
    if k is None:
        result = a.pow(exponent)
    else:
        result = a * a
        for _ in range(k - 1):
            result = result * result
    floor = torch.finfo(y.dtype).tiny ** (1.0 / (flush_exponent or exponent))
    return torch.where(a < floor, 0.0, result)


def _gradient_scale(y: Tensor, K: float, M: float, eps: float) -> Tensor | None:
    if M == 0 and eps == 0:
        return None
    if eps == 0:
        return _abs_pow(y, M)
    ratio = 1.0 / (1.0 + eps / _abs_pow(y, K - 1))
    if M == 0:
        return ratio
    if M == 2:
        return ratio * y * y
    return ratio * _abs_pow(y, M)


def _power_map(y: Tensor, K: float) -> Tensor:
    if K == 1:
        return y
    return _abs_pow(y, K - 1, flush_exponent=K) * y


def _scaled_gradient(y: Tensor, g: Tensor, K: float, M: float, eps: float) -> Tensor:
    g = g.to(y.dtype)
    scale = _gradient_scale(y, K, M, eps)
    return g if scale is None else scale * g


# ----------------------------------------------------------------------------------------
# The kernels: one tensor each, flattened to 1-D; they write in place. Finiteness is checked
# by the optimizer's all-or-nothing step (optim/_checked.py), not here.
# ----------------------------------------------------------------------------------------


def _heavy_ball(d, buf, buf_coef, d_coef, momentum, nesterov):
    """torch SGD's momentum on the step ``d``: ``b <- buf_coef*b + d_coef*d`` (``(momentum,
    1 - dampening)``, or ``(0, 1)`` on the first step) written into ``buf``; returns the step."""
    if momentum == 0:
        return d
    b = buf * buf_coef + d * d_coef
    buf.copy_(b)
    return d + momentum * b if nesterov else b


def _rewa_sgd_kernel(x, g, y, buf, lr, wd, buf_coef, d_coef, *, K, M, eps, momentum, nesterov, decoupled):
    d = _scaled_gradient(y, g, K, M, eps)
    if not decoupled:
        d = d + wd * y
    v = _heavy_ball(d, buf, buf_coef, d_coef, momentum, nesterov)
    y_new = y * (1 - lr * wd) - lr * v if decoupled else y - lr * v
    y.copy_(y_new)
    x.copy_(_power_map(y_new, K))


def _rewa_adamw_kernel(
    x, g, y, exp_avg, exp_avg_sq, lr, wd, step_size, bias_correction2_sqrt, *, K, M, eps, beta1, beta2, adam_eps
):
    d = _scaled_gradient(y, g, K, M, eps)
    m = exp_avg + (d - exp_avg) * (1 - beta1)
    v = exp_avg_sq * beta2 + d * d * (1 - beta2)
    y_new = y * (1 - lr * wd) - step_size * m / (v.sqrt() / bias_correction2_sqrt + adam_eps)
    exp_avg.copy_(m)
    exp_avg_sq.copy_(v)
    y.copy_(y_new)
    x.copy_(_power_map(y_new, K))


def _abs_pow_negative(a, exponent):
    """``a^exponent`` for ``a >= 0``; the exponents of p = 1 and p = 0.5 without a
    transcendental ``pow`` (which made the pWD step compute-bound on CPU)."""
    if exponent == -1:
        return 1.0 / a
    if exponent == -1.5:
        return 1.0 / (a * a.sqrt())
    return a.pow(exponent)


def _shrink(w, lr, lambda_p, p):
    # 1 / (1 + lr*lambda_p*|w|^(p-2)); exactly 1 when lr*lambda_p = 0 (no 0*inf)
    decay = lr * lambda_p
    return torch.where(decay == 0, 1.0, 1.0 / (1.0 + decay * _abs_pow_negative(w.abs(), p - 2)))


def _pwd_sgd_kernel(w, g, buf, lr, lambda_p, buf_coef, d_coef, *, p, momentum, nesterov):
    shrink = _shrink(w, lr, lambda_p, p)
    g = g.to(w.dtype)
    v = _heavy_ball(g, buf, buf_coef, d_coef, momentum, nesterov)
    w.copy_((w - lr * v) * shrink)


def _pwd_adamw_kernel(
    w, g, exp_avg, exp_avg_sq, lr, lambda_p, step_size, bias_correction2_sqrt, *, p, beta1, beta2, eps
):
    shrink = _shrink(w, lr, lambda_p, p)
    g = g.to(w.dtype)
    m = exp_avg + (g - exp_avg) * (1 - beta1)
    v = exp_avg_sq * beta2 + g * g * (1 - beta2)
    exp_avg.copy_(m)
    exp_avg_sq.copy_(v)
    w.copy_((w - step_size * m / (v.sqrt() / bias_correction2_sqrt + eps)) * shrink)


# ----------------------------------------------------------------------------------------
# Drivers: the same signatures as the functions of _functional and pwd
# ----------------------------------------------------------------------------------------


def _buffer_and_coefficients(momentum_buffers, i, like, momentum, steady, first):
    """Tensor ``i``'s momentum buffer (``None`` without momentum) and the heavy-ball
    coefficients: a missing buffer is created as zeros and takes ``first`` (``(0, 1)``, so the
    steady-state kernel serves the first step), an existing one ``steady``."""
    if momentum == 0:
        return None, steady
    if momentum_buffers[i] is None:
        momentum_buffers[i] = torch.zeros_like(like)
        return momentum_buffers[i], first
    return momentum_buffers[i], steady


def fused_rewa_sgd(
    params,
    grads,
    latents,
    momentum_buffers,
    *,
    lr,
    K,
    M,
    eps,
    weight_decay,
    momentum,
    dampening,
    nesterov,
    decoupled_weight_decay: bool = False,
) -> int:
    """:func:`rewa_sgd` through compiled kernels, one per tensor.

    Returns ``done``: the first ``done`` tensors were updated (all of them unless compilation is
    unavailable or a tensor is not contiguous: the caller runs the rest through the loop).

    ``decoupled_weight_decay=False`` (the default, as in :func:`rewa_sgd`): ``d <- d + wd*y``
    before momentum, ``y <- y - lr v`` (torch SGD); ``True``: ``y <- (1 - lr*wd) y - lr v``. New momentum
    buffers are written into ``momentum_buffers`` where it holds ``None``.
    """
    config = dict(K=K, M=M, eps=eps, momentum=momentum, nesterov=bool(nesterov), decoupled=bool(decoupled_weight_decay))
    key = ("ReWA", *config.values())
    if _kernel(key, _rewa_sgd_kernel, config) is None:
        return 0
    device = params[0].device
    lr_t, wd_t = scalar(lr, device), scalar(weight_decay, device)
    steady = (scalar(momentum, device), scalar(1 - dampening, device))
    first = (scalar(0.0, device), scalar(1.0, device))
    for i, (x, g, y) in enumerate(zip(params, grads, latents)):
        buf, coefs = _buffer_and_coefficients(momentum_buffers, i, y, momentum, steady, first)
        args = (x, g, y, buf, lr_t, wd_t, *coefs)
        if not fusable([x, g, y] + ([buf] if buf is not None else [])) or not _call(key, args):
            if coefs is first:
                momentum_buffers[i] = None  # the loop creates it
            return i
    return len(params)


def fused_rewa_adamw(
    params, grads, latents, exp_avgs, exp_avg_sqs, steps, *, lr, beta1, beta2, adam_eps, K, M, eps, weight_decay
) -> int:
    """:func:`rewa_adamw` through compiled kernels; returns how many leading tensors were updated."""
    config = dict(K=K, M=M, eps=eps, beta1=beta1, beta2=beta2, adam_eps=adam_eps)
    key = ("ReWA-AdamW", *config.values())
    if _kernel(key, _rewa_adamw_kernel, config) is None:
        return 0
    device = params[0].device
    lr_t, wd_t = scalar(lr, device), scalar(weight_decay, device)
    for i, (x, g, y, m, v, t) in enumerate(zip(params, grads, latents, exp_avgs, exp_avg_sqs, steps)):
        args = (x, g, y, m, v, lr_t, wd_t, scalar(lr / (1 - beta1**t), device), scalar((1 - beta2**t) ** 0.5, device))
        if not fusable([x, g, y, m, v]) or not _call(key, args):
            return i
    return len(params)


def fused_pwd_sgd(params, grads, momentum_buffers, *, lr, lambda_p, p, momentum, dampening, nesterov) -> int:
    """:func:`rewa.optim.pwd.pwd_sgd` through compiled kernels; returns how many leading tensors were updated."""
    config = dict(p=p, momentum=momentum, nesterov=bool(nesterov))
    key = ("pWD-SGD", *config.values())
    if _kernel(key, _pwd_sgd_kernel, config) is None:
        return 0
    device = params[0].device
    lr_t, lambda_t = scalar(lr, device), scalar(lambda_p, device)
    steady = (scalar(momentum, device), scalar(1 - dampening, device))
    first = (scalar(0.0, device), scalar(1.0, device))
    for i, (w, g) in enumerate(zip(params, grads)):
        buf, coefs = _buffer_and_coefficients(momentum_buffers, i, w, momentum, steady, first)
        args = (w, g, buf, lr_t, lambda_t, *coefs)
        if not fusable([w, g] + ([buf] if buf is not None else [])) or not _call(key, args):
            if coefs is first:
                momentum_buffers[i] = None  # the loop creates it
            return i
    return len(params)


def fused_pwd_adamw(params, grads, exp_avgs, exp_avg_sqs, steps, *, lr, beta1, beta2, eps, lambda_p, p) -> int:
    """:func:`rewa.optim.pwd.pwd_adamw` through compiled kernels; returns how many leading tensors were updated."""
    config = dict(p=p, beta1=beta1, beta2=beta2, eps=eps)
    key = ("pWD-AdamW", *config.values())
    if _kernel(key, _pwd_adamw_kernel, config) is None:
        return 0
    device = params[0].device
    lr_t, lambda_t = scalar(lr, device), scalar(lambda_p, device)
    for i, (w, g, m, v, t) in enumerate(zip(params, grads, exp_avgs, exp_avg_sqs, steps)):
        args = (w, g, m, v, lr_t, lambda_t, scalar(lr / (1 - beta1**t), device), scalar((1 - beta2**t) ** 0.5, device))
        if not fusable([w, g, m, v]) or not _call(key, args):
            return i
    return len(params)


def _call(key: tuple, args: tuple) -> bool:
    """Run the kernel of ``key`` on one tensor's arguments (flattened to 1-D); ``False`` if it
    cannot be compiled (warned once), in which case nothing of this tensor was written."""
    kernel = _kernels[key]
    if kernel is None:
        return False
    flat = [a.detach().view(-1) if isinstance(a, Tensor) and a.dim() > 0 else a for a in args]
    first = key not in compile_seconds
    start = time.perf_counter()
    try:
        if first:
            # Compile in this process: on a busy machine inductor's worker pool is slower.
            import torch._inductor.config as inductor_config

            with inductor_config.patch(compile_threads=1):
                kernel(*flat)
        else:
            kernel(*flat)
    except _compile_errors() as error:
        _kernels[key] = None
        message = str(error).splitlines()[0] if str(error) else ""
        _warn_fallback(key, f"{type(error).__name__}: {message}")
        return False
    if first:
        compile_seconds[key] = time.perf_counter() - start
    return True
