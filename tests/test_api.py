"""The Python API under real mpiexec: a script trains a config dict with its own env registered
in-process, loads the policy, evaluates it; the same on 1 and 2 ranks."""
import json

import pytest

from conftest import TESTS, run_mpi

pytestmark = pytest.mark.mpi


def test_a_script_trains_loads_and_evaluates_the_same_on_any_rank_count(tmp_path):
    outputs = []
    for n in (1, 2):
        proc = run_mpi(n, str(TESTS / "mpi_scripts" / "api_train.py"), str(tmp_path / f"n{n}"),
                       module=False)
        assert proc.returncode == 0, proc.stderr
        out = json.loads(proc.stdout.strip().splitlines()[-1])
        # a bad key is a ConfigError on every rank, naming the key
        assert out.pop("refusals") == ["config: unknown key 'populaton_size' (did you mean "
                                       "'population_size'?)"] * n
        outputs.append(out)
    assert outputs[0] == outputs[1]
    assert outputs[0]["generation"] == 6 and outputs[0]["episodes"] == 4
    assert outputs[0]["timesteps"] > 0 and len(outputs[0]["action"]) == 1
