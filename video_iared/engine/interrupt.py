"""SIGINT / SIGTERM during a local run: finish the optimiser step, save, stop with exit 128 + signal.

The first signal only sets a flag that the training loop reads after each optimiser step (and after
each epoch's validation), so the checkpoint is written at a step boundary and resumes exactly. A second
Ctrl-C stops at once without saving. Handlers are installed only where the signal still has Python's
default: under submitit, SIGTERM and SIGUSR2 keep its own handlers (requeue on preemption).

DataLoader workers forked while the handler is installed inherit it, so a Ctrl-C sent to the whole
terminal process group does not kill them half-way through an epoch.
"""
from __future__ import annotations

import os
import signal
import sys
import threading
from types import FrameType

__all__ = ["StopSignals"]

_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_DEFAULTS = (signal.SIG_DFL, signal.default_int_handler)


class StopSignals:
    """Context manager: ``signum`` is the first stop signal received while it is active (None before)."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, object] = {}
        self._pid = os.getpid()

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():  # signal.signal's requirement
            for sig in _SIGNALS:
                if signal.getsignal(sig) in _DEFAULTS:
                    self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if os.getpid() != self._pid:  # a forked DataLoader worker: the main process decides
            return
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # the second Ctrl-C: stop now, without saving
        if self.signum is None:
            self.signum = signum
            print(f"\n{signal.Signals(signum).name}: saving a checkpoint after this step "
                  "(Ctrl-C again stops at once without saving)", file=sys.stderr, flush=True)
