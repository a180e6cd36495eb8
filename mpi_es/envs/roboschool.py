"""Roboschool ids: their PyBullet ports when the `roboschool` extra is installed, else MuJoCo twins.

Roboschool itself no longer installs. PyBullet ported its robots (same observations and actions:
Ant 28/8, Humanoid 44/17), published for Gymnasium as `pybullet_envs_gymnasium`.
"""
from __future__ import annotations

import ctypes
import importlib.util
import os
import sys
from contextlib import contextmanager

import gymnasium as gym

# Roboschool id -> (PyBullet port, Gymnasium MuJoCo twin or None)
ROBOSCHOOL_IDS = {
    "RoboschoolAnt-v1": ("AntBulletEnv-v0", "Ant-v5"),
    "RoboschoolHumanoid-v1": ("HumanoidBulletEnv-v0", "Humanoid-v5"),
    "RoboschoolHumanoidFlagrun-v1": ("HumanoidFlagrunBulletEnv-v0", None),
    "RoboschoolHumanoidFlagrunHarder-v1": ("HumanoidFlagrunHarderBulletEnv-v0", None),
    "RoboschoolHalfCheetah-v1": ("HalfCheetahBulletEnv-v0", "HalfCheetah-v5"),
    "RoboschoolHopper-v1": ("HopperBulletEnv-v0", "Hopper-v5"),
    "RoboschoolWalker2d-v1": ("Walker2DBulletEnv-v0", "Walker2d-v5"),
    "RoboschoolInvertedPendulum-v1": ("InvertedPendulumBulletEnv-v0", "InvertedPendulum-v5"),
    "RoboschoolInvertedPendulumSwingup-v1": ("InvertedPendulumSwingupBulletEnv-v0", None),
    "RoboschoolInvertedDoublePendulum-v1": ("InvertedDoublePendulumBulletEnv-v0",
                                            "InvertedDoublePendulum-v5"),
    "RoboschoolReacher-v1": ("ReacherBulletEnv-v0", "Reacher-v5"),
}

BULLET_MODULE = "pybullet_envs_gymnasium"
EXTRA_HINT = 'pip install -e ".[roboschool]"'


def bullet_available() -> bool:
    return importlib.util.find_spec(BULLET_MODULE) is not None


def is_bullet_id(gym_id: str) -> bool:
    return gym_id.endswith("BulletEnv-v0")


class RoboschoolUnavailable(Exception):
    """A Roboschool id with no MuJoCo twin, and the extra that has its port is missing."""


def resolve(env_id: str, *, bullet: bool | None = None) -> tuple[str, str | None]:
    """(Gymnasium id, notice or None) for any env id; only Roboschool ids change."""
    ids = ROBOSCHOOL_IDS.get(env_id)
    if ids is None:
        return env_id, None
    port, twin = ids
    if bullet_available() if bullet is None else bullet:
        return port, (f"note: {env_id} is a Roboschool id; training its PyBullet port {port} "
                      f"(pybullet_envs_gymnasium, the same robot)")
    if twin is None:
        raise RoboschoolUnavailable(f"'env_id': {env_id} needs its PyBullet port {port}; "
                                    f"install it with {EXTRA_HINT}")
    return twin, (f"note: {env_id} is a Roboschool id; training its Gymnasium MuJoCo twin "
                  f"{twin} (a different robot model); {EXTRA_HINT} trains its PyBullet port "
                  f"{port} instead")


@contextmanager
def c_output_silenced():
    """Send what C code prints to stdout and stderr to /dev/null while the block runs.

    PyBullet prints a build banner on import and `argv[0]=` on every connect, from C, so
    sys.stdout cannot catch it. Both sides' buffers are flushed so nothing leaks out later.
    """
    libc = ctypes.CDLL(None)
    sys.stdout.flush()
    sys.stderr.flush()
    libc.fflush(None)
    saved = [os.dup(1), os.dup(2)]
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        yield
    finally:
        libc.fflush(None)
        for fd, copy in zip((1, 2), saved):
            os.dup2(copy, fd)
            os.close(copy)
        os.close(devnull)


def make_bullet(gym_id: str, **kwargs) -> "QuietBullet":
    """gym.make for a PyBullet env, without the banner pybullet prints when it is imported."""
    with c_output_silenced():
        if ":" not in gym_id and BULLET_MODULE not in sys.modules:
            importlib.import_module(BULLET_MODULE)
        return QuietBullet(gym.make(gym_id, **kwargs))


class QuietBullet(gym.Wrapper):
    """A PyBullet env whose resets (which connect the physics server) print nothing."""

    def reset(self, **kwargs):
        with c_output_silenced():
            return self.env.reset(**kwargs)

    def close(self):
        with c_output_silenced():
            return self.env.close()
