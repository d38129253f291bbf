"""Runs every claim check and writes the records (JSON, a markdown table, figures)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from pathlib import Path

import torch

from ... import _json
from ...experiments._progress import progress_bar
from .example_3_2 import check_example_3_2
from .example_3_8 import check_example_3_8
from .example_3_12 import check_example_3_12
from .lemma_3_1 import check_lemma_3_1
from .records import ClaimRecord, TheoryConfig, TheoryResults
from .theorem_3_3 import check_theorem_3_3
from .theorem_3_7 import check_theorem_3_7
from .theorem_3_10 import check_theorem_3_10

CHECKS: tuple[tuple[str, Callable[[TheoryConfig], ClaimRecord]], ...] = (
    ("Lemma 3.1", check_lemma_3_1),
    ("Example 3.2", check_example_3_2),
    ("Theorem 3.3", check_theorem_3_3),
    ("Theorem 3.7", check_theorem_3_7),
    ("Example 3.8 / Theorem 3.9", check_example_3_8),
    ("Theorem 3.10 / Prop. 3.11", check_theorem_3_10),
    ("Example 3.12", check_example_3_12),
)


def run_theory(
    config: TheoryConfig = TheoryConfig(), progress: bool = False, only: Iterable[str] | None = None
) -> TheoryResults:
    """Run every check (or those whose claim name is in ``only``) and collect the records."""
    chosen = list(CHECKS)
    if only is not None:
        wanted = set(only)
        unknown = wanted - {name for name, _ in CHECKS}
        if unknown:
            raise ValueError(f"only={sorted(unknown)} are not claims; choose from {[n for n, _ in CHECKS]}")
        chosen = [c for c in CHECKS if c[0] in wanted]
    start = time.perf_counter()
    records = []
    torch_threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: threads cost more than they give
    try:
        bar = progress_bar(len(chosen), desc="theory", unit="claim", enabled=progress, every=0.0)
        for name, check_claim in chosen:
            if bar is not None:
                bar.set_postfix_str(name)
            records.append(check_claim(config))
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
    finally:
        torch.set_num_threads(torch_threads)
    return TheoryResults(config=config, records=records, seconds=time.perf_counter() - start)


def summary_table(results: TheoryResults) -> str:
    """A markdown table: claim, what was measured, verdict (and any paper erratum noted)."""
    lines = ["| claim | measured | verdict |", "| --- | --- | --- |"]
    for r in results.records:
        verdict = "pass" if r.passed else "FAIL"
        if r.discrepancies:
            verdict += f" ({len(r.discrepancies)} note{'s' if len(r.discrepancies) > 1 else ''})"
        summary = r.summary.replace("|", "\\|")  # absolute values would split the cells
        lines.append(f"| {r.claim} | {summary} | {verdict} |")
    return "\n".join(lines)


def write_theory_results(results: TheoryResults, out_dir: str | Path, figures: bool = True) -> list[Path]:
    """Write ``<key>.json`` per claim, ``summary.json``, ``summary.md`` and (if ``figures``)
    the PNG figures into ``out_dir``; returns the written paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for record in results.records:
        path = out / f"{record.key}.json"
        path.write_text(_json.dumps(record.to_dict(), indent=1) + "\n")
        written.append(path)
    summary = results.to_dict()
    summary["records"] = [{k: v for k, v in r.items() if k not in ("measured", "inputs")} for r in summary["records"]]
    (out / "summary.json").write_text(_json.dumps(summary, indent=1) + "\n")
    (out / "summary.md").write_text(summary_table(results) + "\n")
    written += [out / "summary.json", out / "summary.md"]
    if figures:
        import matplotlib.pyplot as plt

        from ..plotting.theory import theory_figures

        for name, figure in theory_figures(results).items():
            path = out / f"{name}.png"
            figure.savefig(path, dpi=120, bbox_inches="tight")
            plt.close(figure)
            written.append(path)
    return written
