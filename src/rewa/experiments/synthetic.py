"""Deprecated: the Section 4.1 synthetic regression (Figures 1 and 2) moved to :mod:`rewa.paper.synthetic`.

This old path forwards each name there with a ``DeprecationWarning``.
"""

from __future__ import annotations

from .. import _moved

__getattr__ = _moved.forward(__name__, ("rewa.paper.synthetic",))
