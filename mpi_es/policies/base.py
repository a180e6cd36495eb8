"""The policy interface, and the registry `model.network` is looked up in.

A policy family is one module: a PolicyFamily subclass decorated with `@register` (or any
`package.module:Name` the config names) that checks the env's spaces and builds a spec (sizes,
the initial theta), and makes policies from a spec and a flat float32 theta. Policies act in
NumPy; the trainer re-points one policy at each perturbed theta.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import numpy as np

from ..fields import Section
from ..plugins import register_in


class Policy(Protocol):
    """What the episode loop needs of a policy."""

    def set_theta(self, theta: np.ndarray) -> None:
        """Act with these parameters from now on (called once per perturbed policy)."""

    def set_obstat(self, obstat) -> None:
        """The run's observation statistics (a core.obstat.RunningStat) to normalize with; a
        policy that does not normalize ignores them."""

    def act(self, ob: np.ndarray) -> Any:
        """The noise-free action for one observation."""


class Lanes(Protocol):
    """Several policies acting at once, one per row (a rank's episodes in lockstep)."""
    count: int

    def set_obstat(self, obstat) -> None:
        """As Policy.set_obstat, for every row."""

    def set_theta(self, row: int, theta: np.ndarray) -> None:
        """Row `row` acts with these parameters from now on."""

    def swap(self, i: int, j: int) -> None:
        """Exchange the parameters of two rows."""

    def act(self, obs: np.ndarray) -> Any:
        """Noise-free actions for observations obs[r] of rows r = 0..len(obs)-1, each exactly
        what a Policy with that row's parameters acts on obs[r] alone."""


class OneAtATime:
    """Lanes of one row around a Policy: for families without a batched forward pass."""
    count = 1

    def __init__(self, policy: Policy):
        self.policy = policy

    def set_obstat(self, obstat) -> None:
        self.policy.set_obstat(obstat)

    def set_theta(self, row: int, theta: np.ndarray) -> None:
        self.policy.set_theta(theta)

    def swap(self, i: int, j: int) -> None:
        pass

    def act(self, obs: np.ndarray):
        action = self.policy.act(obs[0])
        return action[None] if isinstance(action, np.ndarray) else [action]


class PolicySpec(Protocol):
    """Sizes and start of a policy, fixed by the config and the env's spaces."""
    num_params: int
    ob_dim: int                        # entries of an observation (its statistics' size)

    def init_theta(self, rng: np.random.Generator) -> np.ndarray: ...
    def describe(self) -> str: ...
    def describe_observations(self) -> str: ...
    def describe_actions(self) -> str: ...


class PolicyFamily:
    """Base class of the policy families (`model.network`)."""
    name: ClassVar[str] = ""
    # the keys it adds to the model section (None: none)
    Settings: ClassVar[type[Section] | None] = None
    # shared keys it fixes (dotted key -> value), and why, for the error a config gets
    fixed_settings: ClassVar[dict[str, Any]] = {}
    fixed_reason: ClassVar[str] = ""

    @classmethod
    def spec(cls, cfg, env) -> PolicySpec:
        """The spec the config asks for, checked against the env; ConfigError when it cannot
        be built."""
        raise NotImplementedError

    @classmethod
    def shared_data(cls, cfg, spec: PolicySpec, env) -> np.ndarray | None:
        """Data every rank (and `evaluate`) must build the same way from the config, e.g. the
        CNN's VBN reference batch; None when the family needs none."""
        return None

    @classmethod
    def make(cls, spec: PolicySpec, theta: np.ndarray, obstat=None,
             shared: np.ndarray | None = None) -> Policy:
        raise NotImplementedError

    @classmethod
    def make_lanes(cls, spec: PolicySpec, count: int, obstat=None,
                   shared: np.ndarray | None = None) -> Lanes | None:
        """`count` policies acting at once with one batched forward pass, or None when the
        family has none (its episodes are then played one at a time)."""
        return None


@dataclass
class PolicyMaker:
    """A family, its spec for this config and env, and its shared data: makes policies."""
    family: type[PolicyFamily]
    spec: PolicySpec
    shared: np.ndarray | None = None

    @property
    def num_params(self) -> int:
        return self.spec.num_params

    def make(self, theta: np.ndarray, obstat=None) -> Policy:
        return self.family.make(self.spec, theta, obstat, self.shared)

    def lanes(self, count: int, theta: np.ndarray, obstat=None) -> Lanes:
        """Up to `count` policies acting at once (fewer, one, when the family cannot batch)."""
        lanes = self.family.make_lanes(self.spec, count, obstat, self.shared) if count > 1 else None
        return lanes if lanes is not None else OneAtATime(self.make(theta, obstat))


REGISTRY: dict[str, type[PolicyFamily]] = {}


def register(cls: type[PolicyFamily]) -> type[PolicyFamily]:
    """Make a PolicyFamily subclass available as `model.network: <cls.name>`."""
    return register_in(REGISTRY, cls)


def is_image(space) -> bool:
    return len(space.shape or ()) == 3
