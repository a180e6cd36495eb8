"""The noise table: float32 standard normals every perturbation is a slice of.

The table is cut into fixed chunks, chunk c drawn from its own generator seeded by
(table seed, c), so any set of processes can fill it in parallel and the result does not
depend on how many there are.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np

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
