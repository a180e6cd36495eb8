#!/usr/bin/env python
"""Train one job (or resume it), and once it has finished keep its small files in docs/data.

For the long runs that no table or study driver owns (OpenAI-ES on Humanoid, BipedalWalker's
seeds): a run directory does not outlive its machine, so the moment the job ends at one of its
stop criteria its final policy is evaluated (10 noise-free episodes) and benched, and its log,
config, evaluation and bench (never the checkpoint) are copied to docs/data/KEEP/. A kept run is
not trained again; a stopped one (SIGTERM, exit 75) resumes when the same command runs again.

    python benchmarks/keep_run.py jobs/paper/humanoid.yaml --out runs/paper-humanoid/seed0 \\
        --keep paper-humanoid/seed0
    python benchmarks/keep_run.py jobs/bipedalwalker.yaml --out runs/bipedalwalker/seed1 \\
        --keep bipedalwalker/seed1 --set seed=1
"""
from __future__ import annotations

import argparse
from pathlib import Path

from paper_table import DATA, STOPPING, keep, run_all, train_config


def train_and_keep(config: str, out: Path, kept: Path, ranks: int, sets: list[str],
                   bench_ranks: int) -> None:
    if (kept / "eval.json").exists():
        print(f"kept already: {kept}", flush=True)
        return
    train_config(config, out, ranks, sets)       # raises SystemExit if the job failed
    if STOPPING.is_set():                         # stopped: resumes at the next call
        return
    keep(out, kept, bench_ranks)
    print(f"kept: {kept}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", help="the job's YAML")
    parser.add_argument("--out", type=Path, required=True, help="its run directory")
    parser.add_argument("--keep", type=Path, required=True,
                        help="where its small files go, under docs/data/ (or an absolute path)")
    parser.add_argument("--ranks", type=int, default=1, help="mpiexec -n RANKS (default 1)")
    parser.add_argument("--bench-ranks", type=int, default=2,
                        help="ranks of the final bench (2 at least: it measures slot claims "
                             "and the allgather)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a config override, as for the job itself")
    args = parser.parse_args()
    run_all([(train_and_keep, args.config, args.out.resolve(), DATA / args.keep, args.ranks,
              args.set, args.bench_ranks)], 1)


if __name__ == "__main__":
    main()
