"""Observation statistics as mergeable sums: what every rank adds up the same way."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np


@dataclass
class RunningStat:
    """Observation moments as mergeable sums (float64); starts with a small prior count."""
    sum: np.ndarray
    sumsq: np.ndarray
    count: float

    @classmethod
    def initial(cls, shape: Sequence[int] | int, eps: float = 1e-2) -> "RunningStat":
        return cls(np.zeros(shape, np.float64), np.full(shape, eps, np.float64), eps)

    @classmethod
    def empty(cls, shape: Sequence[int] | int) -> "RunningStat":
        return cls(np.zeros(shape, np.float64), np.zeros(shape, np.float64), 0.0)

    def increment(self, s: np.ndarray, ssq: np.ndarray, count: float) -> None:
        self.sum += s
        self.sumsq += ssq
        self.count += count

    def add_observations(self, obs: np.ndarray) -> None:
        obs = np.asarray(obs, dtype=np.float64)
        self.increment(obs.sum(axis=0), np.square(obs).sum(axis=0), obs.shape[0])

    @property
    def mean(self) -> np.ndarray:
        return self.sum / self.count

    @property
    def std(self) -> np.ndarray:
        return np.sqrt(np.maximum(self.sumsq / self.count - np.square(self.mean), 1e-2))

    @property
    def sample_std(self) -> np.ndarray:
        """The ARS code's filter: the sample standard deviation, infinite for a component that
        never varied (it normalizes to 0), and for every component before any data."""
        if self.count <= 1:
            return np.full(self.sum.shape, np.inf)
        var = np.maximum(self.sumsq - self.count * np.square(self.mean), 0.0) / (self.count - 1)
        std = np.sqrt(var)
        std[std < 1e-7] = np.inf
        return std
