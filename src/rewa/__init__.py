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
from .optim.l1 import PenalizedSGD, penalized_sgd
from .optim.pwd import PWDAdamW, PWDSGD, pwd_adamw, pwd_sgd, pwd_shrink_factor
from .optim.registry import MethodInfo, create_optimizer, list_methods, method_names
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
from .controller import ControllerRecord, TargetSparsityController
from .export import ExportSummary, SparseLinear, export_sparse, load_sparse, to_sparse_linear
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
from .param_groups import DENSE_DEFAULTS, NORM_LAYERS, param_groups, split_parameters
from . import theory

__version__ = "0.1.0"

__all__ = [
    "ControllerRecord",
    "ExportSummary",
    "FixedMask",
    "SparseLinear",
    "SparsityReport",
    "SweepPoint",
    "SweepResult",
    "TargetSparsityController",
    "TensorSparsity",
    "attach_masks",
    "export_sparse",
    "load_sparse",
    "make_masks_permanent",
    "prune",
    "sparsity_report",
    "threshold_sweep",
    "to_sparse_linear",
    "ClippedLp",
    "HadamardProduct",
    "L1",
    "Lp",
    "MethodInfo",
    "PWDAdamW",
    "PWDSGD",
    "PenalizedSGD",
    "PowerPropagation",
    "SignedSquares",
    "collapse",
    "create_optimizer",
    "factor_parameters",
    "list_methods",
    "lp_weight_of_factor_decay",
    "make_penalty",
    "method_names",
    "parametrize_model",
    "penalized_sgd",
    "pwd_adamw",
    "pwd_sgd",
    "pwd_shrink_factor",
    "spred",
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
