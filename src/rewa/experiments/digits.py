"""Deprecated: the digits MLP runs of ``rewa reproduce sparsity`` moved to :mod:`rewa.paper.digits`.

This old path forwards each name there with a ``DeprecationWarning``.
"""

from __future__ import annotations

from .. import _moved

__getattr__ = _moved.forward(__name__, ("rewa.paper.digits",))
