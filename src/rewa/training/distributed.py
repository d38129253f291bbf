"""Processes of a run: one, or ``torchrun``'s N (gloo on CPU, nccl on CUDA) with a timeout.

A peer that stops answering (killed, stopped, hung) makes every collective of the others fail
after ``timeout_s`` seconds instead of blocking them forever. The backends do not say which peer
went silent, so :class:`PeerTimeout` names this rank's peers (with two processes: the other one).
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch

__all__ = ["Processes", "PeerTimeout", "is_peer_timeout", "setup_processes"]


class PeerTimeout(RuntimeError):
    """A peer process did not answer within the run's ``dist_timeout_s``."""


@dataclass
class Processes:
    world: int = 1
    rank: int = 0
    initialized_here: bool = False
    timeout_s: float = 300.0

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            self._guarded(torch.distributed.barrier)

    def all_sum(self, t: torch.Tensor) -> torch.Tensor:
        if self.world > 1:
            self._guarded(torch.distributed.all_reduce, t)
        return t

    def _guarded(self, collective, *args):
        try:
            collective(*args)
        except RuntimeError as error:
            if is_peer_timeout(error):
                raise self.timeout_error(error) from error
            raise

    def timeouts_named(self):
        """A context in which a timed-out collective (DDP's included) becomes :class:`PeerTimeout`."""
        return _TimeoutsNamed(self)

    def timeout_error(self, error: BaseException) -> PeerTimeout:
        peers = [r for r in range(self.world) if r != self.rank]
        return PeerTimeout(
            f"rank {self.rank}: no answer from rank(s) {', '.join(map(str, peers))} within "
            f"dist_timeout_s={self.timeout_s:g} (a peer process stopped, hung or died: "
            f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''})"
        )


def is_peer_timeout(error: BaseException) -> bool:
    # gloo raises a plain RuntimeError ("Timed out waiting 8000ms for send operation"), nccl and
    # the c10d store raise DistError subclasses
    if isinstance(error, PeerTimeout):
        return False
    return isinstance(error, torch.distributed.DistError) or "timed out" in str(error).lower()


class _TimeoutsNamed:
    def __init__(self, processes: Processes):
        self.processes = processes

    def __enter__(self):
        return self

    def __exit__(self, kind, error, traceback):
        if self.processes.world > 1 and isinstance(error, RuntimeError) and is_peer_timeout(error):
            raise self.processes.timeout_error(error) from error
        return False


def setup_processes(device_kind: str, timeout_s: float = 300.0) -> tuple[Processes, torch.device]:
    """The run's processes (from torchrun's environment) and this process's device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if device_kind == "auto":
        device_kind = "cuda" if torch.cuda.is_available() else "cpu"
    if device_kind == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' but torch.cuda.is_available() is False; use device='cpu' or 'auto'")
    if world <= 1:
        return Processes(timeout_s=timeout_s), torch.device(device_kind)
    dist = torch.distributed
    initialized_here = False
    if not dist.is_initialized():
        dist.init_process_group(
            "nccl" if device_kind == "cuda" else "gloo", timeout=datetime.timedelta(seconds=timeout_s)
        )
        initialized_here = True
    rank = dist.get_rank()
    if device_kind == "cuda":
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    else:
        device = torch.device("cpu")
    return Processes(dist.get_world_size(), rank, initialized_here, timeout_s), device
