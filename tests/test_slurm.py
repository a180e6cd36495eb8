"""jobs/*.sbatch and jobs/chain.sh against a real one-node SLURM (.ci/slurm-cluster.sh start)."""
import os
import re
import shutil
import subprocess
import time

import numpy as np
import pytest

from conftest import REPO, mpi_flavor, process_environ, run_env, run_mpi, write_config
from mpi_es.rundir import checkpoint, runlog


def _cluster_up() -> bool:
    """The two-node test cluster of .ci/slurm-cluster.sh answers (through its SLURM_CONF)."""
    if shutil.which("sbatch") is None:
        return False
    conf = subprocess.run(["bash", str(REPO / ".ci" / "slurm-cluster.sh"), "conf"],
                          capture_output=True, text=True).stdout.strip()
    os.environ["SLURM_CONF"] = conf
    probe = subprocess.run(["sinfo", "-h", "-o", "%t %D"], capture_output=True, text=True)
    up = sum(int(n) for state, n in re.findall(r"(\w+) (\d+)", probe.stdout)
             if state in ("idle", "mix", "alloc"))
    return probe.returncode == 0 and up == 2


if not _cluster_up():
    if os.environ.get("CI"):
        pytest.fail("CI is set but no SLURM cluster answers: .ci/run must start one with "
                    ".ci/slurm-cluster.sh start", pytrace=False)
    pytest.skip("no SLURM here: run `bash .ci/slurm-cluster.sh start` (as root) to test the "
                "job scripts", allow_module_level=True)

pytestmark = pytest.mark.slurm


# MPICH's UCX netmod publishes a ~4 KB address at MPI_Init, as PMI-1 `put` lines of 511 raw
# bytes each; hex-encoded (zero runs compressed) a line is up to ~1,080 bytes. SLURM's pmi2
# plugin reads a PMI-1 request with one read() of at most 1,024 bytes (its pmi1.c), so a line
# with few zero bytes is cut: "mpi/pmi2: value not properly terminated in client request",
# then "UCX ERROR failed to unpack address, invalid bandwidth 0.00", and the job hangs in
# MPI_Init. It failed CI once in a few runs. MPICH's libfabric netmod (`MPIR_CVAR_CH4_NETMOD=ofi`)
# publishes a 72-byte address instead; the job script picks it for users (docs/clusters.md).
# For the other MPIs, UCX is pinned to shared memory and loopback: both "nodes" are this host.
TRANSPORT = {"UCX_TLS": "self,sm,tcp", "UCX_NET_DEVICES": "lo"}
if mpi_flavor() == "mpich":
    TRANSPORT = {"MPIR_CVAR_CH4_NETMOD": "ofi"}


def slurm_env(**extra) -> dict:
    env = run_env()
    env.update(TRANSPORT)
    env.update(extra)
    return env


def sbatch(*args, env=None, cwd=REPO) -> int:
    proc = subprocess.run(["sbatch", "--parsable", *args], capture_output=True, text=True,
                          cwd=cwd, env=env or slurm_env())
    assert proc.returncode == 0, proc.stderr
    return int(proc.stdout.strip().split(";")[0])


def job_info(job: int) -> dict:
    out = subprocess.run(["scontrol", "show", "job", str(job)], capture_output=True,
                         text=True).stdout
    return dict(re.findall(r"(\w+)=(\S*)", out))


def wait_done(*jobs: int, timeout: float = 240) -> list[dict]:
    """Wait until squeue lists none of the jobs (array tasks included); their final records."""
    ids = ",".join(map(str, jobs))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        queued = subprocess.run(["squeue", "-h", "-j", ids], capture_output=True, text=True)
        if queued.returncode == 0 and not queued.stdout.strip():
            return [job_info(j) for j in jobs]
        time.sleep(1)
    raise AssertionError(f"jobs {jobs} did not finish: {[job_info(j) for j in jobs]}")


def final_theta(out):
    return checkpoint.load(out / "checkpoint.h5").state.theta


def test_train_job_runs_to_the_end_submitted_from_elsewhere(tmp_path):
    cfg = write_config(tmp_path / "c.yaml", stop={"generations": 5})
    out = tmp_path / "run"
    # from a scratch directory, as cluster users do: nothing of the repository there
    job = sbatch(f"--output={tmp_path}/job-%j.out", str(REPO / "jobs" / "train.sbatch"),
                 str(cfg), "--out-dir", str(out), cwd=tmp_path)
    info, = wait_done(job)
    text = (tmp_path / f"job-{job}.out").read_text()
    assert info["JobState"] == "COMPLETED" and info["Restarts"] == "0", text
    assert "2 rank(s) on this job" in text and "srun --mpi=pmi2" in text
    assert [int(r["Generation"]) for r in runlog.read(out / "log.csv")] == [1, 2, 3, 4, 5]
    assert checkpoint.load(out / "checkpoint.h5").state.generation == 5


def test_warning_signal_checkpoints_requeues_and_resumes_exactly(tmp_path):
    cfg = write_config(tmp_path / "c.yaml", stop={"generations": 10})
    straight = tmp_path / "straight"
    assert run_mpi(2, str(cfg), "--out-dir", str(straight)).returncode == 0
    out = tmp_path / "run"
    output = tmp_path / "job.out"
    started = time.monotonic()
    job = sbatch(f"--output={output}", "jobs/train.sbatch", str(cfg), "--out-dir", str(out),
                 env=slurm_env(MPI_ES_TEST_CHECKPOINT_PAUSE="0.5", **launcher_env()))
    deadline = time.monotonic() + 120
    while "gen     2" not in (output.read_text() if output.exists() else ""):
        assert time.monotonic() < deadline, "job never reached generation 2"
        time.sleep(0.2)
    # what --signal=B:USR1@... does before the time limit
    subprocess.run(["scancel", "--signal=USR1", "--batch", str(job)], check=True)
    info, = wait_done(job)
    seconds = time.monotonic() - started
    text = output.read_text()
    assert info["JobState"] == "COMPLETED" and info["Restarts"] == "1", text
    assert "requeueing job" in text and "resuming from" in text
    rows = runlog.read(out / "log.csv")
    assert [int(r["Generation"]) for r in rows] == list(range(1, 11))
    np.testing.assert_array_equal(final_theta(out), final_theta(straight))
    print(f"preempt-requeue-resume took {seconds:.1f} s")


def test_failed_job_is_not_requeued(tmp_path):
    cfg = write_config(tmp_path / "c.yaml", population_size=7)      # odd: config error
    output = tmp_path / "job.out"
    job = sbatch(f"--output={output}", "jobs/train.sbatch", str(cfg), "--out-dir",
                 str(tmp_path / "run"))
    info, = wait_done(job)
    assert info["JobState"] == "FAILED" and info["Restarts"] == "0"
    assert info["ExitCode"].startswith("2:")
    assert "must be even with mirrored sampling" in output.read_text()


def test_sweep_over_two_seeds(tmp_path):
    cfg = write_config(tmp_path / "c.yaml", stop={"generations": 3})
    job = sbatch("--array=0-1", f"--output={tmp_path}/sweep-%A_%a.out", "jobs/sweep.sbatch",
                 str(cfg), env=slurm_env(OUT_ROOT=str(tmp_path / "sweep"), SEED_BASE="10"))
    wait_done(job)
    tasks = [tmp_path / "sweep" / f"task_{i}" for i in (0, 1)]
    for i, out in enumerate(tasks):
        assert checkpoint.load(out / "checkpoint.h5").state.generation == 3
        assert f"seed: {10 + i}" in (out / "config.yaml").read_text()
        assert (tmp_path / f"sweep-{job}_{i}.out").exists()
    assert not np.array_equal(final_theta(tasks[0]), final_theta(tasks[1]))


def test_sweep_over_lines_of_overrides(tmp_path):
    cfg = write_config(tmp_path / "c.yaml", stop={"generations": 2})
    lines = tmp_path / "sweep.txt"
    lines.write_text("--set noise_stdev=0.01\n--set noise_stdev=0.1 --set seed=5\n")
    job = sbatch("--array=0-1", f"--output={tmp_path}/s-%A_%a.out", "jobs/sweep.sbatch", str(cfg),
                 env=slurm_env(OUT_ROOT=str(tmp_path / "sw"), SWEEP_FILE=str(lines)))
    wait_done(job)
    first = (tmp_path / "sw" / "task_0" / "config.yaml").read_text()
    second = (tmp_path / "sw" / "task_1" / "config.yaml").read_text()
    assert "noise_stdev: 0.01" in first and "noise_stdev: 0.1\n" in second
    assert "seed: 5" in second


def test_chain_submits_dependent_singleton_jobs(tmp_path):
    cfg = write_config(tmp_path / "c.yaml", stop={"generations": 3})
    out = tmp_path / "run"
    proc = subprocess.run(["bash", "jobs/chain.sh", str(cfg), "3", "--out-dir", str(out)],
                          capture_output=True, text=True, cwd=REPO,
                          env=slurm_env(JOB_NAME="chain-test", SBATCH_ARGS=f"--output={tmp_path}/c-%j.out"))
    assert proc.returncode == 0, proc.stderr
    jobs = [int(j) for j in re.findall(r"submitted job (\d+)", proc.stdout)]
    assert len(jobs) == 3
    infos = [job_info(j) for j in jobs]
    assert all(i["JobName"] == "chain-test" for i in infos)
    assert infos[0]["Dependency"] in ("singleton", "(null)")
    for prev, info in zip(jobs, infos[1:]):
        assert info["Dependency"].startswith(f"afterany:{prev}") and "singleton" in info["Dependency"]
    finished = wait_done(*jobs)
    assert all(i["JobState"] == "COMPLETED" for i in finished)
    assert [int(r["Generation"]) for r in runlog.read(out / "log.csv")] == [1, 2, 3]
    # the later jobs found the run finished and left it as it was
    assert "reached stop.generations=3" in (tmp_path / f"c-{jobs[2]}.out").read_text()


# -- two nodes ---------------------------------------------------------------------------------
from test_reference import DIGESTS, REFERENCE, digests   # noqa: E402

TWO_NODES = ("--nodes=2", "--ntasks-per-node=1")
# SLURM's PMI-2 library (Debian libpmi2-0), which Intel MPI needs to be started by srun
SLURM_PMI2 = "/usr/lib/x86_64-linux-gnu/libpmi2.so.0"


def launcher_env() -> dict:
    """How docs/clusters.md starts each MPI in a job: srun --mpi=pmi2 for MPICH and Intel MPI
    (which is told where SLURM's PMI-2 library is), srun --mpi=pmix for Open MPI."""
    flavor = mpi_flavor()
    if flavor == "openmpi":
        return {"SRUN_MPI": "pmix"}
    if flavor == "intel":
        return {"I_MPI_PMI_LIBRARY": SLURM_PMI2}
    return {}


@pytest.mark.every_mpi
def test_two_node_job_is_bit_identical_to_one_rank(tmp_path):
    """Two ranks on each node: the MPI sees two nodes (one noise table each), the result is
    one rank's."""
    out = tmp_path / "run"
    output = tmp_path / "job.out"
    job = sbatch("--nodes=2", "--ntasks-per-node=2", f"--output={output}", "jobs/train.sbatch",
                 str(REFERENCE / "mirrored-adam.yaml"), "--out-dir", str(out),
                 env=slurm_env(**launcher_env()))
    info, = wait_done(job)
    text = output.read_text()
    assert info["JobState"] == "COMPLETED" and info["NodeList"] == "n[1-2]", text
    assert "4 rank(s) on this job (2 nodes)" in text
    assert digests(out / "checkpoint.h5") == DIGESTS["mirrored-adam"]


@pytest.mark.every_mpi
def test_the_job_script_gives_mpich_its_libfabric_netmod_under_srun_pmi2(tmp_path):
    """No netmod chosen: the script picks MPICH's libfabric one (short PMI lines, see
    TRANSPORT) and says so, and the two-node job is still one rank's result. Only MPICH has
    the variable: under the other MPIs the script leaves the environment alone."""
    out = tmp_path / "run"
    output = tmp_path / "job.out"
    env = slurm_env(**launcher_env())
    env.pop("MPIR_CVAR_CH4_NETMOD", None)
    job = sbatch("--nodes=2", "--ntasks-per-node=2", f"--output={output}", "jobs/train.sbatch",
                 str(REFERENCE / "mirrored-adam.yaml"), "--out-dir", str(out), env=env)
    info, = wait_done(job)
    text = output.read_text()
    assert info["JobState"] == "COMPLETED", text
    assert ("mpi_es: MPIR_CVAR_CH4_NETMOD=ofi" in text) == (mpi_flavor() == "mpich"), text
    assert digests(out / "checkpoint.h5") == DIGESTS["mirrored-adam"]


@pytest.mark.every_mpi
def test_one_noise_table_per_node_by_the_recommended_launcher():
    """srun (pmi2 for MPICH and Intel MPI, pmix for Open MPI) with two ranks on each of two
    nodes: each node holds one table, mapped by both its ranks (Open MPI's ranks see no shared
    memory there, open-mpi/ompi#8299, and share a file instead)."""
    import hashlib
    import json
    from mpi_es.core import noise
    size, seed = 2_000_000, 7
    env = launcher_env()
    proc = subprocess.run(
        ["srun", f"--mpi={env.pop('SRUN_MPI', 'pmi2')}", "--nodes=2", "--ntasks-per-node=2",
         "python", "tests/mpi_scripts/noise_probe.py", str(size), str(seed)],
        capture_output=True, text=True, cwd=REPO, env=slurm_env(**env), timeout=120)
    assert proc.returncode == 0, proc.stderr
    reports = json.loads(proc.stdout)
    assert len(reports) == 4
    expected = hashlib.sha256(noise.build_serial(size, seed).tobytes()).hexdigest()
    assert all(r["digest"] == expected for r in reports)
    # the last rank's write is seen by the ranks of its node only: one memory per node
    last = reports[-1]["path"]
    assert all((r["seen"] == 12345.0) == (r["path"] == last) for r in reports), reports
    per_node = {}
    for r in reports:
        per_node.setdefault(r["path"], []).append(r)
    assert len(per_node) == 2, reports
    assert all(len(m) == 2 and all(r["shared"] and r["node_size"] == 2 for r in m)
               for m in per_node.values()), reports
    table_bytes = size * 4
    assert sum(r["pss"] for r in reports) <= 2.2 * table_bytes


def rank_pids(job: int, node: str) -> list[int]:
    """The mpi_es ranks of a job running on one node (SLURM sets SLURMD_NODENAME for them)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        env = process_environ(int(entry))
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
        except OSError:
            continue
        if (env.get(b"SLURM_JOB_ID") == str(job).encode()
                and env.get(b"SLURMD_NODENAME") == node.encode()
                and b"mpi_es" in cmdline and b"python" in cmdline and b"srun" not in cmdline):
            found.append(int(entry))
    return found


def wait_for_generation(output, generation: int, job: int, timeout: float = 120) -> None:
    """Until the job's output shows the generation; fails at once when the job has ended."""
    deadline = time.monotonic() + timeout
    while f"gen {generation:>5}" not in (text := output.read_text() if output.exists() else ""):
        assert time.monotonic() < deadline, f"job never reached generation {generation}: {text}"
        state = job_info(job).get("JobState")
        assert state in ("PENDING", "RUNNING", "CONFIGURING", "REQUEUED", None), \
            f"job {job} ended ({state}) before generation {generation}: {text}"
        time.sleep(0.2)


def two_node_job(tmp_path):
    """An 8-generation two-node job, running: (job id, out dir, job output file)."""
    out = tmp_path / "run"
    output = tmp_path / "job.out"
    job = sbatch(*TWO_NODES, f"--output={output}", "jobs/train.sbatch",
                 str(REFERENCE / "mirrored-adam.yaml"), "--out-dir", str(out),
                 "--set", "stop.generations=8",
                 env=slurm_env(MPI_ES_TEST_CHECKPOINT_PAUSE="0.5", **launcher_env()))
    wait_for_generation(output, 2, job)
    return job, out, output


def assert_whole_and_exact(tmp_path, out) -> None:
    """Each of the 8 generations logged once, the final theta that of an uninterrupted run."""
    assert [int(r["Generation"]) for r in runlog.read(out / "log.csv")] == list(range(1, 9))
    straight = tmp_path / "straight"
    assert run_mpi(1, str(REFERENCE / "mirrored-adam.yaml"), "--out-dir", str(straight),
                   "--set", "stop.generations=8").returncode == 0
    np.testing.assert_array_equal(final_theta(out), final_theta(straight))


@pytest.mark.every_mpi
def test_open_mpis_mpirun_inside_the_allocation_trains_across_both_nodes(tmp_path):
    """The other way to start Open MPI in a job (LAUNCHER=mpiexec), as a cluster without PMIx
    in SLURM would; under MPICH and Intel MPI it is their own mpiexec (hydra over srun)."""
    out = tmp_path / "run"
    output = tmp_path / "job.out"
    job = sbatch("--nodes=2", "--ntasks-per-node=2", f"--output={output}", "jobs/train.sbatch",
                 str(REFERENCE / "mirrored-adam.yaml"), "--out-dir", str(out),
                 env=slurm_env(LAUNCHER="mpiexec"))
    info, = wait_done(job)
    text = output.read_text()
    assert info["JobState"] == "COMPLETED" and info["NodeList"] == "n[1-2]", text
    assert "4 rank(s) on this job (2 nodes)" in text
    assert digests(out / "checkpoint.h5") == DIGESTS["mirrored-adam"]


@pytest.mark.every_mpi
def test_preempt_requeue_resume_across_two_nodes(tmp_path):
    job, out, output = two_node_job(tmp_path)
    subprocess.run(["scancel", "--signal=USR1", "--batch", str(job)], check=True)
    info, = wait_done(job)
    text = output.read_text()
    assert info["JobState"] == "COMPLETED" and info["Restarts"] == "1", text
    assert "requeueing job" in text and "resuming from" in text
    assert_whole_and_exact(tmp_path, out)


def test_a_lost_node_requeues_and_the_resume_is_exact(tmp_path):
    job, out, output = two_node_job(tmp_path)
    victims = rank_pids(job, "n2")
    assert victims, "found no rank of the job on n2"
    killed = time.monotonic()
    for pid in victims:
        os.kill(pid, 9)                       # the node's ranks die at once, as in a crash
    deadline = time.monotonic() + 60
    while "requeueing job" not in output.read_text():
        assert time.monotonic() < deadline, output.read_text()
        time.sleep(0.1)
    ended = time.monotonic() - killed
    info, = wait_done(job)
    resumed = time.monotonic() - killed
    text = output.read_text()
    assert info["JobState"] == "COMPLETED" and info["Restarts"] == "1", text
    assert "restart 1 of at most 3" in text and "resuming from" in text
    assert_whole_and_exact(tmp_path, out)
    print(f"node lost -> job requeued in {ended:.1f} s -> finished in {resumed:.1f} s")
    assert ended < 30


def test_restarts_are_bounded(tmp_path):
    cfg = write_config(tmp_path / "c.yaml", env_id="toy_envs:Faulty-v0",
                       stop={"generations": 3})
    output = tmp_path / "job.out"
    job = sbatch(f"--output={output}", "jobs/train.sbatch", str(cfg), "--out-dir",
                 str(tmp_path / "run"),
                 env=slurm_env(MAX_RESTARTS="1", FAULTY_MODE="raise", FAULTY_RANK="1"))
    info, = wait_done(job)
    text = output.read_text()
    assert info["JobState"] == "FAILED" and info["Restarts"] == "1", text
    assert "restart 1 of at most 1" in text and "not requeueing" in text
