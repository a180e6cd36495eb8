import math

import numpy as np
import pytest

from mpi_es.core import gradient, noise, obstat, optimizers, shaping
from mpi_es.algorithms import openai_es


def test_centered_ranks_hand_worked():
    x = np.array([3.0, -1.0, 10.0, 2.0, 2.0])
    # sorted: -1 (idx 1), 2 and 2 (idx 3 and 4: they share ranks 1 and 2), 3 (idx 0), 10 (idx 2)
    assert shaping.ranks(x).tolist() == [3, 0, 4, 1.5, 1.5]
    np.testing.assert_allclose(shaping.centered_ranks(x), [0.25, -0.5, 0.5, -0.125, -0.125])


def test_centered_ranks_over_pairs_and_weights():
    returns = np.array([[1.0, 5.0], [3.0, 2.0]])
    shaped = shaping.centered_ranks(returns)   # ranks over all 4 episodes: [[0, 3], [2, 1]] / 3 - 0.5
    np.testing.assert_allclose(shaped, [[-0.5, 0.5], [1 / 6, -1 / 6]], rtol=1e-6)
    np.testing.assert_allclose(gradient.slot_weights(shaped), [-1.0, 1 / 3], rtol=1e-6)
    assert shaped.min() == -0.5 and shaped.max() == 0.5


def test_shape_modes():
    returns = np.array([[1.0, 5.0], [3.0, 2.0]])
    signs = np.array([[4.0, -2.0], [0.0, 1.0]])
    np.testing.assert_array_equal(
        shaping.shape_returns(returns, signs, fitness_shaping=False, mode="centered_rank"), returns)
    np.testing.assert_array_equal(
        shaping.shape_returns(returns, signs, fitness_shaping=True, mode="sign"), signs)
    np.testing.assert_allclose(
        shaping.shape_returns(returns, signs, fitness_shaping=True, mode="centered_sign_rank"),
        [[0.5, -0.5], [-1 / 6, 1 / 6]], rtol=1e-6)


def test_gradient_is_weighted_noise_sum_over_episodes():
    table = noise.build_serial(1000, 1)
    dim = 7
    idx = np.array([3, 100, 500])
    processed = np.array([[0.5, -0.5], [0.1, 0.2], [-0.3, 0.0]], dtype=np.float32)
    g = gradient.es_gradient(processed, idx, noise.BlockNoise(table, 0, dim), dim)
    expected = sum(w * table[i:i + dim] for w, i in zip([1.0, -0.1, -0.3], idx)) / 6
    np.testing.assert_allclose(g, expected, rtol=1e-5, atol=1e-7)


def test_es_converges_on_quadratic():
    dim, pairs, sigma = 20, 50, 0.1
    table = noise.NoiseTable(noise.build_serial(200_000, 0))
    optimum = np.linspace(-1.0, 1.0, dim).astype(np.float32)
    theta = np.zeros(dim, np.float32)
    optimizer = optimizers.make_optimizer("adam", {"stepsize": 0.05})
    state = optimizer.layout.initial(dim)
    rng = np.random.default_rng(0)
    start = np.linalg.norm(theta - optimum)
    for _ in range(300):
        idx = np.array([table.sample_index(rng, dim) for _ in range(pairs)])
        eps = np.stack([table.get(i, dim) for i in idx])
        f = lambda x: -np.sum((x - optimum) ** 2, axis=-1)  # noqa: E731
        returns = np.stack([f(theta + sigma * eps), f(theta - sigma * eps)], axis=1)
        shaped = shaping.shape_returns(returns, returns, fitness_shaping=True, mode="centered_rank")
        g = gradient.es_gradient(shaped, idx, table.block(0, dim), dim)
        theta = openai_es.update_theta(theta, g, optimizer=optimizer, state=state,
                                       learning_rate=0.0, noise_stdev=sigma, l2coeff=0.0,
                                       weight_decay=False)
    assert np.linalg.norm(theta - optimum) < 0.05 * start


def test_adam_steps_match_hand_computation():
    opt = optimizers.Adam(stepsize=0.1)
    state = opt.layout.initial(2)
    g1 = np.array([1.0, -2.0], np.float32)
    # t=1: the bias-corrected step is -stepsize * sign(g)
    np.testing.assert_allclose(opt.step(state, g1), [-0.1, 0.1], rtol=1e-5)
    g2 = np.array([0.5, 0.0], np.float32)
    a = 0.1 * math.sqrt(1 - 0.999 ** 2) / (1 - 0.9 ** 2)
    m = [0.9 * 0.1 + 0.1 * 0.5, 0.9 * -0.2 + 0.0]
    v = [0.999 * 0.001 + 0.001 * 0.25, 0.999 * 0.004 + 0.0]
    expected = [-a * m[i] / (math.sqrt(v[i]) + 1e-8) for i in range(2)]
    np.testing.assert_allclose(opt.step(state, g2), expected, rtol=1e-5)
    assert state.scalars["t"] == 2


def test_sgd_momentum_steps_match_hand_computation():
    opt = optimizers.SGD(stepsize=0.1, momentum=0.9)
    state = opt.layout.initial(2)
    np.testing.assert_allclose(opt.step(state, np.array([1.0, -2.0])), [-0.01, 0.02], rtol=1e-6)
    # v = 0.9 * [0.1, -0.2] + 0.1 * [0.5, 0] = [0.14, -0.18]
    np.testing.assert_allclose(opt.step(state, np.array([0.5, 0.0])), [-0.014, 0.018],
                               rtol=1e-6)


def test_update_theta_optimizer_sees_negative_gradient_plus_weight_decay():
    theta = np.array([1.0, -1.0], np.float32)
    g = np.array([0.2, 0.2], np.float32)
    opt = optimizers.SGD(stepsize=1.0, momentum=0.0)
    new = openai_es.update_theta(theta, g, optimizer=opt, state=opt.layout.initial(2),
                                 learning_rate=0, noise_stdev=0.1, l2coeff=0.5,
                                 weight_decay=True)
    # loss gradient = -g + 0.5 * theta = [0.3, -0.7]; SGD moves against it
    np.testing.assert_allclose(new, [0.7, -0.3], rtol=1e-6)


def test_plain_step():
    theta = np.array([1.0, -1.0], np.float32)
    g = np.array([0.2, 0.4], np.float32)
    new = openai_es.update_theta(theta, g, optimizer=None, state=None, learning_rate=0.01,
                                 noise_stdev=0.1, l2coeff=0.5, weight_decay=False)
    np.testing.assert_allclose(new, theta + 0.1 * g, rtol=1e-6)
    decayed = openai_es.update_theta(theta, g, optimizer=None, state=None, learning_rate=0.01,
                                     noise_stdev=0.1, l2coeff=0.5, weight_decay=True)
    np.testing.assert_allclose(decayed, theta + 0.1 * g - 0.005 * theta, rtol=1e-6)


def test_merged_observation_stats_equal_those_of_concatenated_data():
    rng = np.random.default_rng(1)
    parts = [rng.normal(3.0, 2.0, (n, 4)) for n in (5, 17, 1, 40)]
    merged = obstat.RunningStat.empty(4)
    for part in parts:
        partial = obstat.RunningStat.empty(4)
        partial.add_observations(part)
        merged.increment(partial.sum, partial.sumsq, partial.count)
    data = np.concatenate(parts)
    np.testing.assert_allclose(merged.mean, data.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(merged.std, data.std(axis=0), rtol=1e-10)
    assert merged.count == len(data)


def test_running_stat_prior_and_std_floor():
    stat = obstat.RunningStat.initial(3)
    np.testing.assert_array_equal(stat.mean, 0.0)
    np.testing.assert_allclose(stat.std, 1.0)
    stat.add_observations(np.full((10, 3), 2.0))   # zero variance: std floors at 0.1
    assert np.all(stat.std >= 0.1 - 1e-12)
    with pytest.raises(TypeError):
        obstat.RunningStat.initial()


def sequential_sum(weights, idx, table, lo, dim):
    """The reference: every product rounded to float32, added slot by slot from zero."""
    total = np.zeros(dim, np.float32)
    for w, i in zip(np.asarray(weights, np.float32), idx):
        total = total + np.float32(w) * table[lo + i:lo + i + dim]
    return total


@pytest.mark.parametrize("batch_below", [0, 10**9], ids=["sliced", "batched"])
def test_weighted_noise_sum_is_the_sequential_float32_sum_for_any_block(monkeypatch, batch_below):
    monkeypatch.setattr(gradient, "BATCH_BELOW", batch_below)
    monkeypatch.setattr(gradient, "BATCH_ELEMENTS", 500)      # many small batches
    table = noise.build_serial(20_000, 4)
    rng = np.random.default_rng(1)
    n, params = 301, 97
    idx = rng.integers(0, table.size - params, n)
    weights = rng.normal(size=n).astype(np.float32)
    weights[:2] = [0.0, -0.0]                  # zero products first: the sign of zero too
    whole = gradient.weighted_noise_sum(weights, idx, noise.BlockNoise(table, 0, params), params)
    np.testing.assert_array_equal(whole.view(np.int32),
                                  sequential_sum(weights, idx, table, 0, params).view(np.int32))
    for cut in (1, 13, 70):                    # any partition into blocks: the same bits
        lo = gradient.weighted_noise_sum(weights, idx, noise.BlockNoise(table, 0, cut), cut)
        hi = gradient.weighted_noise_sum(weights, idx, noise.BlockNoise(table, cut, params - cut),
                                         params - cut)
        np.testing.assert_array_equal(np.concatenate([lo, hi]).view(np.int32),
                                      whole.view(np.int32))


def test_tied_returns_share_their_rank_and_carry_no_signal():
    assert shaping.ranks(np.array([5.0, 1.0, 5.0, 3.0, 1.0])).tolist() == [3.5, 0.5, 3.5, 2, 0.5]
    returns = np.array([[2.0, 2.0], [7.0, 1.0], [4.0, 4.0]])     # pairs 0 and 2 tied
    for mode in ("centered_rank", "centered_sign_rank"):
        shaped = shaping.shape_returns(returns, np.sign(returns - 3.0), fitness_shaping=True,
                                       mode=mode)
        weights = gradient.slot_weights(shaped)
        assert weights[0] == 0.0 and weights[2] == 0.0
    everything_tied = np.full((20, 2), -21.0)                    # Pong stuck at -21
    shaped = shaping.shape_returns(everything_tied, everything_tied, fitness_shaping=True,
                                   mode="centered_rank")
    assert not np.any(gradient.slot_weights(shaped))
