"""Turn SIGINT/SIGTERM into a polite request: finish the current step, checkpoint, exit."""
from __future__ import annotations

import signal
import threading


class StopRequested(Exception):
    """Raised by a loop after it checkpointed in response to SIGINT/SIGTERM."""


class GracefulStop:
    """Context manager; ``stop.requested`` turns True on the first signal. A second SIGINT aborts at once."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, object] = {}

    def _handle(self, signum, frame) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self) -> "GracefulStop":
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
