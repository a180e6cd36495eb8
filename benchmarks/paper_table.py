#!/usr/bin/env python
"""Learning tables: Table 1 of Salimans et al. 2017 (--suite es, jobs/paper/) or ARS's tasks.

Every task x seed is trained under `mpiexec -n RANKS` until a 10-episode noise-free check
reaches the paper's threshold or the timestep budget runs out (a run that is already finished
is not trained again; an interrupted one resumes), its final checkpoint is evaluated (10 other
noise-free episodes), and its log, config and evaluation are kept in docs/data/<suite>/<task>/
seed<k>/ (never the checkpoint), so a table accumulates across machines. docs/paper_table.md
(or docs/ars_table.md) and one learning-curve figure per task (docs/paper/<task>.png,
docs/ars/<task>.png) are written from the kept runs; a task with none keeps its row of the
current table, marked as such.

    python benchmarks/paper_table.py --ranks 2                     # the whole table, 3 seeds
    python benchmarks/paper_table.py --ranks 2 --tasks swimmer --seeds 0
    python benchmarks/paper_table.py --suite ars --tasks hopper halfcheetah
    python benchmarks/paper_table.py --report-only                 # table and figures only
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# ES: Table 1 of Salimans et al. 2017: task -> (config stem, TRPO's score after 5M steps,
# ES timesteps to reach it). ARS: Mania et al. 2018's reward thresholds (no paper steps listed).
SUITES = {
    "es": {"jobs": "jobs/paper", "table": "paper_table.md", "figures": "paper",
           "title": "Salimans et al. 2017, Table 1, reproduced with mpi_es (OpenAI-ES)",
           "threshold_name": "TRPO score (5M steps)", "line": "TRPO after 5M steps",
           "tasks": {"HalfCheetah": ("halfcheetah", 2385.79, 2.88e6),
                     "Hopper": ("hopper", 3403.46, 3.16e7),
                     "InvertedDoublePendulum": ("inverteddoublependulum", 9104.07, 5.39e6),
                     "InvertedPendulum": ("invertedpendulum", 1000.0, 4.55e5),
                     "Swimmer": ("swimmer", 128.25, 1.39e6),
                     "Walker2d": ("walker2d", 3830.03, 3.79e7)}},
    "ars": {"jobs": "jobs/ars", "table": "ars_table.md", "figures": "ars",
            "title": "Augmented Random Search (Mania et al. 2018) with mpi_es",
            "threshold_name": "the paper's reward threshold", "line": "ARS paper's threshold",
            "tasks": {"Swimmer": ("swimmer", 325.0, None),
                      "Hopper": ("hopper", 3120.0, None),
                      "HalfCheetah": ("halfcheetah", 3430.0, None),
                      "Walker2d": ("walker2d", 4390.0, None),
                      "Ant": ("ant", 3580.0, None),
                      "Humanoid": ("humanoid", 6000.0, None)}},
}


STOPPED_EXIT = 75
STOPPING = threading.Event()
RUNNING: set[subprocess.Popen] = set()
RUNNING_LOCK = threading.Lock()


def on_stop_signal(signum, frame) -> None:
    """Stop the way a job does: the running trainings checkpoint at the end of their
    generation, no further one starts, and the driver exits 75."""
    STOPPING.set()
    with RUNNING_LOCK:
        for proc in RUNNING:
            proc.send_signal(signum)


def run_all(calls: list, parallel: int) -> None:
    """Run the training calls (function, *args), PARALLEL at a time. SIGTERM, SIGINT or SIGUSR1
    (or a job that stops with exit 75) stops them all and exits 75 once they have checkpointed."""
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1):
        signal.signal(signum, on_stop_signal)
    with ThreadPoolExecutor(max(1, parallel)) as pool:
        for done in [pool.submit(*call) for call in calls]:
            done.result()
    if STOPPING.is_set():
        raise SystemExit(STOPPED_EXIT)


def run_dir(root: Path, stem: str, seed: int) -> Path:
    return root / stem / f"seed{seed}"


def train(suite: dict, stem: str, seed: int, root: Path, ranks: int) -> None:
    if (run_dir(kept_root(suite), stem, seed) / "eval.json").exists():
        return
    train_config(f"{suite['jobs']}/{stem}.yaml", run_dir(root, stem, seed), ranks,
                 [f"seed={seed}"])
    keep_if_finished(suite, stem, seed, root)      # kept at once: the session may end first


def kept_root(suite: dict) -> Path:
    return DATA / suite["figures"]


def keep_if_finished(suite: dict, stem: str, seed: int, root: Path) -> None:
    """Evaluate a finished run and keep its small files (an unfinished one goes on later)."""
    out = run_dir(root, stem, seed)
    if not (out / "checkpoint.h5").exists():
        return
    _, threshold, _ = next(t for t in suite["tasks"].values() if t[0] == stem)
    if finished(read_log(out), budget(suite, stem), threshold):
        keep(out, run_dir(kept_root(suite), stem, seed))


def keep(out: Path, dest: Path, bench_ranks: int = 2) -> None:
    """A finished run's evaluation and bench (its generation at scale, for
    benchmarks/time_to_score.py), then its small files copied to dest."""
    evaluate(out)
    bench(out, bench_ranks)
    archive(out, dest)


def mpiexec() -> str:
    """The mpiexec beside this Python (the venv's MPI), else the first on PATH."""
    return shutil.which("mpiexec", path=f"{Path(sys.executable).parent}:{os.environ['PATH']}")


def train_config(config: str, out: Path, ranks: int, sets: list[str]) -> None:
    """Train (or resume) CONFIG into OUT under `mpiexec -n RANKS`, its output in OUT's sibling
    OUT.out; raise SystemExit naming that file when the run fails."""
    if STOPPING.is_set():
        return
    cmd = [mpiexec(), "-n", str(ranks), sys.executable, "-m", "mpi_es", config,
           "--out-dir", str(out)]
    for item in sets:
        cmd += ["--set", item]
    print("+", " ".join(cmd), flush=True)
    out.mkdir(parents=True, exist_ok=True)
    with open(out.parent / f"{out.name}.out", "a") as log:
        # Its own session, so a signal to this driver's process group reaches the job once,
        # forwarded by on_stop_signal.
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        with RUNNING_LOCK:
            RUNNING.add(proc)
        try:
            status = proc.wait()
        finally:
            with RUNNING_LOCK:
                RUNNING.discard(proc)
    if status == STOPPED_EXIT:
        print(f"stopped: {out} (resumes where it stopped when this command runs again)",
              flush=True)
        STOPPING.set()
    elif status != 0:
        raise SystemExit(f"training {config} into {out} failed with exit {status}; see {log.name}")


def evaluate(out: Path) -> dict:
    """eval.json of the run's last checkpoint over 10 noise-free episodes (made once). The
    driver trained the run from its own config, so the env's module (`module:Env` ids) is
    allowed to load."""
    import yaml
    result = out / "eval.json"
    checkpoint = out / "checkpoint.h5"
    if not result.exists() or result.stat().st_mtime < checkpoint.stat().st_mtime:
        env_id = yaml.safe_load((out / "config.yaml").read_text())["env_id"]
        allow = ["--allow-import", env_id.split(":")[0]] if ":" in env_id else []
        proc = subprocess.run([sys.executable, "-m", "mpi_es", "evaluate", str(checkpoint),
                               "--episodes", "10", "--json", *allow], cwd=REPO,
                              capture_output=True, text=True, check=True)
        result.write_text(proc.stdout)
    return json.loads(result.read_text())


# Finished runs' logs, configs and benches, kept in the repository (never checkpoints): a study
# spans sessions on machines that do not keep their run directories.
DATA = REPO / "docs" / "data"
KEPT = ("log.csv", "config.yaml", "bench.json", "eval.json")


def bench(run: Path, ranks: int) -> dict:
    """bench.json of the run's final policy (made once, then read; a kept run has no
    checkpoint, only its bench.json)."""
    out = run / "bench.json"
    ckpt = run / "checkpoint.h5"
    if out.exists() and (not ckpt.exists() or out.stat().st_mtime >= ckpt.stat().st_mtime):
        return json.loads(out.read_text())
    return bench_policy(run, ckpt, out, ranks)


def bench_policy(run: Path, policy: Path, out: Path, ranks: int) -> dict:
    """`bench` of one generation of the run's config played from `policy` (a checkpoint or a
    snapshot) under `mpiexec -n RANKS`, its figures written to `out` and returned."""
    cmd = [mpiexec(), "-n", str(ranks), sys.executable, "-m", "mpi_es", "bench",
           str(run / "config.yaml"), "--checkpoint", str(policy),
           "--generations", "1", "--no-keras", "--json", str(out),
           "--set", f"out_dir={run / 'bench-scratch'}"]
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    return json.loads(out.read_text())


def archive(run: Path, dest: Path) -> None:
    """Copy a finished run's small files (KEPT) into dest."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in KEPT:
        if (run / name).exists():
            shutil.copyfile(run / name, dest / name)


def read_log(out: Path) -> list[dict]:
    with open(out / "log.csv", newline="") as f:
        return list(csv.DictReader(f))


def has_check(row: dict) -> bool:
    """Did this generation end with a stop.eval_return check (a 10-episode noise-free mean)?"""
    return row.get("TargetEvalMean") not in ("", None, "nan")


def steps_to_threshold(rows: list[dict], threshold: float) -> int | None:
    """Timesteps (the check's own included) at the first stop.eval_return check, 10 noise-free
    episodes, that averaged >= threshold; never the generations' single evaluation episodes."""
    for row in rows:
        if has_check(row) and float(row["TargetEvalMean"]) >= threshold:
            return int(row["TimestepsSoFar"])
    return None


def finished(rows: list[dict], budget: float, threshold: float) -> bool:
    """Did the run reach its budget, or its stop.eval_return at the last check? (A run stopped
    before its first generation has no rows.)"""
    if not rows:
        return False
    last = rows[-1]
    return (int(last["TimestepsSoFar"]) >= budget
            or has_check(last) and float(last["TargetEvalMean"]) >= threshold)


def fmt_steps(n: float | None) -> str:
    return "not reached" if n is None else f"{n / 1e6:.2f}M"


def earlier_rows(path: Path) -> dict[str, str]:
    """The current table's rows by task (a task without kept runs keeps its row)."""
    if not path.exists():
        return {}
    rows = {}
    for line in path.read_text().splitlines():
        cells = line.split("|")
        if line.startswith("| ") and len(cells) > 3 and not line.startswith("| task"):
            rows[cells[1].strip().split(" (")[0]] = line
    return rows


EARLIER = " (earlier runs whose logs were not kept; to be rerun)"


def kept_seeds(suite: dict, stem: str) -> set[int]:
    """The seeds of a task whose finished runs are kept in docs/data."""
    task_dir = kept_root(suite) / stem
    return {int(d.name[4:]) for d in task_dir.glob("seed*")
            if d.name[4:].isdigit() and (d / "eval.json").exists()}


def report(suite_name: str, root: Path, seeds: list[int], docs: Path) -> None:
    """Write the suite's table from every kept run and SEEDS' runs under ROOT: a call that
    trained one seed still reports the seeds kept before it."""
    suite = SUITES[suite_name]
    budget_of = {stem: budget(suite, stem) for stem, _, _ in suite["tasks"].values()}
    seeds_of = {stem: sorted(set(seeds) | kept_seeds(suite, stem))
                for stem, _, _ in suite["tasks"].values()}
    every_seed = sorted(set().union(*seeds_of.values()))
    earlier = earlier_rows(docs / suite["table"])
    lines = [
        f"# {suite['title']}",
        "",
        f"Made by `python benchmarks/paper_table.py --suite {suite_name} --ranks R "
        f"--seeds {' '.join(map(str, every_seed))}` (configs in `{suite['jobs']}/`; R, the ranks "
        "each run had, is in the table, from the runs' logs), from the finished runs kept in "
        f"`docs/data/{suite['figures']}/`. Every run stops at the first check (10 noise-free "
        "episodes, every `stop.eval_every` generations) whose mean reaches the threshold, or at "
        "its config's timestep budget. **steps to threshold** is the steps run at that check, "
        "the checks' own episodes included (median over seeds; a seed that never got there "
        "counts as not reached); **final score** is the last checkpoint's noise-free policy "
        "over 10 other episodes (`python -m mpi_es evaluate CHECKPOINT --episodes 10`), so for "
        "a run that stopped at its threshold it scores the same policy on fresh start states "
        "and may land on either side of the threshold; median over seeds. Results are per "
        "timestep: they do not depend on how busy the machine was or on the rank count (runs "
        "are bit-identical for any rank count).",
        "",
        f"| task | {suite['threshold_name']} | paper: steps to it | budget | mpi_es: steps to "
        "it (median) | per seed | final score (median) | per seed | median >= threshold | "
        "steps run, per seed | ranks |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for task, (stem, threshold, paper_steps) in suite["tasks"].items():
        finals, reached, done, ran, ranks, runs = [], [], [], [], set(), []
        for seed in seeds_of[stem]:
            out = next((r for r in (run_dir(kept_root(suite), stem, seed), run_dir(root, stem, seed))
                        if (r / "eval.json").exists()), None)
            if out is None:
                continue
            done.append(seed)
            runs.append(out)
            finals.append(json.loads((out / "eval.json").read_text())["return_mean"])
            rows = read_log(out)
            reached.append(steps_to_threshold(rows, threshold))
            ran.append(fmt_steps(int(rows[-1]["TimestepsSoFar"]))
                       + ("" if finished(rows, budget_of[stem], threshold) else
                          " (stopped before its end, resumable)"))
            ranks.add(max(int(row["UniqueWorkers"]) for row in rows))
        paper = f"{paper_steps:.3g}" if paper_steps else "-"
        if not done:
            if task in earlier and "not run yet" not in earlier[task]:
                row = earlier[task]
                if EARLIER not in row:
                    row = row.replace(f"| {task} |", f"| {task}{EARLIER} |", 1)
                lines.append(row)
            else:
                lines.append(f"| {task} | {threshold:g} | {paper} | {budget_of[stem]:.3g} | "
                             "not run yet | | | | | | |")
            continue
        key = [float("inf") if r is None else r for r in reached]
        median_steps = statistics.median_low(key)
        median_final = statistics.median(finals)
        lines.append(
            f"| {task} | {threshold:g} | {paper} | {budget_of[stem]:.3g} | "
            f"{fmt_steps(None if median_steps == float('inf') else median_steps)} | "
            f"{', '.join(fmt_steps(r) for r in reached)} | {median_final:.1f} | "
            f"{', '.join(f'{f:.1f}' for f in finals)} | "
            f"{'yes' if median_final >= threshold else 'no'} ({len(done)} seed"
            f"{'s' if len(done) != 1 else ''}) | {', '.join(ran)} | "
            f"{', '.join(map(str, sorted(ranks)))} |")
        plot(suite, task, stem, threshold, runs, docs)
    lines += ["", f"Learning curves (population mean ± std; dots: a generation's noise-free "
              f"evaluation episodes; diamonds: the 10-episode checks the steps column counts; "
              f"seeds overlaid, the threshold dashed): `docs/{suite['figures']}/<task>.png`.",
              ""]
    (docs / suite["table"]).write_text("\n".join(lines))
    print("\n".join(lines))


def budget(suite: dict, stem: str) -> float:
    import yaml
    cfg = yaml.safe_load((REPO / suite["jobs"] / f"{stem}.yaml").read_text())
    return float(cfg["stop"]["timesteps"])


def plot(suite: dict, task: str, stem: str, threshold: float, runs: list[Path],
         docs: Path) -> None:
    target = docs / suite["figures"] / f"{stem}.png"
    subprocess.run([sys.executable, "-m", "mpi_es", "plot", *map(str, runs), "-o", str(target),
                    "--x", "timesteps", "--title", f"{task}: mpi_es ({suite['title'].split(' (')[0]})",
                    "--hline", f"{threshold}={suite['line']}"], cwd=REPO, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", choices=SUITES, default="es",
                        help="es: the ES paper's MuJoCo table; ars: the ARS paper's tasks")
    parser.add_argument("--ranks", type=int, default=2, help="mpiexec -n RANKS (default 2)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--parallel", type=int, default=1, metavar="K",
                        help="train K runs at once, each on RANKS ranks (results do not depend "
                             "on it: a run is bit-identical for any rank count)")
    parser.add_argument("--tasks", nargs="+", help="config stems (default: the whole suite)")
    parser.add_argument("--root", type=Path, help="where the runs go (default runs/<suite>)")
    parser.add_argument("--docs", type=Path, default=REPO / "docs")
    parser.add_argument("--report-only", action="store_true",
                        help="only evaluate finished runs and write the table and figures")
    args = parser.parse_args()
    suite = SUITES[args.suite]
    stems = [stem for stem, _, _ in suite["tasks"].values()]
    root = args.root or REPO / "runs" / args.suite
    runs = []
    for stem in args.tasks or stems:
        if stem not in stems:
            parser.error(f"--tasks: {stem} is not in the {args.suite} suite ({', '.join(stems)})")
        runs += [(stem, seed) for seed in args.seeds]
    if not args.report_only:
        run_all([(train, suite, stem, seed, root, args.ranks) for stem, seed in runs],
                args.parallel)
    for stem, seed in runs:
        keep_if_finished(suite, stem, seed, root)
    report(args.suite, root, args.seeds, args.docs)


if __name__ == "__main__":
    main()
