"""Episodes: one policy played in one environment, and a slot's episodes."""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import Callable, ContextManager

import numpy as np

from ..core.slots import Slot, SlotOutcome, evaluation_seed
from ..policies import Policy


class EpisodeFault(Exception):
    """The environment produced something an ES update must never see (NaN, inf)."""


@dataclass
class Episode:
    ret: float
    signret: float
    length: int
    ob_sum: np.ndarray | None = None
    ob_sumsq: np.ndarray | None = None


NOISE_BLOCK = 256


def run_episode(env, policy: Policy, *, limit: int, reset_seed: int,
                action_noise: np.random.Generator | None = None, ac_noise_std: float = 0.0,
                collect_obs: bool = False, frames: list | None = None,
                actions: list | None = None) -> Episode:
    """One episode. `frames`, when given, receives env.render() after the reset and each step;
    `actions` the actions the env was given (for replaying the episode without the policy)."""
    # Box actions are clipped to their bounds (as float32 bounds: that is what envs declare);
    # Discrete and MultiDiscrete actions are argmax choices, always inside their range.
    box = hasattr(env.action_space, "low")
    low = env.action_space.low if box else None
    high = env.action_space.high if box else None
    ob, _ = env.reset(seed=reset_seed)
    if frames is not None:
        frames.append(env.render())
    rewards = np.empty(limit, dtype=np.float64)
    observations = [] if collect_obs else None
    noisy = action_noise is not None and ac_noise_std > 0
    # integer observations (Atari frames) cannot be NaN: skip the per-step check
    check_obs = np.issubdtype(env.observation_space.dtype, np.floating)
    t = 0
    while t < limit:
        if noisy and t % NOISE_BLOCK == 0:
            noise_block = action_noise.standard_normal((NOISE_BLOCK, low.size)) * ac_noise_std
        if check_obs and not np.isfinite(ob).all():
            raise EpisodeFault(f"non-finite observation at step {t}: {ob}")
        if collect_obs:
            observations.append(np.array(ob, dtype=np.float64))  # envs may reuse the buffer
        action = policy.act(ob)
        if noisy:
            action = action + noise_block[t % NOISE_BLOCK]
        if box:
            if not np.isfinite(action).all():
                raise EpisodeFault(f"non-finite action at step {t}: {action}")
            action = np.minimum(np.maximum(action, low), high)
        if actions is not None:
            actions.append(action)
        ob, reward, terminated, truncated, _ = env.step(action)
        if not np.isfinite(reward):
            raise EpisodeFault(f"non-finite reward {reward} at step {t + 1}")
        rewards[t] = reward
        t += 1
        if frames is not None:
            frames.append(env.render())
        if terminated or truncated:
            break
    rewards = rewards[:t]
    episode = Episode(float(rewards.sum()), float(np.sign(rewards).sum()), t)
    if collect_obs and observations:
        obs = np.asarray(observations, dtype=np.float64)
        episode.ob_sum = obs.sum(axis=0)
        episode.ob_sumsq = np.square(obs).sum(axis=0)
    return episode


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


def run_slot(slot: Slot, env, policy: Policy, thetas: list[np.ndarray], *, ac_noise_std: float,
             limit: int, guard: Callable[[int], ContextManager] = lambda episode: nullcontext()
             ) -> SlotOutcome:
    """Play a slot: one episode for each of `thetas` (the algorithm's perturbations of a
    training slot, the plain theta of an evaluation slot).

    `guard(episode)` wraps each episode (the trainer's wall-time watchdog).
    """
    episodes = []
    for k, (params, collect, stream) in enumerate(zip(thetas, slot.collect_obs,
                                                      slot.action_noise)):
        policy.set_theta(params)
        rng = np.random.Generator(np.random.PCG64(stream)) if stream is not None else None
        with guard(k):
            episodes.append(run_episode(env, policy, limit=limit, reset_seed=slot.reset_seed,
                                        action_noise=rng, ac_noise_std=ac_noise_std,
                                        collect_obs=collect))
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
