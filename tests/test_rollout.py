import numpy as np

from mpi_es.training import rollout
from mpi_es.envs import make_env
from mpi_es.policies.mlp import MlpPolicy, MlpSpec
from mpi_es.core.slots import make_slot


def toy_policy(env):
    spec = MlpSpec(ob_dim=6, ac_low=env.action_space.low.astype(float),
                   ac_high=env.action_space.high.astype(float), hidden_dims=(8,))
    return MlpPolicy(spec, spec.init_theta(np.random.default_rng(0)) * 50)


def test_episode_is_reproducible_from_its_seeds():
    env = make_env("toy_envs:ToyReach-v0")
    p = toy_policy(env)

    def play(noise_seed=None, reset_seed=1):
        rng = None if noise_seed is None else np.random.default_rng(noise_seed)
        return rollout.run_episode(env, p, limit=30, reset_seed=reset_seed, action_noise=rng,
                                   ac_noise_std=0.5, collect_obs=True)

    a, b = play(), play()
    assert (a.ret, a.length) == (b.ret, b.length)
    np.testing.assert_array_equal(a.ob_sum, b.ob_sum)
    assert play(noise_seed=3).ret == play(noise_seed=3).ret
    assert play(noise_seed=3).ret != a.ret          # action noise changes the episode
    assert play(reset_seed=2).ret != a.ret
    assert a.length == 30 and a.ob_sum.shape == (6,)


def test_mirrored_slot_plays_plus_and_minus_eps_and_eval_plays_theta():
    env = make_env("toy_envs:ToyReach-v0")
    p = toy_policy(env)
    theta = p.theta.copy()
    kw = dict(seed=0, generation=0, train_slots=1, episodes_per_slot=2, noise_size=1000,
              num_params=theta.size, obstat_prob=1.0, action_noise=False)
    eps = np.random.default_rng(5).standard_normal(theta.size).astype(np.float32)
    train = rollout.run_slot(make_slot(0, **kw), env, p, [theta + 0.5 * eps, theta - 0.5 * eps],
                             ac_noise_std=0.0, limit=30)
    assert train.returns.shape == (2,) and train.returns[0] != train.returns[1]
    assert train.ob_count == train.lengths.sum()
    p.set_theta(theta + 0.5 * eps)
    plus = rollout.run_episode(env, p, limit=30, reset_seed=make_slot(0, **kw).reset_seed)
    assert plus.ret == train.returns[0]
    evaluation = rollout.run_slot(make_slot(1, **kw), env, p, [theta], ac_noise_std=0.3,
                                  limit=30)
    assert evaluation.returns.shape == (1,) and evaluation.ob_count == 0


def test_a_non_finite_action_fails_the_episode():
    env = make_env("toy_envs:ToyReach-v0")
    policy = toy_policy(env)
    policy.act = lambda ob: np.full(3, np.nan)
    import pytest
    with pytest.raises(rollout.EpisodeFault, match="non-finite action at step 0"):
        rollout.run_episode(env, policy, limit=30, reset_seed=1)
