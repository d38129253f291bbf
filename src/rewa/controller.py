"""Reach a requested sparsity by the end of training without tuning the weight decay by hand.

:class:`TargetSparsityController` is a callback, called once per step or per epoch, that measures
the sparsity of the model's weights at a threshold and adjusts the weight decay of the param
groups holding them, so that the requested sparsity (or compression ratio) is reached at the end.
It reads and writes only ``group["weight_decay"]``, so it works with any optimizer whose param
groups carry that key (ReWA, ReWA-AdamW, torch's SGD / AdamW, and the peer methods).
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import asdict, dataclass

import torch
from torch import nn

from . import _check as check
from .sparsity import counted_tensors

__all__ = ["ControllerRecord", "TargetSparsityController", "TargetSparsityWarning"]


class TargetSparsityWarning(UserWarning):
    """The controller missed its target by more than its tolerance, or its learning rate changed."""


logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ControllerRecord:
    """One call of the controller: what it saw and the weight decay it set."""

    call: int
    target: float  # the ramped target sparsity at this call
    sparsity: float  # measured: fraction of counted weights with |w| <= threshold
    weight_decay: float  # the weight decay set for the controlled groups after this call


class TargetSparsityController:
    r"""Adjust the weight decay of the sparsified groups so the model ends at a target sparsity.

    Call :meth:`step` once per optimizer step or once per epoch (``total_calls`` times in all).
    At call ``t`` it measures ``s_t``, the fraction of counted weights with ``|w| <= threshold``,
    and ``q_t``, the ``S_t``-quantile of ``|w|`` (one host sync), where the target ramps from the
    starting sparsity ``s_0`` to the requested ``S`` over the first ``ramp`` fraction of the calls
    and then holds (the cubic schedule of gradual pruning, Zhu & Gupta 2017):

    .. math::

        r_t = \min(1, t / (\mathrm{ramp} \cdot T)), \qquad S_t = S + (s_0 - S)(1 - r_t)^3.

    **A constant learning rate is required.** Weights move, and sparsity changes, in proportion
    to the step size, which this control law does not model: with a decaying schedule the
    decay it sets late in the run has little time to act and it misses the target (measured by
    ``benchmarks/controller_schedulers.py`` on digits, 40 epochs, target 90%: constant 87.5%,
    cosine 77.6%, step 9.5%, warm-up then cosine 71.3%). So the constructor refuses an optimizer
    that already has a ``torch.optim.lr_scheduler`` attached (``ValueError``), unless
    ``allow_lr_schedule=True``; a learning rate that changes later (a scheduler built after the
    controller, or a manual change) is reported once with a :class:`TargetSparsityWarning`.
    Decay the learning rate after the controller's last call if needed. At the last call a
    sparsity further than ``tolerance`` from the target warns (:class:`TargetSparsityWarning`).

    Sparsity lags the weight decay by many steps and, once weights the loss does not need fall
    below the threshold, does not come back; so the controller acts on a prediction
    ``\hat s = s_t + H \max(0, s_t - s_{t-1})`` (``H = lookahead`` calls ahead) and changes
    ``lambda`` multiplicatively:

    .. math::

        \ln\lambda_{t+1} = \ln\lambda_t + \begin{cases}
            -\Delta_{\downarrow} & \hat s > S_{t+H} + \mathrm{tol}/2
                \text{ (about to overshoot: cut fast)} \\
            \min(\Delta_{\uparrow},\ g \ln(q_t / \tau)) & s_t < S_t - \mathrm{tol}/2
                \text{ (too dense: raise)} \\
            0 & \text{otherwise (dead band: settle)}
        \end{cases}

    clipped to ``[min_weight_decay, max_weight_decay]``. ``ln(q_t / tau)`` says how far (in
    log-magnitude) the weight that should be at the threshold ``tau`` still is, so the decay
    grows fast while nothing is near the threshold and slowly when it is close. The target is
    approached from below, where pruning costs least accuracy. Every call is appended to
    :attr:`history` and logged at DEBUG level on the ``rewa.controller`` logger.

    Args:
        optimizer: any optimizer whose param groups have ``"weight_decay"``. The controlled
            groups are those holding a counted weight tensor of ``model``.
        model: the model being trained; its weights are decided by
            :func:`rewa.param_groups.split_parameters` (``include_bias_and_norm`` switches).
        target_sparsity: requested final sparsity ``S``, in ``[0, 1)``.
        target_compression: or the requested compression ratio ``C >= 1``; ``S = 1 - 1/C``.
        threshold: a weight counts as zero when ``|w| <= threshold`` (``>= 0``).
        total_calls: how many times :meth:`step` will be called in the whole run.
        ramp: fraction of ``total_calls`` over which the target ramps (``(0, 1]``).
        gain: ``g``, change of ``ln(lambda)`` per call per unit of ``ln(q_t / tau)`` (``> 0``).
        max_log_change: ``Delta_up``, the largest increase of ``ln(lambda)`` in one call (``> 0``).
        max_log_decrease: ``Delta_down``, the decrease of ``ln(lambda)`` when about to overshoot.
        tolerance: width of the dead band around the target, in sparsity (``>= 0``).
        lookahead: ``H``, calls ahead for the prediction (integer ``>= 0``).
        initial_weight_decay: starting ``lambda`` (``> 0``); default: the groups' current value,
            which must then be positive (multiplicative control cannot leave zero).
        min_weight_decay, max_weight_decay: the bounds of ``lambda``.
        allow_lr_schedule: accept an optimizer with a learning-rate scheduler attached (the
            target may then be missed; the last call warns if it is).

    Reference: sparsity control of the ReWA weight decay (rewa library; ReWA: ICML 2026 paper,
    Theorem 3.9 for weight decay driving sparsity); cubic ramp: Zhu & Gupta (2017), "To prune,
    or not to prune".

    Example:
        >>> import torch
        >>> from rewa.controller import TargetSparsityController
        >>> from rewa.optim.rewa import ReWA
        >>> from rewa.param_groups import param_groups
        >>> model = torch.nn.Linear(16, 1)
        >>> opt = ReWA(param_groups(model), lr=0.05, K=9, M=2, weight_decay=1e-3)
        >>> ctl = TargetSparsityController(opt, model, target_sparsity=0.5, threshold=1e-3, total_calls=5)
        >>> record = ctl.step()
        >>> record.call, record.weight_decay > 0
        (1, True)
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        model: nn.Module,
        *,
        target_sparsity: float | None = None,
        target_compression: float | None = None,
        threshold: float,
        total_calls: int,
        ramp: float = 0.7,
        gain: float = 0.1,
        max_log_change: float = 0.2,
        tolerance: float = 0.005,
        lookahead: int = 3,
        max_log_decrease: float = 1.5,
        initial_weight_decay: float | None = None,
        min_weight_decay: float = 1e-8,
        max_weight_decay: float = 10.0,
        include_bias_and_norm: bool = False,
        allow_lr_schedule: bool = False,
    ):
        if (target_sparsity is None) == (target_compression is None):
            raise ValueError(
                "give exactly one of target_sparsity= and target_compression=, got "
                f"target_sparsity={target_sparsity!r}, target_compression={target_compression!r}"
            )
        if target_compression is not None:
            check.at_least("target_compression", target_compression, 1)
            target_sparsity = 1.0 - 1.0 / target_compression
        target_sparsity = check.in_half_open("target_sparsity", target_sparsity, 0, 1)
        self.threshold = float(check.at_least("threshold", threshold, 0))
        if self.threshold == 0:
            raise ValueError("threshold=0 must be > 0: the controller compares log-magnitudes with it")
        check.integer("total_calls", total_calls)
        check.in_range("ramp", ramp, 0, 1, closed="right")
        check.integer("lookahead", lookahead, 0)
        for name, value in (("gain", gain), ("max_log_change", max_log_change), ("max_log_decrease", max_log_decrease)):
            check.above(name, value, 0)
        check.at_least("tolerance", tolerance, 0)
        check.real("min_weight_decay", min_weight_decay)
        check.real("max_weight_decay", max_weight_decay)
        if not 0 < min_weight_decay <= max_weight_decay:
            raise ValueError(
                f"need 0 < min_weight_decay <= max_weight_decay, got {min_weight_decay} and {max_weight_decay}"
            )

        self._entries = counted_tensors(model, include_bias_and_norm)
        weight_ids = {id(e.param) for e in self._entries}
        controlled = [i for i, g in enumerate(optimizer.param_groups) if any(id(p) in weight_ids for p in g["params"])]
        if not controlled:
            raise ValueError("no param group of the optimizer holds a weight tensor of the model")
        self._groups = [optimizer.param_groups[i] for i in controlled]
        missing = [i for i in controlled if "weight_decay" not in optimizer.param_groups[i]]
        if missing:
            raise ValueError(f"param groups {missing} have no 'weight_decay' to control")
        if initial_weight_decay is None:
            current = {float(g["weight_decay"]) for g in self._groups}
            if len(current) != 1 or not min(current) > 0:
                raise ValueError(
                    f"the controlled groups start with weight_decay {sorted(current)}; give "
                    "initial_weight_decay > 0 (multiplicative control needs a positive start)"
                )
            initial_weight_decay = current.pop()
        check.real("initial_weight_decay", initial_weight_decay)
        if not min_weight_decay <= initial_weight_decay <= max_weight_decay:
            raise ValueError(
                f"initial_weight_decay={initial_weight_decay} must be in "
                f"[min_weight_decay, max_weight_decay] = [{min_weight_decay:g}, {max_weight_decay:g}]"
            )

        self.target_sparsity = float(target_sparsity)
        self.total_calls = total_calls
        self.ramp = float(ramp)
        self.gain = float(gain)
        self.max_log_change = float(max_log_change)
        self.tolerance = float(tolerance)
        self.lookahead = lookahead
        self.max_log_decrease = float(max_log_decrease)
        self.min_weight_decay = float(min_weight_decay)
        self.max_weight_decay = float(max_weight_decay)
        # torch's LR schedulers mark the optimizer's step when they attach to it
        if getattr(optimizer.step, "_wrapped_by_lr_sched", False) and not allow_lr_schedule:
            raise ValueError(
                "TargetSparsityController needs a constant learning rate, but this optimizer has a "
                "torch.optim.lr_scheduler attached: with a decaying learning rate the controller misses "
                "its target (see the class notes); keep the learning rate constant while it runs, or "
                "pass allow_lr_schedule=True to run anyway (the last call warns if the target is missed)"
            )
        self._initial_lr = float(self._groups[0].get("lr", 0.0))
        self._lr_warned = bool(allow_lr_schedule)  # warn once about a changing lr, unless allowed

        self.weight_decay = float(initial_weight_decay)
        self.history: list[ControllerRecord] = []
        self._start_sparsity: float | None = None
        self._set_weight_decay(self.weight_decay)

    def _set_weight_decay(self, value: float) -> None:
        for group in self._groups:
            group["weight_decay"] = value

    @torch.no_grad()
    def measured_sparsity(self) -> float:
        """Fraction of counted weights with ``|w| <= threshold`` (one host sync)."""
        weights = [e.effective() for e in self._entries]
        zeros = torch.stack([(w.abs() <= self.threshold).sum().to(torch.float64).cpu() for w in weights]).sum()
        return float(zeros) / sum(w.numel() for w in weights)

    def target_at(self, call: int) -> float:
        """The ramped target ``S_t`` at call ``t`` (``t = 1 .. total_calls``)."""
        start = self._start_sparsity if self._start_sparsity is not None else 0.0
        start = min(start, self.target_sparsity)
        progress = min(1.0, call / (self.ramp * self.total_calls))
        return self.target_sparsity + (start - self.target_sparsity) * (1.0 - progress) ** 3

    @torch.no_grad()
    def _measure(self, level: float) -> tuple[float, float]:
        """``(sparsity at the threshold, the level-quantile of |w|)`` over all counted weights."""
        magnitudes = torch.cat([e.effective().detach().abs().reshape(-1) for e in self._entries])
        k = min(magnitudes.numel(), max(1, math.ceil(level * magnitudes.numel())))
        quantile = magnitudes.kthvalue(k).values
        zeros = (magnitudes <= self.threshold).sum()
        bad = (~magnitudes.isfinite()).sum()
        zeros, quantile, bad = torch.stack([t.to(torch.float64) for t in (zeros, quantile, bad)]).cpu().tolist()
        if bad:
            self._raise_non_finite()
        return zeros / magnitudes.numel(), quantile

    def _raise_non_finite(self) -> None:
        """Name the first counted tensor with nan or inf entries (only when there is one)."""
        for e in self._entries:
            w = e.effective()
            nans, infs = int(w.isnan().sum()), int(w.isinf().sum())
            if nans or infs:
                raise ValueError(
                    f"tensor {e.name!r} (shape {tuple(w.shape)}) has {nans} nan and {infs} inf entries: "
                    "TargetSparsityController cannot steer non-finite weights (the training diverged)"
                )

    def step(self) -> ControllerRecord:
        """Measure, update the weight decay of the controlled groups, record and return."""
        call = len(self.history) + 1
        if self._start_sparsity is None:
            self._start_sparsity = self.measured_sparsity()
        target = self.target_at(call)
        sparsity, quantile = self._measure(target)
        previous = self.history[-1].sparsity if self.history else sparsity
        # Sparsity lags the weight decay: act on where it will be a few calls ahead.
        predicted = sparsity + self.lookahead * max(0.0, sparsity - previous)
        goal = self.target_at(min(call + self.lookahead, self.total_calls))
        band = self.tolerance / 2
        if predicted > goal + band:
            change = -self.max_log_decrease
        elif sparsity < target - band:
            # ln(q / threshold) > 0: the weight that should be at the threshold is still above it.
            error = math.log(max(quantile, self.threshold) / self.threshold)
            change = min(self.max_log_change, self.gain * error)
        else:
            change = 0.0
        self.weight_decay = min(self.max_weight_decay, max(self.min_weight_decay, self.weight_decay * math.exp(change)))
        self._set_weight_decay(self.weight_decay)
        record = ControllerRecord(call=call, target=target, sparsity=sparsity, weight_decay=self.weight_decay)
        self.history.append(record)
        logger.debug(
            "call %d: sparsity %.4f target %.4f -> weight_decay %.4g", call, sparsity, target, self.weight_decay
        )
        if not self._lr_warned:
            lr = float(self._groups[0].get("lr", self._initial_lr))
            if not math.isclose(lr, self._initial_lr, rel_tol=1e-6):
                self._lr_warned = True
                warnings.warn(
                    f"the learning rate changed from {self._initial_lr:g} to {lr:g} by call {call}; "
                    "TargetSparsityController assumes a constant learning rate and may miss its target "
                    "(decay the learning rate after its last call)",
                    TargetSparsityWarning,
                    stacklevel=2,
                )
        if call == self.total_calls and abs(sparsity - self.target_sparsity) > self.tolerance:
            warnings.warn(
                f"TargetSparsityController missed its target: sparsity {sparsity:.4f} at the last call, "
                f"target {self.target_sparsity:.4f} +- tolerance {self.tolerance:g} (weight decay now "
                f"{self.weight_decay:.3g}); train longer, lower ramp, or raise gain",
                TargetSparsityWarning,
                stacklevel=2,
            )
        return record

    def state_dict(self) -> dict:
        """What a resumed run needs: the current weight decay, the start sparsity and the history."""
        return {
            "weight_decay": self.weight_decay,
            "start_sparsity": self._start_sparsity,
            "history": [asdict(r) for r in self.history],
        }

    def load_state_dict(self, state: dict) -> None:
        """Continue from :meth:`state_dict`: sets the weight decay of the controlled groups too."""
        missing = {"weight_decay", "start_sparsity", "history"} - set(state)
        if missing:
            raise ValueError(f"controller state is missing {sorted(missing)}")
        weight_decay = float(state["weight_decay"])
        if not self.min_weight_decay <= weight_decay <= self.max_weight_decay:
            raise ValueError(
                f"weight_decay={weight_decay} must be in [min_weight_decay, max_weight_decay] = "
                f"[{self.min_weight_decay:g}, {self.max_weight_decay:g}]"
            )
        history = [ControllerRecord(**r) for r in state["history"]]
        self.weight_decay = weight_decay
        self._start_sparsity = state["start_sparsity"]
        self.history = history
        self._set_weight_decay(weight_decay)

    def history_records(self) -> list[dict]:
        return [asdict(r) for r in self.history]
