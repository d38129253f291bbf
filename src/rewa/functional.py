"""The kernels of the optimizers, for use without the optimizer classes.

Element-wise math (:func:`power_map`, :func:`latent_from_weight`, :func:`gradient_scale`,
:func:`rewa_direction`, :func:`rewa_update_`, :func:`heavy_ball`) and the update functions over
lists of tensors (:func:`rewa_sgd`, :func:`rewa_adamw`, :func:`pwd_sgd`, :func:`pwd_adamw`,
:func:`penalized_sgd`). A namespace only: the code lives in :mod:`rewa._math` and
:mod:`rewa.optim`.
"""

from ._math import (
    abs_pow,
    gradient_scale,
    heavy_ball,
    latent_from_weight,
    power_map,
    rewa_direction,
    rewa_update,
    rewa_update_,
)
from .optim import penalized_sgd, pwd_adamw, pwd_sgd, pwd_shrink_factor
from .optim.rewa import rewa_sgd
from .optim.rewa_adamw import rewa_adamw

__all__ = [
    "abs_pow",
    "gradient_scale",
    "heavy_ball",
    "latent_from_weight",
    "penalized_sgd",
    "power_map",
    "pwd_adamw",
    "pwd_sgd",
    "pwd_shrink_factor",
    "rewa_adamw",
    "rewa_direction",
    "rewa_sgd",
    "rewa_update",
    "rewa_update_",
]
