"""The whole training state: what a checkpoint holds and every rank agrees on."""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from .obstat import RunningStat
from .optimizers import ParamState


class Check(NamedTuple):
    """stop.eval_return's last check: after which generation, over how many noise-free
    episodes, and their mean return."""
    generation: int
    episodes: int
    mean: float


@dataclass
class TrainState:
    theta: np.ndarray
    param_state: ParamState           # the algorithm's per-parameter state (Adam's moments ...)
    obstat: RunningStat
    generation: int = 0               # completed generations
    timesteps_so_far: int = 0
    episodes_so_far: int = 0
    time_elapsed: float = 0.0
    last_check: Check | None = None   # decides a stop on resume without playing it again
