"""matplotlib's pyplot, imported on first use (so ``import rewa`` never needs matplotlib)."""

from __future__ import annotations

import sys


def pyplot():
    """``matplotlib.pyplot``; on first import with the file-only Agg backend (no display needed),
    while a session that already imported pyplot keeps its own backend."""
    import matplotlib

    if "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
