"""Deprecated: the Section 3 formulas moved. What the library uses (``lp_exponent``,
``sparsity_configuration``, ``sparsity_problem``, ``implicit_regularizer`` and its gradient)
is :mod:`rewa.implicit`; the formulas behind the paper's checks are :mod:`rewa.paper.formulas`.
This old path forwards each name with a ``DeprecationWarning``."""

from __future__ import annotations

from . import _moved

__getattr__ = _moved.forward(__name__, ("rewa.implicit", "rewa.paper.formulas"))
