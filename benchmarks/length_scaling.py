#!/usr/bin/env python
"""How far the time-to-score model's episode-length scaling is from a bench of the generation.

benchmarks/time_to_score.py benches a run's final policy only, and predicts every earlier
generation at N ranks as that bench's generation scaled by the generation's mean episode length.
This benches snapshots of the same run (one generation of each, on 2 ranks) and compares, at
each rank count, the model's generation predicted from the snapshot's own slot times with the
scaled one: a ratio below 1 means the scaling over-predicts that generation's time.

    python benchmarks/length_scaling.py runs/paper-humanoid/seed0 --generations 50 70 100 120 \\
        --keep paper-humanoid/seed0

Each snapshot's bench is cached beside the snapshot's run as bench-genG.json; with --keep the
benches and the comparison (length_scaling.json) go to docs/data/KEEP/, from where a rerun
without the run directory prints the table again.
"""
from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import yaml

from paper_table import DATA, bench_policy
from time_to_score import RANKS, predicted_seconds


def bench_snapshot(run: Path, generation: int, kept: Path | None, ranks: int = 2) -> dict:
    """bench.json of one generation played from the run's snapshot of `generation` (made once:
    the kept copy, else the run's, else benched now)."""
    name = f"bench-gen{generation}.json"
    for where in (kept, run):
        if where is not None and (where / name).exists():
            return json.loads((where / name).read_text())
    snapshot = run / "snapshots" / f"snapshot_{generation:05d}.h5"
    if not snapshot.exists():
        raise SystemExit(f"{snapshot} does not exist: snapshots are every snapshot_freq "
                         "generations, and a kept run has none")
    return bench_policy(run, snapshot, run / name, ranks)


def compare(config: dict, final: dict, snapshots: dict[str, dict],
            ranks: tuple[int, ...]) -> dict[str, dict]:
    """For each snapshot's bench, at each rank count: its generation from its own slots, the
    final bench's scaled by mean episode length, and their ratio."""
    final_s = {n: predicted_seconds(config, final, n)[0] for n in ranks}
    result = {}
    for name, snapshot in snapshots.items():
        scale = snapshot["episode_length_mean"] / final["episode_length_mean"]
        rows = {}
        for n in ranks:
            own, efficiency = predicted_seconds(config, snapshot, n)
            rows[str(n)] = {"own_s": own, "own_efficiency": efficiency,
                            "scaled_s": final_s[n] * scale, "ratio": own / (final_s[n] * scale)}
        result[name] = rows
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a run directory with its snapshots")
    parser.add_argument("--generations", type=int, nargs="+", required=True)
    parser.add_argument("--keep", type=Path, help="the run's kept files under docs/data/")
    parser.add_argument("--ranks", type=int, nargs="+", default=list(RANKS))
    args = parser.parse_args()
    kept = DATA / args.keep if args.keep else None
    source = args.run if (args.run / "config.yaml").exists() else kept
    if source is None or not (source / "config.yaml").exists():
        raise SystemExit(f"no config.yaml in {args.run} or the kept files")
    config = yaml.safe_load((source / "config.yaml").read_text())
    final = json.loads((source / "bench.json").read_text())
    snapshots = {}
    for g in args.generations:
        snapshots[str(g)] = bench_snapshot(args.run, g, kept)
        if kept is not None and not (kept / f"bench-gen{g}.json").exists():
            shutil.copyfile(args.run / f"bench-gen{g}.json", kept / f"bench-gen{g}.json")
    by_ranks = compare(config, final, snapshots, tuple(args.ranks))
    result = {"final_episode_length_mean": final["episode_length_mean"], "generations": {
        g: {"episode_length_mean": snapshot["episode_length_mean"],
            "measured_generation_s": snapshot["gen_time_s"], "by_ranks": by_ranks[g]}
        for g, snapshot in snapshots.items()}}
    print(f"final policy: mean episode {final['episode_length_mean']:.1f} steps")
    print("generation  mean episode  " + "  ".join(f"{n} ranks: own / scaled (ratio)"
                                                   for n in args.ranks))
    for g, r in result["generations"].items():
        print(f"{g:>10}  {r['episode_length_mean']:12.1f}  " + "  ".join(
            f"{b['own_s']:.3f} / {b['scaled_s']:.3f} s ({b['ratio']:.2f})"
            for b in r["by_ranks"].values()))
    if kept is not None:
        (kept / "length_scaling.json").write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
