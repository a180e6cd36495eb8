"""Peer liveness: a rank frozen, hung or lost on a dead node ends the job in seconds, named.

Every rank marks on the progress board each point it reaches (its episodes done, the start
of an exchange). Before a collective that a frozen rank would never join, and from the
watchdog while a rank waits inside one, the others look at the board and end the job naming
the ranks that did not get there within the allowance (episode_timeout_s per episode they may
still be playing, plus a grace for the rest of a generation).
"""
from __future__ import annotations

import os
import signal
import threading
from contextlib import contextmanager, nullcontext
from typing import Iterator

import numpy as np

from .watchdog import Watchdog, wait_until
from .world import World, abort_job

# Beyond its last slot, a rank still writes the checkpoint (rank 0) and assembles the next
# policy: allowed this long on top of the episodes before the others call it frozen.
PEER_GRACE_S = 10.0
BEAT_S = 0.5          # a busy rank's heartbeat period


class PeerLiveness:
    """Watches episodes and exchanges when `episode_timeout_s` is set; does nothing otherwise.

    `episodes_per_slot`: how many episodes a rank may still be playing, by default, when
    another enters an exchange (its last slot's, or those it plays in lockstep)."""

    def __init__(self, world: World, episode_timeout_s: float | None, episodes_per_slot: int):
        self.world = world
        self.timeout = episode_timeout_s
        self.episodes_per_slot = episodes_per_slot
        self.watchdog = self.board = None
        self._step = 0
        # test-only, "RANK@TEXT": that rank stops itself (SIGSTOP) on reaching the first point
        # whose name holds TEXT, so the tests can freeze a rank at any exchange
        rank, _, self._freeze_at = os.environ.get("MPI_ES_TEST_FREEZE_AT", "").partition("@")
        if rank != str(world.rank):
            self._freeze_at = ""
        if episode_timeout_s is not None:
            self.watchdog = Watchdog(episode_timeout_s, self._episode_timed_out)
            if world.size > 1:
                self.board = world.progress_board()

    def _episode_timed_out(self, what: str) -> None:
        abort_job(f"error: {what} ran longer than episode_timeout_s={self.timeout} s; ending "
                  f"the job (the last checkpoint stays)")

    def limit_for(self, episodes: int) -> float:
        return (episodes + 1) * self.timeout + PEER_GRACE_S

    def _reach(self, what: str) -> int:
        self._step += 1
        self.board.mark(self._step)
        if self._freeze_at and self._freeze_at in what:
            self._freeze_at = ""
            os.kill(os.getpid(), signal.SIGSTOP)
        return self._step

    @contextmanager
    def busy(self, what: str) -> Iterator[None]:
        """A long local stretch (rank 0 writing a checkpoint to slow storage): a thread beats
        this rank's heartbeat meanwhile, so the others wait for it as long as it takes. A frozen
        rank's threads stop too: its silence still ends the job."""
        if self.board is None:
            yield
            return
        done = threading.Event()

        def beat():
            while not done.wait(BEAT_S):
                self.board.beat()
        thread = threading.Thread(target=beat, name=f"mpi_es-busy: {what}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()

    def _frozen_peers(self, what: str, step: int, limit: float,
                      beats: np.ndarray | None = None) -> float | None:
        if beats is not None:
            now = self.board.beats()
            if np.any(now != beats):          # someone is busy on purpose: give them longer
                beats[:] = now
                return limit
        behind = self.board.behind(step)
        who = (f"rank{'s' if len(behind) > 1 else ''} {', '.join(map(str, behind))} did not "
               f"reach {what}" if behind else
               f"a rank stopped inside {what} (every rank had reached it)")
        abort_job(f"error: {who} within {limit:g} s of rank {self.world.rank} "
                  f"(episode_timeout_s={self.timeout:g}): stopped, hung outside "
                  f"an episode, or on a lost node; ending the job (the last checkpoint stays)")

    def episode(self, what):
        """Episodes under the watchdog (episode_timeout_s), when there is one. `what` is turned
        into text only when it fires."""
        return nullcontext() if self.watchdog is None else self.watchdog.watching(what)

    @property
    def renew(self):
        """renew(seconds) of the watched episodes' deadline, or None without a watchdog."""
        return None if self.watchdog is None else self.watchdog.renew

    @property
    def stopped_seconds(self):
        """stopped_seconds() of the process so far, or None without a watchdog."""
        return None if self.watchdog is None else self.watchdog.stopped_seconds

    def wait_for_peers(self, what: str) -> None:
        """Before an exchange a frozen rank would never join: end the job, naming the ranks,
        when some are still playing long after the slots ran out."""
        if self.board is None:
            return
        step = self._reach(what)
        limit = self.limit_for(self.episodes_per_slot)
        beats = self.board.beats()
        while not wait_until(lambda: not self.board.behind(step), limit):
            if self._frozen_peers(what, step, limit, beats) is None:
                return

    def exchange(self, what: str, episodes_behind: int | None = None):
        """Watch a stretch of collectives: a rank frozen before or inside it ends the job.
        `episodes_behind`: how many episodes a rank may still be playing when another enters
        (default: a slot's)."""
        if self.board is None:
            return nullcontext()
        step = self._reach(what)
        limit = self.limit_for(self.episodes_per_slot if episodes_behind is None
                               else episodes_behind)
        beats = self.board.beats()
        return self.watchdog.watching(
            what, limit, lambda what: self._frozen_peers(what, step, limit, beats))
