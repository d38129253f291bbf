"""One table of methods: ReWA and every method it is compared with, built by name.

:func:`create_optimizer` turns ``(name, model, hyperparameters)`` into a ready optimizer,
doing whatever the method needs first (the reparameterized methods register their
parametrization on the model, in place). :func:`list_methods` describes every method.

For every method the sparsified tensors are those of :func:`rewa.param_groups.split_parameters`
(weights of ordinary layers); biases and normalization layers form a second group that is
trained by the same base optimizer with no penalty, decay or reparameterization.
``include_bias_and_norm=True`` puts every parameter in the sparsified group.

Example:
    >>> import torch
    >>> from rewa.optim.registry import create_optimizer
    >>> from rewa.reparam import collapse
    >>> model = torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1))
    >>> opt = create_optimizer("hadamard", model, lr=0.05, K=3, weight_decay=1e-3)
    >>> x, y = torch.randn(32, 8), torch.randn(32, 1)
    >>> for _ in range(5):
    ...     opt.zero_grad()
    ...     torch.nn.functional.mse_loss(model(x), y).backward()
    ...     opt.step()
    >>> collapse(model)  # plain weights again, ready to save
    ['0.weight', '2.weight']
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from types import MappingProxyType
from typing import Any

import torch
from torch import nn
from torch.optim import Optimizer

from .. import _check as check
from .. import reparam
from ..param_groups import DENSE_DEFAULTS, check_norm, param_groups, split_parameters
from ._checks import TORCH_DUPLICATE_WARNING, refuse_repeated_parameters
from .penalized import PenalizedSGD
from .pwd import PWDSGD, PWDAdamW
from .rewa import ReWA
from .rewa_adamw import ReWAAdamW

__all__ = ["MethodInfo", "MethodTable", "create_optimizer", "list_methods", "method_names"]


@dataclass(frozen=True)
class MethodInfo:
    """One row of the method table: how to build the method, and what :func:`list_methods` shows.

    ``optimizer`` is built on the param groups with ``fixed`` and the hyperparameters as
    keyword arguments. A method with a ``parametrization`` first registers
    ``parametrization(*[hp[k] for k in parametrization_args])`` on the model's sparsified
    weights (the model is changed in place) and then runs ``optimizer`` on the factors; the
    remaining hyperparameters are the optimizer's. ``dense`` is what the dense group (biases,
    norms) gets unless the user's ``dense=`` says otherwise; ``check`` (optional) checks the
    hyperparameters with messages that state the allowed ranges, before anything is built.
    """

    name: str
    optimizer: type[Optimizer]
    hyperparameters: Mapping[str, object]  # name -> default
    description: str
    reference: str
    dense: Mapping[str, object] = field(default_factory=dict)
    fixed: Mapping[str, Any] = field(default_factory=dict)
    parametrization: Callable[..., nn.Module] | None = None
    parametrization_args: tuple[str, ...] = ()
    check: Callable[[dict], None] | None = None

    def __post_init__(self) -> None:
        for name in ("hyperparameters", "dense", "fixed"):  # read-only views: every caller shares the row
            object.__setattr__(self, name, MappingProxyType(dict(getattr(self, name))))

    @property
    def reparameterizes(self) -> bool:
        """Whether the method registers a parametrization on the model (needs an nn.Module)."""
        return self.parametrization is not None

    def __str__(self) -> str:
        hps = ", ".join(f"{k}={v!r}" for k, v in self.hyperparameters.items())
        return f"{self.name}: {self.description} [{hps}]"


def _class_defaults(cls: type) -> dict:
    return {
        name: p.default
        for name, p in inspect.signature(cls).parameters.items()
        if name not in ("self", "params") and p.default is not inspect.Parameter.empty
    }


def _check_sgd(hp: dict) -> None:
    """torch's own checks do not state the allowed ranges; these do, before anything is built."""
    check.at_least("lr", hp["lr"], 0)
    check.at_least("weight_decay", hp.get("weight_decay", 0.0), 0)
    check.check_momentum(hp)


def _check_adamw(hp: dict) -> None:
    check.at_least("lr", hp["lr"], 0)
    check.check_betas(hp["betas"])
    check.at_least("eps", hp["eps"], 0)
    check.at_least("weight_decay", hp["weight_decay"], 0)


_SGD_MOMENTUM = dict(momentum=0.0, dampening=0.0, nesterov=False)
_PAPER = (
    "Theoretical Analysis of Sparse Optimization with Reparameterization, Weight Decay, "
    "and Adaptive Learning Rate (ICML 2026)"
)
_PWD = "Outmezguine & Levi, Decoupled Weight Decay for Any p Norm"
_NO_STRENGTH = {"strength": 0.0}
_NO_DECAY = {"weight_decay": 0.0}

_TABLE = (
    MethodInfo(
        "sgd",
        torch.optim.SGD,
        dict(lr=1e-3, weight_decay=0.0, **_SGD_MOMENTUM),
        "torch.optim.SGD (l2 weight decay coupled, on sparsified weights only)",
        "torch",
        dense=_NO_DECAY,
        check=_check_sgd,
    ),
    MethodInfo(
        "adamw",
        torch.optim.AdamW,
        dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2),
        "torch.optim.AdamW (decoupled decay on sparsified weights only)",
        "Loshchilov & Hutter 2019",
        dense=_NO_DECAY,
        check=_check_adamw,
    ),
    MethodInfo(
        "rewa",
        ReWA,
        _class_defaults(ReWA),
        "ReWA on SGD: x = sign(y)|y|^K, adaptive step |y|^M |y|^(K-1)/(|y|^(K-1)+eps), decay on y",
        _PAPER + ", Algorithm 1",
        dense=DENSE_DEFAULTS,
    ),
    MethodInfo(
        "rewa-adamw",
        ReWAAdamW,
        _class_defaults(ReWAAdamW),
        "ReWA on AdamW",
        _PAPER + ", Algorithm 2",
        dense=DENSE_DEFAULTS,
    ),
    MethodInfo(
        "pwd-sgd",
        PWDSGD,
        _class_defaults(PWDSGD),
        "pWD on SGD: w <- (w - lr*v) / (1 + lr*lambda_p*|w|^(p-2))",
        _PWD,
        dense={"lambda_p": 0.0},
    ),
    MethodInfo(
        "pwd-adamw",
        PWDAdamW,
        _class_defaults(PWDAdamW),
        "pWD on Adam: Adam step, then w <- w_new / (1 + lr*lambda_p*|w|^(p-2))",
        _PWD,
        dense={"lambda_p": 0.0},
    ),
    MethodInfo(
        "l1-prox",
        PenalizedSGD,
        dict(lr=1e-3, strength=1e-5, **_SGD_MOMENTUM),
        "SGD + l1, proximal: soft-threshold after each step (exact zeros)",
        "Lasso / proximal SGD",
        dense=_NO_STRENGTH,
        fixed=dict(penalty="l1", proximal=True),
    ),
    MethodInfo(
        "l1-subgradient",
        PenalizedSGD,
        dict(lr=1e-3, strength=1e-5, **_SGD_MOMENTUM),
        "SGD + l1, subgradient: g + strength*sign(x) (the paper's SGD-L1 baseline)",
        _PAPER + ", Section 4",
        dense=_NO_STRENGTH,
        fixed=dict(penalty="l1", proximal=False),
    ),
    MethodInfo(
        "lp-subgradient",
        PenalizedSGD,
        dict(lr=1e-3, strength=1e-5, p=0.5, **_SGD_MOMENTUM),
        "SGD + strength*||x||_p^p by its (unbounded) gradient p sign(x)|x|^(p-1)",
        _PAPER + ", [Bp]",
        dense=_NO_STRENGTH,
        fixed=dict(penalty="lp", proximal=False),
    ),
    MethodInfo(
        "lp-clipped",
        PenalizedSGD,
        dict(lr=1e-3, strength=1e-5, p=0.5, threshold=1e-2, clip="l1", **_SGD_MOMENTUM),
        "SGD + strength * clipped l_p (Definition 3.6; clip='constant' or 'l1' at threshold u)",
        _PAPER + ", Definition 3.6 and Theorem 3.7",
        dense=_NO_STRENGTH,
        fixed=dict(penalty="lp-clipped", proximal=False),
    ),
    MethodInfo(
        "hadamard",
        torch.optim.SGD,
        dict(K=3, lr=1e-3, weight_decay=1e-4, **_SGD_MOMENTUM),
        "[Cp]: x = y_1*...*y_K, SGD with weight_decay on every factor (= l_p, p = 2/K, lambda_p = K*weight_decay/2)",
        "Hoff 2017; Kolb et al. 2023; " + _PAPER + ", Lemma 3.1",
        dense=_NO_DECAY,
        parametrization=reparam.HadamardProduct,
        parametrization_args=("K",),
    ),
    MethodInfo(
        "hadamard-signed",
        torch.optim.SGD,
        dict(offset=0.0, lr=1e-3, weight_decay=1e-4, **_SGD_MOMENTUM),
        "x = u*u - v*v, SGD with weight_decay on u, v (= l1 with weight weight_decay/2)",
        "Hoff 2017; Kolb et al. 2023",
        dense=_NO_DECAY,
        parametrization=reparam.SignedSquares,
        parametrization_args=("offset",),
    ),
    MethodInfo(
        "spred",
        torch.optim.SGD,
        dict(lr=1e-3, weight_decay=1e-4, **_SGD_MOMENTUM),
        "Spred: x = u*v, SGD with weight_decay on u, v (= l1 with weight weight_decay)",
        "Liu & Wang 2023",
        dense=_NO_DECAY,
        parametrization=reparam.spred,
    ),
    MethodInfo(
        "powerprop",
        torch.optim.SGD,
        dict(alpha=2.0, lr=1e-3, **_SGD_MOMENTUM),
        "PowerPropagation: x = y|y|^(alpha-1), plain SGD, no weight decay",
        "Schwarz et al. 2021",
        dense=_NO_DECAY,
        parametrization=reparam.PowerPropagation,
        parametrization_args=("alpha",),
    ),
)
_METHODS: dict[str, MethodInfo] = {row.name: row for row in _TABLE}


def _build(
    row: MethodInfo, model_or_params, hp: dict, include_bias_and_norm: bool, dense_hp: dict, norm: str
) -> Optimizer:
    """``row.optimizer`` on the sparse and dense groups of a module (parameters or groups given
    directly pass through)."""
    if row.check is not None:
        row.check(hp)
        row.check({**hp, **dense_hp})
    if isinstance(model_or_params, nn.Module):
        groups = param_groups(
            model_or_params,
            include_bias_and_norm=include_bias_and_norm,
            norm=norm,
            dense=dense_hp,
            dense_defaults=row.dense,
        )
    else:
        groups = list(model_or_params)
    return _built(row, groups, {**row.fixed, **hp})


def _built(row: MethodInfo, groups: list, hp: dict) -> Optimizer:
    """``row.optimizer(groups, **hp)``, refusing a parameter listed twice in a group (torch's
    optimizers only warn; this library's refuse it themselves)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=TORCH_DUPLICATE_WARNING)
        optimizer = row.optimizer(groups, **hp)
    for index, group in enumerate(optimizer.param_groups):
        refuse_repeated_parameters(group["params"], index, row.optimizer.__name__)
    return optimizer


def _build_reparameterized(
    row: MethodInfo, model_or_params, hp: dict, include_bias_and_norm: bool, dense_hp: dict, norm: str
) -> Optimizer:
    """Register the parametrization on the model's sparsified weights, then ``row.optimizer``
    (SGD) on the factors and the dense group. Every hyperparameter is checked (the
    parametrization's by building one) before the model is touched."""
    if not isinstance(model_or_params, nn.Module):
        raise TypeError(
            f"this method reparameterizes the model: pass the nn.Module, not {type(model_or_params).__name__}"
        )
    if norm != "dense":
        raise ValueError(
            f"norm={norm!r} with method {row.name!r}: reparameterizing methods keep normalization "
            "parameters dense; use include_bias_and_norm=True to reparameterize every parameter"
        )
    model = model_or_params
    make = row.parametrization
    assert make is not None  # only rows with a parametrization are built here
    factory = partial(make, *[hp[k] for k in row.parametrization_args])
    factory()  # validates the parametrization's own hyperparameters
    sgd_hp = {k: v for k, v in hp.items() if k not in row.parametrization_args}
    _check_sgd(sgd_hp)
    dense_sgd = {**row.dense, **{k: v for k, v in dense_hp.items() if k in sgd_hp}}
    _check_sgd({**sgd_hp, **dense_sgd})
    _, dense_params = split_parameters(model, include_bias_and_norm=include_bias_and_norm)
    reparam.parametrize_model(model, factory, include_bias_and_norm=include_bias_and_norm)
    groups = [{"params": reparam.factor_parameters(model)}]
    if dense_params:
        groups.append({"params": [p for _, p in dense_params], **dense_sgd})
    return _built(row, groups, sgd_hp)


def method_names() -> list[str]:
    """Every registered name, in table order."""
    return list(_METHODS)


class MethodTable(list):
    """The list of :class:`MethodInfo` that :func:`list_methods` returns; it prints (``str`` and
    ``repr``) as a table: one row per method with its description and hyperparameter defaults."""

    def __str__(self) -> str:
        rows = [("method", "description", "hyperparameters (defaults)")]
        rows += [(m.name, m.description, ", ".join(f"{k}={v!r}" for k, v in m.hyperparameters.items())) for m in self]
        widths = [max(len(row[i]) for row in rows) for i in range(2)]
        lines = [f"{a:<{widths[0]}}  {b:<{widths[1]}}  {c}".rstrip() for a, b, c in rows]
        lines.insert(1, "-" * len(lines[0]))
        return "\n".join(lines)

    def __repr__(self) -> str:
        return str(self)


def list_methods() -> MethodTable:
    """Each method with its description, reference, and hyperparameters with their defaults:
    a list of :class:`MethodInfo` that prints as a table.

    Example:
        >>> from rewa.optim.registry import list_methods
        >>> spred = next(m for m in list_methods() if m.name == "spred")
        >>> dict(spred.hyperparameters)
        {'lr': 0.001, 'weight_decay': 0.0001, 'momentum': 0.0, 'dampening': 0.0, 'nesterov': False}
        >>> str(list_methods()).splitlines()[2].split()[:2]  # print(list_methods()): the table
        ['sgd', 'torch.optim.SGD']
    """
    return MethodTable(_TABLE)


def create_optimizer(
    name: str,
    model_or_params: nn.Module | Iterable,
    *,
    include_bias_and_norm: bool = False,
    norm: str = "dense",
    dense: Mapping[str, object] | None = None,
    **hyperparameters,
) -> Optimizer:
    """The optimizer of method ``name`` for ``model_or_params``; see :func:`list_methods`.

    Args:
        name: a registered method name (:func:`method_names`).
        model_or_params: an ``nn.Module`` (biases and norms dense, see the module docstring),
            or parameters / param groups passed to the optimizer as given. Methods that
            reparameterize need the module and modify it in place (undo with
            :func:`rewa.reparam.collapse`).
        include_bias_and_norm: sparsify biases and normalization parameters too.
        norm: ``"dense"`` or ``"sparsify"``: normalization scales and shifts in the dense group,
            or in the sparsified group with the method's penalty, decay or reparameterization
            (:func:`rewa.param_groups`); not supported by the reparameterizing methods.
        dense: hyperparameters of the dense group (biases and norms), e.g.
            ``dense={"lr": 1e-2, "weight_decay": 1e-4}``. Keys are the method's
            hyperparameter names; each replaces, for that group only, what the group would
            otherwise get (the value given for the whole optimizer, or the dense group's
            default: no decay and no penalty; for ReWA, ``K = 1, M = 0, eps = 0``). Needs an
            ``nn.Module``.
        **hyperparameters: any of the method's hyperparameters; the rest take their defaults.

    Raises:
        ValueError: unknown ``name`` (the message lists the registered ones) or a bad value.
        TypeError: a hyperparameter the method does not have (the message lists the valid ones).

    Example:
        >>> import torch
        >>> model = torch.nn.Linear(8, 1)
        >>> opt = create_optimizer("rewa", model, lr=0.05, weight_decay=1e-3, dense={"lr": 0.01})
        >>> [(g["lr"], g["weight_decay"], g["K"]) for g in opt.param_groups]
        [(0.05, 0.001, 9), (0.01, 0.0, 1)]
    """
    check_norm(norm)
    method = _METHODS.get(name)
    if method is None:
        raise ValueError(f"unknown method {name!r}; registered methods: {', '.join(_METHODS)}")
    valid = method.hyperparameters
    unknown = sorted(set(hyperparameters) - set(valid))
    if unknown:
        raise TypeError(
            f"method {name!r} has no hyperparameter {', '.join(map(repr, unknown))}; valid: {', '.join(valid)}"
        )
    dense = dict(dense or {})
    unknown = sorted(set(dense) - set(valid))
    if unknown:
        raise TypeError(
            f"dense={{{', '.join(map(repr, unknown))}: ...}}: method {name!r} has no such hyperparameter; "
            f"valid: {', '.join(valid)}"
        )
    if dense and not isinstance(model_or_params, nn.Module):
        raise ValueError(
            f"dense={dense!r} needs the nn.Module (it builds the dense group); with parameters or "
            "groups given directly, set each group's hyperparameters in the group"
        )
    if norm != "dense" and not isinstance(model_or_params, nn.Module):
        raise ValueError(f"norm={norm!r} needs the nn.Module (it decides which group holds the norm layers)")
    build = _build_reparameterized if method.reparameterizes else _build
    return build(method, model_or_params, {**valid, **hyperparameters}, include_bias_and_norm, dense, norm)
