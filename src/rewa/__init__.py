"""rewa: sparse training with l_p (0 < p < 1) regularization through ReWA.

ReWA (Reparameterization, Weight decay, Adaptive learning rate) trains a latent ``y`` with
``x = sign(y)|y|^K`` and a per-coordinate step ``|y|^M |y|^(K-1)/(|y|^(K-1) + eps)``, which
acts like l_p regularization with ``p = 1 + (1 - M)/K``.
"""

from . import theory
from .controller import ControllerRecord, TargetSparsityController
from .export import ExportSummary, SparseCheckpointError, SparseLinear, export_sparse, load_sparse, to_sparse_linear
from .optim import (
    ReWA,
    ReWAAdamW,
    SparsityConfigWarning,
    ZeroSaddleWarning,
    gradient_scale,
    latent_from_weight,
    power_map,
    rewa_adamw,
    rewa_sgd,
    scaled_gradient,
)
from .optim._validation import lp_exponent
from .optim.l1 import PenalizedSGD, penalized_sgd
from .optim.pwd import PWDAdamW, PWDSGD, pwd_adamw, pwd_sgd, pwd_shrink_factor
from .optim.registry import MethodInfo, create_optimizer, list_methods, method_names
from .param_groups import DENSE_DEFAULTS, NORM_LAYERS, param_groups, split_parameters
from .penalties import L1, ClippedLp, Lp, make_penalty
from .reparam import (
    HadamardProduct,
    PowerPropagation,
    SignedSquares,
    collapse,
    factor_parameters,
    lp_weight_of_factor_decay,
    parametrize_model,
    spred,
)
from .sparsity import (
    FixedMask,
    SparsityReport,
    SweepPoint,
    SweepResult,
    TensorSparsity,
    attach_masks,
    make_masks_permanent,
    prune,
    sparsity_report,
    threshold_sweep,
)

__version__ = "0.1.0"

# scikit-learn is an optional dependency (the `sklearn` extra): its estimators load on first use.
_ESTIMATORS = ("ReWAClassifier", "ReWARegressor", "ReWARegressorCV")


def __getattr__(name: str):
    if name in _ESTIMATORS:
        from . import linear_model

        return getattr(linear_model, name)
    raise AttributeError(f"module 'rewa' has no attribute {name!r}")


__all__ = sorted(
    [
        "ClippedLp", "ControllerRecord", "DENSE_DEFAULTS", "ExportSummary", "FixedMask",
        "HadamardProduct", "L1", "Lp", "MethodInfo", "NORM_LAYERS", "PWDAdamW", "PWDSGD",
        "PenalizedSGD", "PowerPropagation", "ReWA", "ReWAAdamW", "SignedSquares", "SparseCheckpointError", "SparseLinear",
        "SparsityConfigWarning", "SparsityReport", "SweepPoint", "SweepResult",
        "TargetSparsityController", "TensorSparsity", "ZeroSaddleWarning", "__version__", "attach_masks", "collapse",
        "create_optimizer", "export_sparse", "factor_parameters", "gradient_scale",
        "latent_from_weight", "list_methods", "load_sparse", "lp_exponent",
        "lp_weight_of_factor_decay", "make_masks_permanent", "make_penalty", "method_names",
        "param_groups", "parametrize_model", "penalized_sgd", "power_map", "prune", "pwd_adamw",
        "pwd_sgd", "pwd_shrink_factor", "rewa_adamw", "rewa_sgd", "scaled_gradient",
        "sparsity_report", "split_parameters", "spred", "theory", "threshold_sweep",
        "to_sparse_linear", *_ESTIMATORS,
    ]
)
