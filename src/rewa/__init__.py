"""rewa: sparse training with l_p (0 < p < 1) regularization through ReWA.

ReWA (Reparameterization, Weight decay, Adaptive learning rate) trains a latent ``y`` with
``x = sign(y)|y|^K`` and a per-coordinate step ``|y|^M |y|^(K-1)/(|y|^(K-1) + eps)``, which
acts like l_p regularization with ``p = 1 + (1 - M)/K``.
"""

from .optim import (
    ReWA,
    ReWAAdamW,
    SparsityConfigWarning,
    gradient_scale,
    latent_from_weight,
    power_map,
    rewa_adamw,
    rewa_sgd,
    scaled_gradient,
)
from .optim._validation import lp_exponent
from .param_groups import DENSE_DEFAULTS, NORM_LAYERS, param_groups, split_parameters
from . import theory

__version__ = "0.1.0"

__all__ = [
    "DENSE_DEFAULTS",
    "NORM_LAYERS",
    "ReWA",
    "ReWAAdamW",
    "SparsityConfigWarning",
    "__version__",
    "gradient_scale",
    "latent_from_weight",
    "lp_exponent",
    "param_groups",
    "power_map",
    "rewa_adamw",
    "rewa_sgd",
    "scaled_gradient",
    "split_parameters",
    "theory",
]
