"""Figures from results: functions take result objects and return matplotlib figures.

:mod:`rewa.plotting.training` draws a training run's curves (``rewa train``, ``rewa compare``),
:mod:`rewa.plotting.sparsity` accuracy against compression. The paper's figures are
:mod:`rewa.paper.plotting`. matplotlib is imported inside the submodules, so ``import rewa``
never needs it.
"""
