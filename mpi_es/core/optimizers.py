"""Per-parameter state, and the optimizers that keep some.

An algorithm's state lives in a ParamState: named float32 arrays the size of theta plus a few
scalars. Every array is elementwise, so the trainer cuts it into the ranks' blocks, gathers it
and checkpoints it without knowing what it means; a StateLayout says what a kind holds, so a
file's state is checked against it before use.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np


@dataclass(frozen=True)
class StateLayout:
    """What a ParamState of this kind holds: its arrays, its scalars (name -> int or float)
    and the arrays that can never be negative (checked when a file is read)."""
    kind: str
    arrays: tuple[str, ...] = ()
    scalars: dict[str, type] = field(default_factory=dict)
    nonnegative: tuple[str, ...] = ()

    def initial(self, dim: int) -> "ParamState":
        return ParamState(self.kind, {name: np.zeros(dim, np.float32) for name in self.arrays},
                          {name: kind(0) for name, kind in self.scalars.items()})


@dataclass
class ParamState:
    """Named per-parameter arrays (float32, one entry per element of theta) and scalars."""
    kind: str
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    scalars: dict[str, int | float] = field(default_factory=dict)

    def block(self, lo: int, hi: int) -> "ParamState":
        """This state for theta[lo:hi] (copies)."""
        return ParamState(self.kind, {k: v[lo:hi].copy() for k, v in self.arrays.items()},
                          dict(self.scalars))


NO_STATE = StateLayout("none")


@dataclass(frozen=True)
class Adam:
    stepsize: float
    beta1: float = 0.9
    beta2: float = 0.999
    epsilon: float = 1e-8
    layout: ClassVar[StateLayout] = StateLayout("adam", ("m", "v"), {"t": int}, ("v",))

    def step(self, state: ParamState, grad: np.ndarray) -> np.ndarray:
        """The change to theta for a loss gradient `grad` (descent); advances `state`."""
        t = state.scalars["t"] = state.scalars["t"] + 1
        a = self.stepsize * np.sqrt(1 - self.beta2 ** t) / (1 - self.beta1 ** t)
        m = state.arrays["m"] = (self.beta1 * state.arrays["m"]
                                 + (1 - self.beta1) * grad).astype(np.float32)
        v = state.arrays["v"] = (self.beta2 * state.arrays["v"]
                                 + (1 - self.beta2) * grad * grad).astype(np.float32)
        return (-a * m / (np.sqrt(v) + self.epsilon)).astype(np.float32)


@dataclass(frozen=True)
class SGD:
    stepsize: float
    momentum: float = 0.9
    layout: ClassVar[StateLayout] = StateLayout("sgd", ("v",), {"t": int})

    def step(self, state: ParamState, grad: np.ndarray) -> np.ndarray:
        state.scalars["t"] += 1
        v = state.arrays["v"] = (self.momentum * state.arrays["v"]
                                 + (1.0 - self.momentum) * grad).astype(np.float32)
        return (-self.stepsize * v).astype(np.float32)


OPTIMIZERS = {"adam": Adam, "sgd": SGD}


def make_optimizer(name: str, args: dict) -> Adam | SGD:
    """The optimizer `model.nn_optimizer` names, with `model.nn_optimizer_args`."""
    return OPTIMIZERS[name](**args)
