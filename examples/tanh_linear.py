"""A policy family of your own: `model.network: tanh_linear:TanhLinear`.

A linear map of the normalized observation, squashed by tanh and scaled onto the action
bounds. Run it from the folder that holds this file (it is imported from sys.path):

    cd examples && mpiexec -n 2 python -m mpi_es custom_policy.yaml
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydantic import Field

from mpi_es.errors import ConfigError
from mpi_es.fields import Section
from mpi_es.policies import PolicyFamily


class TanhLinearSettings(Section):
    """Keys this family adds to the config's model section."""
    init_scale: float = Field(default=0.01, gt=0)   # std of the initial weights


@dataclass(frozen=True)
class TanhLinearSpec:
    ob_dim: int
    low: np.ndarray
    high: np.ndarray
    init_scale: float

    @property
    def ac_dim(self) -> int:
        return self.low.size

    @property
    def num_params(self) -> int:
        return (self.ob_dim + 1) * self.ac_dim

    def init_theta(self, rng: np.random.Generator) -> np.ndarray:
        return (self.init_scale * rng.standard_normal(self.num_params)).astype(np.float32)

    def describe(self) -> str:
        return f"tanh(W x + b), {self.ob_dim} -> {self.ac_dim}"

    def describe_observations(self) -> str:
        return str(self.ob_dim)

    def describe_actions(self) -> str:
        return f"{self.ac_dim}  (bounds {self.low.min():g} .. {self.high.max():g})"


class TanhLinearPolicy:
    def __init__(self, spec: TanhLinearSpec, theta: np.ndarray, obstat=None):
        self.spec = spec
        self.set_obstat(obstat)
        self.set_theta(theta)

    def set_theta(self, theta: np.ndarray) -> None:
        n, k = self.spec.ob_dim, self.spec.ac_dim
        self.w = theta[:n * k].reshape(n, k)
        self.b = theta[n * k:]

    def set_obstat(self, obstat) -> None:
        """obstat: the run's observation statistics (mean, std), or None."""
        self.mean = None if obstat is None else obstat.mean
        self.std = None if obstat is None else obstat.std

    def act(self, ob: np.ndarray) -> np.ndarray:
        x = ob if self.mean is None else np.clip((ob - self.mean) / self.std, -5, 5)
        squashed = np.tanh(x.astype(np.float32) @ self.w + self.b)
        return self.spec.low + (squashed + 1) * 0.5 * (self.spec.high - self.spec.low)


class TanhLinear(PolicyFamily):
    name = "tanh_linear"
    Settings = TanhLinearSettings

    @classmethod
    def spec(cls, cfg, env) -> TanhLinearSpec:
        ob, action = env.observation_space, env.action_space
        if len(ob.shape) != 1 or not hasattr(action, "low"):
            raise ConfigError(f"'model.network': tanh_linear needs flat observations and "
                              f"continuous actions; {cfg.env_id} has {ob} and {action}")
        return TanhLinearSpec(int(ob.shape[0]), action.low.astype(np.float32),
                              action.high.astype(np.float32), cfg.model.init_scale)

    @classmethod
    def make(cls, spec, theta, obstat=None, shared=None) -> TanhLinearPolicy:
        return TanhLinearPolicy(spec, theta, obstat)
