"""One job per run directory, with two real concurrent jobs."""
import time

import pytest

from conftest import run_mpi, run_serial, start_mpi, wait_for_line, write_config
from mpi_es.rundir import checkpoint, runlock, runlog

pytestmark = pytest.mark.mpi


@pytest.mark.every_mpi
def test_a_second_job_on_the_same_out_dir_exits_2_at_once(tmp_path):
    cfg = write_config(tmp_path / "c.yaml", stop={"generations": 40})
    out = tmp_path / "run"
    first = start_mpi(2, str(cfg), "--out-dir", str(out),
                      extra_env={"MPI_ES_TEST_CHECKPOINT_PAUSE": "0.5"})
    try:
        wait_for_line(first, "gen     2")
        started = time.monotonic()
        second = run_mpi(2, str(cfg), "--out-dir", str(out), "--set", "seed=9", timeout=60)
        assert second.returncode == 2, second.stderr
        assert time.monotonic() - started < 30         # refused at once, no training started
        assert second.stderr.count("is in use by another job") == 1
        assert str(out.resolve()) in second.stderr
        assert "pid " in second.stderr and "--out-dir NEW" in second.stderr
        assert "Traceback" not in second.stderr
        check = run_serial("check", str(cfg), "--out-dir", str(out))
        assert check.returncode == 0 and "in use by another job" in check.stdout
        assert first.poll() in (None, 0), "the first job must be unaffected"
    finally:
        stdout, stderr = first.communicate(timeout=240)
    assert first.returncode == 0, stderr
    # the first job's run is whole: every generation once, its seed in config and checkpoint
    assert [int(r["Generation"]) for r in runlog.read(out / "log.csv")] == list(range(1, 41))
    assert "seed: 3" in (out / "config.yaml").read_text()
    assert checkpoint.load(out / "checkpoint.h5").state.generation == 40
    # released when the job ended: the same command now resumes (and finds it finished)
    again = run_mpi(2, str(cfg), "--out-dir", str(out), timeout=60)
    assert again.returncode == 0 and "reached stop.generations=40" in again.stdout


@pytest.mark.every_mpi
def test_the_lock_dies_with_its_holder(tmp_path):
    lock = runlock.acquire(tmp_path)
    with pytest.raises(runlock.RunDirectoryBusy, match="in use by another job"):
        from conftest import run_python
        code = ("import sys; from mpi_es.rundir import runlock\n"
                "try:\n    runlock.acquire(sys.argv[1])\nexcept runlock.RunDirectoryBusy as e:\n"
                "    print(e); sys.exit(3)\n")
        proc = run_python(code, str(tmp_path))
        assert proc.returncode == 3
        raise runlock.RunDirectoryBusy(proc.stdout)
    assert runlock.held_by(tmp_path) is not None
    lock.release()
    assert runlock.held_by(tmp_path) is None
    runlock.acquire(tmp_path).release()
    (tmp_path / "file").write_text("x")
    with pytest.raises(runlock.ConfigError, match="is a file"):
        runlock.acquire(tmp_path / "file")
