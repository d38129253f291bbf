"""One table of optimizers that drives the generic tests (cf. torch's optim_db)."""

from __future__ import annotations

from dataclasses import dataclass, field

import rewa


@dataclass(frozen=True)
class OptimizerCase:
    name: str
    cls: type
    kwargs: dict = field(default_factory=dict)
    # Hyperparameters that must be rejected, each with a fragment of the expected message.
    bad: tuple[tuple[dict, str], ...] = ()

    def __repr__(self) -> str:
        return self.name


_COMMON_BAD = (
    (dict(K=0.5), "K=0.5 must be >= 1"),
    (dict(K=9, M=9), "M=9 must be in [0, K-1] = [0, 8]"),
    (dict(M=-1), "M=-1 must be in [0, K-1]"),
    (dict(eps=-1e-3), "eps=-0.001 must be >= 0"),
    (dict(lr=-0.1), "lr=-0.1 must be >= 0"),
    (dict(weight_decay=-1.0), "weight_decay=-1.0 must be >= 0"),
    (dict(K=float("nan")), "K=nan must be finite"),
)

CASES = (
    OptimizerCase("rewa-plain", rewa.ReWA, dict(lr=0.05, K=9, M=2, weight_decay=0.01), _COMMON_BAD + (
        (dict(momentum=1.0), "momentum=1.0 must be in [0, 1)"),
        (dict(momentum=-0.5), "momentum=-0.5 must be in [0, 1)"),
        (dict(nesterov=True), "nesterov=True needs momentum > 0"),
        (dict(dampening=2.0), "dampening=2.0 must be in [0, 1]"),
    )),
    OptimizerCase("rewa-momentum-eps", rewa.ReWA,
                  dict(lr=0.02, K=3, M=1.5, eps=1e-3, weight_decay=0.01, momentum=0.9, dampening=0.1)),
    OptimizerCase("rewa-nesterov-oddM", rewa.ReWA,
                  dict(lr=0.02, K=9, M=5, weight_decay=0.05, momentum=0.8, nesterov=True)),
    OptimizerCase("rewa-adamw", rewa.ReWAAdamW, dict(lr=1e-2, K=9, M=2, weight_decay=0.01), _COMMON_BAD + (
        (dict(betas=(1.0, 0.999)), "betas[0]=1.0 must be in [0, 1)"),
        (dict(betas=(0.9,)), "must be a pair"),
        (dict(adam_eps=-1.0), "adam_eps=-1.0 must be >= 0"),
    )),
    OptimizerCase("rewa-adamw-eps", rewa.ReWAAdamW, dict(lr=1e-2, K=3, M=0.5, eps=1e-4, weight_decay=0.1)),
)
