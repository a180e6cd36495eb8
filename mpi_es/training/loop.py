"""The generation loop: every rank plays a share of the slots, allgathers the per-slot scalars and
updates its own block of theta with the algorithm; rank 0's outputs log and checkpoint."""
from __future__ import annotations

import dataclasses
import math
import time
from contextlib import nullcontext
from dataclasses import dataclass, field

import numpy as np

from ..config import Config
from ..core import noise, slots
from ..core.blocks import Blocks
from ..core.optimizers import ParamState
from ..core.state import TrainState
from ..distributed.liveness import PeerLiveness
from ..distributed.signals import StopRequest
from ..distributed.world import World
from ..rundir.outputs import Outputs
from .metrics import generation_row, non_finite
from .rollout import (Flight, LaneFailure, SlotCollector, Watch, play_in_lockstep,
                      slot_jobs)
from .setup import Setup, algorithm_of
from .stopping import TargetCheck, stop_reason


def poke_and_renew(poke, renew):
    """One per-round call for the episode loop: serve MPI progress, then renew the watchdog."""
    if renew is None:
        return lambda seconds: poke()

    def both(seconds: float) -> None:
        poke()
        renew(seconds)
    return both


class SlotFailure(Exception):
    """An episode slot failed; the message says where (env, generation, slot, rank)."""


class NonFiniteState(Exception):
    """theta or the optimizer state stopped being finite; nothing of it was written."""


@dataclass
class GenerationReport:
    """What one generation tells its listeners (the outputs, bench)."""
    row: dict | None                  # the log.csv row (rank 0; None on the other ranks)
    rollout_seconds: list[float]      # each rank's time playing its share
    slot_seconds: list[float] = field(default_factory=list)   # this rank's slots, one by one


class InFlight:
    """The watchdog's description of the episodes in flight, read when it fires: the one being
    stepped at that moment."""

    def __init__(self, trainer: "Trainer", generation: int, flight: Flight):
        self.trainer, self.generation, self.flight = trainer, generation, flight

    def __str__(self) -> str:
        job = self.flight.current or self.flight.jobs[0]
        slot, k = job.tag
        text = f"episode {k} of {self.trainer._where(self.generation, slot.index)}"
        others = len(self.flight.jobs) - 1
        if others:
            text += f" (one of {others + 1} in lockstep; one step of each)"
        return text


class Trainer:
    """Every rank plays its share of the slots and updates its block of theta (Algorithm 2).

    `state` is the whole training state, the same on every rank; each rank keeps the
    per-parameter state of its own block only.
    """

    def __init__(self, cfg: Config, world: World, setup: Setup, table: noise.NoiseTable,
                 state: TrainState, outputs: Outputs):
        self.cfg, self.world, self.setup, self.table = cfg, world, setup, table
        self.outputs = outputs
        self.algorithm = algorithm_of(cfg)
        self.blocks = Blocks(setup.spec.num_params, world.size, world.rank)
        self.state = dataclasses.replace(
            state, theta=state.theta.copy(),
            param_state=state.param_state.block(self.blocks.lo, self.blocks.hi))
        self.policy = setup.policy(self.state.theta)
        self.lanes = setup.policies.lanes(cfg.episodes_at_once, self.state.theta)
        self.envs = setup.envs(self.lanes.count)
        self.counter = world.slot_counter()
        self.progress_poke = world.progress_poke()
        # a rank may still have this many episodes in flight when another enters an exchange
        in_flight = max(cfg.episodes_per_slot, self.lanes.count)
        self.liveness = PeerLiveness(world, cfg.episode_timeout_s, in_flight)
        self.target = TargetCheck(cfg, world, setup, self.policy, self.liveness)

    def _where(self, generation: int, index: int) -> str:
        return (f"{self.cfg.env_id}, generation {generation + 1}, slot {index}, "
                f"rank {self.world.rank}")

    def run(self, stop: StopRequest) -> tuple[str, bool]:
        """Train until a stop condition or signal: (why it stopped, whether by a signal)."""
        while True:
            # rank 0's clock decides stop.seconds, so rank 0 decides for everyone
            decision = stop_reason(self.cfg, self.state)
            with self.liveness.exchange(f"the start of generation {self.state.generation + 1}"):
                reason = self.world.bcast(decision if self.world.is_root else None)
                # Every rank learns whether any rank was signalled: they stop together.
                signalled = reason is None and self.world.any_true(stop.requested)
            if reason is not None:
                return reason, False
            if signalled:
                return "stopped by a signal; run the same command again to resume", True
            self.generation()

    def generation(self) -> GenerationReport:
        """Collective: play, gather, update, check, and hand the report to the outputs."""
        world, state, cfg = self.world, self.state, self.cfg
        number = state.generation + 1
        t_start = time.perf_counter()
        self.policy.set_obstat(state.obstat)
        self.lanes.set_obstat(state.obstat)
        outcomes, slot_seconds = self.play_share(state.generation, state.theta)
        t_rollout = time.perf_counter()
        self.liveness.wait_for_peers(f"the end of generation {number}'s episodes")
        with self.liveness.exchange(f"the update of generation {number}"):
            rows, obs = slots.pack(outcomes, self.setup.spec.ob_dim, cfg.episodes_per_slot)
            data = dataclasses.replace(
                slots.unpack(world.allgather_rows(rows), world.allgather_rows(obs),
                             self.setup.spec.ob_dim, cfg.episodes_per_slot),
                generation=state.generation)
            times = world.allgather_rows(np.array([[t_rollout - t_start, len(outcomes)]]))
            t_gather = time.perf_counter()
            old_theta = state.theta.copy() if world.is_root else None
            t_update, extras = self.update(data)
            comm = t_gather - t_rollout + time.perf_counter() - t_gather - t_update
        state.generation += 1
        state.episodes_so_far += data.episodes
        state.timesteps_so_far += data.timesteps
        check = self.target.run(state)
        if check is not None:
            state.episodes_so_far += check.episodes
            state.timesteps_so_far += check.timesteps
        with self.liveness.exchange(f"the end of generation {number}"):
            full_state = self.gather_param_state()
            elapsed_this_gen = time.perf_counter() - t_start
            state.time_elapsed += elapsed_this_gen
            report = GenerationReport(None, times[:, 0].tolist(), slot_seconds)
            if world.is_root:
                report.row = generation_row(
                    data, state, workers=int(np.count_nonzero(times[:, 1])),
                    timing={"rollout": report.rollout_seconds, "comm": comm},
                    t_update=t_update, elapsed_this_gen=elapsed_this_gen,
                    update_ratio=float(np.linalg.norm(state.theta - old_theta))
                    / max(float(np.linalg.norm(old_theta)), 1e-12),
                    theta_norm=float(np.linalg.norm(state.theta)))
                report.row.update(extras)
                if cfg.training_reward.transform():
                    report.row["GenTrainRewMean"] = float(np.mean(data.ranked_returns))
                if check is not None:
                    report.row.update(TargetEvalMean=check.mean,
                                      EpisodesThisGen=data.episodes + check.episodes,
                                      TimestepsThisGen=data.timesteps + check.timesteps)
                with self.liveness.busy("writing the checkpoint"):
                    self.outputs.generation_done(
                        dataclasses.replace(state, param_state=full_state), report.row)
        return report

    def play_share(self, generation: int, theta: np.ndarray
                   ) -> tuple[list[slots.SlotOutcome], list[float]]:
        """This rank's slots of a generation, claimed one by one as places in the lockstep
        free up: (outcomes, each one's share of the wall time)."""
        cfg, spec = self.cfg, self.setup.spec
        n_train = cfg.train_slots
        n_eval = slots.eval_slot_count(cfg.seed, generation, n_train, cfg.eval_prob)
        obstat_prob = cfg.calc_obstat_prob if cfg.optimizations.observation_normalization else 0
        reward_transform = cfg.training_reward.transform()

        def jobs():
            for index in self.counter.claims(n_train + n_eval):
                slot = slots.make_slot(
                    index, seed=cfg.seed, generation=generation, train_slots=n_train,
                    episodes_per_slot=cfg.episodes_per_slot, noise_size=self.table.size,
                    num_params=spec.num_params, obstat_prob=obstat_prob,
                    action_noise=cfg.model.ac_noise_std > 0)
                params = ([theta] if slot.kind != slots.TRAIN else self.algorithm.perturb(
                    theta, self.table.get(slot.noise_index, spec.num_params), slot.episodes,
                    generation))
                yield from slot_jobs(slot, params, reward_transform)

        collector = SlotCollector()
        try:
            play_in_lockstep(jobs(), self.envs, self.lanes, limit=self.setup.limit,
                             ac_noise_std=cfg.model.ac_noise_std, done=collector.done,
                             watch=self.watch(generation))
        except LaneFailure as failure:
            slot, _ = failure.job.tag
            where = self._where(generation, slot.index)
            raise SlotFailure(f"{where}: {failure}") from failure.error
        return collector.outcomes, collector.seconds

    def watch(self, generation: int) -> Watch | None:
        renew, poke = self.liveness.renew, self.progress_poke
        if poke is not None:            # rank 0 of a multi-node job serves claims each round
            renew = poke_and_renew(poke, renew)
        if renew is None:
            return None
        if self.liveness.renew is None:
            return Watch(lambda flight: nullcontext(), renew, math.inf)
        return Watch(lambda flight: self.liveness.episode(InFlight(self, generation, flight)),
                     renew, self.cfg.episode_timeout_s, self.liveness.stopped_seconds)

    def update(self, data: slots.GenerationData) -> tuple[float, dict]:
        """Collective: shape all returns, step this rank's block, assemble theta everywhere.
        Returns the seconds the block update took and the algorithm's extra log values."""
        cfg, state, world, blocks = self.cfg, self.state, self.world, self.blocks
        t0 = time.perf_counter()
        returns = data.ranked_returns
        if cfg.reward_shift:
            # the survival bonus taken out of every training step; the log keeps the true return
            returns = returns - cfg.reward_shift * data.lengths
        new_block, extras = self.algorithm.update_block(
            returns, data, state.theta[blocks.lo:blocks.hi],
            self.table.block(blocks.lo, blocks.size), state.param_state)
        problem = non_finite(new_block, state.param_state, generation=state.generation + 1)
        t_update = time.perf_counter() - t0
        first = world.first_error(problem)
        if first is not None:
            if world.is_root:
                raise NonFiniteState(first[1])
            world.barrier()          # rank 0 ends the job; never passed
        state.theta[:] = world.allgather_blocks(new_block, blocks.counts)
        if cfg.optimizations.observation_normalization and data.ob_count > 0:
            state.obstat.increment(data.ob_sum, data.ob_sumsq, data.ob_count)
        return t_update, extras

    def gather_param_state(self) -> ParamState | None:
        """Collective: the whole per-parameter state, assembled from every rank's block, on
        rank 0 (None elsewhere)."""
        own = self.state.param_state
        arrays = {k: self.world.gather_blocks(v, self.blocks.counts) for k, v in own.arrays.items()}
        if not self.world.is_root:
            return None
        return ParamState(own.kind, arrays, dict(own.scalars))
