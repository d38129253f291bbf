"""Old import paths that keep working: a module ``__getattr__`` that forwards a moved name to
its new module, with a ``DeprecationWarning`` naming the new path.

The new modules are named as strings and imported on first use, so importing an old path
loads nothing of the new one until a moved name is asked for.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable, Collection


def forward(old: str, new: tuple[str, ...], names: Collection[str] | None = None) -> Callable[[str], object]:
    """The ``__getattr__`` of module ``old``: a public name (any, or only those in ``names``)
    comes from the first module of ``new`` that has it; the warning points at the caller."""

    def __getattr__(name: str) -> object:
        # dunders (doctest's __test__, __path__, ...) stay the old module's own, except
        # __all__, which `from old import *` reads
        if name == "__all__":
            exported = list(names) if names is not None else []
            if names is None:
                for target in new:
                    exported += getattr(importlib.import_module(target), "__all__", ())
            _warn(f"{old} (import *)", " and ".join(new))
            return exported
        if name.startswith("__") or (names is not None and name not in names):
            raise AttributeError(f"module {old!r} has no attribute {name!r}")
        for target in new:
            module = importlib.import_module(target)
            if hasattr(module, name):
                _warn(f"{old}.{name}", f"{target}.{name}")
                return getattr(module, name)
        raise AttributeError(f"module {old!r} has no attribute {name!r}")

    return __getattr__


def _warn(old: str, new: str) -> None:
    # stacklevel 3: past this helper and __getattr__, at the line that used the old path
    warnings.warn(f"{old} is deprecated: it moved to {new}", DeprecationWarning, stacklevel=3)
