"""Failures on one rank end the whole job quickly and keep the last good checkpoint."""
import os
import signal
import time
from pathlib import Path

import pytest

from conftest import descendants, run_serial, run_mpi, start_mpi, wait_for_line, write_config
from mpi_es.rundir import checkpoint, runlog

pytestmark = pytest.mark.mpi


def faulty_run(tmp_path, n, mode, *, rank=1, after=20, extra=(), step_seconds=0.0,
               **cfg_overrides):
    """Run Faulty-v0 (20 episodes per generation, 10 generations); returns (proc, seconds, out).

    With 2-3 ranks a rank plays 6-10 episodes a generation, so after=20 faults in generation 3-4.
    """
    cfg_overrides = {"stop": {"generations": 10}, **cfg_overrides}
    cfg = write_config(tmp_path / "c.yaml", env_id="toy_envs:Faulty-v0", eval_prob=0.0,
                       **cfg_overrides)
    out = tmp_path / "out"
    env = {"FAULTY_MODE": mode, "FAULTY_RANK": str(rank), "FAULTY_AFTER": str(after),
           "FAULTY_STEP_SECONDS": str(step_seconds)}
    started = time.monotonic()
    proc = start_mpi(n, str(cfg), "--out-dir", str(out), *extra, extra_env=env)
    stdout, stderr = proc.communicate(timeout=120)
    proc.stdout_text, proc.stderr_text = stdout, stderr
    return proc, time.monotonic() - started, out


def assert_last_good_checkpoint(out, stop=10):
    loaded = checkpoint.load(out / "checkpoint.h5")
    rows = runlog.read(out / "log.csv")
    assert 0 < loaded.state.generation < stop
    assert [int(r["Generation"]) for r in rows] == list(range(1, loaded.state.generation + 1))
    return loaded.state.generation


@pytest.mark.every_mpi
@pytest.mark.parametrize("n, rank", [(2, 1), (3, 2), (3, 0)])
def test_exception_in_a_rollout_ends_the_job(tmp_path, n, rank):
    # 1 ms steps: every rank gets its share of slots even where Open MPI's busy-polling ranks
    # oversubscribe the cores (with 0.3 ms generations, a rank could sit out whole generations)
    proc, seconds, out = faulty_run(tmp_path, n, "raise", rank=rank, step_seconds=0.001)
    err = proc.stderr_text
    assert proc.returncode == 1, err
    assert seconds < 30
    assert f"[rank {rank}] ValueError: Faulty-v0 step exploded" in err
    assert f"[rank {rank}] mpi_es.training.loop.SlotFailure: toy_envs:Faulty-v0, generation" in err
    assert f"rank {rank}: ValueError" in err
    # the traceback is printed once, by the failing rank only
    assert err.count(f"[rank {rank}] Traceback (most recent call last)") == 2  # cause + wrapper
    assert "Traceback" not in err.replace(f"[rank {rank}] Traceback", "")
    assert_last_good_checkpoint(out)


@pytest.mark.parametrize("mode, n, text", [
    ("nan_obs", 3, "EpisodeFault: non-finite observation at step 3"),
    ("nan_reward", 2, "EpisodeFault: non-finite reward inf at step 3"),
])
def test_non_finite_env_output_fails_the_job_and_never_reaches_theta(tmp_path, mode, n, text):
    proc, seconds, out = faulty_run(tmp_path, n, mode)
    assert proc.returncode == 1 and seconds < 30
    assert text in proc.stderr_text and "generation" in proc.stderr_text
    generation = assert_last_good_checkpoint(out)
    import numpy as np
    state = checkpoint.load(out / "checkpoint.h5").state
    assert np.all(np.isfinite(state.theta)) and np.all(np.isfinite(state.obstat.sum))
    assert generation >= 1


def test_exception_while_setting_up_on_one_rank(tmp_path):
    proc, seconds, out = faulty_run(tmp_path, 3, "raise_init", rank=1)
    assert proc.returncode == 1 and seconds < 20, proc.stderr_text
    assert "[rank 1] RuntimeError: Faulty-v0 refuses to start on this rank" in proc.stderr_text
    assert "[rank 0]" not in proc.stderr_text and "[rank 2]" not in proc.stderr_text
    assert not out.exists()


def test_stuck_episode_hits_episode_timeout(tmp_path):
    proc, seconds, out = faulty_run(tmp_path, 2, "sleep", episode_timeout_s=5)
    err = proc.stderr_text
    assert proc.returncode == 1, err
    assert "[rank 1] error: episode" in err, err
    assert "ran longer than episode_timeout_s=5.0" in err, err
    assert "toy_envs:Faulty-v0, generation" in err and ", slot " in err, err
    assert seconds < 30, err
    assert_last_good_checkpoint(out)


def test_non_finite_theta_stops_before_anything_is_written(tmp_path):
    proc, seconds, out = faulty_run(
        tmp_path, 2, "huge_reward", after=10**6, stop={"generations": 10},
        optimizations={"fitness_shaping": False, "neural_network_optimizer": False},
        learning_rate=1.0)
    err = proc.stderr_text
    assert proc.returncode == 1 and seconds < 30, err
    assert "[rank 0] mpi_es.training.loop.NonFiniteState: generation 1: theta became non-finite" in err
    assert checkpoint.load(out / "checkpoint.h5").state.generation == 0
    assert runlog.read(out / "log.csv") == []


def test_checkpoint_write_failure_on_rank_0(tmp_path):
    cfg = write_config(tmp_path / "c.yaml", stop={"generations": 200}, snapshot_freq=1,
                       population_size=200)
    out = tmp_path / "out"
    proc = start_mpi(3, str(cfg), "--out-dir", str(out))
    wait_for_line(proc, "gen     1")
    snapshots = out / "snapshots"
    for p in snapshots.iterdir():
        p.unlink()
    snapshots.rmdir()
    snapshots.write_text("a file where the snapshot directory was\n")
    started = time.monotonic()
    _, err = proc.communicate(timeout=60)
    # a write the user can fix: one line, exit 2 (no traceback)
    assert proc.returncode == 2, err
    assert time.monotonic() - started < 15
    assert "[rank 0] error: cannot write to out_dir" in err and "snapshot_0000" in err
    assert "Traceback" not in err
    generation = checkpoint.load(out / "checkpoint.h5").state.generation
    assert generation >= 1 and generation == len(runlog.read(out / "log.csv")) - 1


def test_ranks_running_different_configs_are_refused(tmp_path):
    a = write_config(tmp_path / "a.yaml")
    b = tmp_path / "b.yaml"
    b.write_text(a.read_text().replace("seed: 3", "seed: 4"))
    from conftest import mpiexec_path, run_env
    import subprocess
    import sys
    cmd = [mpiexec_path(), "-n", "1", sys.executable, "-m", "mpi_es", str(a), ":",
           "-n", "1", sys.executable, "-m", "mpi_es", str(b)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=run_env())
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("the ranks of this job disagree") == 1
    assert "config seed: rank 0 3; rank 1 4" in proc.stderr, proc.stderr
    assert "population_size" not in proc.stderr          # only the keys that differ
    assert not (tmp_path / "out" / "checkpoint.h5").exists()


def test_check_predicts_a_launch_it_does_not_make(tmp_path):
    """`check --ranks N`: the model's generation at N ranks, from one process, and a warning
    with a population that keeps N ranks busy."""
    out = ("--out-dir", str(tmp_path / "out"))    # never what a user left in the working tree
    few = run_serial("check", "jobs/ant_laptop.yaml", "--ranks", "64", *out)
    assert few.returncode == 0, few.stderr
    predicted = next(line for line in few.stdout.splitlines() if line.startswith("predicted:"))
    assert "s per generation on 64 ranks, 31% efficiency" in predicted
    assert ("population_size 40 gives 20 noise vectors for 64 ranks (0.3 per rank): 44 ranks "
            "idle the whole generation" in few.stdout)
    assert "A population of at least 1024 (8 noise vectors per rank)" in few.stdout
    enough = run_serial("check", "jobs/ant_laptop.yaml", "--ranks", "64", *out,
                        "--set", "population_size=1024")
    assert enough.returncode == 0 and "warning" not in enough.stdout
    assert "s per generation on 64 ranks, 100% efficiency" in enough.stdout
    bad = run_serial("check", "jobs/ant_laptop.yaml", "--ranks", "0", *out)
    assert bad.returncode == 2 and "--ranks must be at least 1" in bad.stderr
    flagship = run_serial("check", "jobs/ant.yaml", "--ranks", "64", *out)   # sized for 64
    assert flagship.returncode == 0 and "warning" not in flagship.stdout, flagship.stdout
    assert "about 10.0 noise vectors per rank per generation" in flagship.stdout
    assert "s per generation on 64 ranks, 100% efficiency" in flagship.stdout


def test_check_command(tmp_path):
    out = ("--out-dir", str(tmp_path / "out"))    # never what a user left in the working tree
    proc = run_mpi(1, "check", "jobs/ant_laptop.yaml", *out)
    assert proc.returncode == 0, proc.stderr
    for text in ("observation size:   105", "action size:        8", "parameters:         11464",
                 "95.4 MiB per node", "episodes/gen:       40 training (20 noise vectors)",
                 "config OK", "population_size: 40", "us per step here; at most",
                 "per generation on 1 rank", "for 2000 generations"):
        assert text in proc.stdout
    two = run_mpi(2, "check", "jobs/inverted_pendulum.yaml", *out)
    assert two.returncode == 0 and two.stdout.count("config OK") == 1
    assert "warning" not in two.stdout
    crowded = run_mpi(3, "check", "jobs/inverted_pendulum.yaml", "--set", "population_size=4",
                      *out)
    assert crowded.returncode == 0 and crowded.stdout.count("config OK") == 1
    assert "gives 2 noise vectors for 3 ranks (0.7 per rank): 1 ranks idle" in crowded.stdout
    huge = run_mpi(2, "check", "jobs/ant_laptop.yaml", "--set", "noise_table.size=1e10", *out)
    assert huge.returncode == 2 and huge.stderr.count("needs 37.25 GiB per node") == 1
    bad = run_mpi(1, "check", "jobs/ant_laptop.yaml", "--set", "model.nonlin_type=sigmoid",
                  *out)
    assert bad.returncode == 2 and "'model.nonlin_type'" in bad.stderr


def shared_memory_files(pids: list[int]) -> set[str]:
    """The /dev/shm files the processes map, as /proc/PID/maps names them ('... (deleted)' once
    their name is gone)."""
    found = set()
    for pid in pids:
        try:
            lines = Path(f"/proc/{pid}/maps").read_text().splitlines()
        except OSError:
            continue
        found |= {line.split(None, 5)[5] for line in lines if " /dev/shm/" in line}
    return found


def test_a_killed_job_leaves_no_mpich_files_in_dev_shm(tmp_path):
    """MPICH names a /dev/shm file for its ranks on a node and removes the name only in
    MPI_Finalize: every job that aborted or was killed left 1-3 MB there. mpi_es removes the
    name once every rank has mapped it, so kill -9 of a rank leaves nothing behind."""
    from mpi_es.distributed.world import mpi_library
    if not mpi_library().startswith("MPICH"):
        pytest.skip(f"MPICH's start-up file; this MPI is {mpi_library()}")
    cfg = write_config(tmp_path / "c.yaml", stop={"generations": 10_000})
    proc = start_mpi(2, str(cfg), "--out-dir", str(tmp_path / "run"))
    try:
        wait_for_line(proc, "gen ")
        ranks = [pid for pid in descendants(proc.pid)
                 if any("/mpich_shm_" in name for name in shared_memory_files([pid]))]
        assert len(ranks) == 2, "MPICH maps a /dev/shm file for two ranks on one node"
        mapped = {name for name in shared_memory_files(ranks) if "/mpich_shm_" in name}
        assert all(name.endswith("(deleted)") for name in mapped), mapped
        os.kill(ranks[1], signal.SIGKILL)
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            for pid in descendants(proc.pid):
                os.kill(pid, signal.SIGKILL)
    assert proc.returncode != 0
    for name in mapped:
        assert not Path(name.removesuffix(" (deleted)")).exists(), name
