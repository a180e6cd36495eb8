"""Every stop is resumable from the first second; a damaged log tail or a symlinked config.yaml
cannot hurt a run."""
import os
import signal
import time
from contextlib import contextmanager

import pytest

from conftest import (descendants, mpi_flavor, needs, process_environ, run_mpi, start_mpi,
                      wait_for_line, write_config)
from mpi_es.rundir import checkpoint, runlog

pytestmark = pytest.mark.mpi


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGUSR1, signal.SIGINT])
def test_a_signal_during_start_up_exits_75(tmp_path, sig):
    # a 400 MB noise table takes a few seconds to build: the signal lands before training
    # (a slow env and many generations: still running when the signal comes, however fast
    # this machine builds the table)
    cfg = write_config(tmp_path / "c.yaml", noise_table={"size": 100_000_000},
                       env_id="toy_envs:SlowReach-v0", stop={"generations": 1000})
    out = tmp_path / "run"
    proc = start_mpi(2, str(cfg), "--out-dir", str(out))
    time.sleep(0.6)                  # imports, MPI start-up or the table build
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 75, (stdout, stderr)
    assert "Traceback" not in stderr
    if "received: stopping" in stderr:        # under MPICH's mpiexec: what a second one does
        assert "a second Ctrl-C makes MPICH's mpiexec kill the job at once" in stderr
    if (out / "checkpoint.h5").exists():      # the signal came after the fresh checkpoint
        assert checkpoint.load(out / "checkpoint.h5").state.generation <= 1
        assert "run the same command again to resume" in stdout
    else:
        assert "nothing to resume yet" in stdout
    again = run_mpi(2, str(cfg), "--out-dir", str(out), "--set", "stop.generations=2")
    assert again.returncode == 0, again.stderr


def test_the_stop_handlers_are_in_place_before_numpy_and_mpi_load():
    """`python -m mpi_es CONFIG` installs its SIGTERM/SIGINT/SIGUSR1 handlers before importing
    NumPy or mpi4py (a second or more on a loaded node): a signal that early is a clean stop.
    Checked from inside the handler's install."""
    from conftest import run_python
    code = ("import sys, mpi_es.cli as cli\n"
            "loaded = ('numpy' in sys.modules, 'mpi4py' in sys.modules)\n"
            "def report(self):\n"
            "    print(*loaded, 'numpy' in sys.modules, 'mpi4py' in sys.modules)\n"
            "    raise SystemExit(0)\n"
            "cli.StopRequest.install = report\n"
            "cli.main(['train', 'c.yaml'])\n")
    proc = run_python(code, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["False"] * 4


def test_a_damaged_log_tail_is_dropped_and_said(tmp_path):
    cfg = write_config(tmp_path / "c.yaml", stop={"generations": 3})
    out = tmp_path / "run"
    assert run_mpi(1, str(cfg), "--out-dir", str(out)).returncode == 0
    log = out / "log.csv"
    good = log.read_bytes()
    log.write_bytes(good + b"4,12.5,3" + b"\0" * 50)         # a crash mid-append
    proc = run_mpi(2, str(cfg), "--out-dir", str(out), "--set", "stop.generations=5")
    assert proc.returncode == 0, proc.stderr
    assert "dropped 1 damaged line(s)" in proc.stdout
    rows = runlog.read(log)
    assert [int(r["Generation"]) for r in rows] == [1, 2, 3, 4, 5]
    assert all(len(r) == len(runlog.COLUMNS) for r in rows) and b"\0" not in log.read_bytes()


def test_config_yaml_is_never_written_through_a_symlink(tmp_path):
    cfg = write_config(tmp_path / "c.yaml", stop={"generations": 1})
    out = tmp_path / "run"
    out.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me\n")
    os.symlink(victim, out / "config.yaml")
    proc = run_mpi(1, str(cfg), "--out-dir", str(out))
    assert proc.returncode == 0, proc.stderr
    assert victim.read_text() == "keep me\n"
    assert not (out / "config.yaml").is_symlink()
    assert "population_size: 20" in (out / "config.yaml").read_text()
    assert f"out_dir {out.resolve()} (fresh start)" in proc.stdout


def test_read_only_out_dir_is_a_one_line_error(tmp_path):
    if os.geteuid() == 0:
        target = tmp_path / "file"
        target.write_text("x")             # root writes anywhere: use a file instead
        cfg = write_config(tmp_path / "c.yaml", out_dir=str(target))
        proc = run_mpi(2, str(cfg))
        assert proc.returncode == 2 and proc.stderr.count("is a file, not a directory") == 1
        check = run_mpi(2, "check", str(cfg))
        assert check.returncode == 2 and check.stderr.count("is a file, not a directory") == 1
    else:
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o500)
        cfg = write_config(tmp_path / "c.yaml", out_dir=str(ro / "run"))
        proc = run_mpi(2, str(cfg))
        assert proc.returncode == 2 and proc.stderr.count("cannot create its lock file") == 1
    assert "Traceback" not in proc.stderr


@contextmanager
def slow_job(tmp_path, ranks: int, **overrides):
    """A SlowReach job (every episode sleeps through its steps) that has logged generation 2:
    (the mpiexec process, OUT_DIR). Killed on the way out if still running."""
    cfg = write_config(tmp_path / "c.yaml", env_id="toy_envs:SlowReach-v0", eval_prob=0,
                       **overrides)
    out = tmp_path / "run"
    proc = start_mpi(ranks, str(cfg), "--out-dir", str(out))
    try:
        wait_for_line(proc, "gen     2")
        yield proc, out
    finally:
        if proc.poll() is None:
            proc.kill()


def test_suspend_and_resume_of_every_rank_is_not_an_episode_timeout(tmp_path):
    """What `scontrol suspend` / `scontrol resume` (gang scheduling) does to the ranks."""
    # every episode lasts 0.6 s of sleeping steps: the stop lands inside one
    with slow_job(tmp_path, 2, stop={"generations": 6}, episode_timeout_s=2.0,
                  population_size=8) as (proc, out):
        time.sleep(0.3)
        ranks = descendants(proc.pid)[1:]
        for pid in ranks:
            os.kill(pid, signal.SIGSTOP)
        time.sleep(5)                        # longer than episode_timeout_s
        for pid in ranks:
            os.kill(pid, signal.SIGCONT)
        stdout, stderr = proc.communicate(timeout=180)
    assert proc.returncode == 0, stderr
    assert "episode_timeout_s" not in stderr
    assert checkpoint.load(out / "checkpoint.h5").state.generation == 6


def mpi_rank_of(pid: int) -> int | None:
    """The MPI rank a process was started as (hydra sets PMI_RANK, Open MPI OMPI_COMM_WORLD_RANK)."""
    environ = process_environ(pid)
    rank = environ.get(b"PMI_RANK", environ.get(b"OMPI_COMM_WORLD_RANK"))
    return None if rank is None else int(rank)


@pytest.mark.parametrize("freeze_after", [0.0, pytest.param(1.2, marks=pytest.mark.every_mpi)])
def test_a_frozen_rank_ends_the_job_naming_it(tmp_path, freeze_after):
    """One rank SIGSTOPped alone (a hung node, a debugger): the others do not wait forever."""
    with slow_job(tmp_path, 3, stop={"generations": 1000}, episode_timeout_s=1.0,
                  population_size=12) as (proc, out):
        frozen = next(pid for pid in descendants(proc.pid) if mpi_rank_of(pid) == 1)
        time.sleep(freeze_after)          # inside an episode, or between two collectives
        os.kill(frozen, signal.SIGSTOP)
        start = time.monotonic()
        stdout, stderr = proc.communicate(timeout=120)
        ended = time.monotonic() - start
    assert proc.returncode not in (0, 2, 75), stderr
    if freeze_after:        # inside an episode: the others name it
        assert "rank 1 did not reach" in stderr, stderr
    else:                   # maybe inside a collective it had already entered: not nameable
        assert "rank 1 did not reach" in stderr or "a rank stopped inside" in stderr, stderr
    assert "stopped, hung outside an episode, or on a lost node" in stderr
    # the limit: (2 episodes of the last slot + 1) x episode_timeout_s + 10 s of grace
    assert ended < 13 + 20, ended
    assert checkpoint.load(out / "checkpoint.h5").state.generation >= 2


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
def test_a_full_disk_is_a_one_line_error_and_the_checkpoint_stays(tmp_path):
    import subprocess
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=400k", "tmpfs", str(disk)], check=True)
    try:
        (disk / "filler").write_bytes(b"\0" * 300_000)       # leaves room for a few checkpoints
        cfg = write_config(tmp_path / "c.yaml", stop={"generations": 200}, snapshot_freq=1)
        proc = run_mpi(2, str(cfg), "--out-dir", str(disk / "run"), timeout=120)
        assert proc.returncode == 2, (proc.stdout, proc.stderr)
        assert proc.stderr.count("No space left on device") == 1, proc.stderr
        assert "Traceback" not in proc.stderr and "run the same command again" in proc.stderr
        state = checkpoint.load(disk / "run" / "checkpoint.h5").state
        rows = runlog.read(disk / "run" / "log.csv")
        assert 0 <= state.generation < 200 and len(rows) >= state.generation
    finally:
        subprocess.run(["umount", str(disk)], check=False)


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
@needs("tensorboardX", "the tensorboard extra")
def test_a_full_tensorboard_disk_names_the_event_file_and_loses_no_finished_generation(tmp_path):
    """OUT_DIR/tb on a nearly full filesystem: the generation whose scalars do not fit ends the
    job in one line naming the event file; every generation before it is in TensorBoard, and
    once space is freed the same command resumes with no gap and no repeat."""
    import subprocess
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    out = tmp_path / "run"
    tb = out / "tb"
    tb.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(tb)], check=True)
    try:
        (tb / "filler").write_bytes(b"\0" * 8192)
        cfg = write_config(tmp_path / "c.yaml", stop={"generations": 60},
                           log={"tensorboard": True})
        proc = run_mpi(2, str(cfg), "--out-dir", str(out), timeout=120)
        assert proc.returncode == 2, (proc.stdout, proc.stderr)
        assert proc.stderr.count("No space left on device") == 1, proc.stderr
        assert f"{tb}/events.out.tfevents." in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr and "run the same command again" in proc.stderr
        stopped_at = checkpoint.load(out / "checkpoint.h5").state.generation
        assert 1 <= stopped_at < 60
        events = EventAccumulator(str(tb))
        events.Reload()
        assert [e.step for e in events.Scalars("GenRewMean")] == list(range(1, stopped_at + 1))

        (tb / "filler").unlink()
        more = f"stop.generations={stopped_at + 2}"
        proc = run_mpi(2, str(cfg), "--out-dir", str(out), "--set", more, timeout=120)
        assert proc.returncode == 0, proc.stderr
        events = EventAccumulator(str(tb))
        events.Reload()
        assert ([e.step for e in events.Scalars("GenRewMean")]
                == list(range(1, stopped_at + 3)))
    finally:                            # lazily: the readers may still hold the event files
        subprocess.run(["umount", "--lazy", str(tb)], check=False)


def test_check_refuses_what_the_start_would_refuse(tmp_path):
    cfg = write_config(tmp_path / "c.yaml", stop={"generations": 2})
    out = tmp_path / "run"
    assert run_mpi(1, str(cfg), "--out-dir", str(out)).returncode == 0
    changed = ["--out-dir", str(out), "--set", "noise_stdev=0.5"]
    check = run_mpi(2, "check", str(cfg), *changed)
    run = run_mpi(2, str(cfg), *changed)
    assert check.returncode == run.returncode == 2
    for proc in (check, run):
        assert proc.stderr.count("noise_stdev: checkpoint has 0.05, config has 0.5") == 1
        assert "--out-dir NEW" in proc.stderr
    assert "config OK" not in check.stdout


@pytest.mark.parametrize("point", [
    "the end of generation 2's episodes", "the update of generation 2",
    "the return check after generation 2", "the end of generation 2",
    "the start of generation 3"])
def test_a_rank_frozen_at_any_exchange_of_a_check_generation_ends_the_job(tmp_path, point):
    """stop.eval_return's check runs between the update and the end of the generation: a rank
    that stops at any of its exchanges (MPI_ES_TEST_FREEZE_AT freezes rank 1 there) ends the job
    within the allowance, as anywhere else."""
    cfg = write_config(tmp_path / "c.yaml", episode_timeout_s=1.0, population_size=12,
                       stop={"generations": 6, "eval_return": 1e9, "eval_every": 2})
    proc = start_mpi(2, str(cfg), "--out-dir", str(tmp_path / "run"),
                     extra_env={"MPI_ES_TEST_FREEZE_AT": f"1@{point}"})
    start = time.monotonic()
    try:
        stdout, stderr = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
            for pid in descendants(proc.pid):
                os.kill(pid, signal.SIGKILL)
    ended = time.monotonic() - start
    assert proc.returncode not in (0, 2, 75), (stdout, stderr)
    assert "stopped, hung outside an episode, or on a lost node" in stderr, stderr
    assert ended < 13 + 20, ended


def test_slow_storage_is_not_taken_for_a_frozen_rank(tmp_path):
    """A checkpoint write longer than the frozen-rank allowance (slow shared filesystems do
    this): rank 0 beats a heartbeat while it writes, and the job goes on."""
    cfg = write_config(tmp_path / "c.yaml", episode_timeout_s=1.0, population_size=12,
                       episodes_at_once=1, stop={"generations": 2})
    proc = start_mpi(2, str(cfg), "--out-dir", str(tmp_path / "run"),
                     extra_env={"MPI_ES_TEST_CHECKPOINT_PAUSE": "15"})   # allowance: 13 s
    stdout, stderr = proc.communicate(timeout=150)
    assert proc.returncode == 0, stderr
    assert "did not reach" not in stderr and "stopped inside" not in stderr
    assert checkpoint.load(tmp_path / "run" / "checkpoint.h5").state.generation == 2


@pytest.mark.every_mpi
@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
def test_a_noise_table_too_big_for_the_shared_window_directory_is_a_one_line_error(tmp_path):
    """Before anything is allocated, the job names the directory that cannot hold the table and
    how to move it (Open MPI: OMPI_MCA_osc_sm_backing_directory; the others keep /dev/shm)."""
    import subprocess
    from mpi_es.distributed.memory import memory_problem
    small = tmp_path / "shm"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(small)], check=True)
    try:
        table_entries = 4_000_000                       # 16 MB: more than the 8 MB directory
        if mpi_flavor() == "openmpi":
            cfg = write_config(tmp_path / "c.yaml",
                               noise_table={"seed": 5, "size": table_entries})
            proc = start_mpi(2, str(cfg), "--out-dir", str(tmp_path / "run"),
                             extra_env={"OMPI_MCA_osc_sm_backing_directory": str(small)})
            _, err = proc.communicate(timeout=120)
            assert proc.returncode == 2, err
            # one line of ours; mpirun adds its banner for any non-zero exit
            lines = [line for line in err.splitlines() if "noise_table.size" in line]
            assert len(lines) == 1 and f"{small} has 0.01 GiB free" in lines[0], err
            assert "Traceback" not in err
            assert "OMPI_MCA_osc_sm_backing_directory" in lines[0]
        else:
            problem = memory_problem(table_entries * 4, shm_dir=str(small))
            assert problem and f"{small} has 0.01 GiB free" in problem
            assert f"or enlarge {small}" in problem
    finally:
        subprocess.run(["umount", str(small)], check=False)
