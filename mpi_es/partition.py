"""Which rank owns which block of the parameter vector: pure functions of (n, size, rank)."""
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
