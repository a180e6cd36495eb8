"""Checkpoints, exact resume, signals, kill -9 and bad files (real mpiexec)."""
import hashlib
import os
import random
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

from conftest import (kill_job, mpi_flavor, run_env, run_mpi, start_job_script, start_mpi,
                      wait_for_line, write_config)
from mpi_es.rundir import checkpoint, runlog
from mpi_es import config
from mpi_es.config import ConfigError
from mpi_es.rundir.resume import config_differences, load_for_resume

pytestmark = pytest.mark.mpi
TIMING = runlog.TIMING_COLUMNS | {"UniqueWorkers"}


def state_of(out):
    with h5py.File(out / "checkpoint.h5") as f:
        arrays = {n: f[n][...] for n in ("theta", "obstat/sum", "obstat/sumsq", "obstat/count")}
        arrays |= {f"optimizer/{k}": v[...] for k, v in f["optimizer"].items()}
        arrays["optimizer.t"] = f["optimizer"].attrs["t"]
        for key in ("generation", "timesteps_so_far", "episodes_so_far"):
            arrays[key] = f.attrs[key]
    return arrays


def rows_of(out):
    return [{k: v for k, v in r.items() if k not in TIMING} for r in runlog.read(out / "log.csv")]


def assert_same_run(a, b):
    sa, sb = state_of(a), state_of(b)
    assert sa.keys() == sb.keys()
    for key in sa:
        np.testing.assert_array_equal(sa[key], sb[key], err_msg=key)
    assert rows_of(a) == rows_of(b)


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """The reference: 6 generations in one go on 2 ranks."""
    base = tmp_path_factory.mktemp("straight")
    cfg = write_config(base / "c.yaml", stop={"generations": 6})
    proc = run_mpi(2, str(cfg), "--out-dir", str(base / "run"))
    assert proc.returncode == 0, proc.stderr
    return cfg, base / "run"


@pytest.mark.every_mpi
@pytest.mark.parametrize("k, first, second", [(1, 2, 3), (4, 3, 1)])
def test_stop_and_resume_is_bit_exact_across_rank_counts(tmp_path, straight, k, first, second):
    cfg, reference = straight
    out = tmp_path / "run"
    assert run_mpi(first, str(cfg), "--out-dir", str(out),
                   "--set", f"stop.generations={k}").returncode == 0
    proc = run_mpi(second, str(cfg), "--out-dir", str(out))
    assert proc.returncode == 0, proc.stderr
    assert f"resuming from {out / 'checkpoint.h5'} at generation {k}" in proc.stdout
    assert_same_run(out, reference)


def test_resume_from_a_snapshot_into_a_new_directory(tmp_path, straight):
    cfg, reference = straight
    snapshot = reference / "snapshots" / "snapshot_00002.h5"
    out = tmp_path / "branch"
    proc = run_mpi(2, str(cfg), "--out-dir", str(out), "--resume", str(snapshot))
    assert proc.returncode == 0, proc.stderr
    assert state_of(out)["generation"] == 6
    np.testing.assert_array_equal(state_of(out)["theta"], state_of(reference)["theta"])
    assert [r["Generation"] for r in rows_of(out)] == ["3", "4", "5", "6"]
    assert rows_of(out) == rows_of(reference)[2:]


def test_finished_run_is_extended_by_raising_stop(tmp_path, straight):
    cfg, reference = straight
    out = tmp_path / "run"
    assert run_mpi(2, str(cfg), "--out-dir", str(out), "--set", "stop.generations=3").returncode == 0
    again = run_mpi(2, str(cfg), "--out-dir", str(out), "--set", "stop.generations=3")
    assert again.returncode == 0 and "reached stop.generations=3" in again.stdout
    assert len(rows_of(out)) == 3
    assert run_mpi(2, str(cfg), "--out-dir", str(out), "--set", "snapshot_freq=1").returncode == 0
    assert_same_run(out, reference)


def test_resume_never_refuses_a_non_empty_out_dir(tmp_path, straight):
    cfg, reference = straight
    before = hashlib.sha256((reference / "checkpoint.h5").read_bytes()).hexdigest()
    proc = run_mpi(2, str(cfg), "--out-dir", str(reference), "--resume", "never")
    assert proc.returncode == 2 and proc.stderr.count("is not empty") == 1, proc.stderr
    assert hashlib.sha256((reference / "checkpoint.h5").read_bytes()).hexdigest() == before


def test_math_changes_are_refused_with_every_difference_listed(tmp_path, straight):
    cfg, reference = straight
    proc = run_mpi(2, str(cfg), "--out-dir", str(reference), "--set", "seed=9",
                   "--set", "model.nn_optimizer=sgd", "--set", "population_size=22")
    assert proc.returncode == 2
    for key in ("seed: checkpoint has 3, config has 9", "model.nn_optimizer:", "population_size:"):
        assert proc.stderr.count(key) == 1, proc.stderr


def test_config_differences_sort_harmless_from_math():
    base = config.validate({"env_id": "Ant-v5"})
    stored = base.to_yaml()
    harmless = config.validate({"env_id": "Ant-v5", "stop": {"generations": 5, "seconds": 9},
                                "snapshot_freq": 0, "out_dir": "elsewhere"})
    assert config_differences(stored, harmless) == []
    changes = {"env_id": "Hopper-v5", "model": {"hidden_dims": [8]}, "seed": 1,
               "noise_table": {"size": 1000}, "population_size": 10,
               "model.nn_optimizer": None, "return_proc_mode": "sign",
               "optimizations": {"fitness_shaping": False}}
    for key, value in changes.items():
        if value is None:
            raw = {"env_id": "Ant-v5", "model": {"nn_optimizer": "sgd",
                                                 "nn_optimizer_args": {"stepsize": 0.01}}}
        else:
            raw = {"env_id": "Ant-v5", key: value}
        assert config_differences(stored, config.validate(raw)), key


@pytest.mark.every_mpi
def test_sigterm_and_sigusr1_checkpoint_and_exit_75(tmp_path, straight):
    """Under MPICH's and Intel MPI's mpiexec both stop after the generation with exit 75. Open
    MPI's mpirun ends the job itself at once on SIGTERM (docs/clusters.md): the checkpoint of
    the last complete generation must still be whole and resume exactly."""
    cfg, reference = straight
    for sig in (signal.SIGTERM, signal.SIGUSR1):
        out = tmp_path / sig.name
        proc = start_mpi(2, str(cfg), "--out-dir", str(out),
                         extra_env={"MPI_ES_TEST_CHECKPOINT_PAUSE": "0.3"})
        wait_for_line(proc, "gen     2")
        proc.send_signal(sig)                       # to mpiexec, which forwards it to the ranks
        _, err = proc.communicate(timeout=60)
        generation = checkpoint.load(out / "checkpoint.h5").state.generation
        if mpi_flavor() == "openmpi" and sig == signal.SIGTERM:
            assert proc.returncode not in (0, 75), err
            assert 2 <= generation < 6
        else:
            assert proc.returncode == 75, err
            assert f"{sig.name} received" in err and err.count(f"{sig.name} received") == 1
            assert 2 <= generation < 6
            assert len(rows_of(out)) == generation
        assert run_mpi(2, str(cfg), "--out-dir", str(out)).returncode == 0
        assert_same_run(out, reference)


@pytest.mark.every_mpi
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_the_job_script_turns_sigterm_and_sigint_into_a_clean_stop_under_every_mpiexec(
        tmp_path, straight, sig):
    """jobs/train.sbatch's launcher with LAUNCHER=mpiexec, as SLURM's preemption signals it:
    exit 75 and an exact resume, under Open MPI's mpirun too (it gets SIGUSR1 instead)."""
    cfg, reference = straight
    out = tmp_path / "run"
    env = run_env()
    env.update(LAUNCHER="mpiexec", SLURM_NTASKS="2", PYTHON=sys.executable,
               PATH=os.pathsep.join([os.path.dirname(sys.executable), env["PATH"]]),
               MPI_ES_TEST_CHECKPOINT_PAUSE="1")   # 4 s left after generation 2: time
    env.pop("SLURM_JOB_ID", None)                      # for the signal to pass the script
    proc = start_job_script(str(cfg), "--out-dir", str(out), env=env)
    wait_for_line(proc, "gen     2")
    proc.send_signal(sig)                           # to the script, as SLURM does
    output, err = proc.communicate(timeout=60)
    assert proc.returncode == 75, output + err
    assert f"got SIG{sig.name[3:]}" in output
    generation = checkpoint.load(out / "checkpoint.h5").state.generation
    assert 2 <= generation < 6 and len(rows_of(out)) == generation
    assert run_mpi(2, str(cfg), "--out-dir", str(out)).returncode == 0
    assert_same_run(out, reference)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_while_the_job_script_is_still_starting_is_not_lost(tmp_path, sig):
    """SLURM may signal the job script before it has launched anything (its MPI check can take
    seconds on a loaded node): it stops with 75 and launches nothing, so the requeue resumes."""
    import shutil
    real = shutil.which("mpiexec", path=os.pathsep.join([os.path.dirname(sys.executable),
                                                         os.environ["PATH"]]))
    fake = tmp_path / "bin"
    fake.mkdir()
    marker = tmp_path / "checking"
    (fake / "mpiexec").write_text(f"#!/bin/bash\nif [ \"$1\" = --version ]; then touch {marker};"
                                  f" sleep 2; fi\nexec {real} \"$@\"\n")
    (fake / "mpiexec").chmod(0o755)
    out = tmp_path / "run"
    env = run_env()
    env.update(LAUNCHER="mpiexec", SLURM_NTASKS="2", PYTHON=sys.executable,
               PATH=os.pathsep.join([str(fake), os.path.dirname(sys.executable), env["PATH"]]))
    env.pop("SLURM_JOB_ID", None)
    proc = start_job_script(str(write_config(tmp_path / "c.yaml")), "--out-dir", str(out),
                            env=env)
    deadline = time.monotonic() + 30
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert marker.exists()
    proc.send_signal(sig)
    output, err = proc.communicate(timeout=60)
    assert proc.returncode == 75, output + err
    assert f"stopped before the launch (SIG{sig.name[3:]}); nothing ran" in output
    assert not out.exists()


def test_second_signal_abandons_the_generation_at_once(tmp_path, straight):
    cfg, reference = straight
    out = tmp_path / "run"
    # a slow checkpoint write makes the second signal land mid-generation or mid-write
    proc = start_mpi(2, str(cfg), "--out-dir", str(out),
                     extra_env={"MPI_ES_TEST_CHECKPOINT_PAUSE": "2"})
    wait_for_line(proc, "gen     1")
    time.sleep(0.5)             # generation 2 is now in its 4 s of snapshot + checkpoint writes
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 75 and "abandoning" in err, err
    assert time.monotonic() - started < 10
    loaded = checkpoint.load(out / "checkpoint.h5")
    assert loaded.state.generation >= 1
    assert run_mpi(2, str(cfg), "--out-dir", str(out)).returncode == 0
    assert not list(out.glob("*.tmp-*"))
    assert_same_run(out, reference)


def test_kill_9_at_random_moments_never_loses_the_run(tmp_path, straight):
    cfg, reference = straight
    rng = random.Random(2026)
    trials, exact = 6, 0
    for trial in range(trials):
        out = tmp_path / f"t{trial}"
        # writes take 0.2 s, so some kills land inside one; resume is run until the job ends
        for attempt in range(3):
            proc = start_mpi(2, str(cfg), "--out-dir", str(out),
                             extra_env={"MPI_ES_TEST_CHECKPOINT_PAUSE": "0.2"})
            time.sleep(rng.uniform(1.0, 4.0))
            kill_job(proc.pid)
            proc.communicate(timeout=30)
            if (out / "checkpoint.h5").exists():
                loaded = checkpoint.load(out / "checkpoint.h5")     # always complete
                assert len(runlog.read(out / "log.csv")) <= loaded.state.generation + 1
        done = run_mpi(2, str(cfg), "--out-dir", str(out))
        assert done.returncode == 0, done.stderr
        assert_same_run(out, reference)
        exact += 1
    assert exact == trials


def corrupt(kind: str, src, dst):
    data = src.read_bytes()
    if kind == "truncated":
        dst.write_bytes(data[: len(data) // 2])
    elif kind == "not-hdf5":
        dst.write_text("this is not a checkpoint\n")
    elif kind == "empty":
        dst.write_bytes(b"")
    else:
        dst.write_bytes(data)
        with h5py.File(dst, "r+") as f:
            if kind == "future-version":
                f.attrs["format_version"] = 99
            elif kind == "missing-dataset":
                del f["obstat/sumsq"]
            elif kind == "other-policy":     # a complete checkpoint of a 10-parameter policy
                for name in ("theta", "optimizer/m", "optimizer/v"):
                    del f[name]
                    f.create_dataset(name, data=np.zeros(10, np.float32))


@pytest.mark.parametrize("kind, message", [
    ("truncated", "not a readable HDF5 checkpoint"),
    ("not-hdf5", "not a readable HDF5 checkpoint"),
    ("empty", "the file is empty"),
    ("future-version", "format_version 99 is newer"),
    ("missing-dataset", "missing obstat/sumsq"),
    ("other-policy", "/theta has 10 parameters"),
])
def test_bad_checkpoint_files_are_refused_and_left_untouched(tmp_path, straight, kind, message):
    cfg, reference = straight
    bad = tmp_path / "bad.h5"
    corrupt(kind, reference / "checkpoint.h5", bad)
    before = bad.read_bytes()
    cfg_obj = config.load(cfg)
    with pytest.raises(ConfigError, match=message) as err:
        load_for_resume(bad, cfg_obj, num_params=state_of(reference)["theta"].size)
    assert str(bad) in str(err.value)
    assert bad.read_bytes() == before


def test_bad_checkpoint_through_the_cli(tmp_path, straight):
    cfg, reference = straight
    bad = tmp_path / "bad.h5"
    corrupt("truncated", reference / "checkpoint.h5", bad)
    proc = run_mpi(2, str(cfg), "--out-dir", str(tmp_path / "o"), "--resume", str(bad))
    assert proc.returncode == 2 and proc.stderr.count("not a readable HDF5 checkpoint") == 1
    assert "Traceback" not in proc.stderr
    other_env = run_mpi(1, str(cfg), "--out-dir", str(reference),
                        "--set", "env_id=toy_envs:ToyReachNoLimit-v0", "--set", "timestep_limit=30")
    assert other_env.returncode == 2 and "env_id: checkpoint has" in other_env.stderr


def test_version_mismatch_is_a_warning(tmp_path, straight):
    cfg, reference = straight
    copy = tmp_path / "old.h5"
    copy.write_bytes((reference / "checkpoint.h5").read_bytes())
    with h5py.File(copy, "r+") as f:
        f.attrs["numpy_version"] = "1.0.0"
    state, warnings = load_for_resume(copy, config.load(cfg), state_of(reference)["theta"].size)
    assert state.generation == 6
    assert len(warnings) == 1 and "numpy 1.0.0" in warnings[0] and np.__version__ in warnings[0]


def test_info_prints_what_the_checkpoint_holds(straight):
    _, reference = straight
    proc = run_mpi(1, "info", str(reference / "checkpoint.h5"))
    assert proc.returncode == 0, proc.stderr
    for text in ("generation:        6", "env_id:            toy_envs:ToyReach-v0",
                 "parameters:        ", "timesteps_so_far:", "episodes_so_far:",
                 "numpy_version:", "mujoco_version:", "population_size: 20"):
        assert text in proc.stdout
    missing = run_mpi(1, "info", str(reference / "nope.h5"))
    assert missing.returncode == 2 and "no such checkpoint file" in missing.stderr


def test_log_keeps_each_generation_once(tmp_path):
    path = tmp_path / "log.csv"
    log = runlog.RunLog(path, keep_through=0)
    for g in (1, 2, 3):
        log.append({"Generation": g})
    runlog.RunLog(path, keep_through=2)
    assert [r["Generation"] for r in runlog.read(path)] == ["1", "2"]
    runlog.RunLog(path, keep_through=5)
    assert [r["Generation"] for r in runlog.read(path)] == ["1", "2"]
