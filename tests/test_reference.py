"""The decentralized update reproduces the rank-0 update it replaced, bit for bit.

tests/data/reference/ holds what the rank-0 update (commit 64f7fbd) produced: the sha256 of every
array of a 4-generation run, and its generation-2 snapshot (see the README there).
"""
import hashlib
import json
import shutil

import h5py
import pytest

from conftest import TESTS, run_mpi

pytestmark = pytest.mark.mpi

REFERENCE = TESTS / "data" / "reference"
DIGESTS = json.loads((REFERENCE / "final_digests.json").read_text())


def digests(path):
    with h5py.File(path) as f:
        out = {n: hashlib.sha256(f[n][...].tobytes()).hexdigest()
               for n in ("theta", "obstat/sum", "obstat/sumsq")}
        out["obstat/count"] = float(f["obstat/count"][...])
        out |= {f"optimizer/{k}": hashlib.sha256(v[...].tobytes()).hexdigest()
                for k, v in f["optimizer"].items()}
        out["optimizer/t"] = int(f["optimizer"].attrs["t"])
        out["generation"] = int(f.attrs["generation"])
    return out


@pytest.mark.every_mpi
@pytest.mark.parametrize("variant", sorted(DIGESTS))
def test_fresh_runs_match_the_rank0_update_for_1_2_and_3_ranks(tmp_path, variant):
    for n in (1, 2, 3):
        out = tmp_path / f"n{n}"
        proc = run_mpi(n, str(REFERENCE / f"{variant}.yaml"), "--out-dir", str(out))
        assert proc.returncode == 0, proc.stderr
        assert digests(out / "checkpoint.h5") == DIGESTS[variant], f"{n} ranks"


@pytest.mark.every_mpi
@pytest.mark.parametrize("variant", sorted(DIGESTS))
def test_resuming_a_checkpoint_of_the_rank0_update_is_exact(tmp_path, variant):
    for n in (2, 3):
        old = tmp_path / f"gen2-{n}.h5"
        shutil.copy(REFERENCE / f"{variant}.gen2.h5", old)
        out = tmp_path / f"n{n}"
        proc = run_mpi(n, str(REFERENCE / f"{variant}.yaml"), "--out-dir", str(out),
                       "--resume", str(old))
        assert proc.returncode == 0, proc.stderr
        assert "at generation 2" in proc.stdout
        assert digests(out / "checkpoint.h5") == DIGESTS[variant], f"{n} ranks"
