"""When a run ends: its limits (generations, timesteps, seconds), and stop.eval_return's check
of the noise-free policy."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..config import Config
from ..core.state import Check, TrainState
from ..distributed.liveness import PeerLiveness
from ..distributed.world import World
from .rollout import play_noise_free


def stop_reason(cfg: Config, state: TrainState) -> str | None:
    """Why the run is at one of its limits, or None. A stop.eval_return check decides when it
    was made after this very generation with this config's stop.eval_episodes (a check over
    other episodes is not comparable; a changed stop.eval_return is compared with it)."""
    stop, check = cfg.stop, state.last_check
    if stop.generations is not None and state.generation >= stop.generations:
        return f"reached stop.generations={stop.generations}"
    if stop.timesteps is not None and state.timesteps_so_far >= stop.timesteps:
        return f"reached stop.timesteps={stop.timesteps}"
    if stop.seconds is not None and state.time_elapsed >= stop.seconds:
        return f"reached stop.seconds={stop.seconds}"
    if (stop.eval_return is not None and check is not None
            and check.generation == state.generation and check.episodes == stop.eval_episodes
            and check.mean >= stop.eval_return):
        return (f"reached stop.eval_return={stop.eval_return:g} (mean {check.mean:.2f} over "
                f"{check.episodes} noise-free episodes after generation {check.generation})")
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

    def due(self, generation: int) -> bool:
        stop = self.cfg.stop
        return stop.eval_return is not None and generation > 0 and not generation % stop.eval_every

    def run(self, state: TrainState) -> CheckResult | None:
        """Collective: the check after state.generation when one is due (else None), also kept
        in state.last_check (the checkpoint stores it: a resume decides on it)."""
        if not self.due(state.generation):
            return None
        stop, world = self.cfg.stop, self.world
        where = f"the return check after generation {state.generation}"
        self.policy.set_theta(state.theta)
        self.policy.set_obstat(state.obstat)
        mine = play_noise_free(self.setup.env, self.policy,
                               range(world.rank, stop.eval_episodes, world.size),
                               run_seed=self.cfg.seed, seed=state.generation,
                               limit=self.setup.limit,
                               guard=lambda i: self.liveness.episode(f"episode {i} of {where}"))
        with self.liveness.exchange(where, episodes_behind=-(-stop.eval_episodes // world.size)):
            results = sorted(r for part in world.allgather(mine) for r in part)
        result = CheckResult(float(np.mean([ret for _, ret, _ in results])), len(results),
                             sum(length for *_, length in results))
        state.last_check = Check(state.generation, result.episodes, result.mean)
        return result
