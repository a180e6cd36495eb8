"""Making environments: Gymnasium ids, `module:Id`, Roboschool ids; their errors and limits."""
from __future__ import annotations

import difflib
import importlib
import sys

from . import atari, roboschool


class EnvError(Exception):
    """The environment cannot be made or is not one mpi_es can train."""


def resolve_env_id(env_id: str) -> tuple[str, str | None]:
    """(Gymnasium id, notice or None). Roboschool ids map to their PyBullet port or MuJoCo twin."""
    try:
        return roboschool.resolve(env_id)
    except roboschool.RoboschoolUnavailable as exc:
        raise EnvError(str(exc)) from None


_mujoco_warnings = {"show": True, "seen": set()}


def show_mujoco_warnings(show: bool) -> None:
    """Whether this process prints MuJoCo's warnings (one rank of a job is enough)."""
    _mujoco_warnings["show"] = show


# Warnings about Gymnasium's own model files, which a user can do nothing about
HARMLESS_MUJOCO_WARNINGS = ("compiler attribute 'settotalmass' is deprecated",)


def _mujoco_warning(message: str) -> None:
    if any(text in message for text in HARMLESS_MUJOCO_WARNINGS):
        return
    if _mujoco_warnings["show"] and message not in _mujoco_warnings["seen"]:
        _mujoco_warnings["seen"].add(message)
        sys.stderr.write(f"MuJoCo warning: {message}\n")


def route_mujoco_warnings(gym_id: str) -> None:
    """MuJoCo appends its warnings to MUJOCO_LOG.TXT in the current directory unless a handler
    takes them: ours prints each distinct one once, to stderr."""
    import gymnasium as gym
    if ":" in gym_id:                  # module:Id: the module registers Id when imported
        module, _, gym_id = gym_id.partition(":")
        try:
            importlib.import_module(module)
        except ImportError:
            return                     # gym.make reports it, naming the env
    spec = gym.registry.get(gym_id)
    if spec is not None and "mujoco" in str(spec.entry_point):
        import mujoco
        mujoco.set_mju_user_warning(_mujoco_warning)


def make_env(env_id: str, env_kwargs: dict | None = None, **kwargs):
    """gym.make with the config's `env_kwargs` (and `kwargs`, e.g. render_mode), its errors
    turned into one EnvError that names the id and close matches."""
    import gymnasium as gym
    kwargs = {**(env_kwargs or {}), **kwargs}
    gym_id, _ = resolve_env_id(env_id)
    bullet = roboschool.is_bullet_id(gym_id.split(":")[-1])
    if atari.looks_like_atari(gym_id) and not atari.available():
        raise EnvError(f"'env_id': {env_id} is an Atari game; Atari needs {atari.EXTRA_HINT}")
    route_mujoco_warnings(gym_id)
    try:
        if atari.is_atari(gym_id):
            env = atari.make(gym_id, **kwargs)
        elif bullet:
            env = roboschool.make_bullet(gym_id, **kwargs)
        else:
            env = gym.make(gym_id, **kwargs)
    except gym.error.Error as exc:
        known = [k for k in gym.registry if ":" not in k]
        close = difflib.get_close_matches(gym_id.split(":")[-1], known, n=3, cutoff=0.6)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        extra = (f"; PyBullet envs need {roboschool.EXTRA_HINT}"
                 if bullet and not roboschool.bullet_available() else "")
        raise EnvError(f"'env_id': cannot make environment {env_id!r}: {exc}{hint}{extra}"
                       ) from None
    except ModuleNotFoundError as exc:
        raise EnvError(f"'env_id': cannot import the module of {env_id!r}: {exc}") from None
    except TypeError as exc:           # a keyword its constructor does not take
        if not env_kwargs:
            raise
        raise EnvError(f"'env_kwargs': {env_id} does not take {sorted(env_kwargs)}: {exc}"
                       ) from None
    check_spaces(env, env_id)
    return env


def check_spaces(env, env_id: str) -> None:
    from gymnasium import spaces
    ob = env.observation_space
    if not isinstance(ob, spaces.Box) or len(ob.shape) not in (1, 3):
        raise EnvError(f"'env_id': {env_id} has observation space {ob}; mpi_es needs a flat "
                       f"Box, or images (stacked frames) for the CNN policy")
    action = env.action_space
    flat_box = isinstance(action, spaces.Box) and len(action.shape) == 1
    discrete = isinstance(action, spaces.Discrete) or (
        isinstance(action, spaces.MultiDiscrete) and action.nvec.ndim == 1)
    if not (flat_box or discrete):
        raise EnvError(f"'env_id': {env_id} has action space {action}; mpi_es needs a flat Box "
                       f"of continuous actions, a Discrete or a flat MultiDiscrete")


def bare_env(env, limit: int):
    """The env under Gymnasium's pass-through wrappers, for the training lanes' hot path.

    gym.make wraps an env in TimeLimit, OrderEnforcing and PassiveEnvChecker. None of them
    changes an observation or a reward: the lanes cap episodes at `limit` themselves (never
    above the TimeLimit, see episode_limit), always reset before stepping, and check spaces and
    finiteness their own way. Together they cost a few microseconds a step, several percent of
    a MuJoCo step. Any other wrapper (a user's, Atari's, PyBullet's) keeps the env as it is.
    """
    from gymnasium import Wrapper
    from gymnasium.wrappers import OrderEnforcing, PassiveEnvChecker, TimeLimit
    inner = env
    while type(inner) in (TimeLimit, OrderEnforcing, PassiveEnvChecker):
        if type(inner) is TimeLimit and inner._max_episode_steps < limit:
            return env
        inner = inner.env
    return env if isinstance(inner, Wrapper) else inner


def episode_limit(env, timestep_limit: int | None) -> int | None:
    """The configured cap, or the env's own; the env's TimeLimit still applies when shorter."""
    own = env.spec.max_episode_steps if env.spec is not None else None
    if timestep_limit is None:
        return own
    return timestep_limit if own is None else min(timestep_limit, own)
