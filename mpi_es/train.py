"""The generation loop: every rank plays a share of the slots, allgathers the per-slot scalars and
updates its own block of theta; rank 0 logs and checkpoints."""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

from contextlib import nullcontext

import numpy as np

from . import algorithms, checkpoint, consistency, es, noise, slots
from .blocks import Blocks, gather_optimizer, optimizer_block
from .outputs import Outputs
from .config import Config, ConfigError
from .parallel import World, abort_job
from .policies import CnnSpec, PolicySpec, make_policy, policy_spec
from .envs import episode_limit, make_env, resolve_env_id
from .extras import import_extra
from .rollout import play_noise_free, run_slot
from .signals import StopRequest
from .watchdog import Watchdog, wait_until


# Beyond its last slot, a rank still writes the checkpoint (rank 0) and assembles the next
# policy: allowed this long on top of the episodes before the others call it frozen.
PEER_GRACE_S = 10.0


class SlotFailure(Exception):
    """An episode slot failed; the message says where (env, generation, slot, rank)."""


class NonFiniteState(Exception):
    """theta or the optimizer state stopped being finite; nothing of it was written."""


@dataclass
class Setup:
    """What every rank needs to play slots, checked before any heavy work."""
    env: object
    spec: PolicySpec | CnnSpec
    limit: int
    reference: np.ndarray | None = None    # the CNN's VBN reference batch

    def policy(self, theta: np.ndarray, obstat=None):
        return make_policy(self.spec, theta, obstat, self.reference)


def prepare(cfg: Config) -> Setup:
    """Make the env and check the config against it. Raises ConfigError / EnvError."""
    env = make_env(cfg.env_id)
    spec = policy_spec(cfg, env)
    limit = episode_limit(env, cfg.timestep_limit)
    if limit is None:
        raise ConfigError(f"'timestep_limit': {cfg.env_id} has no max_episode_steps; "
                          f"set timestep_limit to cap episode length")
    if cfg.noise_table.size < spec.num_params:
        raise ConfigError(f"'noise_table.size': {cfg.noise_table.size} entries is smaller than "
                          f"the policy's {spec.num_params} parameters")
    if cfg.log.tensorboard:
        import_extra("tensorboardX", "tensorboard")      # fail now, not after the table build
    problem = consistency.noise_memory_problem(cfg.noise_table.size * 4)
    if problem:
        raise ConfigError(problem)
    return Setup(env, spec, limit, reference_batch(cfg, spec, env))


def reference_batch(cfg: Config, spec, env) -> np.ndarray | None:
    """The CNN's VBN reference batch, collected by random play from the run's seed: every rank
    (and `evaluate`) collects the same one."""
    if not (isinstance(spec, CnnSpec) and spec.vbn):
        return None
    from .envs.atari import reference_batch as collect
    return collect(env, slots.reference_generator(cfg.seed), spec.vbn_batch)


def initial_state(cfg: Config, spec: PolicySpec) -> checkpoint.TrainState:
    algorithm = algorithms.get(cfg.algorithm)
    theta = algorithm.initial_theta(cfg, spec, slots.init_generator(cfg.seed))
    return checkpoint.TrainState(theta=theta,
                                 optimizer=algorithm.initial_optimizer(cfg, theta.size),
                                 obstat=es.RunningStat.initial(spec.ob_dim))


def build_noise_table(world: World, cfg: Config) -> noise.NoiseTable:
    """One table per node in shared memory, its chunks filled round-robin by the node's ranks."""
    size, seed = cfg.noise_table.size, cfg.noise_table.seed
    table = world.node_shared_array(size, np.float32)
    chunks = range(world.node_rank, noise.num_chunks(size), world.node_size)
    noise.fill_chunks(table, seed, chunks)
    world.node_barrier()
    return noise.NoiseTable(table)


def stop_reason(cfg: Config, state: checkpoint.TrainState) -> str | None:
    stop = cfg.stop
    if stop.generations is not None and state.generation >= stop.generations:
        return f"reached stop.generations={stop.generations}"
    if stop.timesteps is not None and state.timesteps_so_far >= stop.timesteps:
        return f"reached stop.timesteps={stop.timesteps}"
    if stop.seconds is not None and state.time_elapsed >= stop.seconds:
        return f"reached stop.seconds={stop.seconds}"
    return None


class Trainer:
    """Every rank plays its share of the slots and updates its block of theta (Algorithm 2).

    `state` is the whole training state, the same on every rank; each rank keeps the optimizer
    moments of its own block only.
    """

    def __init__(self, cfg: Config, world: World, setup: Setup, table: noise.NoiseTable,
                 state: checkpoint.TrainState, outputs: Outputs):
        self.cfg, self.world, self.setup, self.table = cfg, world, setup, table
        self.outputs = outputs
        self.algorithm = algorithms.get(cfg.algorithm)
        self.blocks = Blocks(setup.spec.num_params, world.size, world.rank)
        self.state = dataclasses.replace(state, theta=state.theta.copy(), optimizer=optimizer_block(
            state.optimizer, self.blocks, cfg.model.nn_optimizer, cfg.model.nn_optimizer_args))
        self.policy = setup.policy(self.state.theta)
        self.counter = world.slot_counter()
        self.last_row: dict | None = None
        self.last_rollout_times: list[float] = []
        self.watchdog = self.board = None
        if cfg.episode_timeout_s is not None:
            self.watchdog = Watchdog(cfg.episode_timeout_s, self._episode_timed_out)
            if world.size > 1:
                self.board = world.progress_board()
        self._step = 0
        self.target_mean: float | None = None    # stop.eval_return's last check

    def _episode_timed_out(self, what: str) -> None:
        abort_job(f"error: {what} ran longer than episode_timeout_s="
                  f"{self.cfg.episode_timeout_s} s; ending the job (the last checkpoint stays)")

    @property
    def _peer_limit(self) -> float:
        # Once the slots run out, each rank has at most its last slot left, each episode of it
        # bounded by episode_timeout_s, then the end of its generation.
        return self._limit_for(self.cfg.episodes_per_slot)

    def _limit_for(self, episodes: int) -> float:
        return (episodes + 1) * self.cfg.episode_timeout_s + PEER_GRACE_S

    def _reach(self) -> int:
        self._step += 1
        self.board.mark(self._step)
        return self._step

    def _frozen_peers(self, what: str, step: int) -> None:
        behind = self.board.behind(step)
        who = (f"rank{'s' if len(behind) > 1 else ''} {', '.join(map(str, behind))} did not "
               f"reach {what}" if behind else
               f"a rank stopped inside {what} (every rank had reached it)")
        abort_job(f"error: {who} within {self._peer_limit:g} s of rank {self.world.rank} "
                  f"(episode_timeout_s={self.cfg.episode_timeout_s:g}): stopped, hung outside "
                  f"an episode, or on a lost node; ending the job (the last checkpoint stays)")

    def wait_for_peers(self, generation: int) -> None:
        """Before the allgather, which a frozen rank would never join: end the job, naming the
        ranks, when some are still playing long after the slots ran out."""
        step = self._reach()
        if not wait_until(lambda: not self.board.behind(step), self._peer_limit):
            self._frozen_peers(f"the end of generation {generation + 1}'s episodes", step)

    def exchange(self, what: str, episodes_behind: int | None = None):
        """Watch a stretch of collectives: a rank frozen before or inside it ends the job.
        `episodes_behind`: how many episodes a rank may still be playing when another enters
        (default: a slot's)."""
        if self.board is None:
            return nullcontext()
        step = self._reach()
        limit = self._limit_for(self.cfg.episodes_per_slot if episodes_behind is None
                                else episodes_behind)
        return self.watchdog.watching(what, limit, lambda what: self._frozen_peers(what, step))

    def _guard(self, what: str):
        """One episode under the watchdog (episode_timeout_s), when there is one."""
        return nullcontext() if self.watchdog is None else self.watchdog.watching(what)

    def target_check(self) -> tuple[int, int] | None:
        """When stop.eval_return's check is due after this generation: the noise-free policy's
        mean return over stop.eval_episodes episodes shared by the ranks (what `evaluate
        --seed GENERATION --episodes N` of the checkpoint prints), kept as target_mean (None
        when no check was due). Returns the episodes and steps the check took."""
        stop, state, world = self.cfg.stop, self.state, self.world
        self.target_mean = None
        if stop.eval_return is None or state.generation == 0 or state.generation % stop.eval_every:
            return None
        where = f"the return check after generation {state.generation}"
        self.policy.set_theta(state.theta)
        self.policy.set_obstat(state.obstat.mean, state.obstat.std)
        mine = play_noise_free(self.setup.env, self.policy,
                               range(world.rank, stop.eval_episodes, world.size),
                               seed=state.generation, limit=self.setup.limit,
                               guard=lambda i: self._guard(f"episode {i} of {where}"))
        with self.exchange(where, episodes_behind=-(-stop.eval_episodes // world.size)):
            results = sorted(r for part in world.allgather(mine) for r in part)
        self.target_mean = float(np.mean([ret for _, ret, _ in results]))
        return len(results), sum(length for *_, length in results)

    def target_reason(self) -> str | None:
        target = self.cfg.stop.eval_return
        if target is None or self.target_mean is None or self.target_mean < target:
            return None
        return (f"reached stop.eval_return={target:g} (mean {self.target_mean:.2f} over "
                f"{self.cfg.stop.eval_episodes} noise-free episodes after generation "
                f"{self.state.generation})")

    def _where(self, generation: int, index: int) -> str:
        return (f"{self.cfg.env_id}, generation {generation + 1}, slot {index}, "
                f"rank {self.world.rank}")

    def run(self, stop: StopRequest) -> tuple[str, bool]:
        """Train until a stop condition or signal: (why it stopped, whether by a signal)."""
        # A resume right after a due check plays it again (deterministic; counted once).
        self.target_check()
        while True:
            # rank 0's clock decides stop.seconds, so rank 0 decides for everyone
            decision = stop_reason(self.cfg, self.state) or self.target_reason()
            with self.exchange(f"the start of generation {self.state.generation + 1}"):
                reason = self.world.bcast(decision if self.world.is_root else None)
                # Every rank learns whether any rank was signalled: they stop together.
                signalled = reason is None and self.world.any_true(stop.requested)
            if reason is not None:
                return reason, False
            if signalled:
                return "stopped by a signal; run the same command again to resume", True
            self.generation()

    def generation(self) -> None:
        world, state, cfg = self.world, self.state, self.cfg
        t_start = time.perf_counter()
        self.policy.set_obstat(state.obstat.mean, state.obstat.std)
        outcomes = self.play_share(state.generation, state.theta)
        t_rollout = time.perf_counter()
        if self.board is not None:
            self.wait_for_peers(state.generation)
        with self.exchange(f"the update of generation {state.generation + 1}"):
            rows, obs = slots.pack(outcomes, self.setup.spec.ob_dim, cfg.episodes_per_slot)
            data = slots.unpack(world.allgather_rows(rows), world.allgather_rows(obs),
                                self.setup.spec.ob_dim, cfg.episodes_per_slot)
            times = world.allgather_rows(np.array([[t_rollout - t_start, len(outcomes)]]))
            t_gather = time.perf_counter()
            self.last_rollout_times = times[:, 0].tolist()
            timing = {"rollout": self.last_rollout_times, "comm": t_gather - t_rollout,
                      "start": t_start}
            self.update(data, timing, workers=int(np.count_nonzero(times[:, 1])))

    def play_share(self, generation: int, theta: np.ndarray) -> list[slots.SlotOutcome]:
        cfg, spec = self.cfg, self.setup.spec
        n_train = cfg.train_slots
        n_eval = slots.eval_slot_count(cfg.seed, generation, n_train, cfg.eval_prob)
        obstat_prob = cfg.calc_obstat_prob if cfg.optimizations.observation_normalization else 0
        outcomes = []
        self.last_slot_seconds: list[float] = []
        for index in self.counter.claims(n_train + n_eval):
            slot = slots.make_slot(
                index, seed=cfg.seed, generation=generation, train_slots=n_train,
                episodes_per_slot=cfg.episodes_per_slot, noise_size=self.table.size,
                num_params=spec.num_params, obstat_prob=obstat_prob,
                action_noise=cfg.model.ac_noise_std > 0)
            vector = (self.table.get(slot.noise_index, spec.num_params)
                      if slot.kind == slots.TRAIN else None)
            where = self._where(generation, index)
            t_slot = time.perf_counter()
            try:
                outcomes.append(run_slot(slot, self.setup.env, self.policy, theta, vector,
                                         noise_stdev=cfg.noise_stdev,
                                         ac_noise_std=cfg.model.ac_noise_std,
                                         limit=self.setup.limit,
                                         guard=lambda k, where=where:
                                         self._guard(f"episode {k} of {where}")))
            except Exception as exc:
                raise SlotFailure(f"{where}: {type(exc).__name__}: {exc}") from exc
            self.last_slot_seconds.append(time.perf_counter() - t_slot)
        return outcomes

    def update(self, data: slots.GenerationData, timing: dict, workers: int) -> None:
        """Every rank: shape all returns, step its own block, assemble theta everywhere."""
        cfg, state, world, blocks = self.cfg, self.state, self.world, self.blocks
        t0 = time.perf_counter()
        returns = data.returns
        if cfg.reward_shift:
            # the survival bonus taken out of every training step; the log keeps the true return
            returns = returns - cfg.reward_shift * data.lengths
        new_block, extras = self.algorithm.update_block(
            cfg, returns, data, state.theta[blocks.lo:blocks.hi],
            lambda i: self.table.get(i + blocks.lo, blocks.size), state.optimizer)
        problem = non_finite(new_block, state.optimizer, generation=state.generation + 1)
        t_update = time.perf_counter() - t0
        first = world.first_error(problem)
        if first is not None:
            if world.is_root:
                raise NonFiniteState(first[1])
            world.barrier()          # rank 0 ends the job; never passed
        t1 = time.perf_counter()
        old_theta = state.theta.copy() if world.is_root else None
        state.theta[:] = world.allgather_blocks(new_block, blocks.counts)
        if cfg.optimizations.observation_normalization and data.ob_count > 0:
            state.obstat.increment(data.ob_sum, data.ob_sumsq, data.ob_count)
        timing["comm"] += time.perf_counter() - t1

        state.generation += 1
        state.episodes_so_far += data.episodes
        state.timesteps_so_far += data.timesteps
        check = self.target_check()          # (episodes, steps) when a check was due
        if check is not None:
            state.episodes_so_far += check[0]
            state.timesteps_so_far += check[1]
        full_optimizer = gather_optimizer(world, state.optimizer, blocks, cfg.model.nn_optimizer,
                                          cfg.model.nn_optimizer_args)
        elapsed_this_gen = time.perf_counter() - timing["start"]
        state.time_elapsed += elapsed_this_gen
        if not world.is_root:
            return
        theta_norm = float(np.linalg.norm(old_theta))
        row = generation_row(data, state, workers=workers, timing=timing, t_update=t_update,
                             elapsed_this_gen=elapsed_this_gen,
                             update_ratio=float(np.linalg.norm(state.theta - old_theta))
                             / max(theta_norm, 1e-12),
                             theta_norm=float(np.linalg.norm(state.theta)))
        row.update(extras)
        if check is not None:
            row.update(TargetEvalMean=self.target_mean, EpisodesThisGen=data.episodes + check[0],
                       TimestepsThisGen=data.timesteps + check[1])
        self.last_row = row
        self.outputs.generation_done(dataclasses.replace(state, optimizer=full_optimizer), row)


def non_finite(theta: np.ndarray, optimizer, *, generation: int) -> str | None:
    """The message for a theta (block) or optimizer state that stopped being finite, or None."""
    bad = [] if np.all(np.isfinite(theta)) else ["theta"]
    if optimizer is not None:
        bad += [f"optimizer {k}" for k, v in optimizer.state().items()
                if isinstance(v, np.ndarray) and not np.all(np.isfinite(v))]
    if not bad:
        return None
    return (f"generation {generation}: {' and '.join(bad)} became non-finite "
            f"(NaN or inf); stopping. The checkpoint on disk is generation "
            f"{generation - 1}, the last good one. Lower the step size "
            f"or turn on fitness_shaping.")


def _mean(x: np.ndarray) -> float:
    return float(np.mean(x)) if x.size else float("nan")


def _std(x: np.ndarray) -> float:
    return float(np.std(x)) if x.size else float("nan")


def generation_row(data: slots.GenerationData, state: checkpoint.TrainState, *, workers: int,
                   timing: dict, t_update: float, elapsed_this_gen: float, update_ratio: float,
                   theta_norm: float) -> dict:
    return {
        "Generation": state.generation,
        "GenRewMean": _mean(data.returns), "GenRewStd": _std(data.returns),
        "GenLenMean": _mean(data.lengths),
        "EvalGenRewardMean": _mean(data.eval_returns),
        "EvalGenRewardStd": _std(data.eval_returns),
        "EvalGenLengthMean": _mean(data.eval_lengths),
        "EvalGenCount": int(data.eval_returns.size),
        "EpisodesThisGen": data.episodes,
        "EpisodesSoFar": state.episodes_so_far,
        "TimestepsThisGen": data.timesteps,
        "TimestepsSoFar": state.timesteps_so_far,
        "UniqueWorkers": workers, "ObCount": int(data.ob_count),
        "TimeElapsedThisGen": round(elapsed_this_gen, 6),
        "TimeElapsed": round(state.time_elapsed, 6),
        "GenRewMax": float(np.max(data.returns)), "GenRewMin": float(np.min(data.returns)),
        "UpdateRatio": update_ratio, "ThetaNorm": theta_norm,
        "TimeRolloutMin": round(min(timing["rollout"]), 6),
        "TimeRolloutMax": round(max(timing["rollout"]), 6),
        "TimeComm": round(timing["comm"], 6), "TimeUpdate": round(t_update, 6),
    }


def verify_consistent(world: World, cfg: Config, table: noise.NoiseTable) -> None:
    """Every rank must run the same config, noise table and library versions."""
    mine = consistency.fingerprint(cfg.model_dump(mode="json"), table.noise,
                                   checkpoint.library_versions())
    problems = consistency.mismatches(world.allgather(mine))
    if problems:
        raise ConfigError("the ranks of this job disagree (a node with a different install or "
                          "config file?):\n  " + "\n  ".join(problems))


def run_training(cfg: Config, world: World, setup: Setup,
                 resumed: checkpoint.TrainState | None, stop: StopRequest) -> bool:
    """Everything after the config, env and checkpoint checks passed on every rank.

    `resumed` is the state to continue from (rank 0 only), or None for a fresh start.
    Returns True when a signal stopped the run.
    """
    outputs = Outputs(cfg, active=world.is_root)
    gym_id, note = resolve_env_id(cfg.env_id)
    if note:
        outputs.say(note)
    t0 = time.perf_counter()
    table = build_noise_table(world, cfg)
    verify_consistent(world, cfg, table)
    outputs.say(f"mpi_es: {gym_id} | {world.size} rank(s) on this job | "
                f"{setup.spec.num_params} parameters | population {cfg.population_size} | "
                f"noise table {table.size * 4 / 2**20:.0f} MiB per node, built in "
                f"{time.perf_counter() - t0:.2f} s | out_dir {Path(cfg.out_dir).resolve()} ("
                + ("fresh start" if resumed is None else
                   f"resuming from generation {resumed.generation}") + ")")
    warning = cfg.idle_ranks_warning(world.size)
    if warning:
        outputs.say(warning)
    state = resumed if resumed is not None else initial_state(cfg, setup.spec)
    outputs.start(state, fresh=resumed is None)
    state = world.bcast(state if world.is_root else None)   # the same start on every rank
    trainer = Trainer(cfg, world, setup, table, state, outputs)
    reason, signalled = trainer.run(stop)
    state = trainer.state
    outputs.say(f"{'stopped' if signalled else 'done'}: {reason}; {state.generation} "
                f"generations, {state.timesteps_so_far} timesteps; checkpoint "
                f"{outputs.checkpoint_path}")
    return signalled
