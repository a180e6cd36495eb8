# The tests' own process computes as every rank does (loading a checkpoint, comparing its BLAS
# kernel): pinned before anything imports NumPy.
from mpi_es.blas import pin_blas
pin_blas()

import functools
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
MPI_TIMEOUT = 300


def needs(module: str, why: str):
    """Skip without `module`, except in CI (.ci/run sets CI=1), where every extra is tested."""
    import importlib.util
    missing = importlib.util.find_spec(module) is None and not os.environ.get("CI")
    return pytest.mark.skipif(missing, reason=f"{module} not installed ({why})")


def mpiexec_path() -> str:
    local = Path(sys.executable).with_name("mpiexec")
    found = str(local) if local.exists() else shutil.which("mpiexec")
    if found is None:
        pytest.fail("mpiexec not found: install the 'mpich' extra or a system MPI")
    return found


@functools.cache
def mpi_flavor() -> str:
    """Whose mpiexec the tests launch: 'mpich', 'intel' or 'openmpi' (.ci/run tests all three)."""
    text = subprocess.run([mpiexec_path(), "--version"], capture_output=True, text=True,
                          timeout=60).stdout.lower()
    if "open mpi" in text or "open-mpi" in text or "openrte" in text:    # 4.x says OpenRTE
        return "openmpi"
    if "intel" in text:
        return "intel"
    return "mpich"


def mpiexec_command(n: int) -> list[str]:
    """`mpiexec -n N` as this MPI needs it on a 2-core machine (3 ranks oversubscribe)."""
    extra = ["--oversubscribe"] if mpi_flavor() == "openmpi" else []
    return [mpiexec_path(), *extra, "-n", str(n)]


def run_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS), env.get("PYTHONPATH")]))
    env["MPIEXEC_TIMEOUT"] = str(MPI_TIMEOUT - 30)   # hydra kills the job before pytest gives up
    env.setdefault("OMP_NUM_THREADS", "1")
    if os.geteuid() == 0:       # CI runs as root, which Open MPI's mpirun refuses unless told
        env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    return env


def run_python(code: str, *args: str, env: dict | None = None, timeout: float = 120,
               cwd: Path = REPO) -> subprocess.CompletedProcess:
    """`python -c CODE ARGS` in a fresh interpreter (run_env() unless `env`), output captured:
    for what must be seen from a clean start (imports, banners, peak memory)."""
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          env=run_env() if env is None else env, cwd=cwd, timeout=timeout)


def run_mpi(n: int, *args: str, timeout: float = MPI_TIMEOUT, module: bool = True,
            nodes: int | None = None, cwd: Path = REPO):
    """`mpiexec -n N python -m mpi_es ARGS` (or a script), for real.

    nodes=K makes MPICH split this host into K simulated nodes (MPIR_CVAR_NUM_CLIQUES): ranks
    are dealt to them round-robin and only ranks of one node share memory.
    """
    target = ["-m", "mpi_es", *args] if module else list(args)
    cmd = [*mpiexec_command(n), sys.executable, *target]
    env = run_env()
    if nodes is not None:
        if mpi_flavor() != "mpich":
            pytest.fail("simulated nodes (MPIR_CVAR_NUM_CLIQUES) need MPICH's mpiexec")
        env["MPIR_CVAR_NUM_CLIQUES"] = str(nodes)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env,
                          cwd=cwd)


def run_serial(*args: str, timeout: float = 120, env: dict | None = None):
    cmd = [sys.executable, "-m", "mpi_es", *args]
    full = run_env()
    if env is not None:
        full = {**env, "PYTHONPATH": full["PYTHONPATH"]}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=full,
                          cwd=REPO)


def write_config(path: Path, **overrides) -> Path:
    """A tiny, fast config (ToyReach from toy_envs), updated with overrides (nested dicts)."""
    cfg = {
        "env_id": "toy_envs:ToyReach-v0", "seed": 3, "out_dir": str(path.parent / "out"),
        "population_size": 20, "noise_stdev": 0.05, "snapshot_freq": 2,
        "calc_obstat_prob": 0.3, "eval_prob": 0.2,
        "stop": {"generations": 4}, "noise_table": {"seed": 5, "size": 200_000},
        "model": {"hidden_dims": [8], "ac_noise_std": 0.05, "nn_optimizer_args": {"stepsize": 0.05}},
    }
    for key, value in overrides.items():      # None removes a key (nested ones too)
        if value is None:
            cfg.pop(key, None)
        elif isinstance(value, dict) and isinstance(cfg.get(key), dict):
            merged = {**cfg[key], **value}
            cfg[key] = {k: v for k, v in merged.items() if v is not None}
        else:
            cfg[key] = value
    path.write_text(yaml.safe_dump(cfg))
    return path


def process_environ(pid: int) -> dict[bytes, bytes]:
    """A process's environment ({} once it is gone)."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return dict(item.split(b"=", 1) for item in f.read().split(b"\0") if b"=" in item)
    except OSError:
        return {}


def descendants(pid: int) -> list[int]:
    """pid and every process below it (hydra gives each rank a session of its own)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def kill_job(pid: int, sig: int = 9) -> None:
    """Deliver sig to mpiexec and every proxy and rank under it, as close to at once as we can."""
    for p in descendants(pid):
        try:
            os.kill(p, sig)
        except ProcessLookupError:
            pass


def start_mpi(n: int, *args: str, extra_env: dict | None = None) -> subprocess.Popen:
    cmd = [*mpiexec_command(n), sys.executable, "-m", "mpi_es", *args]
    env = run_env()
    env.update(extra_env or {})
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, cwd=REPO)


def start_job_script(*args: str, env: dict) -> subprocess.Popen:
    """`bash mpi_es/scripts/launch.sh ARGS` as SLURM starts a batch step: SIGINT at its default.
    (A shell that ignored SIGINT when it started, e.g. one run in the background of a
    non-interactive shell, cannot trap it, and pytest may run under one.)"""
    return subprocess.Popen(["bash", str(REPO / "mpi_es" / "scripts" / "launch.sh"), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            cwd=REPO,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def wait_for_line(proc: subprocess.Popen, fragment: str, timeout: float = 120) -> list[str]:
    """Read stdout until a line contains fragment; returns the lines read."""
    import time
    lines, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if fragment in line:
            return lines
    raise AssertionError(f"never saw {fragment!r}; got {lines}")
