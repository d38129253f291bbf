"""``rewa bench``: step times, memory bandwidth, state memory, and the paper's Table 2.

Step times are measured on the parameter shapes of a CIFAR ResNet-18 (62 tensors, 11.2M
weights) with fixed random gradients: min and median over repeats of one ``step()``, the
optimizers interleaved in rounds so a busy machine slows all of them alike. The bandwidth is
a plain copy over the same tensors in the same run; an optimizer's fraction of it is the bytes
its update must move (the streams below) divided by its min step time, over the copy's rate.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
import warnings

import torch

# Bytes an update must move per element, as (element size of weights/gradients, of state):
# each entry is a list of streams, "w" in the weight dtype, "s" in the state dtype.
_STREAMS = {
    "SGD": "w w g s s",  # read/write w, read g, read/write buffer
    "AdamW": "w w g s s s s",  # + both moments
    "pWD-SGD": "w w g s s",
    "ReWA": "s s g s s w",  # read/write y, read g, read/write buffer, write x
    "ReWA-AdamW": "s s g s s s s w",
}
UNCHECKED = "ReWA (check_finite=False)"
_STREAMS[UNCHECKED] = _STREAMS["ReWA"]


def resnet18_cifar_shapes(num_classes: int = 10) -> list[tuple[int, ...]]:
    """Parameter shapes of ResNet-18 for 32x32 inputs (3x3 stem, no max-pool): 62 tensors."""
    shapes = [(64, 3, 3, 3), (64,), (64,)]
    in_planes = 64
    for planes, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        for block in range(2):
            shapes += [(planes, in_planes, 3, 3), (planes,), (planes,), (planes, planes, 3, 3), (planes,), (planes,)]
            if block == 0 and (stride != 1 or in_planes != planes):
                shapes += [(planes, in_planes, 1, 1), (planes,), (planes,)]
            in_planes = planes
    return shapes + [(num_classes, 512), (num_classes,)]


def resnet18_params(dtype: torch.dtype = torch.float32, device: str = "cpu", seed: int = 0) -> list[torch.nn.Parameter]:
    """Parameters of :func:`resnet18_cifar_shapes` with random gradients (fixed by ``seed``)."""
    gen = torch.Generator().manual_seed(seed)
    params = []
    for shape in resnet18_cifar_shapes():
        p = torch.nn.Parameter((torch.randn(shape, generator=gen) * 0.05).to(device=device, dtype=dtype))
        p.grad = (torch.randn(shape, generator=gen) * 1e-2).to(device=device, dtype=dtype)
        params.append(p)
    return params


def _optimizers() -> dict[tuple[str, str], callable]:
    from .optim import PWDSGD, ReWA, ReWAAdamW

    def paths(make):
        return {
            "loop": lambda ps: make(ps, foreach=False),
            "foreach": lambda ps: make(ps, foreach=True),
            "fused": lambda ps: make(ps, fused=True),
        }

    table = {}
    for path, make in paths(lambda ps, **kw: torch.optim.SGD(ps, lr=0.1, momentum=0.9, **kw)).items():
        table["SGD", path] = make
    for path, make in paths(lambda ps, **kw: torch.optim.AdamW(ps, lr=1e-3, **kw)).items():
        table["AdamW", path] = make
    for path, make in paths(lambda ps, **kw: ReWA(ps, lr=0.1, K=9, M=2, weight_decay=1e-4, momentum=0.9, **kw)).items():
        table["ReWA", path] = make
    for path, make in paths(lambda ps, **kw: ReWAAdamW(ps, lr=1e-3, K=9, M=2, weight_decay=1e-4, **kw)).items():
        table["ReWA-AdamW", path] = make
    # the cost of the all-or-nothing step: the same fused ReWA without its finite checks
    table[UNCHECKED, "fused"] = lambda ps: ReWA(
        ps, lr=0.1, K=9, M=2, weight_decay=1e-4, momentum=0.9, fused=True, check_finite=False
    )
    table["pWD-SGD", "loop"] = lambda ps: PWDSGD(ps, lr=0.1, lambda_p=1e-4, p=0.5, momentum=0.9)
    table["pWD-SGD", "fused"] = lambda ps: PWDSGD(ps, lr=0.1, lambda_p=1e-4, p=0.5, momentum=0.9, fused=True)
    return table


def _state_bytes_per_weight(opt, params) -> float:
    n = sum(p.numel() for p in params)
    total = sum(
        v.numel() * v.element_size()
        for state in opt.state.values()
        for v in state.values()
        if isinstance(v, torch.Tensor) and v.dim() > 0
    )
    return total / n


def step_table(dtypes: list[str], paths: list[str], repeats: int, rounds: int = 3) -> list[dict]:
    """Time every (optimizer, path, dtype); one dict per row, plus the copy per dtype."""
    from rewa.optim import _compile

    rows = []
    for dtype_name in dtypes:
        dtype = getattr(torch, dtype_name)
        runs = {}
        src_params = resnet18_params(dtype)
        sources = [torch.randn_like(p) for p in src_params]
        runs["copy", "-"] = (lambda d=src_params, s=sources: [a.data.copy_(b) for a, b in zip(d, s)], None, src_params)
        for (name, path), make in _optimizers().items():
            if path not in paths:
                continue
            params = resnet18_params(dtype)
            try:
                opt = make(params)
            except (ValueError, RuntimeError, TypeError) as error:  # e.g. a torch path missing here
                print(f"  skipped {name} {path} {dtype_name}: {error}")
                continue
            before = sum(_compile.compile_seconds.values())
            start = time.perf_counter()
            try:
                opt.step()
            except (RuntimeError, NotImplementedError) as error:
                print(f"  skipped {name} {path} {dtype_name}: {type(error).__name__}: {str(error)[:80]}")
                continue
            first = time.perf_counter() - start
            compiled = sum(_compile.compile_seconds.values()) - before
            runs[name, path] = (opt.step, dict(first=first, compile=compiled, opt=opt), params)
        times = {key: [] for key in runs}
        for _ in range(rounds):
            for key, (fn, _, _) in runs.items():
                fn()
                for _ in range(repeats):
                    start = time.perf_counter()
                    fn()
                    times[key].append(time.perf_counter() - start)
        n = sum(p.numel() for p in src_params)
        copy_rate = 2 * n * src_params[0].element_size() / min(times["copy", "-"])
        for (name, path), ts in times.items():
            row = dict(
                optimizer=name,
                path=path,
                dtype=dtype_name,
                min_ms=min(ts) * 1e3,
                median_ms=statistics.median(ts) * 1e3,
                copy_GBps=copy_rate / 1e9,
            )
            info = runs[name, path][1]
            if info is not None:
                row.update(
                    first_step_s=info["first"],
                    compile_s=info["compile"],
                    state_bytes_per_weight=_state_bytes_per_weight(info["opt"], runs[name, path][2]),
                )
                family = name if name in _STREAMS else None
                if family:
                    w_size = src_params[0].element_size()
                    s_size = 4 if dtype != torch.float64 and name.startswith("ReWA") else w_size
                    moved = sum(w_size if c in "wg" else s_size for c in _STREAMS[family].split()) * n
                    row["bandwidth_fraction"] = moved / min(ts) / copy_rate
            rows.append(row)
    return rows


def table2(epochs: int, d: int) -> list[dict]:
    """Paper Table 2: time and memory of training the synthetic problem, ReWA vs SGD-l1."""
    # Table 2 times the paper's own problem: the one import of the paper outside its commands
    from rewa.paper.synthetic import SyntheticConfig, cosine_lr, epoch_order, make_problem
    from rewa.penalties import L1

    from .optim import ReWA, SparsityConfigWarning

    config = SyntheticConfig(d=d, epochs=epochs)
    X, target, w_init = make_problem(0, config)
    rows = []
    for label in ("ReWA (K=9, M=2)", "SGD-l1 (torch SGD, l1 in the loss)"):
        model = torch.nn.Linear(d, 1, bias=False)
        with torch.no_grad():
            model.weight.copy_(w_init.unsqueeze(0))
        if label.startswith("ReWA"):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", SparsityConfigWarning)
                opt = ReWA(model.parameters(), lr=config.lr, K=9, M=2, weight_decay=0.25)
            l1 = 0.0
        else:
            opt = torch.optim.SGD(model.parameters(), lr=config.lr)
            l1 = 0.25
        penalty, total, t = L1(), config.steps_per_epoch * epochs, 0
        start = time.perf_counter()
        for epoch in range(epochs):
            for batch in epoch_order(0, epoch, config.n_train).split(config.batch_size):
                for group in opt.param_groups:
                    group["lr"] = cosine_lr(t, total, config.lr, config.cosine)
                opt.zero_grad(set_to_none=True)
                loss = torch.nn.functional.mse_loss(model(X[batch]).squeeze(1), target[batch])
                if l1:
                    loss = loss + l1 * penalty.value(model.weight)
                loss.backward()
                opt.step()
                t += 1
        seconds = time.perf_counter() - start
        weights = model.weight.numel() * model.weight.element_size()
        state = sum(
            v.numel() * v.element_size()
            for s in opt.state.values()
            for v in s.values()
            if isinstance(v, torch.Tensor) and v.dim() > 0
        )
        rows.append(dict(method=label, seconds=seconds, weights_bytes=weights, state_bytes=state))
    return rows


def _bench(args: argparse.Namespace) -> int:
    # --threads (default 1 here) is applied by rewa.cli.main before this runs
    threads = torch.get_num_threads()
    warnings.simplefilter("ignore")
    n = sum(torch.Size(s).numel() for s in resnet18_cifar_shapes())
    print(
        f"rewa bench: torch {torch.__version__}, {platform.machine()} {platform.processor() or ''}, "
        f"{threads} thread(s), ResNet-18 (CIFAR) parameter set ({len(resnet18_cifar_shapes())} tensors, "
        f"{n / 1e6:.2f}M weights), {args.repeats} repeats x 3 rounds"
    )
    if not args.no_steps:
        rows = step_table(args.dtype, args.path, args.repeats)
        peers = {
            "ReWA": "SGD",
            UNCHECKED: "SGD",
            "pWD-SGD": "SGD",
            "ReWA-AdamW": "AdamW",
            "SGD": "SGD",
            "AdamW": "AdamW",
        }
        best_peer = {}
        for r in rows:
            if r["optimizer"] in ("SGD", "AdamW") and r["path"] == "foreach":
                best_peer[r["optimizer"], r["dtype"]] = r["min_ms"]
        print(
            "\n| optimizer | path | dtype | min ms | median ms | / torch peer (foreach, min) | "
            "bandwidth fraction | first step s (compile s) | state bytes/weight |"
        )
        print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for r in rows:
            peer = best_peer.get((peers.get(r["optimizer"]), r["dtype"]))
            ratio = f"{r['min_ms'] / peer:.2f}x" if peer else "-"
            fraction = f"{r['bandwidth_fraction']:.0%}" if "bandwidth_fraction" in r else "-"
            first = f"{r['first_step_s']:.1f} ({r['compile_s']:.1f})" if "first_step_s" in r else "-"
            state = f"{r['state_bytes_per_weight']:.0f}" if "state_bytes_per_weight" in r else "-"
            print(
                f"| {r['optimizer']} | {r['path']} | {r['dtype']} | {r['min_ms']:.1f} | {r['median_ms']:.1f} | "
                f"{ratio} | {fraction} | {first} | {state} |"
            )
        for dtype in args.dtype:
            copy = next(r for r in rows if r["optimizer"] == "copy" and r["dtype"] == dtype)
            print(f"copy bandwidth ({dtype}, same tensors, same run): {copy['copy_GBps']:.1f} GB/s")
    if args.table2:
        print(f"\nTable 2 (synthetic d = {args.d:,}, {args.epochs} epochs, batch 25, n = 2,000):")
        print("| method | seconds | weights bytes | optimizer state bytes |")
        print("| --- | --- | --- | --- |")
        for r in table2(args.epochs, args.d):
            print(f"| {r['method']} | {r['seconds']:.1f} | {r['weights_bytes']:,} | {r['state_bytes']:,} |")
    return 0


def add_commands(subparsers) -> None:
    """Add ``bench`` to the ``rewa`` command's subparsers."""
    bench = subparsers.add_parser("bench", help="step times, bandwidth, state memory, Table 2")
    from ._cli_options import add_common_options

    add_common_options(bench)
    # timings are comparable on a shared machine with one thread: that is bench's default
    bench.set_defaults(threads=1)
    bench.add_argument("--repeats", type=int, default=5, help="timed steps per round (default: 5)")
    bench.add_argument(
        "--dtype",
        nargs="+",
        default=["float32", "bfloat16"],
        choices=["float32", "bfloat16"],
        help="weight dtypes to time (default: float32 bfloat16)",
    )
    bench.add_argument(
        "--path",
        nargs="+",
        default=["loop", "foreach", "fused"],
        choices=["loop", "foreach", "fused"],
        help="code paths to time (default: loop foreach fused)",
    )
    bench.add_argument("--no-steps", action="store_true", help="skip the step-time table")
    bench.add_argument("--table2", action="store_true", help="also time the paper's Table 2 runs")
    bench.add_argument("--epochs", type=int, default=800, help="Table 2 epochs (default: 800, the paper's)")
    bench.add_argument("--d", type=int, default=10_000, help="Table 2 dimension (default: 10,000)")
    bench.set_defaults(run=_bench)
