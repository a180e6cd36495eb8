"""Augmented Random Search: the update against a serial reference, its config, and MPI runs."""
import numpy as np
import pytest

from conftest import write_config
from mpi_es import config
from mpi_es.core import noise
from mpi_es.algorithms import ars, openai_es
from mpi_es.config import ConfigError
from mpi_es.core.slots import GenerationData


def generation(returns, indices):
    n = len(indices)
    return GenerationData(noise_indices=np.asarray(indices), returns=returns,
                          signreturns=np.sign(returns), lengths=np.ones((n, 2), np.int64),
                          eval_returns=np.zeros(0), eval_lengths=np.zeros(0, np.int64),
                          ob_sum=np.zeros(2), ob_sumsq=np.zeros(2), ob_count=0)


def reference_step(theta, returns, deltas, alpha, b):
    """Mania et al., Algorithm 2, line 7, written out in float64."""
    best = np.max(returns, axis=1)
    top = sorted(range(len(best)), key=lambda k: (-best[k], k))[:b]
    used = returns[top]
    sigma_r = used.std()
    step = sum((returns[k, 0] - returns[k, 1]) * deltas[k].astype(np.float64) for k in top)
    return theta + alpha / (b * sigma_r) * step


@pytest.mark.parametrize("version, b", [("v2_t", 3), ("v1", 8)])
def test_update_matches_the_paper_and_is_the_same_in_blocks(version, b):
    rng = np.random.default_rng(1)
    dim, n = 37, 8
    table = noise.build_serial(10_000, 3)
    indices = rng.integers(0, table.size - dim, n)
    returns = rng.normal(size=(n, 2)) * 10
    theta = rng.normal(size=dim).astype(np.float32)
    cfg = config.validate({"env_id": "Hopper-v5", "algorithm": "ars",
                           "ars": {"version": version, "directions": n,
                                   **({"top_directions": b} if version.endswith("_t") else {}),
                                   "step_size": 0.02}})
    data = generation(returns, indices)
    whole, extras = ars.ARS(cfg).update_block(returns, data, theta,
                                              noise.BlockNoise(table, 0, dim), None)
    expected = reference_step(theta.astype(np.float64), returns,
                              [table[i:i + dim] for i in indices], 0.02, b)
    np.testing.assert_allclose(whole, expected, rtol=1e-5, atol=1e-6)
    assert extras["ReturnStdUsed"] == pytest.approx(
        np.std(returns[np.argsort(-returns.max(axis=1), kind="stable")[:b]]))
    # any split into blocks gives the very same floats
    for cut in (1, 10, 36):
        lo_part, _ = ars.ARS(cfg).update_block(returns, data, theta[:cut],
                                               noise.BlockNoise(table, 0, cut), None)
        hi_part, _ = ars.ARS(cfg).update_block(returns, data, theta[cut:],
                                               noise.BlockNoise(table, cut, dim - cut), None)
        np.testing.assert_array_equal(np.concatenate([lo_part, hi_part]), whole)


def test_top_directions_break_ties_by_slot():
    returns = np.array([[1.0, 5.0], [5.0, 0.0], [2.0, 2.0], [0.0, 3.0]])
    assert ars.top_directions(returns, 2).tolist() == [0, 1]
    assert ars.top_directions(returns, 3).tolist() == [0, 1, 3]


def test_equal_returns_make_no_step():
    cfg = config.validate({"env_id": "Hopper-v5", "algorithm": "ars"})
    theta = np.ones(4, np.float32)
    returns = np.full((8, 2), 3.0)
    new, extras = ars.ARS(cfg).update_block(returns, generation(returns, np.arange(8)),
                                            theta, noise.BlockNoise(np.ones(20, np.float32), 0, 4), None)
    np.testing.assert_array_equal(new, theta) and extras["ReturnStdUsed"] == 0


def test_ars_config_derives_the_shared_keys_and_refuses_meaningless_ones():
    cfg = config.validate({"env_id": "Hopper-v5", "algorithm": "ars",
                           "ars": {"version": "v1_t", "directions": 16, "top_directions": 8,
                                   "delta_std": 0.05}, "reward_shift": 1.0})
    assert cfg.population_size == 32 and cfg.noise_stdev == 0.05
    assert cfg.model.hidden_dims == [] and cfg.model.ac_noise_std == 0.0
    assert not cfg.optimizations.observation_normalization          # v1: raw observations
    v2 = config.validate({"env_id": "Hopper-v5", "algorithm": "ars"})
    assert v2.optimizations.observation_normalization and v2.calc_obstat_prob == 1.0
    # the published method by default: M x on the ARS code's filter; the older variant on request
    assert not v2.model.bias and v2.model.obs_filter == "ars" and v2.model.hidden_dims == []
    variant = config.validate({"env_id": "Hopper-v5", "algorithm": "ars",
                               "model": {"bias": True, "obs_filter": "es"}})
    assert variant.model.bias and variant.model.obs_filter == "es"
    net = config.validate({"env_id": "Hopper-v5", "algorithm": "ars",
                           "model": {"hidden_dims": [32]}})
    assert net.model.hidden_dims == [32]
    for bad, key in [({"noise_stdev": 0.1}, "noise_stdev"),
                     ({"population_size": 10}, "population_size"),
                     ({"optimizations": {"fitness_shaping": True}}, "optimizations.fitness_shaping"),
                     ({"model": {"nn_optimizer": "sgd"}}, "model.nn_optimizer")]:
        with pytest.raises(ConfigError, match=f"'{key}' means nothing for algorithm: ars"):
            config.validate({"env_id": "Hopper-v5", "algorithm": "ars", **bad})
    with pytest.raises(ConfigError, match="'ars.top_directions' is used by versions v1_t"):
        config.validate({"env_id": "Hopper-v5", "algorithm": "ars",
                         "ars": {"version": "v2", "top_directions": 2}})
    with pytest.raises(ConfigError, match="'ars' applies to algorithm: ars only"):
        config.validate({"env_id": "Hopper-v5", "ars": {"directions": 30}})


def test_openai_es_module_is_the_old_update():
    cfg = config.validate({"env_id": "Hopper-v5"})
    assert openai_es.OpenAIES(cfg).optimizer.stepsize == 0.01


@pytest.mark.mpi
@pytest.mark.parametrize("version", ["v2_t", "v1"])
def test_ars_runs_are_bit_identical_for_1_2_3_ranks_and_resume_exactly(tmp_path, version):
    from test_mpi import assert_same_for_any_rank_count_and_resume
    from mpi_es.rundir import runlog
    cfg = write_config(tmp_path / "c.yaml", algorithm="ars", population_size=None,
                       noise_stdev=None, calc_obstat_prob=None, reward_shift=0.5,
                       env_id="InvertedPendulum-v5",
                       ars={"version": version, "directions": 6, "top_directions": 6
                            if version == "v1" else 3, "step_size": 0.05, "delta_std": 0.05},
                       model={"nn_optimizer_args": None, "hidden_dims": None,
                              "ac_noise_std": None}, stop={"generations": 5})
    final = assert_same_for_any_rank_count_and_resume(tmp_path, cfg)
    assert set(final) == {"theta", "obstat/sum", "obstat/sumsq", "obstat/count"}
    rows = runlog.read(tmp_path / "n1" / "log.csv")
    assert all(float(r["ReturnStdUsed"]) > 0 for r in rows)
    assert np.any(final["theta"] != 0)
