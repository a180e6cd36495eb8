"""Making environments: ids, errors, Roboschool ids and their PyBullet ports."""
import gymnasium as gym
import numpy as np
import pytest

from conftest import needs, run_mpi, run_serial, write_config
from mpi_es import envs
from mpi_es.envs import EnvError, make_env, roboschool


def test_module_prefix_imports_the_users_module():
    env = make_env("toy_envs:ToyReach-v0")
    assert env.observation_space.shape == (6,)


def test_unknown_env_names_the_key_and_suggests():
    with pytest.raises(EnvError) as err:
        make_env("Antt-v5")
    assert "'env_id'" in str(err.value) and "Ant-v5" in str(err.value)
    with pytest.raises(EnvError, match="env_id"):
        make_env("no_such_module_xyz:Foo-v0")


def test_discrete_actions_are_accepted_and_other_spaces_refused():
    assert make_env("CartPole-v1").action_space.n == 2
    assert make_env("toy_envs:ToyChoices-v0").action_space.nvec.tolist() == [3, 3, 3]
    with pytest.raises(EnvError, match="flat Box of continuous actions, a Discrete or a flat "
                                       "MultiDiscrete"):
        make_env("toy_envs:ToyMatrixAction-v0")


def test_roboschool_ids_without_the_extra_map_to_mujoco_twins():
    twins = {old: twin for old, (_, twin) in roboschool.ROBOSCHOOL_IDS.items() if twin}
    assert len(twins) == 8
    for old, twin in twins.items():
        gym_id, notice = roboschool.resolve(old, bullet=False)
        assert gym_id == twin and twin in gym.registry
        assert old in notice and twin in notice and "roboschool]" in notice
        assert "\n" not in notice
    with pytest.raises(roboschool.RoboschoolUnavailable, match=r"pip install -e \"\.\[roboschool\]\""):
        roboschool.resolve("RoboschoolHumanoidFlagrun-v1", bullet=False)
    assert roboschool.resolve("Ant-v5") == ("Ant-v5", None)


bullet = needs("pybullet_envs_gymnasium", "the roboschool extra")


@bullet
def test_roboschool_ids_with_the_extra_train_their_pybullet_ports():
    make_env("RoboschoolReacher-v1")      # registers the PyBullet envs
    for old, (port, _) in roboschool.ROBOSCHOOL_IDS.items():
        gym_id, notice = envs.resolve_env_id(old)
        assert gym_id == port and port in gym.registry
        assert "PyBullet port" in notice and old in notice
    ant = make_env("RoboschoolAnt-v1")
    assert ant.observation_space.shape == (28,) and ant.action_space.shape == (8,)
    humanoid = make_env("RoboschoolHumanoid-v1")
    assert humanoid.observation_space.shape == (44,) and humanoid.action_space.shape == (17,)


@bullet
def test_bullet_episodes_are_reproducible_from_the_reset_seed():
    def trajectory(seed):
        env = make_env("RoboschoolHopper-v1")
        obs = [env.reset(seed=seed)[0]]
        for a in np.random.default_rng(0).uniform(-1, 1, (40, 3)):
            obs.append(env.step(a)[0])
        env.close()
        return np.array(obs)
    assert np.array_equal(trajectory(4), trajectory(4))
    assert not np.array_equal(trajectory(4), trajectory(5))


@bullet
def test_pybullet_prints_nothing_to_the_terminal():
    # PyBullet's C code prints a build banner on import and "argv[0]=" on every connect.
    code = ("from mpi_es.envs import make_env\n"
            "for i in range(2):\n"
            "    env = make_env('RoboschoolAnt-v1'); env.reset(seed=i)\n"
            "    env.step(env.action_space.sample()); env.close()\n"
            "print('only this')\n")
    from conftest import run_python
    proc = run_python(code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "only this\n"
    assert "argv" not in proc.stderr and "pybullet" not in proc.stderr


@bullet
@pytest.mark.mpi
def test_training_a_roboschool_robot_under_mpi(tmp_path):
    cfg = write_config(tmp_path / "c.yaml", env_id="RoboschoolInvertedPendulum-v1",
                       timestep_limit=200, stop={"generations": 3}, snapshot_freq=3,
                       population_size=8)
    out = tmp_path / "run"
    proc = run_mpi(2, str(cfg), "--out-dir", str(out))
    assert proc.returncode == 0, proc.stderr
    # the notice is printed once, by rank 0
    assert (proc.stdout + proc.stderr).count("PyBullet port InvertedPendulumBulletEnv-v0") == 1
    assert "argv[0]" not in proc.stdout + proc.stderr
    assert "pybullet build time" not in proc.stdout + proc.stderr
    assert [line.split()[1] for line in proc.stdout.splitlines()
            if line.startswith("gen ")] == ["1/3", "2/3", "3/3"]
    check = run_serial("check", str(cfg), "--out-dir", str(out))
    assert check.returncode == 0, check.stderr
    assert "InvertedPendulumBulletEnv-v0" in check.stdout

    import imageio.v3 as iio
    video = tmp_path / "clip.gif"
    proc = run_serial("evaluate", str(out / "checkpoint.h5"), "--episodes", "1", "--video",
                      str(video), "--width", "96", "--height", "64", timeout=300)
    assert proc.returncode == 0, proc.stderr
    frames = iio.imread(video, index=None)
    assert frames.shape[1:3] == (64, 96) and frames.shape[0] >= 2
    assert frames.std() > 5


@needs("Box2D", "the box2d extra")
@pytest.mark.mpi
@pytest.mark.parametrize("job, env_id", [("jobs/lunarlander.yaml", "LunarLander-v3"),
                                         ("jobs/lunarlander.yaml", "LunarLanderContinuous-v3"),
                                         ("jobs/bipedalwalker.yaml", "BipedalWalker-v3")])
def test_box2d_envs_train_under_mpi(tmp_path, job, env_id):
    out = tmp_path / "run"
    proc = run_mpi(2, job, "--out-dir", str(out), "--set", f"env_id={env_id}",
                   "--set", "population_size=8", "--set", "stop.generations=2",
                   "--set", "stop.seconds=null", "--set", "timestep_limit=200")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("gen ") == 2
    check = run_serial("check", job, "--set", f"env_id={env_id}", "--out-dir",
                       str(tmp_path / "check"))
    assert check.returncode == 0, check.stderr
    expected = "(choices 4, argmax)" if env_id == "LunarLander-v3" else "(bounds -1 .. 1)"
    assert expected in check.stdout


def test_mujoco_warnings_go_to_the_job_output_once_never_to_a_log_file(tmp_path):
    """HalfCheetah's model uses a deprecated compiler attribute: MuJoCo warns when it loads.
    That warning is about Gymnasium's model, which a user cannot change: the handler takes it
    (no MUJOCO_LOG.TXT in the current directory) and does not print it."""
    from conftest import run_mpi, write_config
    cfg = write_config(tmp_path / "c.yaml", env_id="HalfCheetah-v5", timestep_limit=5,
                       population_size=4, stop={"generations": 1})
    proc = run_mpi(2, str(cfg), "--out-dir", str(tmp_path / "out"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "settotalmass" not in proc.stderr
    assert not list(tmp_path.rglob("MUJOCO_LOG.TXT"))


def test_training_lanes_step_the_env_under_gymnasiums_pass_through_wrappers():
    env = make_env("CartPole-v1")
    assert envs.bare_env(env, 500) is env.unwrapped
    assert envs.bare_env(env, 200) is env.unwrapped
    # a cap above the env's own TimeLimit: the wrapper still ends episodes, so it stays
    assert envs.bare_env(env, 501) is env
    # anything else (a user's wrapper, Atari's preprocessing) keeps the env as made
    clipped = gym.wrappers.ClipReward(make_env("CartPole-v1"), 0.0, 0.5)
    assert envs.bare_env(clipped, 500) is clipped


def _trace(env, actions):
    ob, _ = env.reset(seed=7)
    trace = [ob]
    for action in actions:
        ob, reward, terminated, truncated, _ = env.step(action)
        trace += [ob, reward, terminated, truncated]
        if terminated:
            break
    return trace


def test_a_bare_env_plays_the_same_episode_as_the_wrapped_one():
    wrapped, other = make_env("InvertedPendulum-v5"), make_env("InvertedPendulum-v5")
    bare = envs.bare_env(other, 1000)
    assert bare is not other
    actions = np.random.default_rng(0).uniform(-3, 3, size=(40, 1)).astype(np.float32)
    expected, got = _trace(wrapped, actions), _trace(bare, actions)
    assert len(got) == len(expected) > 3
    for a, b in zip(got, expected):
        np.testing.assert_array_equal(a, b)


def test_the_trainers_lanes_are_bare_envs(tmp_path):
    from mpi_es.config.loading import load
    from mpi_es.training.setup import prepare
    cfg = load(write_config(tmp_path / "c.yaml", env_id="CartPole-v1", timestep_limit=200,
                            model={"ac_noise_std": 0.0}))
    setup = prepare(cfg)
    lanes = setup.envs(3)
    assert [type(env).__name__ for env in lanes] == ["CartPoleEnv"] * 3
    assert lanes[0] is setup.env.unwrapped      # evaluation keeps the env as made
