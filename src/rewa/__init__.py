"""rewa: sparse training with l_p (0 < p < 1) regularization through ReWA.

ReWA (Reparameterization, Weight decay, Adaptive learning rate) trains a latent ``y`` with
``x = sign(y)|y|^K`` and a per-coordinate step ``|y|^M |y|^(K-1)/(|y|^(K-1) + eps)``, which
acts like l_p regularization with ``p = 1 + (1 - M)/K``.

The top level holds what a training script needs; the rest is in the submodules
(:mod:`rewa.functional` for the kernels, :mod:`rewa.optim` for every optimizer,
:mod:`rewa.penalties`, :mod:`rewa.implicit`, :mod:`rewa.reparam`, :mod:`rewa.sparsity`,
:mod:`rewa.export`, ...). The paper's reproduction is :mod:`rewa.paper`, which the library
never imports.
"""

from . import functional, implicit
from ._version import __version__
from .controller import TargetSparsityController, TargetSparsityWarning
from .export import export_sparse, load_sparse
from .optim import (
    PWDSGD,
    PenalizedSGD,
    PWDAdamW,
    ReWA,
    ReWAAdamW,
    SparsityConfigWarning,
    ZeroSaddleWarning,
)
from .optim.registry import create_optimizer, list_methods
from .param_groups import param_groups
from .recipe import recipe
from .reparam import collapse, parametrize_model
from .sparsity import FixedMask, SparsityReport, prune, sparsity_report

# scikit-learn is an optional dependency (the `sklearn` extra): its estimators load on first use.
_ESTIMATORS = ("ReWAClassifier", "ReWARegressor", "ReWARegressorCV")


# the training layer loads on first use too (it imports the datasets' and models' modules)
_TRAINING = {
    "train": "rewa.training.loop",
    "TrainResult": "rewa.training.loop",
    "TrainConfig": "rewa.training.config",
}


def __getattr__(name: str):
    if name in _ESTIMATORS:
        from . import linear_model

        return getattr(linear_model, name)
    if name in _TRAINING:
        import importlib

        return getattr(importlib.import_module(_TRAINING[name]), name)
    if name == "theory":  # its earlier path: the module forwards each name with a DeprecationWarning
        import importlib

        return importlib.import_module("rewa.theory")
    raise AttributeError(f"module 'rewa' has no attribute {name!r}")


__all__ = [
    # optimizers and how to build them
    "ReWA", "ReWAAdamW", "PWDSGD", "PWDAdamW", "PenalizedSGD",
    "param_groups", "create_optimizer", "list_methods", "recipe",
    # scikit-learn estimators
    *_ESTIMATORS,
    # training a model sparse, end to end
    "train", "TrainConfig", "TrainResult",
    # measuring, pruning, steering and saving sparsity
    "sparsity_report", "SparsityReport", "prune", "FixedMask", "TargetSparsityController",
    "export_sparse", "load_sparse", "parametrize_model", "collapse",
    # warnings
    "SparsityConfigWarning", "ZeroSaddleWarning", "TargetSparsityWarning",
    # namespaces
    "functional", "implicit", "__version__",
]  # fmt: skip
