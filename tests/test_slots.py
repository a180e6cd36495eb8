import random

import numpy as np

from mpi_es.core import slots

KW = dict(seed=7, train_slots=10, episodes_per_slot=2, noise_size=10_000, num_params=100,
          obstat_prob=0.5, action_noise=True)


def test_slot_is_a_function_of_seed_generation_and_index():
    a = slots.make_slot(3, generation=4, **KW)
    b = slots.make_slot(3, generation=4, **KW)
    assert (a.noise_index, a.reset_seed, a.collect_obs) == (b.noise_index, b.reset_seed,
                                                            b.collect_obs)
    assert a.action_noise[0].entropy == b.action_noise[0].entropy
    rng_a = np.random.Generator(np.random.PCG64(a.action_noise[1]))
    rng_b = np.random.Generator(np.random.PCG64(b.action_noise[1]))
    assert rng_a.random() == rng_b.random()
    other_gen = slots.make_slot(3, generation=5, **KW)
    other_slot = slots.make_slot(4, generation=4, **KW)
    assert a.noise_index not in (other_gen.noise_index, other_slot.noise_index)
    assert 0 <= a.noise_index <= KW["noise_size"] - KW["num_params"]
    assert a.kind == slots.TRAIN and a.episodes == 2


def test_slots_past_the_training_ones_evaluate_without_noise():
    s = slots.make_slot(12, generation=0, **KW)
    assert s.kind == slots.EVAL and s.noise_index == -1
    assert s.collect_obs == (False,) and s.action_noise == (None,)


def test_no_action_noise_streams_when_disabled():
    s = slots.make_slot(0, generation=0, **{**KW, "action_noise": False})
    assert s.action_noise == (None, None)


def test_eval_slot_count():
    assert slots.eval_slot_count(1, 0, 100, 0.0) == 0
    counts = [slots.eval_slot_count(1, g, 100, 0.1) for g in range(200)]
    assert counts == [slots.eval_slot_count(1, g, 100, 0.1) for g in range(200)]
    assert 8 < np.mean(counts) < 12


def outcome(i, kind=slots.TRAIN, obs=False):
    o = slots.SlotOutcome(i, kind, i * 10, np.array([i, -i], float), np.array([1.0, -1.0]),
                          np.array([i + 1, i + 2]))
    if kind == slots.EVAL:
        o.returns, o.lengths = np.array([100.0 + i]), np.array([5])
    if obs:
        o.ob_sum, o.ob_sumsq, o.ob_count = np.full(2, i * 0.1), np.full(2, i * 0.01), i
    return o


def test_merge_puts_outcomes_in_slot_order_whatever_arrives_first():
    outcomes = [outcome(i, obs=i % 2 == 0) for i in range(6)] + [outcome(6, slots.EVAL)]
    reference = slots.merge(list(outcomes), 2, 2)
    for seed in range(5):
        shuffled = list(outcomes)
        random.Random(seed).shuffle(shuffled)
        merged = slots.merge(shuffled, 2, 2)
        for field in ("noise_indices", "returns", "lengths", "eval_returns", "ob_sum", "ob_sumsq"):
            np.testing.assert_array_equal(getattr(merged, field), getattr(reference, field))
    assert reference.noise_indices.tolist() == [0, 10, 20, 30, 40, 50]
    assert reference.returns.shape == (6, 2) and reference.eval_returns.tolist() == [106.0]
    assert reference.ob_count == 0 + 2 + 4


def test_evaluation_start_states_come_from_the_run_seed_too():
    """Two runs checked after the same generation do not share their start states; one run's
    check is reproducible (it is `evaluate --seed GENERATION`)."""
    run_a = [slots.evaluation_seed(0, 12, i) for i in range(10)]
    run_b = [slots.evaluation_seed(1, 12, i) for i in range(10)]
    assert run_a == [slots.evaluation_seed(0, 12, i) for i in range(10)]
    assert not set(run_a) & set(run_b)
    assert len(set(run_a)) == 10
    assert run_a != [slots.evaluation_seed(0, 13, i) for i in range(10)]
