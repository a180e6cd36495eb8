"""`mpi_es bench` runs under mpiexec and reports every figure (values are checked for sanity,
never against speed targets: those live in the bench output and the README)."""
import json

import numpy as np
import pytest

from conftest import run_mpi, write_config
from mpi_es import es, noise

pytestmark = pytest.mark.mpi

KEYS = {"raw_env_steps_per_s", "es_env_steps_per_s", "overhead", "policy_forward_us",
        "keras_forward_us", "noise_build_s", "noise_node_pss_bytes", "noise_table_bytes",
        "gen_time_s", "rollout_frac", "comm_frac", "update_frac", "idle_frac",
        "update_s_at_scale"}


def test_bench_emits_every_figure(tmp_path):
    cfg = write_config(tmp_path / "c.yaml", noise_table={"size": 3_000_000})
    out = tmp_path / "bench.json"
    proc = run_mpi(2, "bench", str(cfg), "--generations", "2", "--json", str(out), "--no-keras")
    assert proc.returncode == 0, proc.stderr
    r = json.loads(out.read_text())
    assert KEYS <= r.keys()
    assert r["ranks"] == 2 and r["generations"] == 2
    assert r["raw_env_steps_per_s"] > r["es_env_steps_per_s"] > 0
    assert 0 < r["overhead"] < 1
    assert r["policy_forward_us"] > 0 and r["keras_forward_us"] is None
    assert r["noise_table_bytes"] == 12_000_000
    assert 0.9 * r["noise_table_bytes"] <= r["noise_node_pss_bytes"] <= 1.1 * r["noise_table_bytes"]
    assert r["noise_build_s"] > 0 and r["gen_time_s"] > 0 and r["update_s_at_scale"] > 0
    fractions = [r[k] for k in ("rollout_frac", "comm_frac", "update_frac", "idle_frac")]
    assert all(0 <= f <= 1 for f in fractions) and sum(fractions) == pytest.approx(1, abs=1e-6)
    for label in ("raw env steps/s per rank", "ES env steps/s per rank", "policy forward",
                  "noise table", "generation", "update for 10000 episodes"):
        assert label in proc.stdout
    assert not (tmp_path / "out").exists()       # the bench writes no run directory


def test_fast_gradient_matches_the_plain_sum():
    table = noise.build_serial(50_000, 2)
    rng = np.random.default_rng(0)
    dim, n = 1234, 1100                           # more rows than one batch
    idx = rng.integers(0, table.size - dim, n)
    weights = rng.normal(size=n).astype(np.float32)
    got = es.weighted_noise_sum(weights, idx, lambda i: table[i:i + dim], dim)
    expected = sum(np.float64(w) * table[i:i + dim].astype(np.float64) for w, i in zip(weights, idx))
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-3)
