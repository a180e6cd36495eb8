import numpy as np
import pytest

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


def reference_episode(env, policy, *, limit, reset_seed, action_noise, ac_noise_std,
                      collect_obs):
    """The plain one-step-at-a-time loop the engine must agree with, bit for bit: action noise
    drawn in blocks of NOISE_BLOCK rows, Box actions clipped to their bounds."""
    box = hasattr(env.action_space, "low")
    ob, _ = env.reset(seed=reset_seed)
    rewards, observations = [], []
    for t in range(limit):
        if collect_obs:
            observations.append(np.array(ob, dtype=np.float64))
        action = policy.act(ob)
        if action_noise is not None and ac_noise_std > 0:
            if t % rollout.NOISE_BLOCK == 0:
                block = action_noise.standard_normal((rollout.NOISE_BLOCK,
                                                      env.action_space.shape[0])) * ac_noise_std
            action = action + block[t % rollout.NOISE_BLOCK]
        if box:
            action = np.minimum(np.maximum(action, env.action_space.low), env.action_space.high)
        ob, reward, terminated, truncated, _ = env.step(action)
        rewards.append(reward)
        if terminated or truncated:
            break
    rewards = np.array(rewards, dtype=np.float64)
    obs = np.array(observations, dtype=np.float64)
    return rollout.Episode(float(rewards.sum()), float(np.sign(rewards).sum()), len(rewards),
                           obs.sum(axis=0) if collect_obs else None,
                           np.square(obs).sum(axis=0) if collect_obs else None)


def lockstep_cases():
    """(env id, spec keywords, action noise, step limit): continuous with noise and the ES
    filter, the ARS filter without bias, discretized actions, argmax choices (episodes of varied
    lengths), and episodes longer than a block of action noise (600 steps)."""
    return [("InvertedPendulum-v5", dict(hidden_dims=(16, 16)), 0.05, 200),
            ("toy_envs:ToyReach-v0", dict(hidden_dims=(), bias=False, obs_filter="ars"), 0.3,
             200),
            ("InvertedPendulum-v5", dict(hidden_dims=(8,), ac_bins=5, nonlin="elu"), 0.0, 200),
            ("CartPole-v1", dict(hidden_dims=(8,), nonlin="relu"), 0.0, 200),
            ("MountainCarContinuous-v0", dict(hidden_dims=(8,)), 0.1, 600)]


@pytest.mark.parametrize("env_id, keywords, noise_std, limit", lockstep_cases())
def test_episodes_in_lockstep_match_each_episode_played_alone(env_id, keywords, noise_std,
                                                               limit):
    """Whatever the number of places and whichever episodes share a batch, every episode's
    return, length and observation sums are bit-identical to the episode played alone by the
    plain loop."""
    from mpi_es.core.obstat import RunningStat
    from mpi_es.policies.mlp import MlpLanes
    env = make_env(env_id)
    space = env.action_space
    if hasattr(space, "n"):
        spec = MlpSpec(ob_dim=env.observation_space.shape[0], ac_low=np.zeros(1),
                       ac_high=np.array([space.n - 1.0]), ac_choices=(int(space.n),),
                       scalar_action=True, **keywords)
    else:
        spec = MlpSpec(ob_dim=env.observation_space.shape[0], ac_low=space.low.astype(float),
                       ac_high=space.high.astype(float), **keywords)
    rng = np.random.default_rng(7)
    obstat = RunningStat.initial(spec.ob_dim)
    obstat.add_observations(rng.standard_normal((50, spec.ob_dim)) * 0.3)
    base = spec.init_theta(rng)
    thetas = [base + rng.standard_normal(base.size).astype(np.float32) * 0.5 for _ in range(11)]

    def jobs():
        for i, theta in enumerate(thetas):
            yield rollout.EpisodeJob(theta, reset_seed=100 + i,
                                     action_noise=np.random.default_rng(i) if noise_std else None,
                                     collect_obs=i % 3 == 0, tag=i)

    alone = []
    policy = MlpPolicy(spec, base, obstat)
    for job in jobs():
        policy.set_theta(job.theta)
        alone.append(reference_episode(env, policy, limit=limit, reset_seed=job.reset_seed,
                                       action_noise=job.action_noise, ac_noise_std=noise_std,
                                       collect_obs=job.collect_obs))
    assert len({ep.length for ep in alone}) > 1 or limit > rollout.NOISE_BLOCK, \
        "the cases need episodes ending apart"
    for width in (1, 3, 8):
        played = {}
        play = rollout.play_in_lockstep(
            jobs(), [make_env(env_id) for _ in range(width)], MlpLanes(spec, width, obstat),
            limit=limit, ac_noise_std=noise_std,
            done=lambda job, episode, seconds: played.__setitem__(job.tag, episode))
        assert play is None and sorted(played) == list(range(len(thetas)))
        for i, ep in enumerate(alone):
            assert (played[i].ret, played[i].signret, played[i].length) == \
                (ep.ret, ep.signret, ep.length), (width, i)
            if ep.ob_sum is None:
                assert played[i].ob_sum is None
            else:
                np.testing.assert_array_equal(played[i].ob_sum, ep.ob_sum)
                np.testing.assert_array_equal(played[i].ob_sumsq, ep.ob_sumsq)


def test_a_failing_episode_in_lockstep_names_its_job():
    env_id = "toy_envs:ToyReach-v0"
    env = make_env(env_id)
    spec = toy_policy(env).spec
    theta = spec.init_theta(np.random.default_rng(0))
    bad = theta.copy()
    bad[0] = np.nan
    jobs = [rollout.EpisodeJob(t, reset_seed=i, tag=i)
            for i, t in enumerate([theta, theta, bad, theta])]
    from mpi_es.policies.mlp import MlpLanes
    with pytest.raises(rollout.LaneFailure, match="non-finite action at step 0") as failure:
        rollout.play_in_lockstep(jobs, [make_env(env_id) for _ in range(4)],
                                 MlpLanes(spec, 4), limit=30, ac_noise_std=0.0,
                                 done=lambda *args: None)
    assert failure.value.job.tag == 2


def test_an_episode_whose_share_of_the_wall_time_passes_the_timeout_fails():
    """In lockstep each round's time is split between the episodes in it: 3 episodes of 20 ms
    steps get ~20 ms each per round, so a 0.3 s budget runs out around step 15 of 30; the
    watchdog's deadline is renewed every round."""
    from contextlib import nullcontext
    from mpi_es.policies.mlp import MlpLanes
    env_id = "toy_envs:SlowReach-v0"
    spec = toy_policy(make_env(env_id)).spec
    theta = spec.init_theta(np.random.default_rng(0))
    renewed = []
    watch = rollout.Watch(guard=lambda flight: nullcontext(), renew=renewed.append, timeout_s=0.3)
    jobs = [rollout.EpisodeJob(theta, reset_seed=i, tag=i) for i in range(3)]
    with pytest.raises(rollout.LaneFailure, match="episode_timeout_s=0.3") as failure:
        rollout.play_in_lockstep(jobs, [make_env(env_id) for _ in range(3)], MlpLanes(spec, 3),
                                 limit=30, ac_noise_std=0.0, done=lambda *args: None,
                                 watch=watch)
    assert isinstance(failure.value.error, rollout.EpisodeTimeout)
    assert 10 <= len(renewed) <= 20 and set(renewed) == {0.3}


def test_time_the_process_spent_stopped_is_no_episode_running_long():
    """The same 0.3 s budget, but the watchdog reports each round (3 steps of 20 ms) as time the
    process spent stopped (SIGSTOP, `scontrol suspend`): it is taken out, so the episodes
    finish; a real Watchdog counts a stop its thread has not woken up to yet as well."""
    import time
    from contextlib import nullcontext
    from mpi_es.distributed.watchdog import TICK_S, Watchdog
    from mpi_es.policies.mlp import MlpLanes
    env_id = "toy_envs:SlowReach-v0"
    spec = toy_policy(make_env(env_id)).spec
    theta = spec.init_theta(np.random.default_rng(0))
    stopped = [0.0]

    def renew(seconds):
        stopped[0] += 0.08       # more than the round's 60 ms

    watch = rollout.Watch(guard=lambda flight: nullcontext(), renew=renew, timeout_s=0.3,
                          stopped_seconds=lambda: stopped[0])
    ended = []
    jobs = [rollout.EpisodeJob(theta, reset_seed=i, tag=i) for i in range(3)]
    rollout.play_in_lockstep(jobs, [make_env(env_id) for _ in range(3)], MlpLanes(spec, 3),
                             limit=30, ac_noise_std=0.0, done=lambda job, ep, s: ended.append(s),
                             watch=watch)
    assert len(ended) == 3 and max(ended) < 0.3
    dog = Watchdog(5.0, lambda what: None)
    assert dog.stopped_seconds() == 0.0
    dog._last -= TICK_S + 2.0                     # as if the thread had not run for 2.25 s
    assert dog.stopped_seconds() == pytest.approx(2.0, abs=0.3)
    time.sleep(2 * TICK_S)                            # it wakes and books the stall
    assert dog.stopped_seconds() == pytest.approx(2.0, abs=0.5)


def test_a_training_reward_transform_changes_training_returns_only():
    """Training slots also return their rewards' sum under training_reward (replace, then clip);
    the raw return stays, and evaluation slots ignore the transform."""
    from mpi_es.core.rewards import RewardTransform
    transform = RewardTransform(replace=((-1.0, 5.0),), low=-0.5, high=2.0)
    np.testing.assert_array_equal(transform(np.array([-1.0, -3.0, 0.25, 4.0, -0.5])),
                                  [2.0, -0.5, 0.25, 2.0, -0.5])
    assert not RewardTransform() and transform
    env = make_env("toy_envs:ToyReach-v0")
    p = toy_policy(env)
    theta = p.theta.copy()
    kw = dict(seed=0, generation=0, train_slots=1, episodes_per_slot=2, noise_size=1000,
              num_params=theta.size, obstat_prob=0.0, action_noise=False)
    eps = np.random.default_rng(5).standard_normal(theta.size).astype(np.float32)
    thetas = [theta + 0.5 * eps, theta - 0.5 * eps]
    clip = RewardTransform(low=-0.4)
    plain = rollout.run_slot(make_slot(0, **kw), env, p, thetas, ac_noise_std=0.0, limit=30)
    clipped = rollout.run_slot(make_slot(0, **kw), env, p, thetas, ac_noise_std=0.0, limit=30,
                               reward_transform=clip)
    np.testing.assert_array_equal(clipped.returns, plain.returns)     # the log's returns
    np.testing.assert_array_equal(plain.ranked_returns, plain.returns)
    # every ToyReach reward (minus the distance) is below -0.4 here: each step counts -0.4
    assert clipped.ranked_returns == pytest.approx(-0.4 * clipped.lengths)
    assert np.all(plain.returns < -0.4 * plain.lengths)
    evaluation = rollout.run_slot(make_slot(1, **kw), env, p, [theta], ac_noise_std=0.0,
                                  limit=30, reward_transform=clip)
    np.testing.assert_array_equal(evaluation.ranked_returns, evaluation.returns)
