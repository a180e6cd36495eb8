"""`mpi_es bench` runs under mpiexec and reports every figure (values are checked for sanity,
never against speed targets: those live in the bench output and docs/performance.md)."""
import json

import numpy as np
import pytest

from conftest import run_mpi, write_config
from mpi_es.core import gradient, noise
from mpi_es.commands import scaling

pytestmark = pytest.mark.mpi

KEYS = {"raw_env_steps_per_s", "es_env_steps_per_s", "overhead", "policy_forward_us",
        "keras_forward_us", "noise_build_s", "noise_node_pss_bytes", "noise_table_bytes",
        "gen_time_s", "rollout_frac", "comm_frac", "update_frac", "idle_frac",
        "update_s_at_scale", "update_s_per_rank_by_ranks", "predicted_efficiency_by_ranks",
        "raw_replay_env_steps_per_s", "es_replay_env_steps_per_s", "overhead_vs_replay",
        "claim_s", "allgather_latency_s", "allgather_bytes_per_s",
        "predicted_generation_s_by_ranks", "slot_seconds", "mpi_library", "es_vs_replay",
        "episodes_at_once", "step_us"}


def test_bench_emits_every_figure(tmp_path):
    cfg = write_config(tmp_path / "c.yaml", noise_table={"size": 3_000_000})
    out = tmp_path / "bench.json"
    proc = run_mpi(2, "bench", str(cfg), "--generations", "2", "--json", str(out), "--no-keras")
    assert proc.returncode == 0, proc.stderr
    r = json.loads(out.read_text())
    assert KEYS <= r.keys()
    assert r["ranks"] == 2 and r["generations"] == 2
    # speeds are figures, not targets: this busy machine only has to produce them
    assert r["raw_env_steps_per_s"] > 0 and r["es_env_steps_per_s"] > 0
    assert r["overhead"] < 1 and r["overhead_vs_replay"] < 1
    assert r["policy_forward_us"] > 0 and r["keras_forward_us"] is None
    assert r["noise_table_bytes"] == 12_000_000
    assert 0.9 * r["noise_table_bytes"] <= r["noise_node_pss_bytes"] <= 1.1 * r["noise_table_bytes"]
    assert r["noise_build_s"] > 0 and r["gen_time_s"] > 0 and r["update_s_at_scale"] > 0
    by_ranks = r["update_s_per_rank_by_ranks"]
    assert list(by_ranks) == ["1", "64", "1440"]
    # 100,000 parameters in one block versus 1,563 and 70: the block's share of the work shrinks
    assert by_ranks["1"] > max(by_ranks["64"], by_ranks["1440"]) > 0
    efficiency = r["predicted_efficiency_by_ranks"]
    assert list(efficiency) == ["64", "256", "1440"]
    # 10 noise vectors a generation: at most 10 of the ranks have anything to do
    assert all(0 < e <= 10 / int(n) for n, e in efficiency.items())
    assert r["raw_replay_env_steps_per_s"] > 0 and r["es_replay_env_steps_per_s"] > 0
    # the ES step split: env step (the replay's), batched forward pass, the rest of the loop
    step = r["step_us"]
    assert r["episodes_at_once"] == 8 and step["env"] > 0 and step["forward"] > 0
    assert step["total"] == pytest.approx(step["env"] + step["forward"] + step["rest"])
    assert r["claim_s"] > 0 and r["allgather_latency_s"] > 0 and r["allgather_bytes_per_s"] > 0
    # claims while rank 0 computes for a second: on one node they are served in shared memory,
    # so none waits for rank 0 to enter MPI
    busy = r["claim_while_root_busy_s"]
    assert busy["busy_s"] == 1.0 and 0 < busy["mean"] <= busy["max"] < 0.5
    assert "while rank 0 plays" in proc.stdout
    assert r["claim_while_root_busy_without_progress_s"]["max"] < 0.5
    assert r["blas_kernel"] != "" and "BLAS kernel:" in proc.stdout
    fractions = [r[k] for k in ("rollout_frac", "comm_frac", "update_frac", "idle_frac")]
    assert all(0 <= f <= 1 for f in fractions) and sum(fractions) == pytest.approx(1, abs=1e-6)
    for label in ("raw env steps/s per rank", "ES env steps/s per rank", "policy forward",
                  "noise table", "generation", "ES vs replay", "update per rank for 10000",
                  "predicted generation:", "MPI: MPICH", "per ES step:", "policy forward "):
        assert label in proc.stdout
    assert not (tmp_path / "out").exists()       # the bench writes no run directory
    # every slot of the 2 generations timed, and the generation predicted from them
    assert len(r["slot_seconds"]) >= 2 * 10
    assert all(r["predicted_generation_s_by_ranks"][n] > 0 for n in efficiency)


def test_bench_starts_from_a_checkpoints_policy(tmp_path):
    cfg = write_config(tmp_path / "c.yaml", noise_table={"size": 3_000_000},
                       stop={"generations": 2})
    assert run_mpi(1, str(cfg), "--out-dir", str(tmp_path / "run")).returncode == 0
    out = tmp_path / "bench.json"
    proc = run_mpi(2, "bench", str(cfg), "--generations", "1", "--json", str(out),
                   "--no-keras", "--checkpoint", str(tmp_path / "run" / "checkpoint.h5"))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(out.read_text())["generations"] == 1
    other = write_config(tmp_path / "other.yaml", model={"hidden_dims": [4]})
    wrong = run_mpi(2, "bench", str(other), "--checkpoint", str(tmp_path / "run" / "checkpoint.h5"))
    assert wrong.returncode == 2 and wrong.stderr.count("this config's policy has") == 1


def test_fast_gradient_matches_the_plain_sum():
    table = noise.build_serial(50_000, 2)
    rng = np.random.default_rng(0)
    dim, n = 1234, 1100                           # more rows than one batch
    idx = rng.integers(0, table.size - dim, n)
    weights = rng.normal(size=n).astype(np.float32)
    got = gradient.weighted_noise_sum(weights, idx, noise.BlockNoise(table, 0, dim), dim)
    expected = sum(np.float64(w) * table[i:i + dim].astype(np.float64) for w, i in zip(weights, idx))
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-3)


def test_scaling_model_idles_ranks_without_slots_and_is_perfect_when_work_divides():
    even = np.full(64, 1.0)
    assert scaling.makespan(even, 16, 0.0) == 4.0
    assert scaling.predicted_efficiency(even, slots=64, ranks=16, claim_s=0, update_s=0,
                                        comm_s=0) == pytest.approx(1.0)
    # 150 noise vectors for 256 ranks: 106 ranks idle the whole generation
    assert scaling.predicted_efficiency(even, slots=150, ranks=256, claim_s=0, update_s=0,
                                        comm_s=0) == pytest.approx(150 / 256)
    # a long tail costs the most when there are few slots per rank
    tail = np.array([1.0] * 9 + [10.0])
    few = scaling.predicted_efficiency(tail, slots=64, ranks=32, claim_s=0, update_s=0, comm_s=0)
    many = scaling.predicted_efficiency(tail, slots=2048, ranks=32, claim_s=0, update_s=0,
                                        comm_s=0)
    assert few < many <= 1.0
    assert scaling.allgather_seconds(1, 1e6, latency_s=1e-5, bytes_per_s=1e9) == 0
    assert scaling.allgather_seconds(1024, 0, latency_s=1e-5, bytes_per_s=1e9) == \
        pytest.approx(10 * 1e-5)


def test_update_per_rank_shrinks_with_the_block():
    table = noise.build_serial(200_000, 1)
    one = scaling.update_seconds_per_rank(1, episodes=2000, params=50_000, table=table)
    many = scaling.update_seconds_per_rank(64, episodes=2000, params=50_000, table=table)
    assert one > many > 0
