"""Small environments for the tests, importable as `env_id: "toy_envs:ToyReach-v0"`."""
import gymnasium as gym
import numpy as np
from gymnasium import spaces


class ToyReach(gym.Env):
    """Move a point towards a fixed target; reward is minus the distance. Pure NumPy, fast."""

    def __init__(self, dim: int = 3, steps: int = 30):
        self.dim, self.steps = dim, steps
        self.observation_space = spaces.Box(-np.inf, np.inf, (2 * dim,), np.float64)
        self.action_space = spaces.Box(-1.0, 1.0, (dim,), np.float32)
        self.target = np.linspace(-0.5, 0.8, dim)

    def _obs(self):
        return np.concatenate([self.pos, self.target - self.pos])

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.pos = self.np_random.normal(0.0, 0.3, self.dim)
        self.t = 0
        return self._obs(), {}

    def step(self, action):
        self.pos = self.pos + 0.1 * np.asarray(action, dtype=np.float64)
        self.t += 1
        reward = -float(np.linalg.norm(self.pos - self.target))
        # Ends early when far off: episode lengths differ between slots.
        terminated = bool(np.linalg.norm(self.pos) > 3.0)
        return self._obs(), reward, terminated, False, {}


gym.register("ToyReach-v0", entry_point=ToyReach, max_episode_steps=30)
gym.register("ToyReachNoLimit-v0", entry_point=ToyReach)


class Faulty(ToyReach):
    """ToyReach that misbehaves on one rank, steered by environment variables:

    FAULTY_MODE   raise | nan_obs | nan_reward | huge_reward | sleep | raise_init
    FAULTY_RANK   the MPI rank that misbehaves (default 1)
    FAULTY_AFTER  episodes this process plays normally first (default 0)
    FAULTY_STEP   the step of the faulty episode at which it happens (default 3)
    FAULTY_STEP_SECONDS  wall time every step takes on every rank (default 0): ranks that
                  sleep in the env share out the slots evenly even on oversubscribed cores
    """

    def __init__(self):
        import os

        from mpi4py import MPI
        super().__init__()
        self.mode = os.environ.get("FAULTY_MODE", "")
        self.active = MPI.COMM_WORLD.Get_rank() == int(os.environ.get("FAULTY_RANK", "1"))
        self.after = int(os.environ.get("FAULTY_AFTER", "0"))
        self.at_step = int(os.environ.get("FAULTY_STEP", "3"))
        self.step_seconds = float(os.environ.get("FAULTY_STEP_SECONDS", "0"))
        if self.active and self.mode == "raise_init":
            raise RuntimeError("Faulty-v0 refuses to start on this rank")

    episodes_in_process = 0        # over all instances: a rank plays in several (lockstep)

    def reset(self, *, seed=None, options=None):
        Faulty.episodes_in_process += 1
        self.episodes = Faulty.episodes_in_process
        return super().reset(seed=seed, options=options)

    def step(self, action):
        if self.step_seconds:
            import time
            time.sleep(self.step_seconds)
        ob, reward, terminated, truncated, info = super().step(action)
        if self.mode == "huge_reward":
            reward = 1e38 * (1.0 + float(np.sum(action)))  # returns overflow float32
        if not self.active or self.episodes <= self.after or self.t != self.at_step:
            return ob, reward, terminated, truncated, info
        import sys
        import time
        print(f"FAULT_AT {time.time():.3f}", file=sys.stderr, flush=True)
        if self.mode == "raise":
            raise ValueError("Faulty-v0 step exploded")
        if self.mode == "nan_obs":
            ob = ob.copy()
            ob[1] = np.nan
        elif self.mode == "nan_reward":
            reward = float("inf")
        elif self.mode == "sleep":
            import time
            time.sleep(600)
        return ob, reward, terminated, truncated, info


gym.register("Faulty-v0", entry_point=Faulty, max_episode_steps=30)


class SlowReach(ToyReach):
    """ToyReach whose every step takes 20 ms of wall time: a rank is almost always mid-episode."""

    def step(self, action):
        import time
        time.sleep(0.02)
        return super().step(action)


gym.register("SlowReach-v0", entry_point=SlowReach, max_episode_steps=30)


class ToyChoices(ToyReach):
    """ToyReach steered by a MultiDiscrete action: per dimension, move -0.1, 0 or +0.1."""

    def __init__(self):
        super().__init__()
        self.action_space = spaces.MultiDiscrete([3, 3, 3], start=[-1, -1, -1])

    def step(self, action):
        assert action.dtype.kind == "i" and np.all(np.abs(action) <= 1), action
        return super().step(action.astype(np.float64))


class ToyMatrixAction(ToyReach):
    def __init__(self):
        super().__init__()
        self.action_space = spaces.Box(-1.0, 1.0, (3, 1), np.float32)


gym.register("ToyChoices-v0", entry_point=ToyChoices, max_episode_steps=30)
gym.register("ToyMatrixAction-v0", entry_point=ToyMatrixAction, max_episode_steps=30)
