"""The rewards training episodes rank by, when a recipe changes them (never evaluation episodes
or the log): exact step rewards replaced (estool's BipedalWalker recipe trains with the -100
fall penalty as 0), then every step's reward clipped (an ARS recipe clips it at -1)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class RewardTransform:
    replace: tuple[tuple[float, float], ...] = ()     # (reward, becomes), applied first
    low: float | None = None
    high: float | None = None

    def __bool__(self) -> bool:
        return bool(self.replace) or self.low is not None or self.high is not None

    def __call__(self, rewards: np.ndarray) -> np.ndarray:
        out = np.array(rewards, dtype=np.float64)
        for value, becomes in self.replace:
            out[rewards == value] = becomes
        if self.low is not None or self.high is not None:
            np.clip(out, self.low, self.high, out=out)
        return out
