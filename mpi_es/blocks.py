"""Each rank's block of the parameter vector, and its block of the optimizer moments.

Adam and SGD are elementwise, so a rank that updates only theta[lo:hi] with the moments of
[lo:hi] computes exactly the floats one process computes for those elements.
"""
from __future__ import annotations

import numpy as np

from .es import make_optimizer
from .partition import block_counts, block_range


class Blocks:
    """This rank's [lo, hi) of an n-element vector split over `size` ranks."""

    def __init__(self, n: int, size: int = 1, rank: int = 0):
        self.counts = block_counts(n, size)
        self.lo, self.hi = block_range(n, size, rank)

    @property
    def size(self) -> int:
        return self.hi - self.lo


def optimizer_block(optimizer, blocks: Blocks, name: str, args: dict):
    """The optimizer of the whole vector cut down to this rank's block (None stays None)."""
    if optimizer is None:
        return None
    state = {k: v[blocks.lo:blocks.hi].copy() if isinstance(v, np.ndarray) else v
             for k, v in optimizer.state().items()}
    return make_optimizer(name, args, blocks.size, state)


def gather_optimizer(world, optimizer, blocks: Blocks, name: str, args: dict):
    """Collective: the whole optimizer, assembled from every rank's block, on rank 0."""
    if optimizer is None:
        return None
    state = {k: world.gather_blocks(v, blocks.counts) if isinstance(v, np.ndarray) else v
             for k, v in optimizer.state().items()}
    if not world.is_root:
        return None
    return make_optimizer(name, args, int(blocks.counts.sum()), state)
