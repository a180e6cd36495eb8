"""Files from elsewhere are data: hostile checkpoints and configs exit 2 with one message naming
the file and field, quickly, in bounded memory, with nothing on disk changed."""
import resource
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

from conftest import REPO, run_env, run_mpi, run_python, run_serial, write_config
from mpi_es import config
from mpi_es.config import ConfigError

pytestmark = pytest.mark.mpi

BOMB = ('a: &a ["x","x","x","x","x","x","x","x","x"]\n'
        + "".join(f'{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},'
                  f'*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},'
                  f'*{chr(97 + i)}]\n' for i in range(8))
        + "env_id: *i\n")


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    base = tmp_path_factory.mktemp("good")
    cfg = write_config(base / "c.yaml", stop={"generations": 2})
    out = base / "run"
    proc = run_mpi(1, str(cfg), "--out-dir", str(out))
    assert proc.returncode == 0, proc.stderr
    return cfg, out


def hostile(kind: str, src, dst, tmp_path):
    dst.write_bytes(src.read_bytes())
    with h5py.File(dst, "r+") as f:
        if kind == "huge-dataset":       # declares 8 GB, stores nothing
            del f["theta"]
            f.create_dataset("theta", shape=(2_000_000_000,), dtype=np.float32)
        elif kind == "external-link":
            del f["theta"]
            f["theta"] = h5py.ExternalLink("/etc/hostname", "/")
        elif kind == "soft-link":
            del f["obstat/sum"]
            f["obstat/sum"] = h5py.SoftLink("/obstat/sumsq")
        elif kind == "external-storage":
            raw = tmp_path / "raw.bin"
            raw.write_bytes(b"\0" * 4 * f["theta"].size)
            size = f["theta"].size
            del f["theta"]
            f.create_dataset("theta", shape=(size,), dtype=np.float32,
                             external=[(str(raw), 0, 4 * size)])
        elif kind == "nan-generation":
            f.attrs["generation"] = float("nan")
        elif kind == "string-generation":
            f.attrs["generation"] = "seven"
        elif kind == "negative-generation":
            f.attrs["generation"] = -3
        elif kind == "wrong-obstat":
            del f["obstat/sumsq"]
            f["obstat"].create_dataset("sumsq", data=np.ones(3))
        elif kind == "unknown-optimizer":
            f["optimizer"].attrs["name"] = "lion"
        elif kind == "nan-count":
            f["obstat/count"][()] = np.nan
        elif kind == "nan-adam":
            v = f["optimizer/v"][...]
            v[0] = np.nan
            f["optimizer/v"][...] = v
        elif kind == "python-tag":
            f.attrs["config"] = "!!python/object/apply:os.system ['echo pwned']\n"
        elif kind == "malformed-config":
            f.attrs["config"] = "env_id: [unclosed\n"
        elif kind == "bomb-config":
            f.attrs["config"] = BOMB


CASES = [
    ("huge-dataset", "/theta declares"),
    ("external-link", "/theta is a ExternalLink: links are not followed"),
    ("soft-link", "/obstat/sum is a SoftLink"),
    ("external-storage", "/theta keeps its data outside the file"),
    ("nan-generation", "attribute generation is nan"),
    ("string-generation", "attribute generation must be a number"),
    ("negative-generation", "attribute generation must be >= 0"),
    ("wrong-obstat", "/obstat/sumsq has shape (3,)"),
    ("unknown-optimizer", "unknown name 'lion'"),
    ("nan-count", "/obstat/count holds NaN"),
    ("nan-adam", "/optimizer/v holds NaN"),
    ("python-tag", "stored config"),
    ("malformed-config", "stored config): malformed YAML"),
    ("bomb-config", "stored config"),
]


@pytest.mark.parametrize("kind, message", CASES, ids=[c[0] for c in CASES])
def test_hostile_checkpoints_are_refused_by_resume_and_info(tmp_path, good, kind, message):
    cfg, out = good
    bad = tmp_path / "bad.h5"
    hostile(kind, out / "checkpoint.h5", bad, tmp_path)
    before = bad.read_bytes()
    run_dir = tmp_path / "resumed"
    run_dir.mkdir()
    (run_dir / "log.csv").write_text("Generation\n1\n")
    started = time.monotonic()
    proc = run_mpi(2, str(cfg), "--out-dir", str(run_dir), "--resume", str(bad), timeout=120)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert proc.stderr.count(message) == 1 and str(bad) in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and "pwned" not in proc.stdout
    assert time.monotonic() - started < 60
    assert bad.read_bytes() == before
    assert (run_dir / "log.csv").read_text() == "Generation\n1\n"     # nothing changed
    if kind in ("python-tag", "malformed-config", "bomb-config"):
        return        # info prints the stored config as text; it does not parse it
    info = run_serial("info", str(bad))
    assert info.returncode == 2 and message in info.stderr and "Traceback" not in info.stderr


def test_info_on_a_huge_declared_dataset_stays_small(tmp_path, good):
    _, out = good
    bad = tmp_path / "bad.h5"
    hostile("huge-dataset", out / "checkpoint.h5", bad, tmp_path)
    # VmHWM, this process's own peak (ru_maxrss also carries the forking parent's, here a
    # pytest process that may have loaded TensorFlow)
    code = ("import sys\n"
            "from mpi_es.cli import main\n"
            "status = main(['info', sys.argv[1]])\n"
            "print([l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')][0])\n"
            "sys.exit(status)\n")
    proc = run_python(code, str(bad), timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert int(proc.stdout.split()[-1]) < 500_000          # KB: far below the 8 GB declared


def test_evaluate_does_not_import_a_module_named_only_in_the_file(tmp_path, good):
    _, out = good
    (tmp_path / "evil.py").write_text("open('PWNED', 'w').write('x')\n")
    bad = tmp_path / "bad.h5"
    bad.write_bytes((out / "checkpoint.h5").read_bytes())
    with h5py.File(bad, "r+") as f:
        f.attrs["config"] = f.attrs["config"].replace("toy_envs:ToyReach-v0",
                                                      "evil:ToyReach-v0")
    proc = subprocess.run([sys.executable, "-m", "mpi_es", "evaluate", str(bad)],
                          capture_output=True, text=True, env=run_env(), cwd=tmp_path,
                          timeout=60)
    assert proc.returncode == 2 and "--allow-import evil" in proc.stderr
    assert not (tmp_path / "PWNED").exists()
    trusted = run_serial("evaluate", str(out / "checkpoint.h5"), "--episodes", "1",
                         "--allow-import", "toy_envs")
    assert trusted.returncode == 0, trusted.stderr


def test_yaml_bombs_and_python_tags_in_config_files(tmp_path):
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(BOMB)
    limit = resource.getrlimit(resource.RLIMIT_AS)
    started = time.monotonic()
    with pytest.raises(ConfigError, match="alias"):
        config.load(bomb)
    assert time.monotonic() - started < 2 and resource.getrlimit(resource.RLIMIT_AS) == limit
    tag = tmp_path / "tag.yaml"
    tag.write_text("env_id: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ConfigError, match="malformed YAML"):
        config.load(tag)
    big = tmp_path / "big.yaml"
    big.write_text("env_id: Ant-v5\n" + "# padding\n" * 200_000)
    with pytest.raises(ConfigError, match="too large"):
        config.load(big)
    proc = run_mpi(2, str(bomb), timeout=60)
    assert proc.returncode == 2 and proc.stderr.count("alias bomb") == 1
