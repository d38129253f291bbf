"""Which tensors are sparsified: pure helpers that build optimizer param groups.

By default the weights of ordinary layers (Linear, Conv, Embedding, ... : tensors with two or
more dimensions) are sparsified, and biases and every parameter of a normalization layer stay
dense: pruning a bias or a scale buys little compression and costs accuracy.
``norm="sparsify"`` puts the normalization scales and shifts in the sparsified group instead
(reparameterized and decayed with the weights, as the paper's ResNet code trained them); they
are still not counted as weights by :mod:`rewa.sparsity`.

A module may name matrices that stay dense by defining ``dense_parameter_names()`` (the names
of its parameters, relative to it; like timm's ``no_weight_decay()``): the GPT of
:mod:`rewa.experiments.gpt` keeps its embeddings and head dense this way. Those tensors are
then dense for every optimizer and sparsity tool (``include_bias_and_norm=True`` still takes
every parameter). :func:`dense_names_by_role` builds such a set from parameter roles.
"""

from __future__ import annotations

from collections.abc import Mapping

from torch import nn

__all__ = [
    "NORM_LAYERS",
    "NORM_CHOICES",
    "DENSE_DEFAULTS",
    "SPARSIFY_ROLES",
    "declared_dense_names",
    "dense_names_by_role",
    "split_parameters",
    "param_groups",
]

NORM_LAYERS: tuple[type[nn.Module], ...] = tuple(
    t
    for t in (
        nn.modules.batchnorm._NormBase,  # BatchNorm*, InstanceNorm*, SyncBatchNorm
        nn.GroupNorm,
        nn.LayerNorm,
        nn.LocalResponseNorm,
        getattr(nn, "RMSNorm", None),
    )
    if t is not None
)

# Where the parameters of normalization layers go: the dense group, or the sparsified one.
NORM_CHOICES = ("dense", "sparsify")

# The dense group: no reparameterization (plain SGD / AdamW) and no decay.
DENSE_DEFAULTS: Mapping[str, float] = {"K": 1, "M": 0, "eps": 0.0, "weight_decay": 0.0}


# The roles of a Transformer's matrices that may be sparsified (the rest: norms, biases).
SPARSIFY_ROLES = ("attention", "mlp", "embeddings", "head")
_MATRIX_ROLES = SPARSIFY_ROLES


def dense_names_by_role(roles: Mapping[str, str], sparsify) -> set[str]:
    """The names of the matrices whose role is not in ``sparsify`` (norms and biases are dense
    by :func:`split_parameters`' own rule, so they are not listed).

    Example:
        >>> roles = {"emb.weight": "embeddings", "q.weight": "attention", "fc.weight": "mlp", "fc.bias": "bias"}
        >>> sorted(dense_names_by_role(roles, ("attention", "mlp")))
        ['emb.weight']
        >>> sorted(dense_names_by_role(roles, ("attention",)))
        ['emb.weight', 'fc.weight']
    """
    unknown = sorted(set(sparsify) - set(SPARSIFY_ROLES))
    if unknown:
        raise ValueError(f"sparsify role(s) {', '.join(map(repr, unknown))} must be among {', '.join(SPARSIFY_ROLES)}")
    return {name for name, role in roles.items() if role in _MATRIX_ROLES and role not in sparsify}


def declared_dense_names(model: nn.Module) -> set[str]:
    """Full names of the parameters that ``model``'s modules declare dense (``dense_parameter_names()``)."""
    out: set[str] = set()
    for module_name, module in model.named_modules():
        declare = getattr(module, "dense_parameter_names", None)
        if callable(declare):
            out |= {f"{module_name}.{n}" if module_name else n for n in declare()}
    return out


def check_norm(norm: object) -> str:
    if norm not in NORM_CHOICES:
        raise ValueError(f"norm={norm!r} must be one of {', '.join(map(repr, NORM_CHOICES))}")
    return str(norm)


def split_parameters(
    model: nn.Module, *, include_bias_and_norm: bool = False, norm: str = "dense"
) -> tuple[list[tuple[str, nn.Parameter]], list[tuple[str, nn.Parameter]]]:
    """``(sparse, dense)``: named trainable parameters, each listed once, in model order.

    A parameter is sparsified when it has at least two dimensions, does not belong to a
    normalization layer and is not declared dense by its module (:func:`declared_dense_names`),
    or when it belongs to a normalization layer and ``norm="sparsify"``, or for every parameter
    when ``include_bias_and_norm`` is true.
    """
    check_norm(norm)
    kept_dense = declared_dense_names(model)
    sparse, dense, seen = [], [], set()
    for module_name, module in model.named_modules():
        is_norm = isinstance(module, NORM_LAYERS)
        for name, p in module.named_parameters(recurse=False):
            if not p.requires_grad or id(p) in seen:
                continue
            seen.add(id(p))
            full_name = f"{module_name}.{name}" if module_name else name
            matrix = p.ndim >= 2 and not is_norm and full_name not in kept_dense
            if include_bias_and_norm or (is_norm and norm == "sparsify") or matrix:
                sparse.append((full_name, p))
            else:
                dense.append((full_name, p))
    return sparse, dense


def param_groups(
    model: nn.Module,
    *,
    include_bias_and_norm: bool = False,
    norm: str = "dense",
    dense: Mapping[str, object] | None = None,
    sparse: Mapping[str, object] | None = None,
    dense_defaults: Mapping[str, object] = DENSE_DEFAULTS,
) -> list[dict]:
    """Param groups for any optimizer of this library: one sparsified, one dense.

    Args:
        model: the module whose trainable parameters are grouped.
        include_bias_and_norm: sparsify every parameter (one group).
        norm: ``"dense"`` (normalization scales and shifts in the dense group) or
            ``"sparsify"`` (in the sparsified group: reparameterized and decayed like the
            weights; biases of other layers stay dense).
        dense: hyperparameters of the dense group; defaults to :data:`DENSE_DEFAULTS`
            (``K = 1, M = 0, eps = 0, weight_decay = 0``). Keys given replace the defaults.
        sparse: hyperparameters of the sparsified group (the optimizer's defaults otherwise).
        dense_defaults: what ``dense`` is laid over; ReWA's plain settings by default. Other
            optimizers pass their own (``create_optimizer`` gives pWD ``lambda_p = 0``).

    Empty groups are left out. Raises ``ValueError`` if the model has no trainable parameter.

    Example:
        >>> import torch, rewa
        >>> model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.LayerNorm(8), torch.nn.Linear(8, 1))
        >>> [len(g["params"]) for g in rewa.param_groups(model)]
        [2, 4]
        >>> [len(g["params"]) for g in rewa.param_groups(model, norm="sparsify")]
        [4, 2]
    """
    sparse_params, dense_params = split_parameters(model, include_bias_and_norm=include_bias_and_norm, norm=norm)
    if not sparse_params and not dense_params:
        raise ValueError(f"{type(model).__name__} has no trainable parameters")
    groups = []
    if sparse_params:
        groups.append({"params": [p for _, p in sparse_params], **dict(sparse or {})})
    if dense_params:
        groups.append({"params": [p for _, p in dense_params], **{**dense_defaults, **dict(dense or {})}})
    return groups
