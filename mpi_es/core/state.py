"""The whole training state: what a checkpoint holds and every rank agrees on."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .obstat import RunningStat
from .optimizers import ParamState


@dataclass
class TrainState:
    theta: np.ndarray
    param_state: ParamState           # the algorithm's per-parameter state (Adam's moments ...)
    obstat: RunningStat
    generation: int = 0               # completed generations
    timesteps_so_far: int = 0
    episodes_so_far: int = 0
    time_elapsed: float = 0.0
