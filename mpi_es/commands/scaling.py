"""How a generation scales with the rank count, predicted from what one run measured.

Pure functions: the bench measures on the ranks it has, these extrapolate.
"""
from __future__ import annotations

import heapq
import math
import time
from dataclasses import dataclass

import numpy as np

from ..algorithms.openai_es import update_theta
from ..core import noise
from ..core.blocks import block_counts
from ..core.gradient import es_gradient
from ..core.optimizers import Adam
from ..core.shaping import shape_returns

SCALE_EPISODES, SCALE_PARAMS = 10_000, 100_000


def update_seconds_per_rank(ranks: int, *, episodes: int = SCALE_EPISODES,
                            params: int = SCALE_PARAMS, table_size: int = 20_000_000,
                            table: np.ndarray | None = None, repeats: int = 3) -> float:
    """One rank's share of the update at `ranks` ranks: shaping all returns, the gradient of its
    block of params over every episode, and Adam on that block (the largest block is timed;
    the fastest of `repeats`, as other work on a shared machine only ever adds time)."""
    rng = np.random.default_rng(0)
    table = noise.build_serial(table_size, 0) if table is None else table
    block = int(block_counts(params, ranks)[0])
    pairs = episodes // 2
    returns = rng.normal(size=(pairs, 2))
    indices = rng.integers(0, table.size - params + 1, size=pairs)
    theta = np.zeros(block, np.float32)
    optimizer = Adam(stepsize=0.01)
    state = optimizer.layout.initial(block)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        shaped = shape_returns(returns, returns, fitness_shaping=True, mode="centered_rank")
        g = es_gradient(shaped, indices, noise.BlockNoise(table, 0, block), block)
        update_theta(theta, g, optimizer=optimizer, state=state, learning_rate=0.0,
                     noise_stdev=0.02, l2coeff=0.005, weight_decay=True)
        times.append(time.perf_counter() - start)
    return min(times)


def makespan(slot_seconds: np.ndarray, ranks: int, claim_s: float) -> float:
    """Wall time for `ranks` ranks to play the slots, each rank claiming the next slot the moment
    it is free (what the shared slot counter does); every claim costs claim_s."""
    free = [0.0] * min(ranks, len(slot_seconds))
    heapq.heapify(free)
    for duration in slot_seconds:
        heapq.heappush(free, heapq.heappop(free) + claim_s + float(duration))
    return max(free) + claim_s           # the last claim that finds the generation empty


def allgather_seconds(ranks: int, nbytes: float, *, latency_s: float,
                      bytes_per_s: float) -> float:
    """A recursive-doubling/ring allgather: log2(ranks) latencies plus the bytes received once."""
    if ranks <= 1:
        return 0.0
    return math.ceil(math.log2(ranks)) * latency_s + nbytes * (ranks - 1) / ranks / bytes_per_s


@dataclass(frozen=True)
class Prediction:
    seconds: float         # mean wall time of a generation
    efficiency: float      # useful episode time / (ranks x generation time)


# What `check --ranks` assumes of the interconnect when it has no launch to measure: a
# latency and bandwidth of the order of a cluster fabric's (bench measures the real ones).
DEFAULT_LATENCY_S = 20e-6
DEFAULT_BYTES_PER_S = 1e9


def generation_bytes(slots: int, episodes_per_slot: int, params: int) -> int:
    """What a generation's allgathers move, per rank: the slot rows and theta's blocks (with
    the optimizer state gathered for rank 0's checkpoint)."""
    return slots * 8 * (4 + 3 * episodes_per_slot) + 12 * params


def predict_generation(slot_seconds: np.ndarray, *, slots: int, ranks: int, claim_s: float,
                       update_s: float, comm_s: float, seed: int = 0,
                       trials: int = 20) -> Prediction:
    """A generation of `slots` slots on `ranks` ranks, averaged over generations whose slot
    times are drawn from `slot_seconds`: the slots handed out the way the shared counter does,
    then the update and the communication. Efficiency 1.0 is perfect; the rest is idling at
    the end of the generation, claiming, the update and communication."""
    rng = np.random.default_rng(seed)
    walls, values = [], []
    for _ in range(trials):
        draw = rng.choice(np.asarray(slot_seconds, dtype=float), size=slots, replace=True)
        wall = makespan(draw, ranks, claim_s) + update_s + comm_s
        walls.append(wall)
        values.append(float(draw.sum()) / (ranks * wall))
    return Prediction(float(np.mean(walls)), float(np.mean(values)))


def predicted_efficiency(slot_seconds: np.ndarray, **kwargs) -> float:
    return predict_generation(slot_seconds, **kwargs).efficiency
