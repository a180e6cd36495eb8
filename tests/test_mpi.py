"""End-to-end runs under real mpiexec (1, 2 and 3 ranks; 3 oversubscribes this 2-core machine)."""
import hashlib
from pathlib import Path
import json

import h5py
import numpy as np
import pytest

from conftest import REPO, run_mpi, write_config
from mpi_es.core import noise
from mpi_es.rundir import runlog

pytestmark = pytest.mark.mpi


def non_timing(rows):
    return [{k: v for k, v in r.items() if k not in runlog.TIMING_COLUMNS | {"UniqueWorkers"}}
            for r in rows]


def final_state(out):
    with h5py.File(out / "checkpoint.h5") as f:
        return {name: f[name][...] for name in ("theta", "obstat/sum", "obstat/sumsq",
                                                "obstat/count")} | \
               {f"optimizer/{k}": v[...] for k, v in f["optimizer"].items()}


@pytest.mark.parametrize("variant", [
    {},
    {"optimizations": {"mirrored_sampling": False, "discretize_actions": True},
     "population_size": 15, "return_proc_mode": "centered_sign_rank",
     "model": {"nn_optimizer": "sgd", "nonlin_type": "elu", "hidden_dims": [8, 4],
               "nn_optimizer_args": {"stepsize": 0.2, "momentum": 0.5}}},
    {"noise_decay": {"rate": 0.7, "floor": 0.03}},
], ids=["mirrored-adam", "single-sgd-discrete", "sigma-decay"])
def test_final_theta_is_bit_identical_for_1_2_and_3_ranks(tmp_path, variant):
    """...and for any number of episodes played in lockstep on each rank."""
    cfg = write_config(tmp_path / "c.yaml", **variant)
    states, logs = [], []
    for n, at_once in ((1, 1), (2, 8), (3, 3)):
        out = tmp_path / f"n{n}"
        proc = run_mpi(n, str(cfg), "--out-dir", str(out), "--set", f"episodes_at_once={at_once}")
        assert proc.returncode == 0, proc.stderr
        states.append(final_state(out))
        logs.append(runlog.read(out / "log.csv"))
    for other in states[1:]:
        assert other.keys() == states[0].keys()
        for key in states[0]:
            np.testing.assert_array_equal(other[key], states[0][key], err_msg=key)
    assert non_timing(logs[1]) == non_timing(logs[0]) == non_timing(logs[2])
    # the run really exercised evaluation episodes and observation statistics
    assert sum(int(r["EvalGenCount"]) for r in logs[0]) > 0
    assert float(states[0]["obstat/count"]) > 1
    # slots are claimed dynamically: who ran what varies, the result does not
    assert all(1 <= int(r["UniqueWorkers"]) <= 3 for r in logs[2])


def test_inverted_pendulum_learns_on_two_ranks(tmp_path):
    """Measured: the mean return passes 900 at generation 10-11 (seed 0); budget 15."""
    out = tmp_path / "ip"
    proc = run_mpi(2, "jobs/inverted_pendulum.yaml", "--out-dir", str(out),
                   "--set", "stop.generations=15")
    assert proc.returncode == 0, proc.stderr
    rows = runlog.read(out / "log.csv")
    means = [float(r["GenRewMean"]) for r in rows]
    assert len(rows) == 15 and [int(r["Generation"]) for r in rows] == list(range(1, 16))
    assert means[0] < 100 and max(means) >= 900, means
    assert proc.stdout.count("gen ") == 15
    assert list(rows[0]) == runlog.COLUMNS


def test_run_directory_layout(tmp_path):
    cfg = write_config(tmp_path / "c.yaml", stop={"generations": 5})
    out = tmp_path / "run"
    proc = run_mpi(2, str(cfg), "--out-dir", str(out), "--set", "snapshot_freq=2")
    assert proc.returncode == 0, proc.stderr
    resolved = (out / "config.yaml").read_text()
    assert "population_size: 20" in resolved and "nn_optimizer_args:" in resolved
    assert "beta2: 0.999" in resolved          # defaults filled in
    assert sorted(p.name for p in (out / "snapshots").iterdir()) == \
        ["snapshot_00002.h5", "snapshot_00004.h5"]
    with h5py.File(out / "checkpoint.h5") as f:
        assert f["theta"].dtype == np.float32
        assert f["obstat/sum"].dtype == np.float64
        assert set(f["optimizer"]) == {"m", "v"} and f["optimizer"].attrs["t"] == 5
        attrs = dict(f.attrs)
        assert attrs["generation"] == 5 and attrs["format_version"] == 1
        assert attrs["env_id"] == "toy_envs:ToyReach-v0" and attrs["config"] == resolved
        assert attrs["episodes_so_far"] >= 100 and attrs["timesteps_so_far"] > 0
        for key in ("mpi_es_version", "numpy_version", "gymnasium_version", "mujoco_version"):
            assert attrs[key]
    with h5py.File(out / "snapshots" / "snapshot_00004.h5") as f:
        assert f.attrs["generation"] == 4
    rows = runlog.read(out / "log.csv")
    assert int(rows[-1]["EpisodesSoFar"]) == attrs["episodes_so_far"]
    assert int(rows[-1]["TimestepsSoFar"]) == attrs["timesteps_so_far"]
    assert not list(out.glob("*.tmp-*"))


@pytest.mark.parametrize("problem, fragment", [
    ({"populaton_size": 20}, "did you mean 'population_size'"),
    ({"env_id": "NoSuchEnv-v3"}, "cannot make environment 'NoSuchEnv-v3'"),
    ({"num_workers": 4}, "num_workers does not exist"),
])
def test_config_errors_exit_2_once_on_three_ranks(tmp_path, problem, fragment):
    cfg = write_config(tmp_path / "c.yaml", **problem)
    proc = run_mpi(3, str(cfg), timeout=60)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert proc.stderr.count(fragment) == 1, proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "out").exists()


def test_usage_errors_exit_2_once(tmp_path):
    proc = run_mpi(2, "train", str(tmp_path / "missing.yaml"), timeout=60)
    assert proc.returncode == 2 and proc.stderr.count("config file not found") == 1
    proc = run_mpi(2, "train", "x.yaml", "--bogus", timeout=60)
    assert proc.returncode == 2 and proc.stderr.count("unrecognized arguments") == 1


def test_noise_table_is_identical_and_held_once_per_node():
    size, seed = 3_000_000, 11
    expected = hashlib.sha256(noise.build_serial(size, seed).tobytes()).hexdigest()
    table_bytes = size * 4
    for n in (1, 2, 3):
        proc = run_mpi(n, "tests/mpi_scripts/noise_probe.py", str(size), str(seed), module=False)
        assert proc.returncode == 0, proc.stderr
        reports = json.loads(proc.stdout)
        assert [r["digest"] for r in reports] == [expected] * n
        assert all(r["dtype"] == "float32" and r["node_size"] == n for r in reports)
        assert all(r["seen"] == 12345.0 for r in reports)    # the last rank's write, seen by all
        # every rank mapped every page, yet the node holds them once
        assert all(r["rss"] >= 0.99 * table_bytes for r in reports)
        assert sum(r["pss"] for r in reports) <= 1.1 * table_bytes
        if n > 1:
            assert all(r["shared"] for r in reports)
            assert len({r["path"] for r in reports}) == 1


def test_reward_shift_changes_the_ranking_not_the_logged_returns(tmp_path):
    runs = {}
    for shift in (0, 1):
        out = tmp_path / f"shift{shift}"
        proc = run_mpi(2, "jobs/inverted_pendulum.yaml", "--out-dir", str(out),
                       "--set", "stop.generations=3", "--set", f"reward_shift={shift}")
        assert proc.returncode == 0, proc.stderr
        runs[shift] = (runlog.read(out / "log.csv"), final_state(out)["theta"])
    (plain_log, plain_theta), (shifted_log, shifted_theta) = runs[0], runs[1]
    # the same first generation is played and logged with its true returns...
    assert plain_log[0]["GenRewMean"] == shifted_log[0]["GenRewMean"]
    # ...but ranked differently: episodes last different lengths in InvertedPendulum
    assert not np.array_equal(plain_theta, shifted_theta)


def assert_same_for_any_rank_count_and_resume(tmp_path, cfg, stop_at: int = 2,
                                              cwd: Path = REPO) -> dict:
    """Runs cfg on 1, 2 and 3 ranks (with 1, 8 and 3 episodes at once), and stopped at stop_at
    on 3 then resumed on 2: every final state must be bit-identical. Returns it."""
    states = []
    for n, at_once in ((1, 1), (2, 8), (3, 3)):
        out = tmp_path / f"n{n}"
        proc = run_mpi(n, str(cfg), "--out-dir", str(out), "--set",
                       f"episodes_at_once={at_once}", cwd=cwd)
        assert proc.returncode == 0, proc.stderr
        states.append(final_state(out))
    stopped = tmp_path / "stopped"
    assert run_mpi(3, str(cfg), "--out-dir", str(stopped),
                   "--set", f"stop.generations={stop_at}", cwd=cwd).returncode == 0
    # resumed with another number of episodes at once: it changes nothing
    assert run_mpi(2, str(cfg), "--out-dir", str(stopped), "--set", "episodes_at_once=2",
                   cwd=cwd).returncode == 0
    states.append(final_state(stopped))
    for other in states[1:]:
        assert other.keys() == states[0].keys()
        for key in states[0]:
            np.testing.assert_array_equal(other[key], states[0][key], err_msg=key)
    return states[0]


@pytest.mark.parametrize("env_id", ["CartPole-v1", "toy_envs:ToyChoices-v0"])
def test_discrete_actions_are_bit_identical_for_1_2_and_3_ranks_and_resume(tmp_path, env_id):
    cfg = write_config(tmp_path / "c.yaml", env_id=env_id, stop={"generations": 4},
                       model={"hidden_dims": [8], "ac_noise_std": 0,
                              "nn_optimizer_args": {"stepsize": 0.05}})
    assert_same_for_any_rank_count_and_resume(tmp_path, cfg)


def test_cartpole_job_is_solved_within_a_minute(tmp_path):
    """Measured: the population mean passes 475 at generation 26 (seed 0), 17 s on 2 busy cores."""
    out = tmp_path / "cp"
    proc = run_mpi(2, "jobs/cartpole.yaml", "--out-dir", str(out))
    assert proc.returncode == 0, proc.stderr
    rows = runlog.read(out / "log.csv")
    assert float(rows[-1]["TimeElapsed"]) < 60
    from conftest import run_serial
    evaluation = run_serial("evaluate", str(out), "--episodes", "10", "--json")
    assert evaluation.returncode == 0, evaluation.stderr
    assert json.loads(evaluation.stdout)["return_mean"] >= 475


@pytest.mark.every_mpi
def test_a_normal_run_prints_nothing_but_its_own_lines(tmp_path):
    """No launcher or library noise (Open MPI's osc/ucx message, banners, warnings) on stderr,
    and stdout holds only mpi_es's own lines, on 2 and 3 ranks."""
    cfg = write_config(tmp_path / "c.yaml")
    for n in (2, 3):
        proc = run_mpi(n, str(cfg), "--out-dir", str(tmp_path / f"n{n}"))
        assert proc.returncode == 0, proc.stderr
        assert proc.stderr == "", proc.stderr
        lines = proc.stdout.splitlines()
        assert lines and all(line.startswith(("mpi_es:", "gen ", "done:")) for line in lines), \
            proc.stdout


def test_sigma_decay_starts_after_the_first_generation_and_stops_at_its_floor(tmp_path):
    """noise_decay changes nothing in generation 1 (sigma x rate^0), then every generation: the
    perturbed parameters are theta + sigma_g eps and the update divides by sigma_g."""
    from mpi_es import config
    from mpi_es.algorithms.base import decayed_sigma
    from mpi_es.training.setup import algorithm_of
    assert decayed_sigma(0.1, 1.0, 0.5, 40) == 0.1           # no decay: exactly sigma
    assert decayed_sigma(0.1, 0.9, 0.02, 0) == 0.1
    assert decayed_sigma(0.1, 0.9, 0.02, 2) == pytest.approx(0.081)
    assert decayed_sigma(0.1, 0.9, 0.02, 1000) == 0.02
    algorithm = algorithm_of(config.validate(
        {"env_id": "Ant-v5", "noise_stdev": 0.1, "noise_decay": {"rate": 0.5, "floor": 0.02}}))
    theta, eps = np.zeros(3, np.float32), np.ones(3, np.float32)
    plus, minus = algorithm.perturb(theta, eps, 2, generation=2)
    np.testing.assert_array_equal(plus, np.float32(0.025) * eps)
    np.testing.assert_array_equal(minus, -np.float32(0.025) * eps)
    plain = write_config(tmp_path / "plain.yaml")
    decayed = write_config(tmp_path / "decayed.yaml", noise_decay={"rate": 0.5, "floor": 0.01})
    thetas = {}
    for name, cfg in (("plain", plain), ("decayed", decayed)):
        for generations in (1, 3):
            out = tmp_path / f"{name}{generations}"
            proc = run_mpi(2, str(cfg), "--out-dir", str(out),
                           "--set", f"stop.generations={generations}")
            assert proc.returncode == 0, proc.stderr
            thetas[name, generations] = final_state(out)["theta"]
    np.testing.assert_array_equal(thetas["plain", 1], thetas["decayed", 1])
    assert not np.array_equal(thetas["plain", 3], thetas["decayed", 3])


def test_training_reward_changes_the_ranking_never_the_log_or_evaluation(tmp_path):
    """training_reward (here: each ToyReach step's reward clipped at -0.3) changes what the
    update ranks and nothing that is logged or evaluated; a transform that changes no reward
    changes no bit; with one, the result is the same for any rank count and across a resume."""
    plain = write_config(tmp_path / "plain.yaml", eval_prob=0.5)
    idle = write_config(tmp_path / "idle.yaml", eval_prob=0.5,
                        training_reward={"clip": [-1e9, None]})
    clipped = write_config(tmp_path / "clipped.yaml", eval_prob=0.5,
                           training_reward={"clip": [-0.3, None]})
    runs = {}
    for name, cfg in (("plain", plain), ("idle", idle), ("clipped", clipped)):
        out = tmp_path / name
        proc = run_mpi(2, str(cfg), "--out-dir", str(out), "--set", "stop.generations=2")
        assert proc.returncode == 0, proc.stderr
        runs[name] = (runlog.read(out / "log.csv"), final_state(out)["theta"])
    np.testing.assert_array_equal(runs["idle"][1], runs["plain"][1])
    # generation 1 plays the same episodes in all three, logged as played
    first = [{k: v for k, v in non_timing(rows)[0].items()
              if k not in ("ThetaNorm", "UpdateRatio", "GenTrainRewMean")}
             for rows, _ in runs.values()]
    assert first[0] == first[1] == first[2] and "GenRewMean" in first[0]
    # the training returns' mean is logged beside, and differs where the clip bites
    assert "GenTrainRewMean" not in runs["plain"][0][0]
    assert float(runs["clipped"][0][0]["GenTrainRewMean"]) > float(first[0]["GenRewMean"])
    assert float(first[0]["EvalGenCount"]) > 0
    assert not np.array_equal(runs["clipped"][1], runs["plain"][1])
    assert_same_for_any_rank_count_and_resume(tmp_path / "any", clipped)
