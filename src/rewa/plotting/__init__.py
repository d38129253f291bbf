"""Figures from results: functions take result objects and return matplotlib figures.

matplotlib is imported inside the submodules, so ``import rewa`` never needs it.
"""
