"""Train from a script through the Python API, with an env registered in this very process:
    mpiexec -n N python api_train.py OUT_DIR"""
import json
import sys

import gymnasium as gym
import numpy as np

import mpi_es
from mpi_es.config import ConfigError


class Line(gym.Env):
    """Push a point along a line to 1.0: reward is minus the distance."""

    def __init__(self):
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (2,), np.float64)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.x, self.t = float(self.np_random.normal(0.0, 0.2)), 0
        return np.array([self.x, 1.0 - self.x]), {}

    def step(self, action):
        self.x += 0.1 * float(action[0])
        self.t += 1
        return np.array([self.x, 1.0 - self.x]), -abs(1.0 - self.x), False, self.t >= 25, {}


gym.register("ScriptLine-v0", entry_point=Line, max_episode_steps=25)

config = {"env_id": "ScriptLine-v0", "seed": 1, "population_size": 16, "noise_stdev": 0.05,
          "snapshot_freq": 0, "calc_obstat_prob": 0.3, "stop": {"generations": 6},
          "noise_table": {"seed": 2, "size": 100_000},
          "model": {"hidden_dims": [8], "nn_optimizer_args": {"stepsize": 0.05}}}
refused = None
try:
    mpi_es.train({**config, "populaton_size": 4}, out_dir=sys.argv[1])
except ConfigError as exc:
    refused = str(exc).splitlines()[0]
result = mpi_es.train(config, out_dir=sys.argv[1], overrides={"model.ac_noise_std": 0.02})
policy = mpi_es.load(result.out_dir)
figures = mpi_es.evaluate(result.checkpoint, episodes=4)
from mpi4py import MPI  # noqa: E402
refusals = MPI.COMM_WORLD.allgather(refused)
if MPI.COMM_WORLD.Get_rank() == 0:
    print(json.dumps({"refusals": refusals, "generation": result.generation,
                      "timesteps": result.timesteps,
                      "action": policy.act(np.array([0.0, 1.0])).tolist(),
                      "return_mean": figures["return_mean"], "episodes": figures["episodes"]}))
