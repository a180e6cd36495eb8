"""Atari: the paper's preprocessing, the VBN reference batch, config checks, and real MPI runs
of a tiny Pong config (bit-identical for any rank count, exact resume, evaluate and video)."""
import json

import numpy as np
import pytest

from conftest import needs, run_mpi, run_serial, write_config
from mpi_es import config
from mpi_es.config import ConfigError

pytestmark = needs("ale_py", "the atari extra")
PONG = "PongNoFrameskip-v4"


def tiny_pong(path, **overrides):
    """Pong with short episodes and a 4-observation reference batch: seconds per run."""
    base = dict(env_id=PONG, population_size=6, timestep_limit=40, eval_prob=0.3,
                calc_obstat_prob=None, noise_stdev=0.005, stop={"generations": 3},
                noise_table={"seed": 5, "size": 1_000_000},
                model={"network": "cnn", "vbn_batch": 4, "hidden_dims": None,
                       "ac_noise_std": None, "nn_optimizer_args": {"stepsize": 0.01}})
    base.update(overrides)
    return write_config(path, **base)


def test_preprocessing_is_the_papers():
    from gymnasium.wrappers import AtariPreprocessing
    from mpi_es.envs import episode_limit, make_env
    env = make_env(PONG)
    assert env.observation_space.shape == (4, 84, 84)
    assert env.observation_space.dtype == np.uint8
    assert env.action_space.n == 6
    assert episode_limit(env, None) == 27_000             # ALE's 108,000 frames / 4
    pre = env
    while not isinstance(pre, AtariPreprocessing):
        pre = pre.env
    assert (pre.noop_max, pre.frame_skip, pre.terminal_on_life_loss) == (30, 4, False)
    assert pre.env.unwrapped._frameskip == 1               # the wrapper skips, max-pooling two
    first, _ = env.reset(seed=7)
    again, _ = env.reset(seed=7)
    np.testing.assert_array_equal(first, again)


def test_reference_batch_comes_from_the_seed():
    from mpi_es.envs import atari, make_env
    from mpi_es.core.slots import reference_generator
    env = make_env(PONG)
    one = atari.reference_batch(env, reference_generator(0), 3)
    same = atari.reference_batch(env, reference_generator(0), 3)
    other = atari.reference_batch(env, reference_generator(1), 3)
    assert one.shape == (3, 4, 84, 84) and one.dtype == np.uint8
    np.testing.assert_array_equal(one, same)
    assert not np.array_equal(one, other)


def test_images_need_the_cnn_and_the_cnn_needs_images():
    from mpi_es.training.setup import prepare
    with pytest.raises(ConfigError, match="observes images .* set model.network: cnn"):
        prepare(config.validate({"env_id": PONG}))
    with pytest.raises(ConfigError, match="cnn needs image observations"):
        prepare(config.validate({"env_id": "CartPole-v1", "model": {"network": "cnn"}}))
    with pytest.raises(ConfigError, match="'model.hidden_dims' applies to network: mlp only"):
        config.validate({"env_id": PONG, "model": {"network": "cnn", "hidden_dims": [8]}})
    with pytest.raises(ConfigError, match="'model.vbn' applies to network: cnn only"):
        config.validate({"env_id": "Hopper-v5", "model": {"vbn": False}})
    with pytest.raises(ConfigError, match="observation_normalization' must be False"):
        config.validate({"env_id": PONG, "model": {"network": "cnn"},
                         "optimizations": {"observation_normalization": True}})
    with pytest.raises(ConfigError, match="'model.network' cnn is trained with algorithm: "
                                          "openai_es"):
        config.validate({"env_id": PONG, "algorithm": "ars", "model": {"network": "cnn"}})
    cnn = config.validate({"env_id": PONG, "model": {"network": "cnn"}})
    assert not cnn.optimizations.observation_normalization and cnn.model.ac_noise_std == 0
    # a resolved config (every key written out) loads again
    assert config.validate(config.parse_yaml(cnn.to_yaml(), "stored")) == cnn


@pytest.mark.mpi
def test_pong_is_bit_identical_for_1_2_3_ranks_resumes_and_evaluates(tmp_path):
    from test_mpi import assert_same_for_any_rank_count_and_resume
    cfg = tiny_pong(tmp_path / "c.yaml")
    final = assert_same_for_any_rank_count_and_resume(tmp_path, cfg)
    assert np.any(final["theta"] != final["theta"][0])

    out = tmp_path / "n2"
    video = tmp_path / "pong.gif"
    played = run_serial("evaluate", str(out), "--episodes", "2", "--json",
                        "--video", str(video), "--video-episodes", "1")
    assert played.returncode == 0, played.stderr
    result = json.loads(played.stdout)
    assert result["episodes"] == 2 and result["length_max"] == 40
    assert result["video"]["frames"] == 41 and video.stat().st_size > 1000

    refused = run_serial("export", str(out / "checkpoint.h5"), "-o", str(tmp_path / "m.keras"))
    assert refused.returncode == 2 and "does not support yet" in refused.stderr


@pytest.mark.mpi
def test_pong_without_vbn_trains_on_2_ranks(tmp_path):
    cfg = tiny_pong(tmp_path / "c.yaml", model={"network": "cnn", "vbn": False,
                                                "hidden_dims": None, "ac_noise_std": None,
                                                "vbn_batch": None})
    proc = run_mpi(2, str(cfg), "--out-dir", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    assert "677686 parameters" in proc.stdout        # biases instead of VBN's gamma and beta
