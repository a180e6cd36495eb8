#!/usr/bin/env python
"""Reproduce Table 1 of Salimans et al. 2017 (MuJoCo) with the configs in jobs/paper/.

Every task x seed is trained under `mpiexec -n RANKS` to the paper's timestep budget (a run that
is already finished is not trained again; an interrupted one resumes), its final checkpoint is
evaluated (10 noise-free episodes), and docs/paper_table.md plus one learning-curve figure per
task (docs/paper/<task>.png) are written from what is on disk.

    python benchmarks/paper_table.py --ranks 2                     # the whole table, 3 seeds
    python benchmarks/paper_table.py --ranks 2 --tasks swimmer --seeds 0
    python benchmarks/paper_table.py --report-only                 # table and figures only
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# task: (config file stem, TRPO's score after 5M steps, ES timesteps to reach it) from Table 1
PAPER = {
    "HalfCheetah": ("halfcheetah", 2385.79, 2.88e6),
    "Hopper": ("hopper", 3403.46, 3.16e7),
    "InvertedDoublePendulum": ("inverteddoublependulum", 9104.07, 5.39e6),
    "InvertedPendulum": ("invertedpendulum", 1000.0, 4.55e5),
    "Swimmer": ("swimmer", 128.25, 1.39e6),
    "Walker2d": ("walker2d", 3830.03, 3.79e7),
}


def run_dir(root: Path, stem: str, seed: int) -> Path:
    return root / stem / f"seed{seed}"


def train(stem: str, seed: int, root: Path, ranks: int) -> None:
    out = run_dir(root, stem, seed)
    mpiexec = shutil.which("mpiexec", path=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    cmd = [mpiexec, "-n", str(ranks), sys.executable, "-m", "mpi_es",
           f"jobs/paper/{stem}.yaml", "--set", f"seed={seed}", "--out-dir", str(out)]
    print("+", " ".join(cmd), flush=True)
    out.mkdir(parents=True, exist_ok=True)
    with open(out.parent / f"seed{seed}.out", "a") as log:
        status = subprocess.run(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT).returncode
    if status != 0:
        sys.exit(f"training {stem} seed {seed} failed with exit {status}; see {log.name}")


def evaluate(stem: str, seed: int, root: Path) -> dict:
    out = run_dir(root, stem, seed)
    result = out / "eval.json"
    checkpoint = out / "checkpoint.h5"
    if not result.exists() or result.stat().st_mtime < checkpoint.stat().st_mtime:
        proc = subprocess.run([sys.executable, "-m", "mpi_es", "evaluate", str(checkpoint),
                               "--episodes", "10", "--json"], cwd=REPO, capture_output=True,
                              text=True, check=True)
        result.write_text(proc.stdout)
    return json.loads(result.read_text())


def read_log(out: Path) -> list[dict]:
    with open(out / "log.csv", newline="") as f:
        return list(csv.DictReader(f))


def steps_to_threshold(rows: list[dict], threshold: float) -> int | None:
    """Timesteps at the first generation whose noise-free evaluation episodes averaged >= threshold."""
    for row in rows:
        value = row["EvalGenRewardMean"]
        if value not in ("", "nan") and float(value) >= threshold:
            return int(row["TimestepsSoFar"])
    return None


def fmt_steps(n: float | None) -> str:
    return "not reached" if n is None else f"{n / 1e6:.2f}M"


def report(root: Path, seeds: list[int], ranks: int, docs: Path) -> None:
    lines = [
        "# Salimans et al. 2017, Table 1, reproduced with mpi_es",
        "",
        f"Made by `python benchmarks/paper_table.py --ranks {ranks} --seeds "
        f"{' '.join(map(str, seeds))}` (configs in `jobs/paper/`). Every run stops at the "
        "paper's timestep budget; **final score** is the noise-free policy of the last "
        "checkpoint over 10 episodes (`python -m mpi_es evaluate CHECKPOINT --episodes 10`), "
        "median over seeds; **steps to TRPO** is the first generation whose noise-free "
        "evaluation episodes in `log.csv` averaged at least TRPO's score (median over seeds; "
        "a seed that never got there counts as not reached). Results are per timestep, so "
        "they do not depend on how busy the machine was or on the rank count.",
        "",
        "| task | TRPO score (5M steps) | paper: ES steps to TRPO | budget | mpi_es: steps to "
        "TRPO (median) | per seed | mpi_es: final score (median) | per seed | target met |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for task, (stem, trpo, paper_steps) in PAPER.items():
        finals, reached, done = [], [], []
        for seed in seeds:
            out = run_dir(root, stem, seed)
            if not (out / "eval.json").exists():
                continue
            done.append(seed)
            finals.append(json.loads((out / "eval.json").read_text())["return_mean"])
            reached.append(steps_to_threshold(read_log(out), trpo))
        if not done:
            lines.append(f"| {task} | {trpo:g} | {paper_steps:.3g} | {paper_steps:.3g} | "
                         "not run | | | | |")
            continue
        key = [float("inf") if r is None else r for r in reached]
        median_steps = statistics.median_low(key)
        median_final = statistics.median(finals)
        lines.append(
            f"| {task} | {trpo:g} | {paper_steps:.3g} | {paper_steps:.3g} | "
            f"{fmt_steps(None if median_steps == float('inf') else median_steps)} | "
            f"{', '.join(fmt_steps(r) for r in reached)} | {median_final:.1f} | "
            f"{', '.join(f'{f:.1f}' for f in finals)} | "
            f"{'yes' if median_final >= trpo else 'no'} ({len(done)} seed"
            f"{'s' if len(done) != 1 else ''}) |")
        plot(task, stem, trpo, [run_dir(root, stem, s) for s in done], docs)
    lines += ["", "Learning curves (population mean ± std, noise-free evaluation points, "
              "seeds overlaid, TRPO's score dashed): `docs/paper/<task>.png`.", ""]
    (docs / "paper_table.md").write_text("\n".join(lines))
    print("\n".join(lines))


def plot(task: str, stem: str, trpo: float, runs: list[Path], docs: Path) -> None:
    target = docs / "paper" / f"{stem}.png"
    subprocess.run([sys.executable, "-m", "mpi_es", "plot", *map(str, runs), "-o", str(target),
                    "--x", "timesteps", "--title", f"{task}: mpi_es (ES) on 2 ranks",
                    "--hline", f"{trpo}=TRPO after 5M steps"], cwd=REPO, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ranks", type=int, default=2, help="mpiexec -n RANKS (default 2)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--tasks", nargs="+", default=[s for s, _, _ in PAPER.values()],
                        choices=[s for s, _, _ in PAPER.values()])
    parser.add_argument("--root", type=Path, default=REPO / "runs" / "paper",
                        help="where the runs go (default runs/paper)")
    parser.add_argument("--docs", type=Path, default=REPO / "docs")
    parser.add_argument("--report-only", action="store_true",
                        help="only evaluate finished runs and write the table and figures")
    args = parser.parse_args()
    for stem in args.tasks:
        for seed in args.seeds:
            if not args.report_only:
                train(stem, seed, args.root, args.ranks)
            if (run_dir(args.root, stem, seed) / "checkpoint.h5").exists():
                evaluate(stem, seed, args.root)
    report(args.root, args.seeds, args.ranks, args.docs)


if __name__ == "__main__":
    main()
