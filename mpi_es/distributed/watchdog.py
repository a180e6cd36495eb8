"""A thread that ends the job when an episode runs past its wall-time budget.

A check between steps cannot catch an env step that never returns; a separate thread can.
"""
from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator


TICK_S = 0.25
STALL_S = 1.0      # a tick this late means the process did not run


class Watchdog:
    def __init__(self, timeout_s: float, on_timeout: Callable[[str], float | None]):
        self.timeout_s = timeout_s
        self._on_timeout = on_timeout
        self._cond = threading.Condition()
        self._deadline: float | None = None
        self._what = ""
        self._handler = on_timeout
        self._block = 0                # which watched block the deadline belongs to
        self._stopped_s = 0.0          # time the process spent stopped, as the thread saw it
        self._last = time.monotonic()  # the thread's last tick
        threading.Thread(target=self._watch, name="mpi_es-watchdog", daemon=True).start()

    @contextmanager
    def watching(self, what: str, timeout_s: float | None = None,
                 on_timeout: Callable[[str], float | None] | None = None) -> Iterator[None]:
        """Watch the block: past timeout_s (default: the watchdog's), call on_timeout (default:
        the watchdog's) with `what`. A handler that returns seconds (instead of ending the job)
        gives the block that much longer."""
        with self._cond:
            self._block += 1
            self._deadline = time.monotonic() + (timeout_s or self.timeout_s)
            self._what = what
            self._handler = on_timeout or self._on_timeout
            self._cond.notify()
        try:
            yield
        finally:
            with self._cond:
                self._deadline = None
                self._cond.notify()

    def renew(self, seconds: float) -> None:
        """Inside a watched block: its deadline is now `seconds` from now. Called often (each
        round of episodes in lockstep), so it takes no lock: the thread reads the deadline at
        least every tick, and a deadline a round keeps renewing is never reached."""
        if self._deadline is not None:
            self._deadline = time.monotonic() + seconds

    def stopped_seconds(self) -> float:
        """How long the process has spent stopped so far: the stalls the thread has seen, and
        the one it has not yet woken up to (its last tick is long past). Episode clocks
        subtract it, whichever thread runs first after a SIGCONT."""
        pending = time.monotonic() - self._last - TICK_S
        return self._stopped_s + (pending if pending > STALL_S else 0.0)

    def _watch(self) -> None:
        # Ticks measure the thread's own gaps: a gap much longer than a tick means the whole
        # process was stopped (SIGSTOP, `scontrol suspend`), and stopped time is not an episode
        # running long, so the deadline moves by it.
        while True:
            with self._cond:
                while True:
                    self._cond.wait(TICK_S if self._deadline is None else
                                    max(0.0, min(TICK_S, self._deadline - time.monotonic())))
                    now = time.monotonic()
                    stalled = now - self._last - TICK_S
                    if stalled > STALL_S:
                        self._stopped_s += stalled
                    self._last = now
                    if self._deadline is None:
                        continue
                    if stalled > STALL_S:
                        self._deadline += stalled
                    if self._deadline - now <= 0:
                        break
                what, handler, block = self._what, self._handler, self._block
            more = handler(what)              # ends the job, or gives the block more time
            with self._cond:
                if more and self._block == block and self._deadline is not None:
                    self._deadline = time.monotonic() + more
                self._last = time.monotonic()


def wait_until(done: Callable[[], bool], limit_s: float) -> bool:
    """Poll `done` (backing off from 5 ms to 0.5 s) until it is true (returns True) or `limit_s`
    of running time pass (False). Time the process spent stopped does not count."""
    waited, pause, last = 0.0, 0.005, time.monotonic()
    while not done():
        time.sleep(pause)
        now = time.monotonic()
        gap = now - last
        last = now
        waited += gap if gap < pause + STALL_S else pause
        if waited > limit_s:
            return done()
        pause = min(pause * 2, 0.5)
    return True
