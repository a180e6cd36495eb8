"""The ES gradient estimate: a weighted sum of noise vectors, summed in slot order."""
from __future__ import annotations

import numpy as np

from .noise import BlockNoise

# Below this block size a rank sums its noise rows many at a time: the per-slot Python loop
# costs more than the arithmetic (at 1,440 ranks a block of 100,000 parameters is 70 wide).
BATCH_BELOW = 4096
BATCH_ELEMENTS = 1 << 18          # rows x block per batch: 1 MiB of float32


def slot_weights(processed: np.ndarray) -> np.ndarray:
    """One weight per noise vector: pos - neg for mirrored pairs, the value itself otherwise."""
    processed = np.asarray(processed, dtype=np.float32)
    if processed.shape[1] == 2:
        return processed[:, 0] - processed[:, 1]
    return processed[:, 0]


def weighted_noise_sum(weights: np.ndarray, noise_indices: np.ndarray, noise: BlockNoise,
                       dim: int) -> np.ndarray:
    """sum_i weights[i] * eps_i in slot order (float32), for the block `noise` cuts.

    Every element is the same float computation however it is batched: each product is
    rounded to float32, then added to the running total slot by slot, starting from zero.
    Large blocks scale each slice into one reused buffer and add it in place (the table is read
    once; nothing of size population x params is built). Small blocks gather their rows in
    batches, scale them at once and reduce along the slot axis: NumPy adds the rows of a
    C-ordered (rows, block) array one after another, elementwise, for a block of 2 or more
    (a 1-wide block would be summed pairwise, so it takes the sliced path). The same additions,
    without a Python step per slot; tests/test_es.py checks the bits against the plain loop.
    """
    weights = np.asarray(weights, dtype=np.float32)
    total = np.zeros(dim, dtype=np.float32)
    if dim >= BATCH_BELOW or dim < 2:
        scaled = np.empty(dim, dtype=np.float32)
        for weight, index in zip(weights, noise_indices):
            np.multiply(noise(int(index)), weight, out=scaled)
            total += scaled
        return total
    step = max(1, BATCH_ELEMENTS // max(dim, 1))
    indices = np.asarray(noise_indices, dtype=np.int64)
    for start in range(0, indices.size, step):
        rows = noise.rows(indices[start:start + step])
        rows *= weights[start:start + step, None]
        rows[0] += total
        total = np.add.reduce(rows, axis=0)
    return total


def es_gradient(processed: np.ndarray, noise_indices: np.ndarray, noise: BlockNoise,
                dim: int) -> np.ndarray:
    """g = sum_i w_i eps_i / n_episodes: the ascent direction, before division by sigma."""
    weights = slot_weights(processed)
    return weighted_noise_sum(weights, noise_indices, noise, dim) / np.float32(processed.size)
