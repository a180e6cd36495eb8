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

from ..core.slots import Slot, SlotOutcome, evaluation_seed
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


@dataclass
class Flight:
    """The episodes in flight, for the guard: which one is being stepped right now."""
    jobs: list[EpisodeJob] = field(default_factory=list)
    current: EpisodeJob | None = None


NOISE_BLOCK = 256


class _Lane:
    __slots__ = ("job", "env", "t", "rewards", "observations", "noise", "seconds")

    def __init__(self, job: EpisodeJob, env, limit: int):
        self.job, self.env, self.t, self.seconds = job, env, 0, 0.0
        self.rewards = np.empty(limit, dtype=np.float64)
        self.observations = [] if job.collect_obs else None
        self.noise = None

    def episode(self) -> Episode:
        rewards = self.rewards[:self.t]
        episode = Episode(float(rewards.sum()), float(np.sign(rewards).sum()), self.t)
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


def play_in_lockstep(jobs: Iterable[EpisodeJob], envs: list, lanes: Lanes, *, limit: int,
                     ac_noise_std: float,
                     done: Callable[[EpisodeJob, Episode, float], None],
                     watch: Watch | None = None) -> None:
    """Play every job, up to min(len(envs), lanes.count) at once; `done(job, episode, seconds)`
    as each ends (seconds: its share of the wall time). Jobs are drawn only when a place is
    free, so a lazy iterator claims work as late as possible. Failures raise LaneFailure."""
    jobs = iter(jobs)
    width = min(len(envs), lanes.count)
    space = envs[0].action_space
    box = hasattr(space, "low")
    low, high = (space.low, space.high) if box else (None, None)
    ob_space = envs[0].observation_space
    floating = np.issubdtype(ob_space.dtype, np.floating)
    obs = np.empty((width, *ob_space.shape), np.float64 if floating else ob_space.dtype)
    noisy = ac_noise_std > 0 and box
    noise_rows = np.zeros((width, space.shape[0]), np.float64) if noisy else None
    free_envs = list(envs[:width])
    flight: list[_Lane] = []
    state = Flight()

    def start(job: EpisodeJob) -> None:
        row = len(flight)
        lane = _Lane(job, free_envs.pop(), limit)
        state.current = job
        if job.theta is not None:
            lanes.set_theta(row, job.theta)
        ob, _ = lane.env.reset(seed=job.reset_seed)
        obs[row] = ob
        if job.frames is not None:
            job.frames.append(lane.env.render())
        if noisy and job.action_noise is not None:
            lane.noise = job.action_noise.standard_normal((NOISE_BLOCK, low.size)) * ac_noise_std
            noise_rows[row] = lane.noise[0]
        elif noisy:
            noise_rows[row] = 0.0
        flight.append(lane)

    def finish(row: int) -> None:
        lane = flight[row]
        last = len(flight) - 1
        if row != last:                       # keep the lanes in flight in rows 0..n-1
            lanes.swap(row, last)
            obs[[row, last]] = obs[[last, row]]
            if noisy:
                noise_rows[[row, last]] = noise_rows[[last, row]]
            flight[row], flight[last] = flight[last], flight[row]
        flight.pop()
        free_envs.append(lane.env)
        done(lane.job, lane.episode(), lane.seconds)

    def refill() -> None:
        while len(flight) < width:
            job = next(jobs, None)
            if job is None:
                return
            try:
                start(job)
            except Exception as exc:
                raise LaneFailure(job, exc) from exc

    refill()
    while flight:
        state.jobs = [lane.job for lane in flight]
        with watch.guard(state) if watch else nullcontext():
            ended = _rounds(flight, obs, noise_rows, lanes, state, low, high, floating, limit,
                            ac_noise_std, watch)
        for row in sorted(ended, reverse=True):
            finish(row)
        refill()


def _rounds(flight: list[_Lane], obs: np.ndarray, noise_rows: np.ndarray | None, lanes: Lanes,
            state: Flight, low, high, floating: bool, limit: int, ac_noise_std: float,
            watch: Watch | None) -> list[int]:
    """Step every lane in flight, round after round, until some episodes end: their rows."""
    n = len(flight)
    view = obs[:n]
    while True:
        started = time.perf_counter()
        if watch:
            watch.renew(watch.timeout_s)
        lane = flight[0]
        try:
            if floating and not np.isfinite(view).all():
                row = int(np.flatnonzero(~np.isfinite(view.reshape(n, -1)).all(axis=1))[0])
                lane = flight[row]
                raise EpisodeFault(f"non-finite observation at step {lane.t}: {view[row]}")
            for row, lane in enumerate(flight):
                if lane.observations is not None:
                    lane.observations.append(view[row].copy())
            lane = flight[0]
            actions = lanes.act(view)
            if noise_rows is not None:
                actions = actions + noise_rows[:n]
            if low is not None:
                if not np.isfinite(actions).all():
                    row = int(np.flatnonzero(~np.isfinite(actions).all(axis=1))[0])
                    lane = flight[row]
                    raise EpisodeFault(f"non-finite action at step {lane.t}: {actions[row]}")
                actions = np.minimum(np.maximum(actions, low), high)
            ended = []
            for row, lane in enumerate(flight):
                state.current = lane.job
                action = actions[row]
                if lane.job.actions is not None:
                    lane.job.actions.append(action)
                ob, reward, terminated, truncated, _ = lane.env.step(action)
                if not math.isfinite(reward):
                    raise EpisodeFault(f"non-finite reward {reward} at step {lane.t + 1}")
                lane.rewards[lane.t] = reward
                lane.t += 1
                view[row] = ob
                if lane.job.frames is not None:
                    lane.job.frames.append(lane.env.render())
                if lane.noise is not None:
                    if lane.t % NOISE_BLOCK == 0:
                        lane.noise = (lane.job.action_noise.standard_normal(lane.noise.shape)
                                      * ac_noise_std)
                    noise_rows[row] = lane.noise[lane.t % NOISE_BLOCK]
                if terminated or truncated or lane.t >= limit:
                    ended.append(row)
        except LaneFailure:
            raise
        except Exception as exc:
            raise LaneFailure(lane.job, exc) from exc
        share = (time.perf_counter() - started) / n
        for lane in flight:
            lane.seconds += share
            if watch and lane.seconds > watch.timeout_s:
                raise LaneFailure(lane.job, EpisodeTimeout(
                    f"the episode ran longer than episode_timeout_s={watch.timeout_s:g} s "
                    f"(its share of the wall time, in lockstep with {n - 1} other(s))"))
        if ended:
            return ended


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


def play_noise_free(env, policy: Policy, episodes, *, seed: int, limit: int,
                    frames: list | None = None,
                    guard: Callable[[int], ContextManager] = lambda episode: nullcontext()
                    ) -> list[tuple[int, float, int]]:
    """(episode, return, length) of the policy as it is, without action noise, for each episode
    index: what `evaluate --seed SEED` plays."""
    results = []
    for i in episodes:
        with guard(i):
            ep = run_episode(env, policy, limit=limit, reset_seed=evaluation_seed(seed, i),
                             frames=frames)
        results.append((i, ep.ret, ep.length))
    return results


def slot_jobs(slot: Slot, thetas: list[np.ndarray]) -> Iterator[EpisodeJob]:
    """A slot's episodes: one for each of `thetas` (the algorithm's perturbations of a training
    slot, the plain theta of an evaluation slot)."""
    for k, (theta, collect, stream) in enumerate(zip(thetas, slot.collect_obs,
                                                     slot.action_noise)):
        rng = np.random.Generator(np.random.PCG64(stream)) if stream is not None else None
        yield EpisodeJob(theta, slot.reset_seed, rng, collect, tag=(slot, k))


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
             limit: int) -> SlotOutcome:
    """Play one slot's episodes one after the other in one environment."""
    collector = SlotCollector()
    try:
        play_in_lockstep(slot_jobs(slot, thetas), [env], OneAtATime(policy), limit=limit,
                         ac_noise_std=ac_noise_std, done=collector.done)
    except LaneFailure as failure:
        raise failure.error from None
    return collector.outcomes[0]
