"""stop.eval_return: the run ends once the noise-free policy's mean over stop.eval_episodes
evaluation episodes reaches a return (real mpiexec)."""
import json
import time

import pytest

from conftest import run_mpi, run_serial, write_config
from mpi_es.rundir import checkpoint, runlog

pytestmark = pytest.mark.mpi
CHECKS = {"eval_every": 3, "eval_episodes": 5}


def checks_of(out) -> dict[int, float]:
    return {int(r["Generation"]): float(r["TargetEvalMean"])
            for r in runlog.read(out / "log.csv") if r["TargetEvalMean"]}


@pytest.fixture(scope="module")
def unreached(tmp_path_factory):
    """18 generations with a target no policy reaches: a check every 3rd generation."""
    base = tmp_path_factory.mktemp("unreached")
    cfg = write_config(base / "c.yaml", stop={"generations": 18, "eval_return": 1e9, **CHECKS})
    proc = run_mpi(2, str(cfg), "--out-dir", str(base / "run"))
    assert proc.returncode == 0, proc.stderr
    assert "reached stop.generations=18" in proc.stdout
    return base / "run"


def test_checks_run_every_eval_every_generations_and_count_their_steps(unreached):
    rows = runlog.read(unreached / "log.csv")
    assert sorted(checks_of(unreached)) == [3, 6, 9, 12, 15, 18]
    # ToyReach episodes last 30 steps: a check adds its 5 episodes to the generation's steps
    for row in rows:
        checked = int(row["Generation"]) % 3 == 0
        assert int(row["EpisodesThisGen"]) - (5 if checked else 0) == 20 + int(row["EvalGenCount"])
    assert int(rows[-1]["TimestepsSoFar"]) == sum(int(r["TimestepsThisGen"]) for r in rows)


def test_a_check_is_what_evaluate_prints_for_its_generation(unreached):
    proc = run_serial("evaluate", str(unreached / "snapshots" / "snapshot_00012.h5"), "--seed",
                      "12", "--episodes", "5", "--json", "--allow-import", "toy_envs")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["return_mean"] == checks_of(unreached)[12]


def test_the_run_stops_at_the_first_check_that_reaches_the_target(tmp_path, unreached):
    checks = checks_of(unreached)
    target = checks[9]
    first = min(g for g, mean in checks.items() if mean >= target)
    cfg = write_config(tmp_path / "c.yaml", stop={"generations": 18, "eval_return": target,
                                                  **CHECKS})
    out = tmp_path / "run"
    proc = run_mpi(3, str(cfg), "--out-dir", str(out))
    assert proc.returncode == 0, proc.stderr
    assert f"reached stop.eval_return={target:g} (mean {checks[first]:.2f} over 5 noise-free " \
           f"episodes after generation {first})" in proc.stdout
    rows = runlog.read(out / "log.csv")
    assert len(rows) == first          # the same run as on 2 ranks, up to the stop
    assert checks_of(out) == {g: m for g, m in checks.items() if g <= first}
    # the finished run stays finished: the resume decides on the stored check, before any
    # noise table is built, and trains nothing
    started = time.monotonic()
    again = run_mpi(1, str(cfg), "--out-dir", str(out))
    assert again.returncode == 0 and "reached stop.eval_return" in again.stdout
    assert "noise table" not in again.stdout and time.monotonic() - started < 20
    assert runlog.read(out / "log.csv") == rows
    assert checkpoint.load(out / "checkpoint.h5").state.last_check == (first, 5, checks[first])


def test_a_resume_decides_on_the_stored_check_only_when_it_compares(tmp_path, unreached):
    """stop.eval_return may change on resume (the stored check is held against the new value);
    stop.eval_episodes may change too, but then the stored check, over other episodes, decides
    nothing: the run trains to its next check, which is logged and counted like any other."""
    checks = checks_of(unreached)
    cfg = write_config(tmp_path / "c.yaml", stop={"generations": 6, "eval_return": 1e9,
                                                  **CHECKS})
    out = tmp_path / "run"
    assert run_mpi(2, str(cfg), "--out-dir", str(out)).returncode == 0       # to generation 6
    rows = runlog.read(out / "log.csv")
    lower = run_mpi(2, str(cfg), "--out-dir", str(out), "--set", "stop.generations=18",
                    "--set", f"stop.eval_return={checks[6]}")
    assert lower.returncode == 0 and "already" in lower.stdout, lower.stdout
    assert runlog.read(out / "log.csv") == rows
    other = run_mpi(2, str(cfg), "--out-dir", str(out), "--set", "stop.generations=18",
                    "--set", f"stop.eval_return={checks[6]}", "--set", "stop.eval_episodes=4")
    assert other.returncode == 0, other.stderr
    after = runlog.read(out / "log.csv")
    assert len(after) == 9 and after[-1]["TargetEvalMean"] != ""   # the next check, at 9
    assert "over 4 noise-free episodes after generation 9" in other.stdout
