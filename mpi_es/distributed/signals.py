"""SIGTERM / SIGINT / SIGUSR1: the first asks for a stop at the next generation boundary,
the second abandons the current generation at once (the last complete checkpoint stays)."""
from __future__ import annotations

import os
import signal
import sys

from ..errors import EXIT_STOPPED

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)


AGAIN = "send it again to abandon the generation now"
# MPICH's mpiexec (hydra) takes a second Ctrl-C itself: it kills the ranks at once and exits 0
AGAIN_UNDER_HYDRA = ("wait for exit 75; a second Ctrl-C makes MPICH's mpiexec kill the job "
                     "at once, keeping the last complete checkpoint, with exit status 0")


class StopRequest:
    def __init__(self, *, verbose: bool):
        self.verbose = verbose
        self.received: list[int] = []
        self._previous = {}

    @property
    def requested(self) -> bool:
        return bool(self.received)

    def _handle(self, signum, frame) -> None:
        self.received.append(signum)
        name = signal.Signals(signum).name
        if len(self.received) == 1:
            if self.verbose:
                print(f"{name} received: stopping after the current generation "
                      f"({AGAIN_UNDER_HYDRA if 'HYDI_CONTROL_FD' in os.environ else AGAIN})",
                      file=sys.stderr, flush=True)
            return
        if self.verbose:
            print(f"{name} received again: abandoning the current generation; the last "
                  f"complete checkpoint stays", file=sys.stderr, flush=True)
        sys.stdout.flush()
        os._exit(EXIT_STOPPED)

    def install(self) -> "StopRequest":
        for sig in STOP_SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __enter__(self) -> "StopRequest":
        return self.install()

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
