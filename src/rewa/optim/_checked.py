"""Book-keeping every optimizer of this library shares: checked groups, collected gradients."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor
from torch.optim import Optimizer


class CheckedOptimizer(Optimizer):
    """Checks each group's hyperparameters when it is added and before every step.

    Subclasses define ``_check_group`` (raise ``ValueError`` naming the bad value) and
    ``_step_group`` (the update of one group's parameters that have gradients). A group with ``check_finite=True`` also has its
    gradients checked for nan/inf before anything is changed.
    """

    def add_param_group(self, param_group: dict) -> None:
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        for p in group["params"]:
            if not p.is_floating_point():
                raise TypeError(
                    f"{type(self).__name__} needs real floating-point parameters, got one of dtype {p.dtype}"
                )
        self._check_group(group)

    def _check_group(self, group: dict) -> None:
        """Raise ``ValueError`` naming any bad hyperparameter of ``group``."""
        raise NotImplementedError

    def _step_group(self, group: dict, params: list[Tensor], grads: list[Tensor]) -> None:
        """Update ``params`` (those of ``group`` with a gradient) in place."""
        raise NotImplementedError

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None):
        """Take one step; ``closure`` re-evaluates the model and returns the loss."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group, params, grads in self._collect():
            self._step_group(group, params, grads)
        return loss

    def _collect(self) -> list[tuple[dict, list[Tensor], list[Tensor]]]:
        """Each group with its parameters that have gradients, after checking everything.

        Hyperparameters are checked again (a scheduler may have changed them) and, where asked,
        every gradient must be finite, all before any state is created or changed.
        """
        work = []
        for group in self.param_groups:
            self._check_group(group)
            params, grads = [], []
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise TypeError(f"{type(self).__name__} does not support sparse gradients")
                params.append(p)
                grads.append(p.grad)
            if params:
                work.append((group, params, grads))
        if any(group.get("check_finite", False) for group, _, _ in work):
            self._raise_if_nonfinite(work)
        return work

    def _raise_if_nonfinite(self, work) -> None:
        # The minimum and maximum of each gradient (nan and +-inf show up in them), then one
        # host sync per device; the search for the culprit runs only when something is wrong.
        # (torch._foreach_norm(grads, inf) would be the same test, ~10x slower on CPUs.)
        by_device: dict[torch.device, list[Tensor]] = {}
        for group, _, grads in work:
            if group.get("check_finite", False):
                for g in grads:
                    if g.numel():
                        by_device.setdefault(g.device, []).extend(torch.aminmax(g))
        if all(bool(torch.stack([v.float() for v in extremes]).isfinite().all()) for extremes in by_device.values()):
            return
        for group_index, group in enumerate(self.param_groups):
            for index, p in enumerate(group["params"]):
                if group.get("check_finite", False) and p.grad is not None and not bool(p.grad.isfinite().all()):
                    raise FloatingPointError(
                        f"non-finite gradient (nan or inf) in parameter {index} of param group "
                        f"{group_index}, shape {tuple(p.shape)}; nothing was updated. Skip this "
                        "step (torch.amp.GradScaler does), lower the learning rate, or pass "
                        "check_finite=False to take the step anyway."
                    )
