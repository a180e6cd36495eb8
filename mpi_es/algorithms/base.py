"""The algorithm interface, and the registry the `algorithm:` key is looked up in.

Every algorithm shares the machinery (slots, the noise table, the allgathers, checkpoints,
resume) and owns two things:

- **ask**: the parameter vectors a slot plays, from theta and its noise vector (`perturb`);
- **tell**: one rank's block of theta after a generation, from every slot's returns
  (`update_block`), with its per-parameter state (a ParamState: named arrays the trainer cuts
  into blocks, gathers and checkpoints without knowing what they mean).

Every element of a block must be the same float computation whatever the partition, so the
result does not depend on the rank count. An algorithm is one module: a subclass of
Algorithm decorated with `@register`, or any `package.module:Name` a config names.

These are *block-wise* algorithms: everything per parameter is elementwise. A method with a
full covariance (CMA-ES) needs the whole vector at once: a `tell` over theta (not a block),
its matrix in the state (not split by the partition), and an O(n^2) update that one rank (or
a distributed linear-algebra step) does; see the developer guide.
"""
from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from ..core.noise import BlockNoise
from ..core.optimizers import NO_STATE, ParamState, StateLayout
from ..fields import Section
from ..plugins import register_in



def decayed_sigma(sigma: float, rate: float, floor: float, generation: int) -> float:
    """max(floor, sigma x rate^generation); exactly sigma when rate is 1."""
    if rate == 1.0:
        return sigma
    return max(floor, sigma * rate ** generation)

class Algorithm:
    """Base class of the update rules: override what differs from OpenAI-ES's defaults."""
    name: ClassVar[str] = ""
    # its config section, read from the key `section` (default: the name); None for none
    Settings: ClassVar[type[Section] | None] = None
    section: ClassVar[str | None] = None
    # every kind of per-parameter state it may keep (checkpoints are checked against these)
    state_layouts: ClassVar[tuple[StateLayout, ...]] = (NO_STATE,)
    # the extra values update_block returns, as log.csv columns (after the standard ones)
    log_columns: ClassVar[tuple[str, ...]] = ()

    def __init__(self, cfg):
        self.cfg = cfg

    # --- the config ---------------------------------------------------------------------
    @classmethod
    def section_key(cls) -> str | None:
        return (cls.section or cls.name) if cls.Settings is not None else None

    @classmethod
    def fixed_settings(cls, settings: Section | None) -> dict[str, Any]:
        """Shared keys (dotted) this algorithm fixes from its section: a config may set them
        only to these values. DEFAULT means the schema's own default."""
        return {}

    @classmethod
    def default_settings(cls) -> dict[str, Any]:
        """Shared keys whose default differs for this algorithm (a config may still set them)."""
        return {}

    @classmethod
    def check_config(cls, cfg) -> None:
        """Cross-key rules of this algorithm; raise fields.KeyedError naming the key."""

    # --- ask ----------------------------------------------------------------------------
    def initial_theta(self, spec, rng: np.random.Generator) -> np.ndarray:
        return spec.init_theta(rng)

    def sigma(self, generation: int) -> float:
        """The perturbation scale of a generation (0-based): noise_stdev, or its decay."""
        decay = self.cfg.noise_decay
        return decayed_sigma(self.cfg.noise_stdev, decay.rate, decay.floor, generation)

    def perturb(self, theta: np.ndarray, noise_vector: np.ndarray,
                episodes: int, generation: int = 0) -> list[np.ndarray]:
        """The parameters a training slot plays: theta + sigma eps (and theta - sigma eps
        when mirrored)."""
        scaled = np.float32(self.sigma(generation)) * noise_vector
        return [theta + scaled, theta - scaled][:episodes]

    # --- state --------------------------------------------------------------------------
    def layout(self) -> StateLayout:
        """The kind of per-parameter state this run keeps."""
        return NO_STATE

    def initial_state(self, dim: int) -> ParamState:
        return self.layout().initial(dim)

    # --- tell ---------------------------------------------------------------------------
    def update_block(self, returns: np.ndarray, data, theta_block: np.ndarray,
                     noise: BlockNoise, state: ParamState
                     ) -> tuple[np.ndarray, dict[str, float]]:
        """This rank's new block of theta and extra log columns.

        `returns` are the training returns (slots x episodes, reward_shift applied), `data`
        the generation's GenerationData (`self.sigma(data.generation)` is its sigma), `noise(i)` this rank's block of the noise vector at
        table index i (`noise.rows(indices)`: many at once), `state` the block of the
        per-parameter state (update it in place)."""
        raise NotImplementedError


class _Default:
    def __repr__(self) -> str:
        return "DEFAULT"


DEFAULT = _Default()

REGISTRY: dict[str, type[Algorithm]] = {}


def register(cls: type[Algorithm]) -> type[Algorithm]:
    """Make a Algorithm subclass available as `algorithm: <cls.name>`."""
    return register_in(REGISTRY, cls)
