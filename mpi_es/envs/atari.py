"""Atari through ale-py (the `atari` extra), preprocessed as Mnih et al. and the ES paper did.

Grayscale 84x84 frames, an action repeated for 4 frames with the max of the last two frames
observed, 4 frames stacked, up to 30 no-op actions after each reset, and no end of episode on
a lost life. Episodes are capped at ALE's 108,000 frames (27,000 agent steps).
"""
from __future__ import annotations

import importlib.util

import gymnasium as gym
import numpy as np

from .roboschool import c_output_silenced

FRAME_SKIP = 4
FRAME_STACK = 4
SCREEN_SIZE = 84
NOOP_MAX = 30
MAX_FRAMES = 108_000
EXTRA_HINT = 'pip install -e ".[atari]"'
REFERENCE_KEEP_PROB = 0.01    # each random-play observation joins the reference batch with this


def available() -> bool:
    return importlib.util.find_spec("ale_py") is not None and \
        importlib.util.find_spec("cv2") is not None


def register() -> None:
    """Make ale-py's ids (ALE/Pong-v5, PongNoFrameskip-v4 ...) known to Gymnasium."""
    import ale_py
    gym.register_envs(ale_py)


def looks_like_atari(gym_id: str) -> bool:
    return gym_id.startswith("ALE/") or gym_id.endswith(("NoFrameskip-v4", "NoFrameskip-v0",
                                                         "Deterministic-v4"))


def is_atari(gym_id: str) -> bool:
    """Does this id name an ALE game (registering ale-py's ids first when it is installed)?"""
    if ":" in gym_id:
        return False
    if gym_id not in gym.registry and looks_like_atari(gym_id) and available():
        register()
    spec = gym.registry.get(gym_id)
    return spec is not None and str(spec.entry_point).startswith("ale_py")


def make(gym_id: str, **kwargs) -> gym.Env:
    """The game with the paper's preprocessing; observations (4, 84, 84) uint8. `kwargs` go to
    ALE's constructor (render_mode, a game mode, ...)."""
    from gymnasium.wrappers import AtariPreprocessing, FrameStackObservation, TimeLimit
    with c_output_silenced():       # ALE prints its banner from C on the first game made
        env = gym.make(gym_id, **{"frameskip": 1, "max_num_frames_per_episode": MAX_FRAMES,
                                  **kwargs})
    env = AtariPreprocessing(env, noop_max=NOOP_MAX, frame_skip=FRAME_SKIP,
                             screen_size=SCREEN_SIZE, terminal_on_life_loss=False,
                             grayscale_obs=True, scale_obs=False)
    env = FrameStackObservation(env, FRAME_STACK)
    return TimeLimit(env, MAX_FRAMES // FRAME_SKIP)


def reference_batch(env: gym.Env, rng: np.random.Generator, size: int) -> np.ndarray:
    """`size` observations from uniformly random play, each step kept with a small
    probability so that they spread over whole episodes (the paper's VBN reference batch).
    Everything comes from `rng`: every rank collects the same batch."""
    batch = []
    ob, _ = env.reset(seed=int(rng.integers(2**31 - 1)))
    while len(batch) < size:
        if rng.random() < REFERENCE_KEEP_PROB:
            batch.append(np.array(ob, copy=True))
        ob, _, terminated, truncated, _ = env.step(int(rng.integers(env.action_space.n)))
        if terminated or truncated:
            ob, _ = env.reset(seed=int(rng.integers(2**31 - 1)))
    return np.stack(batch)
