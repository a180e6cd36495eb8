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
STREAM_EVALUATE = 3         # `evaluate`'s episodes
STREAM_REFERENCE = 4        # the CNN's VBN reference batch

TRAIN = 0
EVAL = 1


def evaluation_seed(run_seed: int, seed: int, episode: int) -> int:
    """The reset seed of a noise-free evaluation episode of a run (`evaluate --seed SEED`;
    stop.eval_return's check after generation G is `--seed G`): from the run's seed too, so two
    runs are not checked on the same start states."""
    return int(generator(run_seed, STREAM_EVALUATE, seed, episode).integers(0, 2**31 - 1))


def generator(seed: int, *key: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=key)))


def reference_generator(seed: int) -> np.random.Generator:
    """The stream that collects the VBN reference batch (its env seeds, actions, picks)."""
    return generator(seed, STREAM_REFERENCE)


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


class _Ranked:
    @property
    def ranked_returns(self) -> np.ndarray:
        """The returns the update ranks: the training returns under training_reward."""
        return self.returns if self.train_returns is None else self.train_returns


@dataclass
class SlotOutcome(_Ranked):
    index: int
    kind: int
    noise_index: int
    returns: np.ndarray       # (episodes,) float64
    signreturns: np.ndarray   # (episodes,) float64
    lengths: np.ndarray       # (episodes,) int64
    ob_sum: np.ndarray | None = None
    ob_sumsq: np.ndarray | None = None
    ob_count: int = 0
    train_returns: np.ndarray | None = None   # under training_reward; None: the returns


@dataclass
class GenerationData(_Ranked):
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
    generation: int = 0         # 0-based: the generation these episodes belong to
    train_returns: np.ndarray | None = None   # under training_reward (None: `returns`)

    @property
    def episodes(self) -> int:
        """Training and evaluation episodes played this generation."""
        return int(self.lengths.size + self.eval_lengths.size)

    @property
    def timesteps(self) -> int:
        return int(self.lengths.sum() + self.eval_lengths.sum())


# Columns of a packed slot row (float64; every integer in it is below 2**53, so exact).
_INDEX, _KIND, _NOISE, _OBCOUNT, _FIXED = 0, 1, 2, 3, 4


def pack(outcomes: list[SlotOutcome], ob_dim: int, episodes_per_slot: int
         ) -> tuple[np.ndarray, np.ndarray]:
    """A rank's outcomes as two float64 arrays for an allgather.

    rows: (slots, 4 + 4 * episodes_per_slot): index, kind, noise index, observation count,
    then returns, sign-returns, lengths and training returns per episode (an evaluation slot
    fills the first three).
    obs: (slots that collected, 1 + 2 * ob_dim): index, observation sums, sums of squares.
    """
    e = episodes_per_slot
    rows = np.zeros((len(outcomes), _FIXED + 4 * e), np.float64)
    collected = [o for o in outcomes if o.ob_count]
    obs = np.zeros((len(collected), 1 + 2 * ob_dim), np.float64)
    for row, o in zip(rows, outcomes):
        row[[_INDEX, _KIND, _NOISE, _OBCOUNT]] = o.index, o.kind, o.noise_index, o.ob_count
        for k, values in enumerate((o.returns, o.signreturns, o.lengths, o.ranked_returns)):
            row[_FIXED + k * e:_FIXED + k * e + values.size] = values
    for row, o in zip(obs, collected):
        row[0] = o.index
        row[1:1 + ob_dim] = o.ob_sum
        row[1 + ob_dim:] = o.ob_sumsq
    return rows, obs


def unpack(rows: np.ndarray, obs: np.ndarray, ob_dim: int, episodes_per_slot: int
           ) -> GenerationData:
    """Every rank's packed rows, in any order, into slot-ordered arrays."""
    e = episodes_per_slot
    rows = rows[np.argsort(rows[:, _INDEX], kind="stable")]
    train = rows[rows[:, _KIND] == TRAIN]
    evals = rows[rows[:, _KIND] == EVAL]
    ob_sum = np.zeros(ob_dim, np.float64)
    ob_sumsq = np.zeros(ob_dim, np.float64)
    # summed one slot at a time in slot order: the same floats whatever rank ran which slot
    for row in obs[np.argsort(obs[:, 0], kind="stable")]:
        ob_sum += row[1:1 + ob_dim]
        ob_sumsq += row[1 + ob_dim:]
    return GenerationData(
        noise_indices=train[:, _NOISE].astype(np.int64),
        returns=train[:, _FIXED:_FIXED + e].copy(),
        signreturns=train[:, _FIXED + e:_FIXED + 2 * e].copy(),
        lengths=train[:, _FIXED + 2 * e:_FIXED + 3 * e].astype(np.int64),
        train_returns=train[:, _FIXED + 3 * e:_FIXED + 4 * e].copy(),
        eval_returns=evals[:, _FIXED].copy(),
        eval_lengths=evals[:, _FIXED + 2 * e].astype(np.int64),
        ob_sum=ob_sum, ob_sumsq=ob_sumsq, ob_count=int(rows[:, _OBCOUNT].sum()),
    )


def merge(outcomes: list[SlotOutcome], ob_dim: int, episodes_per_slot: int) -> GenerationData:
    """Outcomes of one process, in any order, into slot-ordered arrays."""
    return unpack(*pack(outcomes, ob_dim, episodes_per_slot), ob_dim, episodes_per_slot)
