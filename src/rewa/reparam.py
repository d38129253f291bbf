r"""Parametrizations whose factors are real trainable parameters, and ``collapse``.

Each parametrization is an ``nn.Module`` for ``torch.nn.utils.parametrize``: ``forward``
maps the factors to the weight ``x`` and ``right_inverse`` maps a weight to factors that
reproduce it (up to rounding: a few units in the last place). :func:`parametrize_model`
applies one to the weights of any module (Linear, Conv, Embedding, ...); :func:`collapse`
removes them again, leaving plain weights, so a trained model is saved and used without this
library.

* :class:`HadamardProduct` ([Cp]; Hoff 2017, Kolb et al. 2023): ``x = y_1 * ... * y_K``.
  Trained with l2 decay on every factor, it matches l_p regularization with ``p = 2/K``
  (paper, Lemma 3.1). **Constant convention**: the penalty ``(lambda/2) sum_k ||y_k||^2``
  (what ``torch.optim.SGD(weight_decay=lambda)`` adds to the loss) matches
  ``lambda_p ||x||_p^p`` with ``lambda_p = K lambda / 2``, because for a fixed product the
  sum of squares is smallest at balanced factors ``|y_k| = |x|^(1/K)``, where it equals
  ``K |x|^(2/K)``. The paper's "``K lambda``" holds for the penalty ``lambda sum_k ||y_k||^2``.
  :func:`lp_weight_of_factor_decay` does the conversion.
* :class:`SignedSquares`: ``x = u*u - v*v`` (K = 2, signed). With ``(lambda/2)(||u||^2 +
  ||v||^2)`` it matches ``(lambda/2)||x||_1``.
* Spred (Liu & Wang 2023): ``x = u * v`` with l2 decay, the l1 case: ``HadamardProduct(2)``.
* :class:`PowerPropagation` (Schwarz et al. 2021): ``x = y|y|^(alpha-1)``, no weight decay.

Initialization (``right_inverse``) keeps signs and balances magnitudes: Hadamard factors are
all ``|x|^(1/K)`` with ``sign(x)`` on the first; the signed form takes the pair of least
``u^2 + v^2``, ``u = sqrt(max(x, 0))``, ``v = sqrt(max(-x, 0))`` (plus an optional
``offset``, see :class:`SignedSquares`).

Note:
    Like the published methods, a factor product that is exactly 0 has zero gradient for every
    factor, so a weight at exactly 0 stays 0 under plain gradient steps (with weight decay,
    too). Weights that start at 0 (e.g. zero-initialized layers) therefore never move; re-
    initialize them, or use :class:`SignedSquares` with ``offset > 0``.

Example:
    >>> import torch
    >>> from rewa.reparam import HadamardProduct, collapse, parametrize_model
    >>> model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 1))
    >>> x = torch.randn(5, 4)
    >>> before = model(x)
    >>> names = parametrize_model(model, lambda: HadamardProduct(K=3))
    >>> names
    ['0.weight', '2.weight']
    >>> torch.allclose(model(x), before, atol=1e-6)
    True
    >>> collapse(model)
    ['0.weight', '2.weight']
    >>> sorted(n for n, _ in model.named_parameters())
    ['0.bias', '0.weight', '2.bias', '2.weight']
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn
from torch.nn.utils import parametrize

from . import _check as check
from ._math import latent_from_weight, power_map
from .param_groups import split_parameters

__all__ = [
    "HadamardProduct",
    "SignedSquares",
    "PowerPropagation",
    "spred",
    "parametrize_model",
    "collapse",
    "factor_parameters",
    "lp_weight_of_factor_decay",
]


class _Parametrization(nn.Module):
    """Marks this library's parametrizations, so :func:`collapse` removes only them."""


class HadamardProduct(_Parametrization):
    r"""``x = y_1 * y_2 * ... * y_K`` (element-wise), integer ``K >= 2``: the [Cp] form.

    With SGD weight decay ``lambda`` on every factor (penalty ``(lambda/2) sum_k ||y_k||^2``)
    the minimizers match those of ``f(x) + lambda_p ||x||_p^p`` with ``p = 2/K`` and
    ``lambda_p = K lambda / 2`` (paper, Lemma 3.1; see the module docstring for the constant).

    ``right_inverse(x)``: ``y_1 = sign(x)|x|^(1/K)``, ``y_k = |x|^(1/K)`` for ``k >= 2``.

    Reference: Hoff (2017); Kolb et al. (2023), "Smoothing the Edges"; paper, [Cp] and Lemma 3.1.
    """

    def __init__(self, K: int = 2):
        super().__init__()
        if isinstance(K, bool) or not isinstance(K, int) or K < 2:
            raise ValueError(f"K={K!r} must be an integer >= 2 (number of Hadamard factors)")
        self.K = K

    def extra_repr(self) -> str:
        return f"K={self.K}"

    def forward(self, *factors: Tensor) -> Tensor:
        out = factors[0]
        for y in factors[1:]:
            out = out * y
        return out

    def right_inverse(self, x: Tensor) -> tuple[Tensor, ...]:
        x = x.detach()
        magnitude = x.abs().pow(1.0 / self.K)
        return (magnitude * x.sign(),) + tuple(magnitude.clone() for _ in range(self.K - 1))


def spred() -> HadamardProduct:
    """Spred (Liu & Wang 2023): ``x = u * v`` with l2 decay on ``u`` and ``v`` (the l1 case)."""
    return HadamardProduct(K=2)


class SignedSquares(_Parametrization):
    r"""``x = u*u - v*v``: the signed K = 2 form.

    With SGD weight decay ``lambda`` on ``u`` and ``v`` (penalty ``(lambda/2)(||u||^2 +
    ||v||^2)``) it matches ``(lambda/2) ||x||_1``, since ``min {u^2 + v^2 : u^2 - v^2 = x} = |x|``.

    ``right_inverse(x)``: ``u = sqrt(max(x, 0) + offset^2)``, ``v = sqrt(max(-x, 0) +
    offset^2)``. With ``offset = 0`` (default) this is the pair of least penalty, but a zero
    factor never moves (its gradient is ``2u g``), so a weight cannot change sign; ``offset > 0``
    starts both factors away from 0 and reproduces ``x`` up to rounding of order
    ``offset^2 * machine epsilon``.
    """

    def __init__(self, offset: float = 0.0):
        super().__init__()
        check.at_least("offset", offset, 0)
        self.offset = float(offset)

    def extra_repr(self) -> str:
        return f"offset={self.offset:g}"

    def forward(self, u: Tensor, v: Tensor) -> Tensor:
        return u * u - v * v

    def right_inverse(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x = x.detach()
        floor = self.offset**2
        return (x.clamp_min(0) + floor).sqrt(), ((-x).clamp_min(0) + floor).sqrt()


class PowerPropagation(_Parametrization):
    r"""``x = y |y|^(alpha - 1)``, ``alpha >= 1`` (Schwarz et al. 2021), trained without decay.

    ``right_inverse(x) = sign(x)|x|^(1/alpha)``. The same map as ReWA's ``power_map`` with
    ``K = alpha``, but here ``y`` is the module's parameter and the plain optimizer sees the
    chain-rule gradient ``alpha |y|^(alpha-1) g``.

    Reference: Schwarz, Jayakumar, Pascanu, Latham, Teh, "Powerpropagation: A sparsity inducing
    weight reparameterisation", NeurIPS 2021.
    """

    def __init__(self, alpha: float = 2.0):
        super().__init__()
        check.at_least("alpha", alpha, 1)
        self.alpha = float(alpha)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha:g}"

    def forward(self, y: Tensor) -> Tensor:
        return power_map(y, self.alpha)

    def right_inverse(self, x: Tensor) -> Tensor:
        return latent_from_weight(x, self.alpha)


def lp_weight_of_factor_decay(weight_decay: float, K: int) -> float:
    """``lambda_p = K * lambda / 2``: the l_p weight matched by SGD decay ``lambda`` on K factors."""
    return K * weight_decay / 2


def _ours(module: nn.Module, tensor_name: str) -> bool:
    plist = module.parametrizations[tensor_name]  # type: ignore[index]
    return any(isinstance(p, _Parametrization) for p in plist)


def parametrize_model(
    model: nn.Module,
    make: Callable[[], nn.Module],
    *,
    include_bias_and_norm: bool = False,
) -> list[str]:
    """Register ``make()`` on every sparsified weight of ``model``; return their names.

    Which tensors: :func:`rewa.param_groups.split_parameters` (biases and normalization
    layers stay dense unless ``include_bias_and_norm``). Each tensor gets its own
    parametrization instance. Raises ``ValueError`` before changing anything if a chosen
    tensor already carries a parametrization (this library's or another), or if nothing is
    chosen.
    """
    sparse, _ = split_parameters(model, include_bias_and_norm=include_bias_and_norm)
    targets = []
    for full_name, _ in sparse:
        module_name, _, tensor_name = full_name.rpartition(".")
        module = model.get_submodule(module_name)
        if isinstance(module, parametrize.ParametrizationList):
            owner_name, _, owned = module_name.rpartition(".")  # "<owner>.parametrizations", tensor
            owner_name = owner_name.rpartition(".")[0]
            raise ValueError(
                f"{owner_name + '.' if owner_name else ''}{owned} is already parametrized; only plain "
                "weights can be reparameterized (rewa.reparam.collapse(model) removes rewa's own)"
            )
        targets.append((full_name, module, tensor_name))
    if not targets:
        raise ValueError(f"{type(model).__name__} has no weight to parametrize")
    for _, module, tensor_name in targets:
        parametrize.register_parametrization(module, tensor_name, make())
    return [name for name, _, _ in targets]


def factor_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The factors (``original0, original1, ...``) of every parametrization of this library."""
    factors: list[nn.Parameter] = []
    for module in model.modules():
        if not parametrize.is_parametrized(module):
            continue
        for tensor_name, plist in module.parametrizations.items():  # type: ignore[union-attr,operator]
            if _ours(module, tensor_name):
                factors.extend(p for p in plist.parameters(recurse=False))
    return factors


def collapse(model: nn.Module) -> list[str]:
    """Replace every parametrization of this library by its plain weight ``x``, in place.

    Returns the names of the collapsed tensors. Afterwards the model holds ordinary
    ``nn.Parameter`` weights equal to what the parametrization computed, and has no
    reference to this library. Parametrizations registered by others (e.g. weight norm) are
    left alone. An optimizer built on the factors no longer applies: build a new one.
    """
    collapsed = []
    for module_name, module in list(model.named_modules()):
        if not parametrize.is_parametrized(module):
            continue
        for tensor_name in list(module.parametrizations.keys()):
            if _ours(module, tensor_name):
                parametrize.remove_parametrizations(module, tensor_name, leave_parametrized=True)
                collapsed.append(f"{module_name}.{tensor_name}" if module_name else tensor_name)
    return collapsed
