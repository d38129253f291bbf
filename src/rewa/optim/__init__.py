"""The optimizers: ReWA on SGD and on AdamW, their paper-literal references, and the peer
methods (pWD, penalized SGD); each file holds one algorithm's class and its functional update
over lists of tensors (``rewa.optim.rewa.rewa_sgd``, ``rewa.optim.rewa_adamw.rewa_adamw``; both
also in :mod:`rewa.functional`). The ReWA update functions are not names of this package: each
would hide the module of the same name."""

from ._base import ZeroSaddleWarning
from ._compile import FusedFallbackWarning
from .penalized import PenalizedSGD, penalized_sgd
from .pwd import PWDSGD, PWDAdamW, pwd_adamw, pwd_sgd, pwd_shrink_factor
from .reference import ReWAAdamWReference, ReWAReference
from .rewa import ReWA, SparsityConfigWarning
from .rewa_adamw import ReWAAdamW

__all__ = [
    "FusedFallbackWarning",
    "PWDAdamW",
    "PWDSGD",
    "PenalizedSGD",
    "ReWA",
    "ReWAAdamW",
    "ReWAAdamWReference",
    "ReWAReference",
    "SparsityConfigWarning",
    "ZeroSaddleWarning",
    "penalized_sgd",
    "pwd_adamw",
    "pwd_sgd",
    "pwd_shrink_factor",
]
