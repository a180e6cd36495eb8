"""The noise table: float32 standard normals every perturbation is a slice of.

The table is cut into fixed chunks, chunk c drawn from its own generator seeded by
(table seed, c), so any set of processes can fill it in parallel and the result does not
depend on how many there are.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

CHUNK_ENTRIES = 1 << 22  # 16 MiB of float32 per chunk


def num_chunks(size: int) -> int:
    return -(-size // CHUNK_ENTRIES)


def fill_chunks(table: np.ndarray, seed: int, chunks: Iterable[int]) -> None:
    """Draw the given chunks in place, float32 throughout (no float64 temporary)."""
    for c in chunks:
        lo = c * CHUNK_ENTRIES
        hi = min(lo + CHUNK_ENTRIES, table.size)
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(c,))))
        rng.standard_normal(dtype=np.float32, out=table[lo:hi])


def build_serial(size: int, seed: int) -> np.ndarray:
    """The whole table in private memory: for tests and single-process tools."""
    table = np.empty(size, dtype=np.float32)
    fill_chunks(table, seed, range(num_chunks(size)))
    return table


class NoiseTable:
    def __init__(self, table: np.ndarray):
        self.noise = table

    @property
    def size(self) -> int:
        return int(self.noise.size)

    def get(self, index: int, dim: int) -> np.ndarray:
        return self.noise[index:index + dim]

    def sample_index(self, rng: np.random.Generator, dim: int) -> int:
        return int(rng.integers(0, self.size - dim + 1))

    def block(self, lo: int, size: int) -> "BlockNoise":
        """Elements [lo, lo + size) of every noise vector: one rank's block of them."""
        return BlockNoise(self.noise, lo, size)


class BlockNoise:
    """The block [lo, lo + size) of the noise vector that starts at table index i: `self(i)`
    for one, `rows(indices)` for many at once (a copy, one row per index)."""

    def __init__(self, table: np.ndarray, lo: int, size: int):
        self.table, self.lo, self.size = table, lo, size

    def __call__(self, index: int) -> np.ndarray:
        start = self.lo + index
        return self.table[start:start + self.size]

    def rows(self, indices: np.ndarray) -> np.ndarray:
        return sliding_window_view(self.table[self.lo:], self.size)[indices]
