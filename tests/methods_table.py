"""One table of optimizers that drives the generic tests (cf. torch's optim_db)."""

from __future__ import annotations

from dataclasses import dataclass, field

import rewa
from rewa.optim.registry import create_optimizer


@dataclass(frozen=True)
class OptimizerCase:
    name: str
    cls: type | None
    kwargs: dict = field(default_factory=dict)
    # Hyperparameters that must be rejected, each with a fragment of the expected message.
    bad: tuple[tuple[dict, str], ...] = ()
    # Registry name: the case is built with create_optimizer(method, model, ...) instead of cls.
    method: str | None = None
    # Capability flags. latent: keeps y in state (ReWA family): power-map, foreach,
    # finite-check, low-precision-latent and per-group K/M tests apply.
    latent: bool = True

    def __repr__(self) -> str:
        return self.name

    def build(self, model, **overrides):
        """The optimizer for ``model`` (its sparsified and dense groups)."""
        kwargs = {**self.kwargs, **overrides}
        if self.method is not None:
            return create_optimizer(self.method, model, **kwargs)
        return self.cls(rewa.param_groups(model), **kwargs)


def method_case(name, method, kwargs, bad=()):
    return OptimizerCase(name, None, kwargs, bad, method=method, latent=False)


_COMMON_BAD = (
    (dict(K=0.5), "K=0.5 must be in [1, 256]"),
    (dict(K=1e6), "K=1000000.0 must be in [1, 256]"),
    (dict(K=9, M=9), "M=9 must be in [0, K-1] = [0, 8]"),
    (dict(M=-1), "M=-1 must be in [0, K-1]"),
    (dict(eps=-1e-3), "eps=-0.001 must be >= 0"),
    (dict(lr=-0.1), "lr=-0.1 must be >= 0"),
    (dict(weight_decay=-1.0), "weight_decay=-1.0 must be >= 0"),
    (dict(K=float("nan")), "K=nan must be finite"),
)

CASES = (
    OptimizerCase(
        "rewa-plain",
        rewa.ReWA,
        dict(lr=0.05, K=9, M=2, weight_decay=0.01),
        _COMMON_BAD
        + (
            (dict(momentum=1.0), "momentum=1.0 must be in [0, 1)"),
            (dict(momentum=-0.5), "momentum=-0.5 must be in [0, 1)"),
            (dict(nesterov=True), "nesterov=True needs momentum > 0"),
            (dict(dampening=2.0), "dampening=2.0 must be in [0, 1]"),
        ),
    ),
    OptimizerCase(
        "rewa-momentum-eps",
        rewa.ReWA,
        dict(lr=0.02, K=3, M=1.5, eps=1e-3, weight_decay=0.01, momentum=0.9, dampening=0.1),
    ),
    OptimizerCase(
        "rewa-nesterov-oddM", rewa.ReWA, dict(lr=0.02, K=9, M=5, weight_decay=0.05, momentum=0.8, nesterov=True)
    ),
    OptimizerCase(
        "rewa-decoupled-momentum",
        rewa.ReWA,
        dict(lr=0.02, K=9, M=2, weight_decay=0.05, momentum=0.875, decoupled_weight_decay=True),
    ),
    OptimizerCase(
        "rewa-adamw",
        rewa.ReWAAdamW,
        dict(lr=1e-2, K=9, M=2, weight_decay=0.01),
        _COMMON_BAD
        + (
            (dict(betas=(1.0, 0.999)), "betas[0]=1.0 must be in [0, 1)"),
            (dict(betas=(0.9,)), "must be a pair"),
            (dict(adam_eps=-1.0), "adam_eps=-1.0 must be >= 0"),
        ),
    ),
    OptimizerCase("rewa-adamw-eps", rewa.ReWAAdamW, dict(lr=1e-2, K=3, M=0.5, eps=1e-4, weight_decay=0.1)),
)

_SGD_BAD = (
    (dict(lr=-0.1), "lr=-0.1 must be >= 0"),
    (dict(momentum=1.0), "momentum=1.0 must be in [0, 1)"),
    (dict(nesterov=True, momentum=0.0), "nesterov=True needs momentum > 0"),
)
_FACTOR_BAD = _SGD_BAD + ((dict(weight_decay=-1.0), "weight_decay=-1.0 must be >= 0"),)

# The peer methods, built by name through the registry (rewa.optim.registry).
METHOD_CASES = (
    method_case("sgd", "sgd", dict(lr=0.1, momentum=0.5, weight_decay=1e-3), _FACTOR_BAD),
    method_case(
        "adamw",
        "adamw",
        dict(lr=1e-2),
        (
            (dict(betas=(1.0, 0.999)), "betas[0]=1.0 must be in [0, 1)"),
            (dict(eps=-1.0), "eps=-1.0 must be >= 0"),
            (dict(weight_decay=-1.0), "weight_decay=-1.0 must be >= 0"),
        ),
    ),
    method_case(
        "pwd-sgd",
        "pwd-sgd",
        dict(lr=0.1, lambda_p=1e-3, p=0.5, momentum=0.5),
        _SGD_BAD
        + (
            (dict(lambda_p=-1.0), "lambda_p=-1.0 must be >= 0"),
            (dict(p=0.0), "p=0.0 must be > 0"),
        ),
    ),
    method_case(
        "pwd-adamw",
        "pwd-adamw",
        dict(lr=1e-2, lambda_p=1e-3, p=0.5),
        (
            (dict(betas=(0.9,)), "must be a pair"),
            (dict(p=-1.0), "p=-1.0 must be > 0"),
            (dict(lr=-1.0), "lr=-1.0 must be >= 0"),
        ),
    ),
    method_case(
        "l1-prox",
        "l1-prox",
        dict(lr=0.1, strength=1e-3, momentum=0.5),
        _SGD_BAD + ((dict(strength=-1.0), "strength=-1.0 must be >= 0"),),
    ),
    method_case("l1-subgradient", "l1-subgradient", dict(lr=0.1, strength=1e-3), _SGD_BAD),
    method_case(
        "lp-clipped-l1",
        "lp-clipped",
        dict(lr=0.1, strength=1e-3, p=0.5, threshold=0.05, clip="l1"),
        (
            (dict(p=1.5), "p=1.5 must be in (0, 1)"),
            (dict(threshold=0.0), "threshold=0.0 must be > 0"),
            (dict(clip="quadratic"), "clip='quadratic' must be one of ('constant', 'l1')"),
        ),
    ),
    method_case(
        "lp-clipped-constant",
        "lp-clipped",
        dict(lr=0.1, strength=1e-3, p=0.5, threshold=0.05, clip="constant"),
        (
            (dict(strength=-1.0), "strength=-1.0 must be >= 0"),
            (dict(p=0.0), "p=0.0 must be in (0, 1)"),
        ),
    ),
    method_case(
        "hadamard-K3",
        "hadamard",
        dict(K=3, lr=0.1, weight_decay=1e-3, momentum=0.5),
        _FACTOR_BAD
        + (
            (dict(K=1), "K=1 must be an integer >= 2"),
            (dict(K=2.5), "K=2.5 must be an integer >= 2"),
        ),
    ),
    method_case(
        "hadamard-signed",
        "hadamard-signed",
        dict(lr=0.1, weight_decay=1e-3, offset=0.1),
        ((dict(offset=-1.0), "offset=-1.0 must be >= 0"),),
    ),
    method_case("spred", "spred", dict(lr=0.1, weight_decay=1e-3), _FACTOR_BAD),
    method_case("powerprop", "powerprop", dict(lr=0.05, alpha=2.0), ((dict(alpha=0.5), "alpha=0.5 must be >= 1"),)),
)

ALL_CASES = CASES + METHOD_CASES
