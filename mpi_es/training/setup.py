"""What every rank builds before training: the env and policy checked against the config, the
starting state, and the node-shared noise table."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .. import policies
from ..config import Config
from ..errors import ConfigError
from ..core import noise, slots
from ..core.obstat import RunningStat
from ..core.state import TrainState
from ..distributed import consistency
from ..distributed.memory import memory_problem
from ..distributed.world import World
from ..envs import bare_env, episode_limit, make_env
from ..extras import import_extra
from ..policies import PolicyMaker
from ..rundir.checkpoint import library_versions


@dataclass
class Setup:
    """What every rank needs to play slots, checked before any heavy work."""
    env: object
    policies: PolicyMaker
    limit: int
    make_env: Callable[[], object] | None = None     # another env like `env`
    _more_envs: list = field(default_factory=list)

    def envs(self, count: int) -> list:
        """`count` environments of this config for the training lanes (`env` first), made as
        they are first asked for, without Gymnasium's pass-through wrappers (see bare_env)."""
        while 1 + len(self._more_envs) < count:
            self._more_envs.append(bare_env(self.make_env(), self.limit))
        return [bare_env(self.env, self.limit), *self._more_envs[:count - 1]]

    @property
    def spec(self):
        return self.policies.spec

    def policy(self, theta: np.ndarray, obstat=None):
        return self.policies.make(theta, obstat)


def prepare(cfg: Config, ranks_on_node: int = 1) -> Setup:
    """Make the env and check the config against it (and the node's memory against
    `ranks_on_node` ranks). Raises ConfigError / EnvError."""
    env = make_env(cfg.env_id, cfg.env_kwargs)
    family = policies.get(cfg.model.network)
    spec = family.spec(cfg, env)
    limit = episode_limit(env, cfg.timestep_limit)
    if limit is None:
        raise ConfigError(f"'timestep_limit': {cfg.env_id} has no max_episode_steps; "
                          f"set timestep_limit to cap episode length")
    if cfg.noise_table.size < spec.num_params:
        raise ConfigError(f"'noise_table.size': {cfg.noise_table.size} entries is smaller than "
                          f"the policy's {spec.num_params} parameters")
    if cfg.log.tensorboard:
        import_extra("tensorboardX", "tensorboard")      # fail now, not after the table build
    problem = memory_problem(cfg.noise_table.size * 4, spec.num_params, ranks_on_node,
                             episodes_at_once=cfg.episodes_at_once)
    if problem:
        raise ConfigError(problem)
    return Setup(env, PolicyMaker(family, spec, family.shared_data(cfg, spec, env)), limit,
                 make_env=lambda: make_env(cfg.env_id, cfg.env_kwargs))


def algorithm_of(cfg: Config):
    """The algorithm object of a config (its class comes with the config's schema)."""
    return type(cfg).algorithm_class(cfg)


def initial_state(cfg: Config, spec) -> TrainState:
    algorithm = algorithm_of(cfg)
    theta = algorithm.initial_theta(spec, slots.init_generator(cfg.seed))
    return TrainState(theta=theta, param_state=algorithm.initial_state(theta.size),
                      obstat=RunningStat.initial(spec.ob_dim))


def build_noise_table(world: World, cfg: Config) -> noise.NoiseTable:
    """One table per node in shared memory, its chunks filled round-robin by the node's ranks."""
    size, seed = cfg.noise_table.size, cfg.noise_table.seed
    table = world.node_shared_array(size, np.float32)
    chunks = range(world.node_rank, noise.num_chunks(size), world.node_size)
    noise.fill_chunks(table, seed, chunks)
    world.node_barrier()
    return noise.NoiseTable(table)


def verify_consistent(world: World, cfg: Config, table: noise.NoiseTable) -> None:
    """Every rank must run the same config, noise table and library versions."""
    mine = consistency.fingerprint(cfg.model_dump(mode="json"), table.noise, library_versions())
    problems = consistency.mismatches(world.allgather(mine))
    if problems:
        raise ConfigError("the ranks of this job disagree (a node with a different install or "
                          "config file?):\n  " + "\n  ".join(problems))
