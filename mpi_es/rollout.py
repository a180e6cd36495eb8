"""Environments and episodes."""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import Callable, ContextManager

import numpy as np

from .policy import Policy
from .slots import Slot, SlotOutcome

ROBOSCHOOL_TWINS = {
    "RoboschoolAnt-v1": "Ant-v5",
    "RoboschoolHumanoid-v1": "Humanoid-v5",
    "RoboschoolHalfCheetah-v1": "HalfCheetah-v5",
    "RoboschoolHopper-v1": "Hopper-v5",
    "RoboschoolWalker2d-v1": "Walker2d-v5",
    "RoboschoolInvertedPendulum-v1": "InvertedPendulum-v5",
    "RoboschoolInvertedDoublePendulum-v1": "InvertedDoublePendulum-v5",
    "RoboschoolReacher-v1": "Reacher-v5",
}


class EnvError(Exception):
    """The environment cannot be made or is not one mpi_es can train."""


class EpisodeFault(Exception):
    """The environment produced something an ES update must never see (NaN, inf)."""


def resolve_env_id(env_id: str) -> tuple[str, str | None]:
    """(Gymnasium id, notice or None). Roboschool ids map to their Gymnasium MuJoCo twins."""
    twin = ROBOSCHOOL_TWINS.get(env_id)
    if twin is None:
        return env_id, None
    return twin, (f"note: {env_id} is a Roboschool id; Roboschool no longer installs, "
                  f"training its Gymnasium MuJoCo twin {twin} instead")


def make_env(env_id: str, **kwargs):
    """gym.make with errors turned into one EnvError that names the id and close matches."""
    import difflib

    import gymnasium as gym
    gym_id, _ = resolve_env_id(env_id)
    try:
        env = gym.make(gym_id, **kwargs)
    except gym.error.Error as exc:
        known = [k for k in gym.registry if ":" not in k]
        close = difflib.get_close_matches(gym_id.split(":")[-1], known, n=3, cutoff=0.6)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise EnvError(f"'env_id': cannot make environment {env_id!r}: {exc}{hint}") from None
    except ModuleNotFoundError as exc:
        raise EnvError(f"'env_id': cannot import the module of {env_id!r}: {exc}") from None
    check_spaces(env, env_id)
    return env


def check_spaces(env, env_id: str) -> None:
    from gymnasium import spaces
    if not isinstance(env.observation_space, spaces.Box) or len(env.observation_space.shape) != 1:
        raise EnvError(f"'env_id': {env_id} has observation space {env.observation_space}; "
                       f"mpi_es needs a flat Box")
    if not isinstance(env.action_space, spaces.Box) or len(env.action_space.shape) != 1:
        raise EnvError(f"'env_id': {env_id} has action space {env.action_space}; "
                       f"mpi_es needs a flat Box of continuous actions")


def episode_limit(env, timestep_limit: int | None) -> int | None:
    """The configured cap, or the env's own; the env's TimeLimit still applies when shorter."""
    own = env.spec.max_episode_steps if env.spec is not None else None
    if timestep_limit is None:
        return own
    return timestep_limit if own is None else min(timestep_limit, own)


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
                collect_obs: bool = False, frames: list | None = None) -> Episode:
    """One episode. `frames`, when given, receives env.render() after the reset and each step."""
    low = env.action_space.low
    high = env.action_space.high
    ob, _ = env.reset(seed=reset_seed)
    if frames is not None:
        frames.append(env.render())
    rewards = np.empty(limit, dtype=np.float64)
    observations = [] if collect_obs else None
    noisy = action_noise is not None and ac_noise_std > 0
    t = 0
    while t < limit:
        if noisy and t % NOISE_BLOCK == 0:
            noise_block = action_noise.standard_normal((NOISE_BLOCK, low.size)) * ac_noise_std
        if not np.isfinite(ob).all():
            raise EpisodeFault(f"non-finite observation at step {t}: {ob}")
        if collect_obs:
            observations.append(ob)
        action = policy.act(ob)
        if noisy:
            action = action + noise_block[t % NOISE_BLOCK]
        ob, reward, terminated, truncated, _ = env.step(np.minimum(np.maximum(action, low), high))
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


def run_slot(slot: Slot, env, policy: Policy, theta: np.ndarray, noise_vector: np.ndarray | None,
             *, noise_stdev: float, ac_noise_std: float, limit: int,
             guard: Callable[[int], ContextManager] = lambda episode: nullcontext()
             ) -> SlotOutcome:
    """Play a slot: +eps (and -eps when mirrored) for training, the plain theta for evaluation.

    `guard(episode)` wraps each episode (the trainer's wall-time watchdog).
    """
    if noise_vector is None:
        thetas = [theta]
    else:
        scaled = np.float32(noise_stdev) * noise_vector
        thetas = [theta + scaled, theta - scaled][:slot.episodes]
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

