"""Progress for long experiments: tqdm when it is installed, else plain lines on stderr."""

from __future__ import annotations

import math
import sys
import time


class _StderrProgress:
    """tqdm's stand-in: a line ``desc: unit n/total (note), elapsed, ETA`` at most every ``every`` s."""

    def __init__(self, total: int, initial: int, desc: str, unit: str, every: float):
        self.total, self.n, self.first = total, initial, initial
        self.desc, self.unit, self.every = desc, unit, every
        self.note = ""
        self.start = time.perf_counter()
        self.last_print = -math.inf

    def set_postfix_str(self, note: str) -> None:
        self.note = note

    def update(self, k: int = 1) -> None:
        self.n += k
        now = time.perf_counter()
        if now - self.last_print >= self.every or self.n == self.total:
            self.last_print = now
            done, elapsed = self.n - self.first, now - self.start
            eta = elapsed / done * (self.total - self.n) if done else math.nan
            note = f" ({self.note})" if self.note else ""
            print(
                f"{self.desc}: {self.unit} {self.n}/{self.total}{note}, {elapsed:.0f} s elapsed, ETA {eta:.0f} s",
                file=sys.stderr,
                flush=True,
            )

    def close(self) -> None:
        pass


def progress_bar(total: int, *, desc: str, unit: str, initial: int = 0, enabled: bool = True, every: float = 5.0):
    """An object with ``update(k)``, ``set_postfix_str(s)`` and ``close()``, or ``None`` if disabled."""
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return _StderrProgress(total, initial, desc, unit, every)
    return tqdm(total=total, initial=initial, desc=desc, unit=unit, file=sys.stderr)
