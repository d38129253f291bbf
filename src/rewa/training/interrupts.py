"""SIGINT and SIGTERM during a run: stop at once, but never in the middle of writing a run file.

While :func:`signals_deferred` is active, a signal is remembered and raised as
:class:`TrainingInterrupted` when the block ends, so a checkpoint and its metrics line are
written together or not at all. Outside it the signal raises at once (the epoch in progress is
lost; the last checkpoint stands).
"""

from __future__ import annotations

import contextlib
import signal
import threading

__all__ = ["TrainingInterrupted", "handle_signals", "signals_deferred"]


class TrainingInterrupted(KeyboardInterrupt):
    """The run was stopped by a signal; ``message`` says what is saved and how to resume."""

    def __init__(self, signum: int, message: str = ""):
        self.signum = signum
        self.message = message or f"interrupted by {signal.Signals(signum).name}"
        super().__init__(self.message)

    @property
    def exit_status(self) -> int:
        return 128 + self.signum  # what a shell reports for a process ended by the signal


class _Handler:
    def __init__(self):
        self.deferring = 0
        self.pending: int | None = None

    def __call__(self, signum, frame):
        if self.deferring:
            self.pending = signum
            return
        raise TrainingInterrupted(signum)


_active: _Handler | None = None


@contextlib.contextmanager
def handle_signals():
    """Turn SIGINT and SIGTERM into :class:`TrainingInterrupted` for the block (main thread only;
    elsewhere, or nested, this does nothing). The previous handlers are restored after."""
    global _active
    if _active is not None or threading.current_thread() is not threading.main_thread():
        yield
        return
    handler = _Handler()
    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    _active = handler
    try:
        yield
    finally:
        _active = None
        for s, h in previous.items():
            signal.signal(s, h)


@contextlib.contextmanager
def signals_deferred():
    """Hold a signal that arrives in the block until the block is done, then raise it."""
    handler = _active
    if handler is None:
        yield
        return
    handler.deferring += 1
    try:
        yield
    finally:
        handler.deferring -= 1
        if not handler.deferring and handler.pending is not None:
            signum, handler.pending = handler.pending, None
            raise TrainingInterrupted(signum)
