#!/usr/bin/env python
"""Side by side with EvoTorch: env steps per second of the same ES job on the same cores.

mpi_es (`mpiexec -n RANKS`) and EvoTorch's GymNE and VecGymNE (Ray, RANKS actors) train the
same 256-256 tanh policy with observation normalization, mirrored sampling, Adam and the same
number of episodes per generation (EvoTorch's PGPE with a fixed standard deviation is OpenAI-ES
with mirrored sampling and centred ranks). The first generation (start-up: Ray's actors,
the noise table) is not timed; steps/s is the env steps of the other generations over their
wall-clock time. The frameworks start from different random policies, so episodes that end
early (Ant falling) differ in length: steps/s, not generations/s, is what compares. EvoTorch
runs in a Python of its own (`--evotorch-python`), since it brings PyTorch and Ray:

    python3 -m venv /work/venv-evotorch
    /work/venv-evotorch/bin/pip install "torch==2.13.0+cpu" evotorch==0.6.1 ray "gymnasium[mujoco]"
    python benchmarks/side_by_side.py --evotorch-python /work/venv-evotorch/bin/python

Run it with nothing else on the cores; each run adds a pass to docs/data/side_by_side.json
(passes of this VM differ by up to 30%) and prints a markdown table.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from paper_table import DATA, REPO, mpiexec

from mpi_es.blas import THREAD_VARIABLES

CONFIG = "jobs/halfcheetah.yaml"       # the notebook's 256-256 tanh, Adam, observation filter

EVOTORCH = r"""
import json, sys, time
from evotorch.algorithms import PGPE
from evotorch.neuroevolution import GymNE, VecGymNE

kind, env, population, generations, actors = sys.argv[1:6]
population, generations, actors = int(population), int(generations), int(actors)
network = ("Linear(obs_length, 256) >> Tanh() >> Linear(256, 256) >> Tanh()"
           " >> Linear(256, act_length)")
if kind == "GymNE":
    problem = GymNE(env=env, network=network, observation_normalization=True, num_actors=actors)
else:
    problem = VecGymNE(env="gym::" + env, network=network, observation_normalization=True,
                       num_actors=actors)
searcher = PGPE(problem, popsize=population, center_learning_rate=0.01, stdev_init=0.02,
                stdev_learning_rate=0.0, optimizer="adam", ranking_method="centered",
                symmetric=True)
searcher.step()                                     # start-up: not timed
steps = searcher.status["total_interaction_count"]
start = time.perf_counter()
for _ in range(generations - 1):
    searcher.step()
seconds = time.perf_counter() - start
steps = searcher.status["total_interaction_count"] - steps
print(json.dumps({"steps": int(steps), "seconds": seconds}))
"""


def one_thread_env() -> dict:
    return {**os.environ, **dict.fromkeys(THREAD_VARIABLES, "1")}


def mpi_es_rate(env_id: str, population: int, generations: int, ranks: int) -> dict:
    with tempfile.TemporaryDirectory() as out:
        subprocess.run([mpiexec(), "-n", str(ranks), sys.executable, "-m", "mpi_es", CONFIG,
                        "--out-dir", out, "--set", f"env_id={env_id}",
                        "--set", f"population_size={population}",
                        "--set", f"stop.generations={generations}", "--set", "eval_prob=0",
                        "--set", "noise_table.size=25000000"],
                       cwd=REPO, check=True, capture_output=True, env=one_thread_env())
        with open(Path(out) / "log.csv") as f:
            rows = list(csv.DictReader(f))[1:]        # the first generation is start-up
    steps = sum(int(r["TimestepsThisGen"]) for r in rows)
    seconds = sum(float(r["TimeElapsedThisGen"]) for r in rows)
    return {"steps": steps, "seconds": seconds}


def evotorch_rate(python: str, kind: str, env_id: str, population: int, generations: int,
                  ranks: int) -> dict:
    proc = subprocess.run([python, "-c", EVOTORCH, kind, env_id, str(population),
                           str(generations), str(ranks)], capture_output=True, text=True,
                          env=one_thread_env())
    if proc.returncode != 0:
        raise SystemExit(f"EvoTorch {kind} on {env_id} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def markdown_table(results: dict) -> list[str]:
    """Steps/s per env and framework, each peer with mpi_es's lead over it (2.00x: mpi_es
    plays twice as many steps a second)."""
    names = list(next(iter(results.values())))
    lines = ["| env | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for env_id, runs in results.items():
        base = runs["mpi_es"]["steps_per_s"]
        cells = [f"{runs[n]['steps_per_s']:,.0f}" + ("" if n == "mpi_es" else
                                                      f" ({base / runs[n]['steps_per_s']:.2f}x)")
                 for n in names]
        lines.append(f"| {env_id} | " + " | ".join(cells) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--evotorch-python", required=True,
                        help="a Python with evotorch, ray and gymnasium[mujoco]")
    parser.add_argument("--envs", nargs="+", default=["Ant-v5", "HalfCheetah-v5"])
    parser.add_argument("--population", type=int, default=64)
    parser.add_argument("--generations", type=int, default=4)
    parser.add_argument("--ranks", type=int, default=2, help="mpi_es ranks = EvoTorch actors")
    parser.add_argument("--json", type=Path, default=DATA / "side_by_side.json")
    args = parser.parse_args()
    results = {}
    for env_id in args.envs:
        runs = {"mpi_es": mpi_es_rate(env_id, args.population, args.generations, args.ranks)}
        for kind in ("GymNE", "VecGymNE"):
            runs[f"EvoTorch {kind}"] = evotorch_rate(args.evotorch_python, kind, env_id,
                                                     args.population, args.generations,
                                                     args.ranks)
        for run in runs.values():
            run["steps_per_s"] = run["steps"] / run["seconds"]
        results[env_id] = runs
        print(env_id, json.dumps(runs), flush=True)
    settings = {"population": args.population, "ranks": args.ranks,
                "generations_timed": args.generations - 1}
    kept = json.loads(args.json.read_text()) if args.json.exists() else {}
    passes = kept.get("passes", []) if all(kept.get(k) == v for k, v in settings.items()) else []
    args.json.write_text(json.dumps({**settings, "passes": passes + [results]}, indent=1) + "\n")
    print("\n".join(markdown_table(results)))


if __name__ == "__main__":
    main()
