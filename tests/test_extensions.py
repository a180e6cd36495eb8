"""Bring your own: a policy family and an algorithm of the user's, named `package.module:Name`
in a config, trained under real mpiexec like the built-in ones (examples/ holds both)."""
import h5py
import numpy as np
import pytest
import yaml

from conftest import REPO, run_mpi, write_config
from mpi_es import config
from mpi_es.config import ConfigError
from mpi_es.rundir import runlog

EXAMPLES = REPO / "examples"


def custom_policy_config(tmp_path, **overrides):
    return write_config(tmp_path / "c.yaml", stop={"generations": 8}, calc_obstat_prob=0.3,
                        model={"network": "tanh_linear:TanhLinear", "hidden_dims": None,
                               "init_scale": 0.01, "ac_noise_std": 0.0,
                               "nn_optimizer_args": {"stepsize": 0.05}}, **overrides)


@pytest.mark.mpi
def test_a_custom_policy_trains_under_mpiexec_and_evaluates(tmp_path):
    cfg = custom_policy_config(tmp_path)
    out = tmp_path / "out"
    proc = run_mpi(2, str(cfg), "--out-dir", str(out), cwd=EXAMPLES)
    assert proc.returncode == 0, proc.stderr
    rows = runlog.read(out / "log.csv")
    assert len(rows) == 8
    assert float(rows[-1]["GenRewMean"]) > float(rows[0]["GenRewMean"])   # it learns
    resolved = yaml.safe_load((out / "config.yaml").read_text())
    assert resolved["model"]["network"] == "tanh_linear:TanhLinear"
    assert resolved["model"]["init_scale"] == 0.01 and "hidden_dims" not in resolved["model"]
    with h5py.File(out / "checkpoint.h5") as f:
        assert f["theta"].shape == ((6 + 1) * 3,)       # ToyReach: 6 observations, 3 actions
    # a checkpoint never imports code by itself: evaluate needs the user's word for it
    refused = run_mpi(1, "evaluate", str(out), "--allow-import", "toy_envs", cwd=EXAMPLES)
    assert refused.returncode == 2 and "--allow-import tanh_linear" in refused.stderr
    played = run_mpi(2, "evaluate", str(out), "--episodes", "4", "--allow-import",
                     "tanh_linear", "--allow-import", "toy_envs", "--json", cwd=EXAMPLES)
    assert played.returncode == 0, played.stderr
    assert '"episodes": 4' in played.stdout


@pytest.mark.mpi
def test_a_custom_algorithm_with_its_own_state_is_bit_identical_and_resumes(tmp_path):
    from test_mpi import assert_same_for_any_rank_count_and_resume
    cfg = write_config(tmp_path / "c.yaml", algorithm="momentum_sign_es:MomentumSignES",
                       momentum_sign_es={"step_size": 0.02, "momentum": 0.8},
                       stop={"generations": 4})
    final = assert_same_for_any_rank_count_and_resume(tmp_path, cfg, cwd=EXAMPLES)
    assert set(final) >= {"theta", "optimizer/m"}
    assert np.any(final["optimizer/m"] != 0)
    rows = runlog.read(tmp_path / "n1" / "log.csv")
    assert all(float(r["MomentumNorm"]) > 0 for r in rows)
    with h5py.File(tmp_path / "n1" / "checkpoint.h5") as f:
        assert f["optimizer"].attrs["name"] == "momentum_sign" and f["optimizer"].attrs["t"] == 4


def test_a_stored_config_does_not_import_what_the_user_did_not_name(tmp_path):
    raw = {"env_id": "CartPole-v1", "algorithm": "no_such_module_here:Algo"}
    with pytest.raises(ConfigError, match="would import the Python module 'no_such_module_here'"):
        config.validate(raw, allow_import=set())
    with pytest.raises(ConfigError, match="cannot import 'no_such_module_here'"):
        config.validate(raw)


@pytest.mark.parametrize("reference, message", [
    ("a:b:c", "is not of the form package.module:Name"),
    (":Name", "is not of the form package.module:Name"),
    ("json:loads", "not a subclass of mpi_es.algorithms.base.Algorithm"),
    ("json:NoSuchThing", "is nothing, not a subclass"),
])
def test_bad_references_are_one_line_errors(reference, message):
    with pytest.raises(ConfigError, match=message):
        config.validate({"env_id": "CartPole-v1", "algorithm": reference})
    with pytest.raises(ConfigError, match=message.replace("algorithms.base.Algorithm",
                                                          "policies.base.PolicyFamily")):
        config.validate({"env_id": "CartPole-v1", "model": {"network": reference}})
