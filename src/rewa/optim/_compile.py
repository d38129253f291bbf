"""Compiling an optimizer's per-tensor update into kernels: one pass over memory per tensor.

The eager paths run one kernel per operation, so every intermediate (the scale ``|y|^M``, the
scaled gradient, ``|y|^(K-1)``) makes a round trip through memory. A fused step traces the same
per-tensor function the single-tensor loop runs (``_rewa_sgd_tensor`` and its siblings, with
the numbers as 0-dim tensors instead of Python floats) and lets inductor turn it into one loop.
ReWA-SGD then reads ``y``, the gradient and the momentum buffer and writes ``y``, the buffer
and the weights, six streams against SGD-with-momentum's five.

How it is compiled (measured on CPU; ``rewa bench`` prints the numbers):

* One kernel per run of up to ``FUSED_MAX_TENSORS`` tensors of a group on one device: the
  update of every tensor in it is traced once (``make_fx`` with fake tensors, so nothing is
  computed or written while tracing) and compiled by inductor (``torch._inductor.compile``).
  The kernel is called directly, without ``torch.compile``'s per-call machinery: about 10 us per
  call here against about 50 us through ``torch.compile``, which is what makes the fused path
  pay on small models too. There are no guards: kernels are keyed by the configuration and by
  each tensor's shape and dtypes, so a model compiles once per group; the compilation takes
  seconds (25-45 s for the whole ResNet-18 set, about 5 s for an MLP, on a 2-core CPU;
  inductor's on-disk cache shortens it in later processes).
* ``lr``, ``weight_decay``, the momentum coefficients and Adam's bias corrections enter as
  one float64 vector per kernel, so a scheduler changing them does not recompile. ``K``, ``M``,
  ``eps``, the betas, Nesterov and the decay variant are constants of the kernel: changing one
  compiles a new kernel (once). The first momentum step runs the steady-state kernel on a zero
  buffer with coefficients ``(0, 1)``, so there is no second kernel for it.
* Compilation runs in-process (``compile_threads=1``): on a loaded 2-core machine, inductor's
  worker pool made it slower (one configuration: 113 s with the pool, 4.6 s without).
* When compilation is unavailable (no C++ compiler, an unsupported Python, a backend error),
  the first failure warns once (:class:`FusedFallbackWarning`) and that configuration uses
  the unfused path from then on; the results are the same math. Tensors that are not
  contiguous plain tensors (e.g. DTensor) also take the unfused path.

The compiled code may contract multiplies and adds differently from the eager operations, so
results agree with the loop to rounding, not bit for bit (tests state the tolerances).
"""

from __future__ import annotations

import functools
import time
import warnings
from collections.abc import Callable

import torch
from torch import Tensor

from .._math import adam_bias_corrections
from ._checks import caller_stacklevel

__all__ = ["FusedFallbackWarning", "fused_available", "compile_seconds", "run"]

# ``fused=None`` counts a group's tensors of at least this many elements when it decides
# whether compiling pays (``rewa.optim._base.default_fused``); on the eager paths, tensors this
# large take the single-tensor loop and smaller ones the foreach path (``step_paths``).
FUSED_MIN_NUMEL = 1 << 15


# At most this many tensors share one kernel: compilation time grows with the kernel's size.
FUSED_MAX_TENSORS = 32


def split_for_fused(params: list[Tensor]) -> tuple[list[int], list[int]]:
    """Indices of the tensors with at least ``FUSED_MIN_NUMEL`` elements, and of the rest."""
    big = [i for i, p in enumerate(params) if p.numel() >= FUSED_MIN_NUMEL]
    chosen = set(big)
    return big, [i for i in range(len(params)) if i not in chosen]


class FusedFallbackWarning(UserWarning):
    """``fused=True`` was asked for but the kernels could not be compiled; the loop is used."""


# Compiled kernels by configuration and tensor layout.
_kernels: dict[tuple, Callable] = {}


# Configurations that could not be compiled here (warned once; not tried again).
failed: set[tuple] = set()


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


def run(
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
    if key in failed:
        return 0
    if not fused_available():
        failed.add(key)
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
        args.append(numbers_tensor(tuple(numbers), device))
        update = functools.partial(_run_update, body, config, len(chunk), len(chunk[0]), len(coefficients[done]))
        kernel = compiled(key, device, chunk, update, args, warn=True)
        if kernel is None:
            return done
        kernel(*args)
        done = end
    return done


# The float64 vectors of numbers last passed to kernels, by value: a step whose numbers did not
# change (no scheduler step since) reuses the tensor instead of creating one.
_numbers: dict[tuple, Tensor] = {}


def numbers_tensor(numbers: tuple, device: torch.device) -> Tensor:
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


def compiled(key: tuple, device: torch.device, items: list, fn: Callable, args: list, *, warn: bool) -> Callable | None:
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
        failed.add(key)
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


def with_buffers(params, grads, others, momentum_buffers, momentum, dampening):
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


def drop_unused_buffers(momentum_buffers, created, done) -> None:
    for i in created:
        if i >= done:
            momentum_buffers[i] = None  # not updated here: the loop creates it


def adam_coefficients(steps, lr, beta1, beta2) -> list[list[float]]:
    """Per tensor (its step number ``t``): ``lr/(1 - beta1^t)`` and ``sqrt(1 - beta2^t)``."""
    return [list(adam_bias_corrections(t, lr, beta1, beta2)) for t in steps]
