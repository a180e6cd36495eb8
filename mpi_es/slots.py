"""What each episode slot of a generation does, derived from (seed, generation, slot) alone.

A slot is one noise vector (evaluated as +eps and, mirrored, -eps) or one evaluation episode.
Every random choice a slot makes comes from its own SeedSequence, so its outcome is the same
whichever rank runs it; results are merged in slot order, so the update is the same for any
number of ranks.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# First element of every spawn key: which use of the master seed a stream serves.
STREAM_INIT = 0
STREAM_SLOT = 1
STREAM_EVAL_COUNT = 2

TRAIN = 0
EVAL = 1


def generator(seed: int, *key: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=key)))


def init_generator(seed: int) -> np.random.Generator:
    """The stream for the initial weights."""
    return generator(seed, STREAM_INIT)


def eval_slot_count(seed: int, generation: int, train_slots: int, eval_prob: float) -> int:
    """Evaluation episodes this generation: each training slot brings one with eval_prob."""
    if eval_prob <= 0:
        return 0
    return int(generator(seed, STREAM_EVAL_COUNT, generation).binomial(train_slots, eval_prob))


@dataclass(frozen=True)
class Slot:
    index: int
    kind: int
    noise_index: int                      # -1 for evaluation slots
    reset_seed: int                       # the same for both episodes of a mirrored pair
    collect_obs: tuple[bool, ...]         # per episode: does it feed the observation stats
    action_noise: tuple[np.random.SeedSequence | None, ...]  # per episode; None: no noise

    @property
    def episodes(self) -> int:
        return len(self.collect_obs)


def make_slot(index: int, *, seed: int, generation: int, train_slots: int,
              episodes_per_slot: int, noise_size: int, num_params: int,
              obstat_prob: float, action_noise: bool) -> Slot:
    """Slot `index` of a generation: indices below train_slots train, the rest evaluate."""
    if index < train_slots:
        ss = np.random.SeedSequence(seed, spawn_key=(STREAM_SLOT, generation, TRAIN, index))
        rng = np.random.Generator(np.random.PCG64(ss))
        noise_index = int(rng.integers(0, noise_size - num_params + 1))
        reset_seed = int(rng.integers(0, 2**31 - 1))
        coins = rng.random(episodes_per_slot) < obstat_prob
        streams = ss.spawn(episodes_per_slot) if action_noise else [None] * episodes_per_slot
        return Slot(index, TRAIN, noise_index, reset_seed, tuple(bool(c) for c in coins),
                    tuple(streams))
    rng = generator(seed, STREAM_SLOT, generation, EVAL, index - train_slots)
    return Slot(index, EVAL, -1, int(rng.integers(0, 2**31 - 1)), (False,), (None,))


@dataclass
class SlotOutcome:
    index: int
    kind: int
    noise_index: int
    returns: np.ndarray       # (episodes,) float64
    signreturns: np.ndarray   # (episodes,) float64
    lengths: np.ndarray       # (episodes,) int64
    ob_sum: np.ndarray | None = None
    ob_sumsq: np.ndarray | None = None
    ob_count: int = 0


@dataclass
class GenerationData:
    """All slot outcomes of one generation in slot order, as flat arrays."""
    noise_indices: np.ndarray   # (train_slots,)
    returns: np.ndarray         # (train_slots, episodes_per_slot)
    signreturns: np.ndarray
    lengths: np.ndarray
    eval_returns: np.ndarray    # (eval_slots,)
    eval_lengths: np.ndarray
    ob_sum: np.ndarray          # summed over the slots that collected, in slot order
    ob_sumsq: np.ndarray
    ob_count: int

    @property
    def episodes(self) -> int:
        """Training and evaluation episodes played this generation."""
        return int(self.lengths.size + self.eval_lengths.size)

    @property
    def timesteps(self) -> int:
        return int(self.lengths.sum() + self.eval_lengths.sum())


def merge(outcomes: list[SlotOutcome], ob_dim: int, episodes_per_slot: int) -> GenerationData:
    """Outcomes from all ranks, in any order, into slot-ordered arrays."""
    ordered = sorted(outcomes, key=lambda o: o.index)
    train = [o for o in ordered if o.kind == TRAIN]
    evals = [o for o in ordered if o.kind == EVAL]

    def stack(name: str, rows: list, dtype) -> np.ndarray:
        return np.array([getattr(o, name) for o in rows], dtype=dtype).reshape(len(rows), -1)

    ob_sum = np.zeros(ob_dim, np.float64)
    ob_sumsq = np.zeros(ob_dim, np.float64)
    ob_count = 0
    for o in ordered:
        if o.ob_count:
            ob_sum += o.ob_sum
            ob_sumsq += o.ob_sumsq
            ob_count += o.ob_count
    return GenerationData(
        noise_indices=np.array([o.noise_index for o in train], dtype=np.int64),
        returns=stack("returns", train, np.float64).reshape(-1, episodes_per_slot),
        signreturns=stack("signreturns", train, np.float64).reshape(-1, episodes_per_slot),
        lengths=stack("lengths", train, np.int64).reshape(-1, episodes_per_slot),
        eval_returns=np.array([o.returns[0] for o in evals], dtype=np.float64),
        eval_lengths=np.array([o.lengths[0] for o in evals], dtype=np.int64),
        ob_sum=ob_sum, ob_sumsq=ob_sumsq, ob_count=ob_count,
    )
