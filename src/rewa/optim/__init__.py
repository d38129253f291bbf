"""ReWA optimizers and their update functions."""

from ._fused import FusedFallbackWarning
from ._functional import gradient_scale, latent_from_weight, power_map, rewa_adamw, rewa_sgd, scaled_gradient
from ._latent import ZeroSaddleWarning
from .rewa import ReWA, SparsityConfigWarning
from .rewa_adamw import ReWAAdamW

__all__ = [
    "FusedFallbackWarning",
    "ReWA",
    "ReWAAdamW",
    "SparsityConfigWarning",
    "ZeroSaddleWarning",
    "gradient_scale",
    "latent_from_weight",
    "power_map",
    "rewa_adamw",
    "rewa_sgd",
    "scaled_gradient",
]
