import numpy as np
import pytest

from mpi_es.core.obstat import RunningStat
from mpi_es.policies.mlp import NONLINEARITIES, MlpPolicy, MlpSpec, normc


def spec(**kw):
    base = dict(ob_dim=5, ac_low=np.array([-1.0, -2.0]), ac_high=np.array([1.0, 2.0]),
                hidden_dims=(8, 6), nonlin="tanh")
    base.update(kw)
    return MlpSpec(**base)


def test_normc_columns_have_the_requested_norm():
    w = normc(np.random.default_rng(0), (30, 7), 0.01)
    np.testing.assert_allclose(np.linalg.norm(w, axis=0), 0.01, rtol=1e-5)


def test_init_theta_layout():
    s = spec()
    theta = s.init_theta(np.random.default_rng(0))
    assert theta.dtype == np.float32 and theta.shape == (5 * 8 + 8 + 8 * 6 + 6 + 6 * 2 + 2,)
    layers = s.unflatten(theta)
    assert [w.shape for w, _ in layers] == [(5, 8), (8, 6), (6, 2)]
    for k, (w, b) in enumerate(layers):
        std = 0.01 if k == 2 else 1.0
        np.testing.assert_allclose(np.linalg.norm(w, axis=0), std, rtol=1e-5)
        assert not b.any()


def test_unflatten_gives_views_and_checks_size():
    s = spec()
    theta = np.zeros(s.num_params, np.float32)
    w, _ = s.unflatten(theta)[0]
    theta[0] = 3.0
    assert w[0, 0] == 3.0
    with pytest.raises(ValueError):
        s.unflatten(np.zeros(s.num_params + 1, np.float32))


def test_nonlinearities():
    x = np.array([-1.0, 0.0, 2.0], np.float32)
    np.testing.assert_allclose(NONLINEARITIES["relu"](x.copy()), [0, 0, 2])
    np.testing.assert_allclose(NONLINEARITIES["lrelu"](x.copy()), [-0.2, 0, 2])
    np.testing.assert_allclose(NONLINEARITIES["elu"](x.copy()), [np.exp(-1) - 1, 0, 2], rtol=1e-6)
    np.testing.assert_allclose(NONLINEARITIES["tanh"](x.copy()), np.tanh(x))


def identity_policy(**kw) -> MlpPolicy:
    """A linear policy (no hidden layer) whose weights are the identity."""
    s = MlpSpec(ob_dim=2, ac_low=np.array([-10.0, -10.0]), ac_high=np.array([10.0, 10.0]),
                hidden_dims=(), **kw)
    theta = np.eye(2, dtype=np.float32).ravel()
    if s.bias:
        theta = np.concatenate([theta, np.zeros(2, np.float32)])
    return MlpPolicy(s, theta)


def stats_of(observations) -> RunningStat:
    stat = RunningStat.empty(2)
    stat.add_observations(np.asarray(observations, dtype=np.float64))
    return stat


def test_observation_normalization_clips_to_five():
    p = identity_policy()
    p.set_normalization(np.array([0.0, 1.0]), np.array([1.0, 0.5]))
    np.testing.assert_allclose(p.act(np.array([100.0, 0.5])), [5.0, -1.0])
    raw = identity_policy(normalize_obs=False)
    raw.set_obstat(stats_of([[0.0, 1.0], [2.0, 3.0]]))
    np.testing.assert_allclose(raw.act(np.array([100.0, 0.5])), [100.0, 0.5])


def test_the_ars_filter_uses_the_sample_std_unclipped_and_zeroes_constant_inputs():
    """Mania et al.'s code: (o - mean) / std with the sample std, no clipping, a component
    that never varied normalized to 0 (and everything before any data)."""
    linear = identity_policy(bias=False, obs_filter="ars")
    assert linear.spec.num_params == 4 and linear.spec.layer_shapes == [(2, 2)]
    stat = stats_of([[1.0, 7.0], [3.0, 7.0], [5.0, 7.0]])      # mean (3, 7); sample std (2, 0)
    linear.set_obstat(stat)
    np.testing.assert_allclose(linear.act(np.array([103.0, 9.0])), [50.0, 0.0])
    linear.set_obstat(RunningStat.initial(2))                 # no data yet
    np.testing.assert_array_equal(linear.act(np.array([103.0, 9.0])), [0.0, 0.0])
    es = identity_policy(bias=False)                          # the ES filter, same statistics
    es.set_obstat(stat)
    np.testing.assert_allclose(es.act(np.array([103.0, 9.0])),
                               [5.0, 5.0])    # std 1.63 and the floor 0.1, then clipped


def test_discretized_actions_map_argmax_onto_bounds():
    s = MlpSpec(ob_dim=3, ac_low=np.array([-1.0, 0.0]), ac_high=np.array([1.0, 4.0]),
                hidden_dims=(4,), ac_bins=5)
    assert s.layer_shapes[-1] == (4, 10)
    scores = np.zeros(10)
    scores[0] = 1.0          # dimension 0 -> bin 0 -> low
    scores[5 + 4] = 1.0      # dimension 1 -> bin 4 -> high
    np.testing.assert_allclose(s.discrete_action(scores), [-1.0, 4.0])
    scores = np.zeros(10)
    scores[2] = 1.0          # middle bin -> midpoint
    scores[5 + 1] = 1.0      # bin 1 of 5 over [0, 4] -> 1
    np.testing.assert_allclose(s.discrete_action(scores), [0.0, 1.0])
    p = MlpPolicy(s, s.init_theta(np.random.default_rng(0)))
    action = p.act(np.ones(3))
    assert round(float(action[0]), 6) in {-1.0, -0.5, 0.0, 0.5, 1.0}
    assert round(float(action[1]), 6) in {0.0, 1.0, 2.0, 3.0, 4.0}


def test_discrete_and_multidiscrete_heads_take_the_argmax_per_dimension():
    one = MlpSpec(ob_dim=4, ac_low=np.array([0.0]), ac_high=np.array([1.0]), hidden_dims=(),
                  ac_choices=(2,), scalar_action=True)
    assert one.layer_shapes == [(4, 2)] and one.num_params == 10
    assert one.choice_action(np.array([0.1, 0.7], np.float32)) == 1
    assert isinstance(one.choice_action(np.array([0.9, 0.7], np.float32)), int)
    multi = MlpSpec(ob_dim=4, ac_low=np.array([-1.0, 5.0]), ac_high=np.array([1.0, 8.0]),
                    hidden_dims=(3,), ac_choices=(3, 4))
    assert multi.layer_shapes == [(4, 3), (3, 7)]
    action = multi.choice_action(np.array([0, 2, 1, 0, 0, 9, 0], np.float32))
    assert action.dtype == np.int64 and action.tolist() == [0, 7]


def test_discrete_envs_refuse_action_noise_and_bins():
    import gymnasium as gym
    from mpi_es import config
    from mpi_es.config import ConfigError
    from mpi_es.policies.mlp import Mlp
    env = gym.make("CartPole-v1")
    with pytest.raises(ConfigError, match="'model.ac_noise_std'.*set model.ac_noise_std: 0"):
        Mlp.spec(config.validate({"env_id": "CartPole-v1"}), env)
    with pytest.raises(ConfigError, match="'optimizations.discretize_actions'"):
        Mlp.spec(config.validate({"env_id": "CartPole-v1", "model": {"ac_noise_std": 0},
                                  "optimizations": {"discretize_actions": True}}), env)
    spec = Mlp.spec(config.validate({"env_id": "CartPole-v1", "model": {"ac_noise_std": 0,
                                                                        "hidden_dims": [8]}}), env)
    assert spec.ac_choices == (2,) and spec.layer_shapes == [(4, 8), (8, 2)]
