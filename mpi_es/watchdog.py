"""A thread that ends the job when an episode runs past its wall-time budget.

A check between steps cannot catch an env step that never returns; a separate thread can.
"""
from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator


class Watchdog:
    def __init__(self, timeout_s: float, on_timeout: Callable[[str], None]):
        self.timeout_s = timeout_s
        self._on_timeout = on_timeout
        self._cond = threading.Condition()
        self._deadline: float | None = None
        self._what = ""
        threading.Thread(target=self._watch, name="mpi_es-watchdog", daemon=True).start()

    @contextmanager
    def watching(self, what: str) -> Iterator[None]:
        with self._cond:
            self._deadline = time.monotonic() + self.timeout_s
            self._what = what
            self._cond.notify()
        try:
            yield
        finally:
            with self._cond:
                self._deadline = None
                self._cond.notify()

    def _watch(self) -> None:
        with self._cond:
            while True:
                if self._deadline is None:
                    self._cond.wait()
                    continue
                remaining = self._deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            what = self._what
        self._on_timeout(what)
