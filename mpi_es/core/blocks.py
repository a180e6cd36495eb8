"""Which rank owns which block of the parameter vector: pure functions of (n, size, rank).

The update and every per-parameter state are elementwise, so a rank that updates only
theta[lo:hi] with the state of [lo:hi] computes exactly the floats one process computes for
those elements.
"""
from __future__ import annotations

import numpy as np


def block_counts(n: int, size: int) -> np.ndarray:
    """Elements per rank: n split into `size` contiguous blocks differing by at most one."""
    base, extra = divmod(n, size)
    return np.array([base + (1 if r < extra else 0) for r in range(size)], dtype=np.int64)


def block_range(n: int, size: int = 1, rank: int = 0) -> tuple[int, int]:
    """[lo, hi) of rank's block; one process (size 1) owns everything."""
    counts = block_counts(n, size)
    lo = int(counts[:rank].sum())
    return lo, lo + int(counts[rank])


class Blocks:
    """This rank's [lo, hi) of an n-element vector split over `size` ranks."""

    def __init__(self, n: int, size: int = 1, rank: int = 0):
        self.counts = block_counts(n, size)
        self.lo, self.hi = block_range(n, size, rank)

    @property
    def size(self) -> int:
        return self.hi - self.lo
