"""Section 3 of the paper, checked numerically: one module per claim, a runner for all.

Each ``check_*`` function takes a :class:`TheoryConfig` and returns a :class:`ClaimRecord`:
the inputs, the measured numbers, the paper's statement, what was checked, and pass/fail.
Trajectories come from the library's own update code (:class:`rewa.optim.rewa.ReWA` or
:func:`rewa.functional.rewa_sgd`), so the checks exercise what ships; the closed
forms come from :mod:`rewa.paper.formulas`.

Where the paper's statement and its proof disagree, or a statement does not hold as printed,
the record says so in ``discrepancies`` and checks the corrected statement instead; the
summary table shows both.

Example:
    >>> from rewa.paper.theory import TheoryConfig, check_example_3_2
    >>> check_example_3_2(TheoryConfig(quick=True)).passed
    True
"""

from .example_3_2 import check_example_3_2
from .example_3_8 import check_example_3_8
from .example_3_12 import check_example_3_12
from .lemma_3_1 import check_lemma_3_1
from .records import ClaimRecord, TheoryConfig, TheoryResults
from .runner import CHECKS, run_theory, summary_table, write_theory_results
from .theorem_3_3 import check_theorem_3_3
from .theorem_3_7 import check_theorem_3_7
from .theorem_3_10 import check_theorem_3_10

__all__ = [
    "CHECKS",
    "ClaimRecord",
    "TheoryConfig",
    "TheoryResults",
    "check_example_3_12",
    "check_example_3_2",
    "check_example_3_8",
    "check_lemma_3_1",
    "check_theorem_3_10",
    "check_theorem_3_3",
    "check_theorem_3_7",
    "run_theory",
    "summary_table",
    "write_theory_results",
]
