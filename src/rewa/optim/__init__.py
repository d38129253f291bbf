"""The optimizers: ReWA on SGD and on AdamW, their paper-literal references, and the peer
methods (pWD, penalized SGD); each with its functional update over lists of tensors."""

from ._functional import rewa_adamw, rewa_sgd
from ._fused import FusedFallbackWarning
from ._latent import ZeroSaddleWarning
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
    "rewa_adamw",
    "rewa_sgd",
]
