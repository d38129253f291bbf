"""Figures of the paper's reproduction: functions take its result objects and return (or save)
matplotlib figures. matplotlib is imported inside the functions, so importing
:mod:`rewa.paper` never needs it.

* :mod:`rewa.paper.plotting.theory`: the Section 3 checks.
* :mod:`rewa.paper.plotting.synthetic`: Figures 1 and 2.
* :mod:`rewa.paper.plotting.sparsity`: ``rewa reproduce sparsity``'s accuracy against compression.
"""
