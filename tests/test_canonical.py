"""Canonical ES (Chrabaszcz et al. 2018): the paper's weights and selection, a block update that
does not depend on the partition, the config it fixes, and runs under real mpiexec."""
import numpy as np
import pytest

from conftest import run_mpi, write_config
from mpi_es import config
from mpi_es.algorithms import canonical
from mpi_es.config import ConfigError
from mpi_es.core import noise
from mpi_es.core.slots import GenerationData
from mpi_es.rundir import runlog


def test_log_weights_are_the_papers():
    w = canonical.log_weights(4)
    expected = np.log(4.5) - np.log([1, 2, 3, 4])
    np.testing.assert_allclose(w, expected / expected.sum())
    assert np.all(np.diff(w) < 0) and w.sum() == pytest.approx(1.0)


def test_the_best_mu_offspring_get_the_weights_ties_to_the_earlier_slot():
    returns = np.array([[1.0], [5.0], [3.0], [5.0], [-2.0]])
    w = canonical.parent_weights(returns, 3)
    best = canonical.log_weights(3)
    np.testing.assert_allclose(w[:, 0], [0, best[0], best[2], best[1], 0])
    mirrored = canonical.parent_weights(np.array([[1.0, 4.0], [3.0, 0.0]]), 2, "equal")
    np.testing.assert_allclose(mirrored, [[0, 0.5], [0.5, 0]])


def generation(returns, indices):
    n = returns.shape[0]
    return GenerationData(noise_indices=indices, returns=returns, signreturns=np.sign(returns),
                          lengths=np.ones_like(returns, dtype=np.int64), eval_returns=np.zeros(0),
                          eval_lengths=np.zeros(0, np.int64), ob_sum=np.zeros(1),
                          ob_sumsq=np.zeros(1), ob_count=0) if n else None


@pytest.mark.parametrize("mirrored", [False, True])
def test_the_block_update_is_theta_plus_sigma_times_the_parents_weighted_noise(mirrored):
    rng = np.random.default_rng(0)
    dim, n = 37, 12
    table = noise.build_serial(10_000, 3)
    indices = rng.integers(0, table.size - dim, n)
    returns = rng.normal(size=(n, 2 if mirrored else 1))
    cfg = config.validate({"env_id": "Hopper-v5", "algorithm": "canonical",
                           "population_size": returns.size, "noise_stdev": 0.1,
                           "canonical": {"parents": 5, "mirrored": mirrored}})
    theta = rng.normal(size=dim).astype(np.float32)
    algorithm = canonical.Canonical(cfg)
    whole, extras = algorithm.update_block(returns, generation(returns, indices), theta,
                                           noise.BlockNoise(table, 0, dim), None)
    w = canonical.parent_weights(returns, 5)
    signs = [1, -1] if mirrored else [1]
    expected = theta.astype(np.float64) + 0.1 * sum(
        w[i, k] * signs[k] * table[indices[i]:indices[i] + dim].astype(np.float64)
        for i in range(n) for k in range(len(signs)))
    np.testing.assert_allclose(whole, expected, rtol=1e-5, atol=1e-6)
    assert extras["ParentReturnMean"] == pytest.approx(np.sort(returns.ravel())[-5:].mean())
    for cut in (1, 10, 30):          # any partition into blocks: the very same floats
        lo, _ = algorithm.update_block(returns, generation(returns, indices), theta[:cut],
                                       noise.BlockNoise(table, 0, cut), None)
        hi, _ = algorithm.update_block(returns, generation(returns, indices), theta[cut:],
                                       noise.BlockNoise(table, cut, dim - cut), None)
        np.testing.assert_array_equal(np.concatenate([lo, hi]), whole)


def test_the_config_is_the_papers_by_default_and_refuses_what_means_nothing():
    cfg = config.validate({"env_id": "Hopper-v5", "algorithm": "canonical",
                           "population_size": 22})
    assert not cfg.optimizations.mirrored_sampling and not cfg.optimizations.weight_decay
    assert not cfg.optimizations.neural_network_optimizer and cfg.canonical.parents is None
    assert canonical.Canonical(cfg).parents() == 11
    with pytest.raises(ConfigError, match="'canonical.parents' must be at most population_size"):
        config.validate({"env_id": "Hopper-v5", "algorithm": "canonical",
                         "population_size": 10, "canonical": {"parents": 11}})
    with pytest.raises(ConfigError, match="'optimizations.weight_decay' means nothing for "
                                          "algorithm: canonical"):
        config.validate({"env_id": "Hopper-v5", "algorithm": "canonical",
                         "optimizations": {"weight_decay": True}})
    with pytest.raises(ConfigError, match="'canonical' applies to algorithm: canonical only"):
        config.validate({"env_id": "Hopper-v5", "canonical": {"parents": 3}})


@pytest.mark.mpi
def test_canonical_runs_are_bit_identical_for_1_2_3_ranks_and_resume_exactly(tmp_path):
    from test_mpi import assert_same_for_any_rank_count_and_resume
    cfg = write_config(tmp_path / "c.yaml", algorithm="canonical", population_size=15,
                       canonical={"parents": 5}, stop={"generations": 5},
                       model={"hidden_dims": [8], "ac_noise_std": 0.05,
                              "nn_optimizer_args": None})
    final = assert_same_for_any_rank_count_and_resume(tmp_path, cfg)
    assert set(final) == {"theta", "obstat/sum", "obstat/sumsq", "obstat/count"}


@pytest.mark.mpi
def test_canonical_es_learns_a_cheap_task(tmp_path):
    cfg = write_config(tmp_path / "c.yaml", algorithm="canonical", population_size=20,
                       noise_stdev=0.1, eval_prob=0.0, stop={"generations": 30},
                       model={"hidden_dims": [8], "ac_noise_std": 0.0, "nn_optimizer_args": None})
    out = tmp_path / "run"
    proc = run_mpi(2, str(cfg), "--out-dir", str(out))
    assert proc.returncode == 0, proc.stderr
    rows = runlog.read(out / "log.csv")
    first, last = float(rows[0]["GenRewMean"]), float(rows[-1]["GenRewMean"])
    assert last > first + 0.5 * abs(first), (first, last)
    assert all(float(r["ParentReturnMean"]) >= float(r["GenRewMean"]) for r in rows)
