"""Fused steps: each optimizer's element-wise update as compiled kernels, one pass over memory.

The single-tensor and ``torch._foreach_*`` paths in :mod:`._functional` run one kernel per
operation, so every intermediate (the scale ``|y|^M``, the scaled gradient, ``|y|^(K-1)``)
makes a round trip through memory. Here each tensor's whole update is one function that
inductor turns into one loop: ReWA-SGD reads ``y``, the gradient
and the momentum buffer and writes ``y``, the buffer and the weights, six streams against
SGD-with-momentum's five. The kernels are internal; the optimizers' ``fused=True`` uses them.

How it is compiled (measured on CPU; ``rewa bench`` prints the numbers):

* One kernel per run of up to ``FUSED_MAX_TENSORS`` tensors of a group on one device: the
  update of every tensor in it is traced once (``make_fx`` with fake tensors, so nothing is
  computed or written while tracing) and compiled by inductor (``torch._inductor.compile``).
  The kernel is called directly, without ``torch.compile``'s per-call machinery: about 10 us per
  call here against about 50 us through ``torch.compile`` (150 us per tensor on a busy CPU),
  which is what makes the fused path pay on small models too. There are no guards: kernels are
  keyed by the configuration and by each tensor's shape and dtypes (tensors enter as they
  are), so a model compiles once per group; the compilation takes seconds (25-45 s for the
  whole ResNet-18 set, about 5 s for an MLP, on this machine; inductor's on-disk cache
  shortens it in later processes).
* ``lr``, ``weight_decay``, the momentum coefficients and Adam's bias corrections enter as
  one float64 vector per kernel, so a scheduler changing them does not recompile. ``K``, ``M``,
  ``eps``, the betas, Nesterov and the decay variant are constants of the kernel: changing one
  compiles a new kernel (once). The first momentum step uses the steady-state kernel on a zero
  buffer with coefficients ``(0, 1)``, so there is no second kernel for it.
* Compilation runs in-process (``compile_threads=1``): on a loaded 2-core machine, inductor's
  worker pool made it slower (one configuration: 113 s with the pool, 4.6 s without).
* A checked step of a small model (every group fused, at most ``FUSED_MAX_TENSORS`` tensors,
  state untouched since the last step) is one kernel for all groups
  (:func:`checked_rewa_sgd_kernel`): it reduces the gradients first and writes only if they are
  finite and within the limit the carried overflow bounds allow, so the step needs no separate
  reductions, no per-group calls and one transfer to the host (:mod:`._one_kernel` drives it).
* When compilation is unavailable (no C++ compiler, an unsupported Python, a backend error),
  the first failure warns once (:class:`FusedFallbackWarning`) and that configuration uses
  the unfused path from then on; the results are the same math. Tensors that are not
  contiguous plain tensors (e.g. DTensor) also take the unfused path.

The math is the single-tensor ground truth of :mod:`._functional` (same flushing of results
below the smallest normal number to 0); the compiled code may contract multiplies and adds
differently, so results agree to rounding, not bit for bit (tests state the tolerances).
"""

from __future__ import annotations

import functools
import time
import warnings
from collections.abc import Callable
from typing import NamedTuple

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


# ``fused=None`` counts a group's tensors of at least this many elements when it decides
# whether compiling pays (``rewa.optim._latent.default_fused``); on the eager paths, tensors this
# large take the single-tensor loop and smaller ones the foreach path (``step_paths``).
FUSED_MIN_NUMEL = 1 << 15

# At most this many tensors share one kernel: compilation time grows with the kernel's size.
FUSED_MAX_TENSORS = 32


def split_for_fused(params: list[Tensor]) -> tuple[list[int], list[int]]:
    """Indices of the tensors with at least ``FUSED_MIN_NUMEL`` elements, and of the rest."""
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


# Compiled kernels by configuration and tensor layout.
_kernels: dict[tuple, Callable] = {}
# Configurations that could not be compiled here (warned once; not tried again).
_failed: set[tuple] = set()
# Seconds spent tracing and compiling, by kernel, for reporting.
compile_seconds: dict[tuple, float] = {}


@functools.cache
def fused_available() -> bool:
    """Whether inductor can be called at all here (it still may fail on first use)."""
    try:
        import torch._dynamo
        import torch._inductor  # noqa: F401
        from torch.fx.experimental.proxy_tensor import make_fx  # noqa: F401
    except ImportError:
        return False
    return hasattr(torch._inductor, "compile") and torch._dynamo.is_dynamo_supported()


def _compile_errors() -> tuple[type[BaseException], ...]:
    """The errors that mean "this code cannot be compiled here", not "the math is wrong"."""
    errors: list[type[BaseException]] = [ImportError, AttributeError, NotImplementedError]
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


def _compile(fn: Callable, args: list) -> Callable:
    """``fn``, which writes its tensor arguments in place, compiled for arguments laid out as
    ``args``: traced with fake tensors (nothing is computed or written), compiled by inductor
    in this process."""
    import torch._inductor.config as inductor_config
    from torch.fx.experimental.proxy_tensor import make_fx

    with torch.no_grad(), inductor_config.patch(compile_threads=1):
        graph = make_fx(fn, tracing_mode="fake")(*args)
        return torch._inductor.compile(graph, args)


def _warn_fallback(key: tuple, reason: str) -> None:
    warnings.warn(
        f"fused step for {key[0]} unavailable ({reason}); using the for-loop path "
        "(fused=False chooses it without this warning)",
        FusedFallbackWarning,
        stacklevel=caller_stacklevel(),
    )


def fusable(tensors: list[Tensor] | tuple[Tensor, ...]) -> bool:
    """Contiguous plain tensors (a DTensor's local shard qualifies, the DTensor does not)."""
    for t in tensors:
        if not (type(t) is Tensor or type(t) is torch.nn.Parameter) or not t.is_contiguous():
            return False
    return True


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
# The updates of one tensor each, written in place; the drivers below trace several into one
# kernel. Finiteness is checked by the optimizer's all-or-nothing step (optim/_checked.py).
# ----------------------------------------------------------------------------------------


def _commit(t, new, ok=None):
    """Write ``new`` into ``t``; with ``ok`` (a 0-dim bool tensor) only if it is true, else ``t``
    keeps its bits."""
    t.copy_(new if ok is None else torch.where(ok, new.to(t.dtype), t))


def _heavy_ball(d, buf, buf_coef, d_coef, momentum, nesterov, ok=None):
    """torch SGD's momentum on the step ``d``: ``b <- buf_coef*b + d_coef*d`` (``(momentum,
    1 - dampening)``, or ``(0, 1)`` on the first step) written into ``buf``; returns the step."""
    if momentum == 0:
        return d
    b = buf * buf_coef + d * d_coef
    _commit(buf, b, ok)
    return d + momentum * b if nesterov else b


def _rewa_sgd_kernel(x, g, y, buf, lr, wd, buf_coef, d_coef, *, K, M, eps, momentum, nesterov, decoupled, ok=None):
    d = _scaled_gradient(y, g, K, M, eps)
    if not decoupled:
        d = d + wd * y
    v = _heavy_ball(d, buf, buf_coef, d_coef, momentum, nesterov, ok)
    y_new = y * (1 - lr * wd) - lr * v if decoupled else y - lr * v
    _commit(y, y_new, ok)
    _commit(x, _power_map(y_new, K), ok)


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


def _run(
    name: str,
    body: Callable,
    config: dict,
    items: list[tuple],
    coefficients: list[list[float]],
    shared: list[float],
):
    """``body(*item, *its_coefficients, *shared, **config)`` for every item (per parameter: its
    tensors), through compiled kernels over runs of up to ``FUSED_MAX_TENSORS`` consecutive
    items on one device. The numbers (``coefficients`` per item, ``shared`` by all) enter each
    kernel as one float64 vector, so changing them does not recompile.

    Returns how many leading items were updated: all unless compilation is unavailable
    (warned once per configuration) or an item's tensors are not contiguous plain tensors; the
    caller runs the rest unfused.
    """
    key = (name, *config.values())
    if key in _failed:
        return 0
    if not fused_available():
        _failed.add(key)
        _warn_fallback(key, "torch._inductor cannot compile in this environment")
        return 0
    done = 0
    while done < len(items):
        device = items[done][0].device
        end = done
        while (
            end < len(items)
            and end - done < FUSED_MAX_TENSORS
            and items[end][0].device == device
            and fusable(items[end])
        ):
            end += 1
        if end == done:
            return done
        chunk = items[done:end]
        numbers = [v for c in coefficients[done:end] for v in c] + shared
        # the tensors as they are: the kernels run without autograd (steps run under no_grad)
        args = [t for item in chunk for t in item]
        args.append(_numbers_tensor(tuple(numbers), device))
        update = functools.partial(_run_update, body, config, len(chunk), len(chunk[0]), len(coefficients[done]))
        kernel = _kernel(key, device, chunk, update, args, warn=True)
        if kernel is None:
            return done
        kernel(*args)
        done = end
    return done


# The float64 vectors of numbers last passed to kernels, by value: a step whose numbers did not
# change (no scheduler step since) reuses the tensor instead of creating one.
_numbers: dict[tuple, Tensor] = {}


def _numbers_tensor(numbers: tuple, device: torch.device) -> Tensor:
    key = (device, numbers)
    tensor = _numbers.get(key)
    if tensor is None:
        if len(_numbers) >= 64:
            _numbers.clear()
        if device.type == "cuda":
            # from pinned memory without waiting: a copy from pageable memory would make every
            # step with a new learning rate wait for the GPU
            host = torch.tensor(numbers, dtype=torch.float64, pin_memory=True)
            tensor = host.to(device, non_blocking=True)
        else:
            tensor = torch.tensor(numbers, dtype=torch.float64, device=device)
        _numbers[key] = tensor
    return tensor


def _kernel(key: tuple, device: torch.device, items: list, fn: Callable, args: list, *, warn: bool) -> Callable | None:
    """The compiled ``fn`` for ``items`` (their tensors laid out as in ``args``): from the cache,
    keyed by ``key``, the device and each item's shape and dtypes, or compiled now. ``None`` if it
    cannot be compiled here (``key`` is then recorded as failed, and warned once if ``warn``)."""
    kernel_key = (key, device, tuple((item[0].shape, *[t.dtype for t in item]) for item in items))
    kernel = _kernels.get(kernel_key)
    if kernel is not None:
        return kernel
    start = time.perf_counter()
    try:
        kernel = _compile(fn, args)
    except _compile_errors() as error:
        _failed.add(key)
        if warn:
            message = str(error).splitlines()[0] if str(error) else ""
            _warn_fallback(key, f"{type(error).__name__}: {message}")
        return None
    compile_seconds[kernel_key] = time.perf_counter() - start
    _kernels[kernel_key] = kernel
    return kernel


def _run_update(body: Callable, config: dict, count: int, arity: int, per_item: int, *flat: Tensor) -> None:
    """``body`` for ``count`` items of ``arity`` tensors and ``per_item`` coefficients each, then
    the shared numbers (the last tensor of ``flat`` holds every number)."""
    numbers = flat[-1]
    shared = [numbers[k] for k in range(count * per_item, numbers.shape[0])]
    for i in range(count):
        own = [numbers[i * per_item + j] for j in range(per_item)]
        body(*flat[i * arity : (i + 1) * arity], *own, *shared, **config)


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
    """:func:`rewa_sgd` through compiled kernels (see the module docstring).

    Returns ``done``: the first ``done`` tensors were updated (all of them unless compilation is
    unavailable or a tensor is not contiguous: the caller runs the rest through the loop).

    ``decoupled_weight_decay=False`` (the default, as in :func:`rewa_sgd`): ``d <- d + wd*y``
    before momentum, ``y <- y - lr v`` (torch SGD); ``True``: ``y <- (1 - lr*wd) y - lr v``. New momentum
    buffers are written into ``momentum_buffers`` where it holds ``None``.
    """
    config = dict(K=K, M=M, eps=eps, momentum=momentum, nesterov=bool(nesterov), decoupled=bool(decoupled_weight_decay))
    shared = [float(lr), float(weight_decay)]
    if momentum == 0:
        items = list(zip(params, grads, latents))
        return _run("ReWA", _rewa_sgd_without_momentum, config, items, [[]] * len(items), shared)
    items, coefficients, created = _with_buffers(params, grads, [latents], momentum_buffers, momentum, dampening)
    done = _run("ReWA", _rewa_sgd_with_momentum, config, items, coefficients, shared)
    _drop_unused_buffers(momentum_buffers, created, done)
    return done


class CheckedKernel(NamedTuple):
    """The compiled one-kernel checked step of some ReWA-SGD groups
    (:func:`checked_rewa_sgd_kernel`), with its arguments laid out: call it with the gradients
    (in the groups' order) and the :meth:`numbers` tensor of each group's
    :func:`checked_numbers`; it returns ``[ok, max|g| of each group]`` (one transfer to the
    host)."""

    kernel: Callable
    args: tuple  # the state tensors in place, ``None`` where gradients and numbers go
    grad_slots: tuple[int, ...]
    device: torch.device

    def numbers(self, values: tuple[float, ...]) -> Tensor:
        """The kernel's numbers (:func:`checked_numbers` of each group) as its tensor."""
        return _numbers_tensor(values, self.device)

    def __call__(self, grads: list[Tensor], numbers: Tensor) -> list[float]:
        args = list(self.args)
        for slot, g in zip(self.grad_slots, grads):
            args[slot] = g
        args[-1] = numbers
        return self.kernel(*args)[0].tolist()


def checked_numbers(*, lr, weight_decay, momentum, dampening, grad_limit) -> tuple[float, ...]:
    """One group's numbers for a :class:`CheckedKernel`."""
    return (float(lr), float(weight_decay), float(momentum), 1.0 - dampening, float(grad_limit))


def checked_rewa_sgd_kernel(groups: list[dict]) -> CheckedKernel | None:
    """The steps of several ReWA-SGD groups as one compiled kernel that checks before it writes.

    Each group is a dict with ``params``, ``grads``, ``latents``, ``buffers`` (existing momentum
    buffers, or ``[]`` without momentum) and the keyword arguments of :func:`fused_rewa_sgd`.
    Called with the gradients and each group's ``grad_limit`` (a ``max|g|`` up to which the
    caller has proven the group's step safe: no overflow), the kernel first reduces every
    gradient to its largest magnitude (nan and inf propagate); it writes the updates only if every
    group's gradients are finite and within their limits, else every tensor keeps its bits.
    ``None`` when the kernel cannot be compiled here or the tensors do not fit one kernel (more
    than ``FUSED_MAX_TENSORS``, several devices, not contiguous).
    """
    items = [
        (p, g, y, *([b] if group["momentum"] != 0 else []))
        for group in groups
        for p, g, y, b in zip(
            group["params"], group["grads"], group["latents"], group["buffers"] or [None] * len(group["params"])
        )
    ]
    if not items or len(items) > FUSED_MAX_TENSORS or not fused_available():
        return None
    device = items[0][0].device
    if not all(item[0].device == device and fusable(item) for item in items):
        return None
    configs = tuple(
        (
            len(group["params"]),
            group["K"],
            group["M"],
            group["eps"],
            group["momentum"],
            bool(group["nesterov"]),
            bool(group["decoupled_weight_decay"]),
        )
        for group in groups
    )
    key = ("ReWA checked", configs)
    if key in _failed:
        return None
    numbers = [
        v
        for group in groups
        for v in checked_numbers(
            lr=group["lr"],
            weight_decay=group["weight_decay"],
            momentum=group["momentum"],
            dampening=group["dampening"],
            grad_limit=0.0,
        )
    ]
    args = [t for item in items for t in item]
    args.append(_numbers_tensor(tuple(numbers), device))
    # not warned if it fails: the general path's kernels warn if they fail too
    kernel = _kernel(key, device, items, functools.partial(_checked_step, configs), args, warn=False)
    if kernel is None:
        return None
    arity = [len(item) for item in items]
    grad_slots = tuple(sum(arity[:i]) + 1 for i in range(len(items)))
    # the gradients are not kept: they would hold a model's worth of memory between steps
    template = [None if i in grad_slots else t for i, t in enumerate(args[:-1])] + [None]
    return CheckedKernel(kernel, tuple(template), grad_slots, device)


def _checked_step(configs: tuple, *flat: Tensor) -> tuple[Tensor]:
    """The kernel of :func:`checked_rewa_sgd_kernel` (``configs``: per group its tensor count and
    constants; the last tensor of ``flat`` holds every number)."""
    numbers = flat[-1]
    at, ok, maxima, updates = 0, None, [], []
    for index, (count, K, M, eps, momentum, nesterov, decoupled) in enumerate(configs):
        lr, wd, buf_coef, d_coef, grad_limit = (numbers[5 * index + j] for j in range(5))
        arity = 4 if momentum != 0 else 3
        group_items = [flat[at + i * arity : at + (i + 1) * arity] for i in range(count)]
        at += count * arity
        grads = [item[1] for item in group_items]
        # nan and inf propagate through the maximum and fail the comparison
        largest = torch.stack([g.abs().amax().to(torch.float64) for g in grads]).amax()
        good = largest <= grad_limit
        ok = good if ok is None else ok & good
        maxima.append(largest)
        config = dict(K=K, M=M, eps=eps, momentum=momentum, nesterov=nesterov, decoupled=decoupled)
        updates += [(item, lr, wd, buf_coef, d_coef, config) for item in group_items]
    assert ok is not None  # at least one group
    for item, lr, wd, buf_coef, d_coef, config in updates:
        x, g, y = item[:3]
        buf = item[3] if len(item) > 3 else None
        _rewa_sgd_kernel(x, g, y, buf, lr, wd, buf_coef, d_coef, **config, ok=ok)
    return (torch.stack([ok.to(torch.float64), *maxima]),)


def _with_buffers(params, grads, others, momentum_buffers, momentum, dampening):
    """Items ``(param, grad, *other, buffer)`` with the heavy-ball coefficients of each: a
    missing buffer is created as zeros and takes ``(0, 1)``, so the steady-state kernel serves
    the first step; an existing one ``(momentum, 1 - dampening)``."""
    items, coefficients, created = [], [], []
    for i, (p, g, *rest) in enumerate(zip(params, grads, *others)):
        buf = momentum_buffers[i]
        if buf is None:
            buf = momentum_buffers[i] = torch.zeros_like(rest[0] if rest else p)
            created.append(i)
            coefficients.append([0.0, 1.0])
        else:
            coefficients.append([float(momentum), 1.0 - dampening])
        items.append((p, g, *rest, buf))
    return items, coefficients, created


def _drop_unused_buffers(momentum_buffers, created, done) -> None:
    for i in created:
        if i >= done:
            momentum_buffers[i] = None  # not updated here: the loop creates it


def _rewa_sgd_with_momentum(x, g, y, buf, buf_coef, d_coef, lr, wd, **config):
    _rewa_sgd_kernel(x, g, y, buf, lr, wd, buf_coef, d_coef, **config)


def _rewa_sgd_without_momentum(x, g, y, lr, wd, **config):
    _rewa_sgd_kernel(x, g, y, None, lr, wd, None, None, **config)


def _adam_coefficients(steps, lr, beta1, beta2) -> list[list[float]]:
    """Per tensor (its step number ``t``): ``lr/(1 - beta1^t)`` and ``sqrt(1 - beta2^t)``."""
    return [[lr / (1 - beta1**t), (1 - beta2**t) ** 0.5] for t in steps]


def fused_rewa_adamw(
    params, grads, latents, exp_avgs, exp_avg_sqs, steps, *, lr, beta1, beta2, adam_eps, K, M, eps, weight_decay
) -> int:
    """:func:`rewa_adamw` through compiled kernels; returns how many leading tensors were updated."""
    config = dict(K=K, M=M, eps=eps, beta1=beta1, beta2=beta2, adam_eps=adam_eps)
    items = list(zip(params, grads, latents, exp_avgs, exp_avg_sqs))
    coefficients = _adam_coefficients(steps, lr, beta1, beta2)
    return _run("ReWA-AdamW", _rewa_adamw_item, config, items, coefficients, [float(lr), float(weight_decay)])


def _rewa_adamw_item(x, g, y, m, v, step_size, bias_correction2_sqrt, lr, wd, **config):
    _rewa_adamw_kernel(x, g, y, m, v, lr, wd, step_size, bias_correction2_sqrt, **config)


def fused_pwd_sgd(params, grads, momentum_buffers, *, lr, lambda_p, p, momentum, dampening, nesterov) -> int:
    """:func:`rewa.optim.pwd.pwd_sgd` through compiled kernels; returns how many leading tensors were updated."""
    config = dict(p=p, momentum=momentum, nesterov=bool(nesterov))
    shared = [float(lr), float(lambda_p)]
    if momentum == 0:
        items = list(zip(params, grads))
        return _run("pWD-SGD", _pwd_sgd_without_momentum, config, items, [[]] * len(items), shared)
    items, coefficients, created = _with_buffers(params, grads, [], momentum_buffers, momentum, dampening)
    done = _run("pWD-SGD", _pwd_sgd_with_momentum, config, items, coefficients, shared)
    _drop_unused_buffers(momentum_buffers, created, done)
    return done


def _pwd_sgd_with_momentum(w, g, buf, buf_coef, d_coef, lr, lambda_p, **config):
    _pwd_sgd_kernel(w, g, buf, lr, lambda_p, buf_coef, d_coef, **config)


def _pwd_sgd_without_momentum(w, g, lr, lambda_p, **config):
    _pwd_sgd_kernel(w, g, None, lr, lambda_p, None, None, **config)


def fused_pwd_adamw(params, grads, exp_avgs, exp_avg_sqs, steps, *, lr, beta1, beta2, eps, lambda_p, p) -> int:
    """:func:`rewa.optim.pwd.pwd_adamw` through compiled kernels; returns how many leading tensors were updated."""
    config = dict(p=p, beta1=beta1, beta2=beta2, eps=eps)
    items = list(zip(params, grads, exp_avgs, exp_avg_sqs))
    coefficients = _adam_coefficients(steps, lr, beta1, beta2)
    return _run("pWD-AdamW", _pwd_adamw_item, config, items, coefficients, [float(lr), float(lambda_p)])


def _pwd_adamw_item(w, g, m, v, step_size, bias_correction2_sqrt, lr, lambda_p, **config):
    _pwd_adamw_kernel(w, g, m, v, lr, lambda_p, step_size, bias_correction2_sqrt, **config)
