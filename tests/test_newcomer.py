"""What a new user hits first: where commands look up code, and a clone named like the package."""
import shutil
import subprocess
import sys

import pytest

from conftest import REPO, TESTS, run_env


def test_python_m_from_the_folder_that_holds_a_clone_named_mpi_es(tmp_path):
    (tmp_path / "mpi_es").symlink_to(REPO)          # `git clone ... mpi_es`, then stay put
    proc = subprocess.run([sys.executable, "-m", "mpi_es", "--version"], cwd=tmp_path,
                          capture_output=True, text=True, env=run_env(), timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "mpi_es 0.1.0" and "Traceback" not in proc.stderr


def test_the_console_script_finds_a_module_id_env_in_the_current_directory(tmp_path):
    shutil.copy(TESTS / "toy_envs.py", tmp_path / "my_own_envs.py")
    (tmp_path / "c.yaml").write_text("env_id: my_own_envs:ToyReach-v0\npopulation_size: 4\n"
                                     "stop: {generations: 1}\nnoise_table: {size: 100000}\n"
                                     "model: {hidden_dims: [4]}\n")
    script = shutil.which("mpi-es", path=str(__import__("pathlib").Path(sys.executable).parent))
    for command in ([script], [sys.executable, "-m", "mpi_es"]):
        proc = subprocess.run([*command, "check", "c.yaml", "--out-dir", str(tmp_path / "o")],
                              cwd=tmp_path, capture_output=True, text=True, env=run_env(),
                              timeout=120)
        assert proc.returncode == 0, (command, proc.stderr)
        assert "config OK" in proc.stdout


def test_check_estimates_a_timesteps_budget_without_mujocos_deprecation_noise(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "mpi_es", "check", "jobs/paper/halfcheetah.yaml",
                           "--out-dir", str(tmp_path / "o")], cwd=REPO, capture_output=True,
                          text=True, env=run_env(), timeout=120)
    assert proc.returncode == 0, proc.stderr
    estimate = next(line for line in proc.stdout.splitlines() if line.startswith("estimated"))
    assert estimate.endswith("for 2.88M timesteps")          # the job stops on timesteps
    assert "settotalmass" not in proc.stderr


def test_every_command_describes_itself_and_its_defaults():
    for command, text in [("plot", "default: curve.png in the first RUN_DIR"),
                          ("export", "run directory as a .keras model"),
                          ("info", "stored config")]:
        proc = subprocess.run([sys.executable, "-m", "mpi_es", command, "--help"],
                              capture_output=True, text=True, env=run_env(), timeout=60)
        assert proc.returncode == 0 and text in " ".join(proc.stdout.split()), proc.stdout


def test_env_kwargs_reach_the_environment_and_are_checked():
    from mpi_es import config
    from mpi_es.envs import EnvError
    from mpi_es.rundir.resume import config_differences
    from mpi_es.training.setup import prepare
    cfg = config.validate({"env_id": "HalfCheetah-v5", "env_kwargs": {"frame_skip": 2}})
    assert prepare(cfg).env.unwrapped.frame_skip == 2
    bad = config.validate({"env_id": "HalfCheetah-v5", "env_kwargs": {"hardcore": True}})
    with pytest.raises(EnvError, match="'env_kwargs': HalfCheetah-v5 does not take "
                                       r"\['hardcore'\]"):
        prepare(bad)
    other = config.validate({"env_id": "HalfCheetah-v5", "env_kwargs": {"frame_skip": 3}})
    assert config_differences(cfg.to_yaml(), other) == [
        "env_kwargs.frame_skip: checkpoint has 2, config has 3"]


@pytest.mark.mpi
def test_a_run_with_env_kwargs_is_evaluated_with_them(tmp_path):
    from conftest import run_mpi, write_config
    cfg = write_config(tmp_path / "c.yaml", env_kwargs={"dim": 2}, stop={"generations": 2})
    out = tmp_path / "run"
    assert run_mpi(2, str(cfg), "--out-dir", str(out)).returncode == 0
    proc = run_mpi(1, "evaluate", str(out), "--episodes", "2", "--allow-import", "toy_envs")
    assert proc.returncode == 0, proc.stderr          # a 2-D ToyReach: 4 observations


@pytest.mark.mpi
def test_resuming_from_an_earlier_snapshot_keeps_the_discarded_branch_and_says_so(tmp_path):
    from conftest import run_mpi, write_config
    from mpi_es.rundir import checkpoint, runlog
    cfg = write_config(tmp_path / "c.yaml", stop={"generations": 6}, snapshot_freq=2)
    out = tmp_path / "run"
    assert run_mpi(2, str(cfg), "--out-dir", str(out)).returncode == 0
    before = runlog.read(out / "log.csv")
    proc = run_mpi(2, str(cfg), "--out-dir", str(out), "--resume",
                   str(out / "snapshots" / "snapshot_00002.h5"), "--set", "stop.generations=3")
    assert proc.returncode == 0, proc.stderr
    assert "resuming at generation 2 discards generations 3..6 of this run" in proc.stdout
    aside = next(out.glob("discarded-*"))
    assert runlog.read(aside / "log.csv") == before
    assert checkpoint.load(aside / "checkpoint.h5").state.generation == 6
    assert sorted(p.name for p in (aside / "snapshots").iterdir()) == [
        "snapshot_00004.h5", "snapshot_00006.h5"]
    assert len(runlog.read(out / "log.csv")) == 3


@pytest.mark.mpi
def test_a_video_without_its_extra_is_one_line_and_with_it_prints_no_false_error(tmp_path):
    from conftest import run_mpi
    out = tmp_path / "run"
    assert run_mpi(1, "jobs/cartpole.yaml", "--out-dir", str(out),
                   "--set", "stop.generations=1").returncode == 0
    blocked = tmp_path / "blocked" / "pygame"
    blocked.mkdir(parents=True)
    (blocked / "__init__.py").write_text("raise ImportError('pygame blocked by the test')\n")
    env = run_env()
    env["PYTHONPATH"] = f"{blocked.parent}:{env['PYTHONPATH']}"
    command = [sys.executable, "-m", "mpi_es", "evaluate", str(out), "--episodes", "1",
               "--video", str(tmp_path / "v.gif")]
    missing = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert missing.returncode == 2, missing.stderr
    assert "Traceback" not in missing.stderr and len(missing.stderr.strip().splitlines()) == 1
    assert 'pip install -e ".[video]"' in missing.stderr
    made = subprocess.run(command, capture_output=True, text=True, env=run_env(), timeout=120)
    assert made.returncode == 0, made.stderr
    assert "error" not in made.stderr.lower() and (tmp_path / "v.gif").stat().st_size > 1000
