"""The update rules. Every algorithm shares the machinery (slots, noise table, allgathers,
checkpoints) and differs only in this narrow interface, one small module each:

    initial_theta(cfg, spec, rng) -> theta           the starting parameters
    initial_optimizer(cfg, dim) -> optimizer | None  state kept per parameter block
    update_block(cfg, returns, data, theta_block, noise_slice, optimizer)
        -> (new theta_block, extra log values)       one rank's block, from all the returns

`returns` are the training returns (slots x episodes, reward_shift applied), `noise_slice(i)`
the rank's block of the noise vector at table index i. Every element of the block must be the
same float computation whatever the partition, so results do not depend on the rank count.
"""
from __future__ import annotations

from types import ModuleType

from . import ars, openai_es

ALGORITHMS: dict[str, ModuleType] = {"openai_es": openai_es, "ars": ars}


def get(name: str) -> ModuleType:
    return ALGORITHMS[name]
