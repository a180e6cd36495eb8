"""Small environments for the tests, importable as `env_id: "tests_envs:ToyReach-v0"`."""
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
