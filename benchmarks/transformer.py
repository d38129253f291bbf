"""Which sparse optimizer for a Transformer: a character-level GPT on Python's docs, every
method at one tuning budget, chosen on validation, tested over seeds.

The protocol is that of ``benchmarks/networks.py`` (its helpers are reused):

1. **Search.** Each method gets the same number of trials (``--trials``), proposed by Optuna's
   TPE sampler with a fixed seed, over its own hyperparameters, the learning rate included
   (``METHODS``). Penalty and decay strengths are searched as a *budget* ``B = strength x
   sum_t lr_t``, so one range means the same at any run length. A trial trains with seed 0;
   its objective (minimized) is the mean validation loss over the target sparsities.
2. **Pruning.** Every trained network is pruned to each target sparsity in ``TARGETS`` by
   global magnitude over the sparsified matrices (attention and MLP; embeddings, head, norms
   and biases dense, :mod:`rewa.experiments.gpt`), with no fine-tune. ``magnitude pruning`` is
   the classic baseline within the same step budget: AdamW for ``1 - PRUNE_AT`` of the steps,
   then pruned to the target and trained on with a fixed mask for the rest of the schedule
   (a separate continuation per target).
3. **Choice on validation.** For each target the trial with the lowest validation loss there;
   for dense AdamW's reference, the trial with the lowest unpruned validation loss.
4. **Test.** Each chosen trial is rerun with ``--seeds`` seeds (seed 0 is the trial itself);
   the table gives test perplexity, mean +- std over seeds.

Every run: the same data order per seed, batch ``batch`` windows of ``context`` characters,
linear warm-up over ``WARMUP`` of the steps then cosine to 0 (per step), gradient norm clipped
to 1, cross-entropy over every position. The time per step is each run's training time over
its steps (the machine's other load included), reported as the median over a method's runs
against AdamW's.

``--scale smoke`` checks the pipeline in seconds (the tests run it); ``tiny`` is what the docs
report on a shared 2-core CPU (a 2-layer, width-64 GPT: far from a real language model);
``small`` (the library's default GPT: 4 layers, width 128, context 128) and ``full`` are for a
GPU. Results: ``OUT/results.json``, ``OUT/table.md``, ``OUT/transformer_pareto.png``.

Example: ``python benchmarks/transformer.py --scale tiny --threads 1 --out results/transformer``
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
import rewa  # noqa: E402
from networks import mean_std  # noqa: E402  (the same protocol's helpers)
from rewa.experiments.data import load_dataset  # noqa: E402
from rewa.experiments.models import make_model  # noqa: E402
from rewa.optim.registry import create_optimizer  # noqa: E402
from rewa.sparsity import FixedMask, prune  # noqa: E402
from rewa.training.config import lr_factor  # noqa: E402

TARGETS = (0.5, 0.7, 0.8, 0.9, 0.95)
CLIP = 1.0
WARMUP = 0.05  # fraction of the steps
PRUNE_AT = 0.2  # magnitude pruning: the last fraction of the steps is the masked fine-tune
REFERENCE = "adamw"
TRAIN_SECONDS = [0.0]  # training time of the steps run so far (the time per step excludes evaluation)

# name -> (registry method, fixed hyperparameters, search space); a space entry is ("log", low,
# high); "budget:<hp>" searches B and sets hp = B / sum_t lr_t.
_ADAM_LR = ("log", 3e-4, 1e-2)
METHODS: dict[str, tuple[str, dict, dict]] = {
    "adamw": ("adamw", {}, {"lr": _ADAM_LR, "weight_decay": ("log", 1e-3, 0.3)}),
    "magnitude pruning": ("adamw", {}, {"lr": _ADAM_LR, "weight_decay": ("log", 1e-3, 0.3)}),
    "rewa-adamw (K9 M2)": (
        "rewa-adamw",
        dict(K=9, M=2, eps=0.0),
        {"lr": _ADAM_LR, "budget:weight_decay": ("log", 5e-3, 2.0)},
    ),
    "rewa (K9 M2)": (
        "rewa",
        dict(momentum=0.9, K=9, M=2, eps=0.0, decoupled_weight_decay=True),
        {"lr": ("log", 0.02, 1.0), "budget:weight_decay": ("log", 5e-3, 2.0)},
    ),
    "pwd-adamw p=1": ("pwd-adamw", dict(p=1.0), {"lr": _ADAM_LR, "budget:lambda_p": ("log", 1e-4, 0.3)}),
    "pwd-adamw p=0.5": ("pwd-adamw", dict(p=0.5), {"lr": _ADAM_LR, "budget:lambda_p": ("log", 1e-4, 0.3)}),
    "l1 (prox SGD)": ("l1-prox", dict(momentum=0.9), {"lr": ("log", 0.02, 1.0), "budget:strength": ("log", 1e-4, 0.1)}),
}

SCALES = {
    "smoke": dict(
        model=dict(layers=1, heads=2, width=16),
        context=16,
        batch=8,
        steps=6,
        trials=2,
        seeds=2,
        methods=("adamw", "magnitude pruning", "rewa-adamw (K9 M2)"),
        eval_windows=64,
    ),
    # what the docs report: minutes per method on one CPU thread
    "tiny": dict(
        model=dict(layers=2, heads=4, width=64),
        context=64,
        batch=32,
        steps=400,
        trials=5,
        seeds=3,
        methods=tuple(METHODS),
        eval_windows=0,
    ),
    "small": dict(
        model=dict(layers=4, heads=4, width=128),
        context=128,
        batch=64,
        steps=3000,
        trials=12,
        seeds=3,
        methods=tuple(METHODS),
        eval_windows=0,
    ),
    "full": dict(
        model=dict(layers=6, heads=6, width=384),
        context=256,
        batch=64,
        steps=10000,
        trials=24,
        seeds=5,
        methods=tuple(METHODS),
        eval_windows=0,
    ),
}


class Setting:
    """The text data (contiguous train / validation / test parts) and the model's sizes."""

    def __init__(self, scale: dict, device: torch.device):
        bundle = load_dataset("text", context=scale["context"])
        self.vocab, self.context, self.batch, self.device = bundle.num_classes, scale["context"], scale["batch"], device
        self.model_options = dict(scale["model"])
        self.train = bundle.train.to(device)
        n = scale["eval_windows"]
        self.val, self.test = (
            part.to(device).subset(torch.arange(min(n, len(part)))) if n else part.to(device)
            for part in (bundle.val, bundle.test)
        )
        self.steps = scale["steps"]

    def model(self) -> nn.Module:
        return make_model("gpt", (self.context,), self.vocab, **self.model_options).to(self.device)

    def batches(self, seed: int, start: int, stop: int):
        """Batches ``start..stop-1`` of seed ``seed``'s fixed order (epochs of shuffled windows)."""
        n, per_epoch = len(self.train), len(self.train) // self.batch
        generator, epoch, order = torch.Generator().manual_seed(seed), -1, None
        for t in range(stop):
            if t // per_epoch != epoch:
                epoch, order = t // per_epoch, torch.randperm(n, generator=generator)
            if t >= start:
                i = t % per_epoch
                assert order is not None
                yield self.train.batch(order[i * self.batch : (i + 1) * self.batch].to(self.device))


def lr_factors(steps: int) -> list[float]:
    return [lr_factor("cosine", t, WARMUP * steps, steps) for t in range(steps)]


def hyperparameters(name: str, params: dict, steps: int) -> tuple[str, dict]:
    method, fixed, _ = METHODS[name]
    hp = dict(fixed)
    lr_total = params["lr"] * sum(lr_factors(steps))
    for key, value in params.items():
        if key.startswith("budget:"):
            hp[key.split(":", 1)[1]] = value / lr_total
        else:
            hp[key] = value
    return method, hp


def train_steps(model, opt, base: list[float], setting: Setting, seed: int, start: int, stop: int) -> bool:
    """Steps ``start..stop-1`` of the warm-up + cosine schedule from the groups' base rates
    ``base``; False if anything went non-finite."""
    factors = lr_factors(setting.steps)
    model.train()
    t0 = time.perf_counter()
    for t, (x, y) in zip(range(start, stop), setting.batches(seed, start, stop)):
        for g, lr in zip(opt.param_groups, base):
            g["lr"] = lr * factors[t]
        loss = nn.functional.cross_entropy(model(x).flatten(0, 1), y.flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), CLIP)
        opt.step()
    ok = all(bool(torch.isfinite(p).all()) for p in model.parameters())
    TRAIN_SECONDS[0] += time.perf_counter() - t0
    return ok


@torch.no_grad()
def split_loss(model: nn.Module, data, batch: int = 256) -> float:
    model.eval()
    total = torch.zeros((), dtype=torch.float64, device=data.x.device)
    for idx in torch.arange(len(data), device=data.x.device).split(batch):
        x, y = data.batch(idx)
        total += nn.functional.cross_entropy(model(x).flatten(0, 1), y.flatten(), reduction="sum")
    return float(total) / data.y.numel()


def scores(model: nn.Module, setting: Setting) -> dict:
    return {"val": split_loss(model, setting.val), "test": split_loss(model, setting.test)}


def key(target: float) -> str:
    return f"{round(100 * target)}%"


def run(name: str, params: dict, setting: Setting, seed: int) -> dict:
    """Train ``name`` with ``params``; losses dense and pruned to each target (magnitude
    pruning: one masked continuation per target); a failed run is marked."""
    steps = setting.steps
    method, hp = hyperparameters(name, params, steps)
    torch.manual_seed(seed)
    model = setting.model()
    out: dict = {}
    t0, trained_before = time.perf_counter(), TRAIN_SECONDS[0]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            opt = create_optimizer(method, model, **hp)
            base = [g["lr"] for g in opt.param_groups]
            if name == "magnitude pruning":
                dense_steps = round((1 - PRUNE_AT) * steps)
                ok = train_steps(model, opt, base, setting, seed, 0, dense_steps)
                trained = dense_steps
                for target in TARGETS if ok else ():
                    m, o = copy.deepcopy((model, opt))
                    masks = prune(m, sparsity=target, apply=True)
                    fixed = FixedMask(m, masks).attach(o)
                    ok = ok and train_steps(m, o, base, setting, seed, dense_steps, steps)
                    trained += steps - dense_steps
                    fixed.remove()
                    out[key(target)] = scores(m, setting)
            else:
                ok = train_steps(model, opt, base, setting, seed, 0, steps)
                trained = steps
    except (FloatingPointError, RuntimeError, ValueError) as error:
        ok, err = False, f"{type(error).__name__}: {error}"
    else:
        err = "" if ok else "non-finite weights"
    seconds = TRAIN_SECONDS[0] - trained_before
    if not ok:
        return {"diverged": True, "error": err, "seconds": time.perf_counter() - t0}
    out["dense"] = scores(model, setting)
    out["zeros"] = float(rewa.sparsity_report(model).sparsity)  # exact zeros after training
    if name != "magnitude pruning":
        for target in TARGETS:
            pruned = copy.deepcopy(model)
            prune(pruned, sparsity=target, apply=True)
            out[key(target)] = scores(pruned, setting)
    out.update(diverged=False, seconds=time.perf_counter() - t0, step_seconds=seconds / trained)
    return out


def val_of(result: dict, k: str) -> float:
    return math.inf if result["diverged"] else result[k]["val"]


def objective(result: dict) -> float:
    if result["diverged"]:
        return 1e9
    return statistics.mean(result[key(t)]["val"] for t in TARGETS)


def search(name: str, setting: Setting, scale: dict, log) -> list[dict]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = METHODS[name][2]
    trials = scale["trials"]
    sampler = optuna.samplers.TPESampler(seed=0, n_startup_trials=max(2, trials // 3))
    study = optuna.create_study(direction="minimize", sampler=sampler)
    records = []
    for i in range(trials):
        trial = study.ask()
        params = {hp: trial.suggest_float(hp, spec[1], spec[2], log=True) for hp, spec in space.items()}
        result = run(name, params, setting, 0)
        study.tell(trial, objective(result))
        records.append({"params": params, "result": result})
        shown = ", ".join(f"{k}={v:.3g}" for k, v in params.items())
        status = (
            "diverged"
            if result["diverged"]
            else (f"val ppl dense {math.exp(result['dense']['val']):.2f}, 90% {math.exp(result['90%']['val']):.2f}")
        )
        log(f"  {name} trial {i}: {shown}: {status} ({result['seconds']:.0f} s)")
    return records


def choose(records: list[dict]) -> dict:
    """The chosen trial per target and dense, on validation loss only."""
    return {
        k: min(range(len(records)), key=lambda i: val_of(records[i]["result"], k))
        for k in ("dense", *map(key, TARGETS))
    }


def run_method(name: str, setting: Setting, scale: dict, log) -> dict:
    records = search(name, setting, scale, log)
    chosen = choose(records)
    reruns: dict[int, list[dict]] = {}
    for i in sorted(set(chosen.values())):
        reruns[i] = [records[i]["result"]] + [
            run(name, records[i]["params"], setting, seed) for seed in range(1, scale["seeds"])
        ]
        log(f"  {name}: trial {i} rerun with {scale['seeds']} seeds")
    summary = {}
    for k, i in chosen.items():
        good = [r for r in reruns[i] if not r["diverged"]]
        summary[k] = {
            "trial": i,
            "test_ppl": mean_std([math.exp(r[k]["test"]) for r in good]) if good else None,
            "val_ppl": mean_std([math.exp(r[k]["val"]) for r in good]) if good else None,
            "diverged_seeds": len(reruns[i]) - len(good),
        }
    step_seconds = [r["step_seconds"] for runs in reruns.values() for r in runs if not r["diverged"]]
    step_seconds += [rec["result"]["step_seconds"] for rec in records if not rec["result"]["diverged"]]
    return {
        "trials": records,
        "chosen": chosen,
        "summary": summary,
        "reruns": {str(i): runs for i, runs in reruns.items()},
        "median_step_seconds": statistics.median(step_seconds) if step_seconds else None,
    }


# -- report -------------------------------------------------------------------------------------


def _fmt(ms) -> str:
    return "diverged" if ms is None else f"{ms[0]:.2f} ± {ms[1]:.2f}"


def best_per_target(results: dict) -> dict[str, tuple[str, float, str, float]]:
    """Per target: (best method, its mean test perplexity, runner-up, its mean)."""
    out = {}
    for t in map(key, TARGETS):
        ranked = sorted(
            (r["summary"][t]["test_ppl"][0], name) for name, r in results.items() if r["summary"][t]["test_ppl"]
        )
        if ranked:
            second = ranked[1] if len(ranked) > 1 else (math.nan, "")
            out[t] = (ranked[0][1], ranked[0][0], second[1], second[0])
    return out


def table(results: dict, seeds: int) -> str:
    lines = [f"Test perplexity (mean ± std over {seeds} seeds) of the trial chosen on validation at each sparsity", ""]
    ref = results.get(REFERENCE)
    if ref:
        lines.append(f"dense AdamW (reference, unpruned): test perplexity {_fmt(ref['summary']['dense']['test_ppl'])}")
        lines.append("")
    lines += [
        "| method | " + " | ".join(map(key, TARGETS)) + " | time / step vs AdamW |",
        "|---|" + "---|" * (len(TARGETS) + 1),
    ]
    best = best_per_target(results)
    ref_time = ref["median_step_seconds"] if ref else None
    for name, r in results.items():
        cells = []
        for t in map(key, TARGETS):
            s = r["summary"][t]
            text = _fmt(s["test_ppl"])
            if t in best and best[t][0] == name:
                text = f"**{text}**"
            if s["diverged_seeds"]:
                text += f" ({s['diverged_seeds']} div.)"
            cells.append(text)
        ratio = f"{r['median_step_seconds'] / ref_time:.2f}x" if ref_time and r["median_step_seconds"] else ""
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {ratio} |")
    lines.append("")
    for t, (name, value, second, value2) in best.items():
        lines.append(
            f"- {t}: best {name} ({value:.2f}); next {second} ({value2:.2f}), {value2 - value:+.2f} perplexity"
        )
    return "\n".join(lines) + "\n"


def figure(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for name, r in results.items():
        pts = [(t, r["summary"][key(t)]["test_ppl"]) for t in TARGETS if r["summary"][key(t)]["test_ppl"]]
        if not pts:
            continue
        style = dict(lw=2.2) if name.startswith("rewa") else dict(lw=1.0, ls="--")
        ax.errorbar(
            [100 * t for t, _ in pts],
            [m[0] for _, m in pts],
            yerr=[m[1] for _, m in pts],
            marker="o",
            ms=3,
            capsize=2,
            label=name,
            **style,
        )
    ref = results.get(REFERENCE)
    if ref and ref["summary"]["dense"]["test_ppl"]:
        ax.axhline(ref["summary"]["dense"]["test_ppl"][0], color="k", lw=0.8, ls=":", label="dense AdamW")
    ax.set_yscale("log")
    ax.set_xlabel("sparsity of the attention and MLP matrices (%)")
    ax.set_ylabel("test perplexity (lower is better)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    ax.set_title("char-level GPT on pydoc_data.topics: chosen on validation", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def parse_fixed(text: str) -> tuple[str, dict]:
    """``"adamw:lr=0.01,weight_decay=0.05"`` -> ``("adamw", {"lr": 0.01, "weight_decay": 0.05})``;
    the names must be the method's search space (budgets as ``budget:<hp>``)."""
    name, _, rest = text.partition(":")
    if name not in METHODS:
        raise ValueError(f"--fixed {text!r}: method {name!r} must be one of {', '.join(METHODS)}")
    params = {}
    for item in filter(None, rest.split(",")):
        key_, _, value = item.partition("=")
        params[key_] = float(value)
    if set(params) != set(METHODS[name][2]):
        raise ValueError(f"--fixed {text!r}: give exactly {', '.join(METHODS[name][2])}")
    return name, params


def run_fixed(configs: list[tuple[str, dict]], setting: Setting, scale: dict, log) -> list[dict]:
    """Each configuration over the seeds, no search: a check beside the protocol."""
    out = []
    for name, params in configs:
        runs = [run(name, params, setting, seed) for seed in range(scale["seeds"])]
        good = [r for r in runs if not r["diverged"]]
        row = {"method": name, "params": params, "diverged_seeds": len(runs) - len(good), "runs": runs}
        for k in ("dense", *map(key, TARGETS)):
            row[k] = {
                "test_ppl": mean_std([math.exp(r[k]["test"]) for r in good]) if good else None,
                "val_ppl": mean_std([math.exp(r[k]["val"]) for r in good]) if good else None,
            }
        out.append(row)
        shown = ", ".join(f"{k}={v:.3g}" for k, v in params.items())
        cells = ", ".join(f"{k} {_fmt(row[k]['test_ppl'])}" for k in ("dense", *map(key, TARGETS)))
        log(f"  fixed {name} ({shown}): test perplexity {cells}")
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", choices=tuple(SCALES), default="tiny")
    parser.add_argument("--methods", nargs="+", choices=tuple(METHODS), help="override the scale's methods")
    parser.add_argument("--steps", type=int, help="training steps of every run")
    parser.add_argument("--trials", type=int, help="Optuna trials per method (the same for every method)")
    parser.add_argument("--seeds", type=int, help="seeds of the test reruns (seed 0 is the trial)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--out", default="results/transformer")
    parser.add_argument("--no-figures", action="store_true")
    parser.add_argument(
        "--fixed",
        action="append",
        default=[],
        metavar="METHOD:NAME=VALUE,...",
        help="no search: run this configuration over --seeds seeds (a check beside the protocol, e.g. "
        "adamw at another method's learning rate); writes OUT/fixed.json",
    )
    args = parser.parse_args(argv)
    try:
        fixed = [parse_fixed(text) for text in args.fixed]
    except ValueError as error:
        parser.error(str(error))
    torch.set_num_threads(args.threads)
    scale = dict(SCALES[args.scale])
    for name in ("steps", "trials", "seeds"):
        if getattr(args, name) is not None:
            scale[name] = getattr(args, name)
    if min(scale["steps"], scale["trials"], scale["seeds"]) < 1:
        parser.error(
            f"--steps, --trials, --seeds must be >= 1, got {scale['steps']}, {scale['trials']}, {scale['seeds']}"
        )
    methods = args.methods or scale["methods"]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    setting = Setting(scale, torch.device(args.device))
    print(
        f"scale {args.scale}: gpt {scale['model']}, context {scale['context']}, batch {scale['batch']}, "
        f"{scale['steps']} steps, {scale['trials']} trials per method, {scale['seeds']} seeds, threads {args.threads}",
        flush=True,
    )
    if fixed:
        start = time.perf_counter()
        rows = run_fixed(fixed, setting, scale, log)
        record = {"scale": args.scale, "argv": list(sys.argv[1:] if argv is None else argv), "fixed": rows}
        record["wall_seconds"] = time.perf_counter() - start
        (out / "fixed.json").write_text(json.dumps(record, indent=1, default=str))
        print(f"total {record['wall_seconds']:.0f} s")
        return 0
    everything: dict = {
        "scale": args.scale,
        "argv": list(sys.argv[1:] if argv is None else argv),
        **{k: scale[k] for k in ("model", "context", "batch", "steps", "trials", "seeds")},
        "threads": args.threads,
        "targets": TARGETS,
        "spaces": {m: METHODS[m][2] for m in methods},
        "methods": {},
    }
    start = time.perf_counter()
    for method in methods:
        everything["methods"][method] = run_method(method, setting, scale, log)
        everything["wall_seconds"] = time.perf_counter() - start
        (out / "results.json").write_text(json.dumps(everything, indent=1, default=str))
        log(f"[{method}] done at {time.perf_counter() - start:.0f} s")
    text = table(everything["methods"], scale["seeds"])
    print(text, flush=True)
    (out / "table.md").write_text(text)
    if not args.no_figures:
        figure(everything["methods"], out / "transformer_pareto.png")
    print(f"total {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
