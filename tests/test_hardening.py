"""Inputs that used to slip through: one-line errors, logs with columns of another version,
control characters printed from a file."""
import csv

import h5py
import pytest

from conftest import REPO, run_serial, write_config
from mpi_es import config
from mpi_es.commands.info import printable
from mpi_es.config import ConfigError
from mpi_es.rundir import runlog


@pytest.mark.parametrize("override, message", [
    ({"env_id": "a:b:c"}, "'env_id': 'a:b:c' is neither a Gymnasium id nor module:Id"),
    ({"env_id": ":Id"}, "'env_id': ':Id' is neither a Gymnasium id nor module:Id"),
    ({"population_size": "1e20"}, "'population_size': Input should be less than or equal to "
                                  "10000000"),
    ({"noise_stdev": 1e38}, "'noise_stdev': Input should be less than or equal to 1000"),
    ({"out_dir": " "}, "'out_dir': out_dir must name a directory"),
])
def test_sizes_and_forms_that_cannot_run_are_one_line_errors(override, message):
    with pytest.raises(ConfigError, match=message):
        config.validate({"env_id": "CartPole-v1", **override})


def test_out_dir_expands_the_home_directory(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    cfg = config.validate({"env_id": "CartPole-v1", "out_dir": "~/runs/a"})
    assert cfg.out_dir == str(tmp_path / "runs" / "a")


def test_an_alias_bomb_through_set_is_refused_like_one_in_a_file(tmp_path):
    cfg = write_config(tmp_path / "c.yaml")
    bomb = "[" + ",".join(["&a [x,x,x,x,x,x,x,x,x]"] + ["*a"] * 150) + "]"
    with pytest.raises(ConfigError, match="--set .*YAML aliases"):
        config.load(cfg, [f"model.hidden_dims={bomb}"])


def test_a_log_with_a_column_this_version_does_not_know_keeps_its_rows(tmp_path):
    path = tmp_path / "log.csv"
    header = runlog.COLUMNS[:3] + ["ColumnFromTheFuture"] + runlog.COLUMNS[3:]
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=header, restval="")
        writer.writeheader()
        for g in range(1, 6):
            writer.writerow({"Generation": g, "GenRewMean": g * 1.5, "ColumnFromTheFuture": -g})
    log = runlog.RunLog(path, keep_through=3)       # a resume from generation 3
    assert log.dropped_damaged == 0
    rows = runlog.read(path)
    assert [r["Generation"] for r in rows] == ["1", "2", "3"]
    assert [r["ColumnFromTheFuture"] for r in rows] == ["-1", "-2", "-3"]
    log.append({"Generation": 4, "GenRewMean": 6.0})
    assert runlog.read(path)[-1]["ColumnFromTheFuture"] == ""


def test_printable_escapes_what_would_act_on_a_terminal():
    assert printable("ok \u00e9\t") == "ok \u00e9\t"
    assert printable("a\x1b]52;c;ZXZpbA==\x07\rgeneration: 999999\u2028") == \
        "a\\x1b]52;c;ZXZpbA==\\x07\\rgeneration: 999999\\u2028"


@pytest.mark.mpi
def test_info_prints_control_characters_stored_in_a_checkpoint_escaped(tmp_path):
    cfg = write_config(tmp_path / "c.yaml", stop={"generations": 1})
    out = tmp_path / "run"
    from conftest import run_mpi
    assert run_mpi(1, str(cfg), "--out-dir", str(out)).returncode == 0
    with h5py.File(out / "checkpoint.h5", "r+") as f:
        f.attrs["config"] = f.attrs["config"] + "# \x1b[2J\x1b]0;pwned\x07\rgeneration: 999999\n"
        f.attrs["mujoco_version"] = "3\x1b[31m"
    proc = run_serial("info", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "\x1b" not in proc.stdout and "\r" not in proc.stdout and "\x07" not in proc.stdout
    assert "\\x1b[2J\\x1b]0;pwned\\x07\\rgeneration: 999999" in proc.stdout
    assert REPO.exists()


@pytest.mark.parametrize("env_id", ["HalfCheetah-v5", "gymnasium:HalfCheetah-v5"])
def test_mujoco_warnings_are_routed_for_module_ids_too(env_id):
    """Without a handler MuJoCo appends its warnings to MUJOCO_LOG.TXT in the current
    directory; `module:Id` ids (the bring-your-own-env case) get the handler as plain ids do."""
    from conftest import run_python
    code = ("import sys, mujoco\n"
            "from mpi_es.envs import route_mujoco_warnings\n"
            "route_mujoco_warnings(sys.argv[1])\n"
            "print(getattr(mujoco.get_mju_user_warning(), '__name__', None))\n")
    proc = run_python(code, env_id, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "_mujoco_warning"


def test_the_memory_pre_flight_counts_the_ranks_parameter_vectors_too():
    """40 bytes per parameter per rank, plus 4 for each episode it plays at once."""
    from mpi_es.training.setup import prepare
    raw = {"env_id": "CartPole-v1", "noise_table": {"size": 1_000_000_000},
           "model": {"ac_noise_std": 0, "hidden_dims": [20000, 20000, 20000]}}
    one_at_a_time = config.validate({**raw, "episodes_at_once": 1})
    with pytest.raises(ConfigError, match=r"'model': 800\d+ parameters need about 32.\d+ GiB "
                                          r"per rank \(2 ranks on this node"):
        prepare(one_at_a_time, ranks_on_node=2)
    with pytest.raises(ConfigError, match=r"need about 53.\d+ GiB per rank .* a smaller "
                                          r"episodes_at_once \(8\)"):
        prepare(config.validate(raw), ranks_on_node=2)
