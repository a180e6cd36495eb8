"""Episodes: the policy's perturbations played in environments, several in lockstep.

A rank keeps up to `episodes_at_once` episodes in flight, each in an environment of its own,
and steps them in turn: one batched forward pass per layer serves them all (a NumPy call costs
microseconds, a small network's layer less than that), one finiteness check covers all their
observations and one all their actions. An episode's result depends only on its theta, reset
seed and action-noise stream: the batched forward pass computes each row as the one-row pass
does, so the result is the same whichever episodes share the batch (tested).
"""
from __future__ import annotations

import math
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Callable, ContextManager, Iterable, Iterator

import numpy as np

from ..core.rewards import RewardTransform
from ..core.slots import TRAIN, Slot, SlotOutcome, evaluation_seed
from ..policies import Policy
from ..policies.base import Lanes, OneAtATime


class EpisodeFault(Exception):
    """The environment produced something an ES update must never see (NaN, inf)."""


class LaneFailure(Exception):
    """An episode in flight failed; `job` says which, `__cause__` how."""

    def __init__(self, job: "EpisodeJob", error: BaseException):
        super().__init__(f"{type(error).__name__}: {error}")
        self.job, self.error = job, error


@dataclass
class Episode:
    ret: float
    signret: float
    length: int
    ob_sum: np.ndarray | None = None
    ob_sumsq: np.ndarray | None = None
    train_ret: float | None = None    # the return under the job's reward transform, if any


@dataclass
class EpisodeJob:
    """One episode to play. theta None: the lanes' current parameters (a single episode)."""
    theta: np.ndarray | None
    reset_seed: int
    action_noise: np.random.Generator | None = None
    collect_obs: bool = False
    tag: object = None                # the caller's, e.g. (slot, episode)
    frames: list | None = None        # receives env.render() after the reset and each step
    actions: list | None = None       # receives the actions given to the env
    reward_transform: RewardTransform | None = None   # training episodes rank by it


@dataclass
class Flight:
    """The episodes in flight, for the guard: which one is being stepped right now."""
    jobs: list[EpisodeJob] = field(default_factory=list)
    current: EpisodeJob | None = None


NOISE_BLOCK = 256


class _Lane:
    """One episode in flight."""
    __slots__ = ("job", "env", "t", "rewards", "observations", "rng", "started")

    def __init__(self, job: EpisodeJob, env, started: float):
        self.job, self.env, self.t, self.started = job, env, 0, started
        self.rewards: list = []
        self.observations = [] if job.collect_obs else None
        self.rng = job.action_noise

    def episode(self) -> Episode:
        rewards = np.array(self.rewards, dtype=np.float64)
        episode = Episode(float(rewards.sum()), float(np.sign(rewards).sum()), self.t)
        if self.job.reward_transform:
            ranked = self.job.reward_transform(rewards)
            episode.train_ret, episode.signret = float(ranked.sum()), float(np.sign(ranked).sum())
        if self.observations:
            obs = np.asarray(self.observations, dtype=np.float64)
            episode.ob_sum = obs.sum(axis=0)
            episode.ob_sumsq = np.square(obs).sum(axis=0)
        return episode


class EpisodeTimeout(Exception):
    """An episode's share of the wall time passed episode_timeout_s."""


@dataclass
class Watch:
    """The trainer's watchdog over the episodes: `guard(flight)` wraps each stretch between two
    episode ends; `renew(seconds)` pushes its deadline on, each round, to `timeout_s` (a round,
    one step of every episode in flight, that takes longer means a step is stuck). An episode
    whose share of the wall time (each round's time split between the episodes in it) passes
    `timeout_s` fails with EpisodeTimeout."""
    guard: Callable[[Flight], ContextManager]
    renew: Callable[[float], None]
    timeout_s: float
    stopped_seconds: Callable[[], float] = float     # time the process spent stopped: 0.0


def play_in_lockstep(jobs: Iterable[EpisodeJob], envs: list, lanes: Lanes, *, limit: int,
                     ac_noise_std: float,
                     done: Callable[[EpisodeJob, Episode, float], None],
                     watch: Watch | None = None) -> None:
    """Play every job, up to min(len(envs), lanes.count) at once; `done(job, episode, seconds)`
    as each ends (seconds: its share of the wall time). Jobs are drawn only when a place is
    free, so a lazy iterator claims work as late as possible. Failures raise LaneFailure."""
    _Lockstep(envs, lanes, limit, ac_noise_std, done, watch).play(iter(jobs))


def _all_finite(values: np.ndarray, zeros: dict) -> bool:
    """One dot product with zeros: NaN or inf anywhere makes it NaN; huge finite values do not
    (a sum could overflow). Cheaper than isfinite().all() on the small arrays of a round."""
    zero = zeros.get(values.dtype)
    if zero is None:
        return bool(np.isfinite(values).all())
    flat = values.reshape(-1)
    return math.isfinite(np.dot(flat, zero[:flat.size]))


class _Lockstep:
    """The episodes in flight keep rows 0..n-1 of every per-row buffer (observations, the
    lanes' parameters, the action noise); a finished one swaps rows with the last."""

    def __init__(self, envs: list, lanes: Lanes, limit: int, ac_noise_std: float,
                 done: Callable, watch: Watch | None):
        self.lanes, self.limit, self.done, self.watch = lanes, limit, done, watch
        self.width = width = min(len(envs), lanes.count)
        self.free_envs = list(envs[:width])
        space = envs[0].action_space
        self.box = hasattr(space, "low")
        ob_space = envs[0].observation_space
        self.floating = np.issubdtype(ob_space.dtype, np.floating)
        self.obs = np.empty((width, *ob_space.shape),
                            np.float64 if self.floating else ob_space.dtype)
        self.zeros = {}
        if self.floating:
            self.zeros[np.dtype(np.float64)] = np.zeros(self.obs.size)
        if self.box:
            # Box actions are clipped to their bounds (as float32 bounds: that is what envs
            # declare); Discrete and MultiDiscrete actions are argmax choices, always in range.
            dims = int(np.prod(space.shape))
            self.bounds = {np.dtype(space.low.dtype): (space.low, space.high),
                           np.dtype(np.float64): (space.low.astype(np.float64),
                                                  space.high.astype(np.float64))}
            self.action_zeros = {np.dtype(d): np.zeros(width * dims, d)
                                 for d in (np.float32, np.float64)}
        self.noise_std = ac_noise_std if self.box else 0.0
        if self.noise_std > 0:
            self.noise = np.zeros((width, NOISE_BLOCK, *space.shape), np.float64)
            self.position = np.zeros(width, np.intp)
            self.rows = np.arange(width)
        self.flight: list[_Lane] = []
        self.state = Flight()
        self.collecting = 0
        self.clock = 0.0          # the wall time one episode in flight has had so far

    def play(self, jobs: Iterator[EpisodeJob]) -> None:
        self.refill(jobs)
        while self.flight:
            self.state.jobs = [lane.job for lane in self.flight]
            with self.watch.guard(self.state) if self.watch else nullcontext():
                ended = self.rounds()
            for row in sorted(ended, reverse=True):
                self.finish(row)
            self.refill(jobs)

    def refill(self, jobs: Iterator[EpisodeJob]) -> None:
        while len(self.flight) < self.width:
            job = next(jobs, None)
            if job is None:
                return
            try:
                self.start(job)
            except Exception as exc:
                raise LaneFailure(job, exc) from exc

    def start(self, job: EpisodeJob) -> None:
        row = len(self.flight)
        lane = _Lane(job, self.free_envs.pop(), self.clock)
        self.state.current = job
        if job.theta is not None:
            self.lanes.set_theta(row, job.theta)
        ob, _ = lane.env.reset(seed=job.reset_seed)
        self.obs[row] = ob
        if job.frames is not None:
            job.frames.append(lane.env.render())
        if self.noise_std > 0:
            self.position[row] = 0
            if lane.rng is not None:
                self.noise[row] = self.next_noise(lane)
            else:
                self.noise[row] = 0.0
        self.collecting += lane.observations is not None
        self.flight.append(lane)

    def next_noise(self, lane: _Lane) -> np.ndarray:
        return lane.rng.standard_normal(self.noise.shape[1:]) * self.noise_std

    def finish(self, row: int) -> None:
        flight = self.flight
        lane, last = flight[row], len(flight) - 1
        if row != last:
            self.lanes.swap(row, last)
            self.obs[[row, last]] = self.obs[[last, row]]
            if self.noise_std > 0:
                self.noise[[row, last]] = self.noise[[last, row]]
                self.position[[row, last]] = self.position[[last, row]]
            flight[row], flight[last] = flight[last], flight[row]
        flight.pop()
        self.free_envs.append(lane.env)
        self.collecting -= lane.observations is not None
        self.done(lane.job, lane.episode(), self.clock - lane.started)

    def rounds(self) -> list[int]:
        """Step every episode in flight, round after round, until some end: their rows."""
        flight, watch, limit = self.flight, self.watch, self.limit
        n = len(flight)
        view = self.obs[:n]
        oldest = min(flight, key=lambda lane: lane.started)
        noisy = self.noise_std > 0
        stopped_seconds = watch.stopped_seconds if watch else float     # float(): 0.0
        started = time.perf_counter()
        stopped = stopped_seconds()
        while True:
            if watch:
                watch.renew(watch.timeout_s)
            lane = flight[0]
            try:
                if self.floating and not _all_finite(view, self.zeros):
                    lane, row = self.first_bad(view)
                    raise EpisodeFault(f"non-finite observation at step {lane.t}: {view[row]}")
                if self.collecting:
                    for lane, ob in zip(flight, view):
                        if lane.observations is not None:
                            lane.observations.append(ob.copy())
                lane = flight[0]
                actions = self.lanes.act(view)
                if noisy:
                    actions = actions + self.noise[self.rows[:n], self.position[:n]]
                if self.box:
                    actions = np.asarray(actions)
                    if not _all_finite(actions, self.action_zeros):
                        lane, row = self.first_bad(actions)
                        raise EpisodeFault(f"non-finite action at step {lane.t}: {actions[row]}")
                    low, high = self.bounds.get(actions.dtype, self.bounds[np.dtype(np.float64)])
                    actions = np.maximum(actions, low)
                    np.minimum(actions, high, out=actions)
                ended = []
                for row, lane in enumerate(flight):
                    job = self.state.current = lane.job
                    action = actions[row]
                    if job.actions is not None:
                        job.actions.append(action)
                    ob, reward, terminated, truncated, _ = lane.env.step(action)
                    if not math.isfinite(reward):
                        raise EpisodeFault(f"non-finite reward {reward} at step {lane.t + 1}")
                    lane.rewards.append(reward)
                    lane.t += 1
                    view[row] = ob
                    if job.frames is not None:
                        job.frames.append(lane.env.render())
                    if noisy and lane.t % NOISE_BLOCK == 0:      # a new block of noise
                        if lane.rng is not None:
                            self.noise[row] = self.next_noise(lane)
                        self.position[row] = -1
                    if terminated or truncated or lane.t >= limit:
                        ended.append(row)
            except LaneFailure:
                raise
            except Exception as exc:
                raise LaneFailure(lane.job, exc) from exc
            if noisy:
                self.position[:n] += 1
            now = time.perf_counter()
            # a SIGSTOP (scontrol suspend) is no episode running long
            stopped, was_stopped = stopped_seconds(), stopped
            self.clock += max(0.0, now - started - (stopped - was_stopped)) / n
            started = now
            if watch and self.clock - oldest.started > watch.timeout_s:
                raise LaneFailure(oldest.job, EpisodeTimeout(
                    f"the episode ran longer than episode_timeout_s={watch.timeout_s:g} s "
                    f"(its share of the wall time, in lockstep with {n - 1} other(s))"))
            if ended:
                return ended

    def first_bad(self, values: np.ndarray) -> tuple[_Lane, int]:
        """The first episode in flight whose row holds a NaN or inf."""
        bad = ~np.isfinite(values.reshape(len(values), -1)).all(axis=1)
        row = int(np.flatnonzero(bad)[0]) if bad.any() else 0
        return self.flight[row], row


def run_episode(env, policy: Policy, *, limit: int, reset_seed: int,
                action_noise: np.random.Generator | None = None, ac_noise_std: float = 0.0,
                collect_obs: bool = False, frames: list | None = None,
                actions: list | None = None) -> Episode:
    """One episode of the policy as it is. `frames`, when given, receives env.render() after
    the reset and each step; `actions` the actions the env was given (for replaying the episode
    without the policy)."""
    job = EpisodeJob(None, reset_seed, action_noise, collect_obs, frames=frames, actions=actions)
    played = []
    try:
        play_in_lockstep([job], [env], OneAtATime(policy), limit=limit,
                         ac_noise_std=ac_noise_std,
                         done=lambda job, episode, seconds: played.append(episode))
    except LaneFailure as failure:
        raise failure.error from None
    return played[0]


def play_noise_free(env, policy: Policy, episodes, *, run_seed: int, seed: int, limit: int,
                    frames: list | None = None,
                    guard: Callable[[int], ContextManager] = lambda episode: nullcontext()
                    ) -> list[tuple[int, float, int]]:
    """(episode, return, length) of the policy as it is, without action noise, for each episode
    index: what `evaluate --seed SEED` plays for a run with seed `run_seed`."""
    results = []
    for i in episodes:
        with guard(i):
            ep = run_episode(env, policy, limit=limit, frames=frames,
                             reset_seed=evaluation_seed(run_seed, seed, i))
        results.append((i, ep.ret, ep.length))
    return results


def slot_jobs(slot: Slot, thetas: list[np.ndarray],
              reward_transform: RewardTransform | None = None) -> Iterator[EpisodeJob]:
    """A slot's episodes: one for each of `thetas` (the algorithm's perturbations of a training
    slot, the plain theta of an evaluation slot). reward_transform: a training slot's episodes
    also return their rewards' sum under it."""
    transform = reward_transform if slot.kind == TRAIN and reward_transform else None
    for k, (theta, collect, stream) in enumerate(zip(thetas, slot.collect_obs,
                                                     slot.action_noise)):
        rng = np.random.Generator(np.random.PCG64(stream)) if stream is not None else None
        yield EpisodeJob(theta, slot.reset_seed, rng, collect, tag=(slot, k),
                         reward_transform=transform)


class SlotCollector:
    """Collects the episodes of slots, played in any order, into one SlotOutcome per slot."""

    def __init__(self):
        self.outcomes: list[SlotOutcome] = []
        self.seconds: list[float] = []
        self._open: dict[int, list] = {}

    def done(self, job: EpisodeJob, episode: Episode, seconds: float) -> None:
        slot, k = job.tag
        entry = self._open.setdefault(slot.index, [[None] * slot.episodes, 0.0])
        entry[0][k] = episode
        entry[1] += seconds
        if all(e is not None for e in entry[0]):
            del self._open[slot.index]
            self.outcomes.append(slot_outcome(slot, entry[0]))
            self.seconds.append(entry[1])


def slot_outcome(slot: Slot, episodes: list[Episode]) -> SlotOutcome:
    outcome = SlotOutcome(
        index=slot.index, kind=slot.kind, noise_index=slot.noise_index,
        returns=np.array([e.ret for e in episodes]),
        train_returns=np.array([e.ret if e.train_ret is None else e.train_ret
                                for e in episodes]),
        signreturns=np.array([e.signret for e in episodes]),
        lengths=np.array([e.length for e in episodes], dtype=np.int64),
    )
    collected = [e for e in episodes if e.ob_sum is not None]
    if collected:
        outcome.ob_sum = np.sum([e.ob_sum for e in collected], axis=0)
        outcome.ob_sumsq = np.sum([e.ob_sumsq for e in collected], axis=0)
        outcome.ob_count = sum(e.length for e in collected)
    return outcome


def run_slot(slot: Slot, env, policy: Policy, thetas: list[np.ndarray], *, ac_noise_std: float,
             limit: int, reward_transform: RewardTransform | None = None) -> SlotOutcome:
    """Play one slot's episodes one after the other in one environment."""
    collector = SlotCollector()
    try:
        play_in_lockstep(slot_jobs(slot, thetas, reward_transform), [env], OneAtATime(policy), limit=limit,
                         ac_noise_std=ac_noise_std, done=collector.done)
    except LaneFailure as failure:
        raise failure.error from None
    return collector.outcomes[0]
