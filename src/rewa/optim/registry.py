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
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

import torch
from torch import nn
from torch.optim import Optimizer

from .. import reparam
from ..param_groups import DENSE_DEFAULTS, split_parameters
from .. import _check as check
from .penalized import PenalizedSGD
from .pwd import PWDAdamW, PWDSGD
from .rewa import ReWA
from .rewa_adamw import ReWAAdamW

__all__ = ["MethodInfo", "create_optimizer", "list_methods", "method_names"]


@dataclass(frozen=True)
class MethodInfo:
    """What :func:`list_methods` reports about one method."""

    name: str
    description: str
    reference: str
    hyperparameters: Mapping[str, object]  # name -> default
    reparameterizes: bool  # registers a parametrization on the model (needs an nn.Module)

    def __str__(self) -> str:
        hps = ", ".join(f"{k}={v!r}" for k, v in self.hyperparameters.items())
        return f"{self.name}: {self.description} [{hps}]"


@dataclass(frozen=True)
class _Method:
    info: MethodInfo
    build: Callable[[object, dict, bool], Optimizer]


_SGD_MOMENTUM = dict(momentum=0.0, dampening=0.0, nesterov=False)


def _class_defaults(cls: type) -> dict:
    return {
        name: p.default
        for name, p in inspect.signature(cls.__init__).parameters.items()
        if name not in ("self", "params") and p.default is not inspect.Parameter.empty
    }


def _groups(model_or_params, include_bias_and_norm: bool, dense: Mapping[str, object]) -> list:
    """Sparse and dense groups of a module; parameters or groups given directly pass through.

    ``dense`` is the dense group's settings: the method's dense defaults with the user's
    ``dense=`` keys on top.
    """
    if not isinstance(model_or_params, nn.Module):
        return list(model_or_params)
    sparse_params, dense_params = split_parameters(model_or_params, include_bias_and_norm=include_bias_and_norm)
    groups = []
    if sparse_params:
        groups.append({"params": [p for _, p in sparse_params]})
    if dense_params:
        groups.append({"params": [p for _, p in dense_params], **dense})
    if not groups:
        raise ValueError(f"{type(model_or_params).__name__} has no trainable parameters")
    return groups


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


def _plain(cls: type, dense: Mapping[str, object], precheck: Callable[[dict], None] | None = None):
    def build(model_or_params, hp: dict, include_bias_and_norm: bool, dense_hp: dict) -> Optimizer:
        if precheck is not None:
            precheck(hp)
            precheck({**hp, **dense_hp})
        return cls(_groups(model_or_params, include_bias_and_norm, {**dense, **dense_hp}), **hp)
    return build


def _fixed(cls: type, fixed: Mapping[str, object], dense: Mapping[str, object]):
    """A composition: ``cls`` with some hyperparameters pinned (e.g. the l1 penalty, prox form)."""
    def build(model_or_params, hp: dict, include_bias_and_norm: bool, dense_hp: dict) -> Optimizer:
        return cls(_groups(model_or_params, include_bias_and_norm, {**dense, **dense_hp}), **fixed, **hp)
    return build


def _reparameterized(make: Callable[[dict], Callable[[], nn.Module]], optimizer_keys: tuple[str, ...]):
    """Register ``make(hp)()`` on the model's sparsified weights, then SGD on factors + dense.

    Every hyperparameter is checked (the parametrization's by building one) before the model
    is touched.
    """
    def build(model_or_params, hp: dict, include_bias_and_norm: bool, dense_hp: dict) -> Optimizer:
        if not isinstance(model_or_params, nn.Module):
            raise TypeError(
                f"this method reparameterizes the model: pass the nn.Module, not "
                f"{type(model_or_params).__name__}"
            )
        model = model_or_params
        factory = make(hp)
        factory()  # validates the parametrization's own hyperparameters
        sgd_hp = {k: hp[k] for k in optimizer_keys}
        _check_sgd(sgd_hp)
        dense_sgd = {"weight_decay": 0.0, **{k: v for k, v in dense_hp.items() if k in optimizer_keys}}
        _check_sgd({**sgd_hp, **dense_sgd})
        _, dense_params = split_parameters(model, include_bias_and_norm=include_bias_and_norm)
        reparam.parametrize_model(model, factory, include_bias_and_norm=include_bias_and_norm)
        groups = [{"params": reparam.factor_parameters(model)}]
        if dense_params:
            groups.append({"params": [p for _, p in dense_params], **dense_sgd})
        return torch.optim.SGD(groups, **sgd_hp)
    return build


_FACTOR_SGD = ("lr", "weight_decay", "momentum", "dampening", "nesterov")
_PP_SGD = ("lr", "momentum", "dampening", "nesterov")

_PAPER = ("Theoretical Analysis of Sparse Optimization with Reparameterization, Weight Decay, "
          "and Adaptive Learning Rate (ICML 2026)")

_METHODS: dict[str, _Method] = {}


def _register(name, description, reference, hyperparameters, build, reparameterizes=False):
    info = MethodInfo(name, description, reference, MappingProxyType(dict(hyperparameters)), reparameterizes)
    _METHODS[name] = _Method(info, build)


_register("sgd", "torch.optim.SGD (l2 weight decay coupled, on sparsified weights only)", "torch",
          dict(lr=1e-3, weight_decay=0.0, **_SGD_MOMENTUM),
          _plain(torch.optim.SGD, {"weight_decay": 0.0}, _check_sgd))
_register("adamw", "torch.optim.AdamW (decoupled decay on sparsified weights only)", "Loshchilov & Hutter 2019",
          dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2),
          _plain(torch.optim.AdamW, {"weight_decay": 0.0}, _check_adamw))
_register("rewa", "ReWA on SGD: x = sign(y)|y|^K, adaptive step |y|^M |y|^(K-1)/(|y|^(K-1)+eps), decay on y",
          _PAPER + ", Algorithm 1", _class_defaults(ReWA), _plain(ReWA, DENSE_DEFAULTS))
_register("rewa-adamw", "ReWA on AdamW", _PAPER + ", Algorithm 2", _class_defaults(ReWAAdamW),
          _plain(ReWAAdamW, DENSE_DEFAULTS))
_register("pwd-sgd", "pWD on SGD: w <- (w - lr*v) / (1 + lr*lambda_p*|w|^(p-2))",
          "Outmezguine & Levi, Decoupled Weight Decay for Any p Norm", _class_defaults(PWDSGD),
          _plain(PWDSGD, {"lambda_p": 0.0}))
_register("pwd-adamw", "pWD on Adam: Adam step, then w <- w_new / (1 + lr*lambda_p*|w|^(p-2))",
          "Outmezguine & Levi, Decoupled Weight Decay for Any p Norm", _class_defaults(PWDAdamW),
          _plain(PWDAdamW, {"lambda_p": 0.0}))
_register("l1-prox", "SGD + l1, proximal: soft-threshold after each step (exact zeros)", "Lasso / proximal SGD",
          dict(lr=1e-3, strength=1e-5, **_SGD_MOMENTUM),
          _fixed(PenalizedSGD, dict(penalty="l1", proximal=True), {"strength": 0.0}))
_register("l1-subgradient", "SGD + l1, subgradient: g + strength*sign(x) (the paper's SGD-L1 baseline)",
          _PAPER + ", Section 4", dict(lr=1e-3, strength=1e-5, **_SGD_MOMENTUM),
          _fixed(PenalizedSGD, dict(penalty="l1", proximal=False), {"strength": 0.0}))
_register("lp-subgradient", "SGD + strength*||x||_p^p by its (unbounded) gradient p sign(x)|x|^(p-1)",
          _PAPER + ", [Bp]", dict(lr=1e-3, strength=1e-5, p=0.5, **_SGD_MOMENTUM),
          _fixed(PenalizedSGD, dict(penalty="lp", proximal=False), {"strength": 0.0}))
_register("lp-clipped", "SGD + strength * clipped l_p (Definition 3.6; clip='constant' or 'l1' at threshold u)",
          _PAPER + ", Definition 3.6 and Theorem 3.7",
          dict(lr=1e-3, strength=1e-5, p=0.5, threshold=1e-2, clip="l1", **_SGD_MOMENTUM),
          _fixed(PenalizedSGD, dict(penalty="lp-clipped", proximal=False), {"strength": 0.0}))
_register("hadamard", "[Cp]: x = y_1*...*y_K, SGD with weight_decay on every factor "
          "(= l_p, p = 2/K, lambda_p = K*weight_decay/2)", "Hoff 2017; Kolb et al. 2023; " + _PAPER + ", Lemma 3.1",
          dict(K=3, lr=1e-3, weight_decay=1e-4, **_SGD_MOMENTUM),
          _reparameterized(lambda hp: (lambda: reparam.HadamardProduct(hp["K"])), _FACTOR_SGD), True)
_register("hadamard-signed", "x = u*u - v*v, SGD with weight_decay on u, v (= l1 with weight weight_decay/2)",
          "Hoff 2017; Kolb et al. 2023", dict(offset=0.0, lr=1e-3, weight_decay=1e-4, **_SGD_MOMENTUM),
          _reparameterized(lambda hp: (lambda: reparam.SignedSquares(hp["offset"])), _FACTOR_SGD), True)
_register("spred", "Spred: x = u*v, SGD with weight_decay on u, v (= l1 with weight weight_decay)",
          "Liu & Wang 2023", dict(lr=1e-3, weight_decay=1e-4, **_SGD_MOMENTUM),
          _reparameterized(lambda hp: reparam.spred, _FACTOR_SGD), True)
_register("powerprop", "PowerPropagation: x = y|y|^(alpha-1), plain SGD, no weight decay",
          "Schwarz et al. 2021", dict(alpha=2.0, lr=1e-3, **_SGD_MOMENTUM),
          _reparameterized(lambda hp: (lambda: reparam.PowerPropagation(hp["alpha"])), _PP_SGD), True)


def method_names() -> list[str]:
    """Every registered name, in table order."""
    return list(_METHODS)


def list_methods() -> list[MethodInfo]:
    """Each method with its description, reference, and hyperparameters with their defaults.

    Example:
        >>> from rewa.optim.registry import list_methods
        >>> spred = next(m for m in list_methods() if m.name == "spred")
        >>> dict(spred.hyperparameters)
        {'lr': 0.001, 'weight_decay': 0.0001, 'momentum': 0.0, 'dampening': 0.0, 'nesterov': False}
    """
    return [m.info for m in _METHODS.values()]


def create_optimizer(name: str, model_or_params: nn.Module | Iterable, *,
                     include_bias_and_norm: bool = False, dense: Mapping[str, object] | None = None,
                     **hyperparameters) -> Optimizer:
    """The optimizer of method ``name`` for ``model_or_params``; see :func:`list_methods`.

    Args:
        name: a registered method name (:func:`method_names`).
        model_or_params: an ``nn.Module`` (biases and norms dense, see the module docstring),
            or parameters / param groups passed to the optimizer as given. Methods that
            reparameterize need the module and modify it in place (undo with
            :func:`rewa.reparam.collapse`).
        include_bias_and_norm: sparsify biases and normalization parameters too.
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
    method = _METHODS.get(name)
    if method is None:
        raise ValueError(f"unknown method {name!r}; registered methods: {', '.join(_METHODS)}")
    valid = method.info.hyperparameters
    unknown = sorted(set(hyperparameters) - set(valid))
    if unknown:
        raise TypeError(
            f"method {name!r} has no hyperparameter {', '.join(map(repr, unknown))}; "
            f"valid: {', '.join(valid)}"
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
    return method.build(model_or_params, {**valid, **hyperparameters}, include_bias_and_norm, dense)
