"""When a run ends: its limits (generations, timesteps, seconds), and stop.eval_return's check
of the noise-free policy."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..config import Config
from ..core.state import TrainState
from ..distributed.liveness import PeerLiveness
from ..distributed.world import World
from .rollout import play_noise_free


def stop_reason(cfg: Config, state: TrainState) -> str | None:
    """Why the run is at one of its limits, or None."""
    stop = cfg.stop
    if stop.generations is not None and state.generation >= stop.generations:
        return f"reached stop.generations={stop.generations}"
    if stop.timesteps is not None and state.timesteps_so_far >= stop.timesteps:
        return f"reached stop.timesteps={stop.timesteps}"
    if stop.seconds is not None and state.time_elapsed >= stop.seconds:
        return f"reached stop.seconds={stop.seconds}"
    return None


@dataclass
class CheckResult:
    mean: float          # the noise-free policy's mean return
    episodes: int
    timesteps: int


class TargetCheck:
    """stop.eval_return: after every stop.eval_every-th generation, the noise-free policy's mean
    return over stop.eval_episodes episodes shared by the ranks (exactly what `evaluate --seed
    GENERATION --episodes N` of that checkpoint prints)."""

    def __init__(self, cfg: Config, world: World, setup, policy, liveness: PeerLiveness):
        self.cfg, self.world, self.setup, self.policy = cfg, world, setup, policy
        self.liveness = liveness
        self.last: CheckResult | None = None

    def due(self, generation: int) -> bool:
        stop = self.cfg.stop
        return stop.eval_return is not None and generation > 0 and not generation % stop.eval_every

    def run(self, state: TrainState) -> CheckResult | None:
        """Collective: the check after state.generation when one is due (else None), kept as
        `last`."""
        self.last = None
        if not self.due(state.generation):
            return None
        stop, world = self.cfg.stop, self.world
        where = f"the return check after generation {state.generation}"
        self.policy.set_theta(state.theta)
        self.policy.set_obstat(state.obstat)
        mine = play_noise_free(self.setup.env, self.policy,
                               range(world.rank, stop.eval_episodes, world.size),
                               seed=state.generation, limit=self.setup.limit,
                               guard=lambda i: self.liveness.episode(f"episode {i} of {where}"))
        with self.liveness.exchange(where, episodes_behind=-(-stop.eval_episodes // world.size)):
            results = sorted(r for part in world.allgather(mine) for r in part)
        self.last = CheckResult(float(np.mean([ret for _, ret, _ in results])), len(results),
                                sum(length for *_, length in results))
        return self.last

    def reason(self, generation: int) -> str | None:
        """Why the last check ends the run, or None."""
        target = self.cfg.stop.eval_return
        if target is None or self.last is None or self.last.mean < target:
            return None
        return (f"reached stop.eval_return={target:g} (mean {self.last.mean:.2f} over "
                f"{self.cfg.stop.eval_episodes} noise-free episodes after generation "
                f"{generation})")
