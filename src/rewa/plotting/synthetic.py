"""Deprecated: the figures of the synthetic regression moved to :mod:`rewa.paper.plotting.synthetic`.

This old path forwards each name there with a ``DeprecationWarning``.
"""

from __future__ import annotations

from .. import _moved

__getattr__ = _moved.forward(__name__, ("rewa.paper.plotting.synthetic",))
