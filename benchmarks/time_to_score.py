#!/usr/bin/env python
"""Wall-clock time to a score at scale, predicted: docs/scaling.md and docs/scaling.png.

Learning per timestep does not depend on the rank count (runs are bit-identical for any), so a
run's learning curve measured here, and the generation time the scaling model predicts at N
ranks, give the wall-clock time to a return at N ranks:

- steps and generations to the target: the first 10-episode noise-free check
  (`stop.eval_return`, logged as TargetEvalMean) that reached it, per seed;
- a generation at N ranks: `bench` plays one generation from the run's final checkpoint under
  `mpiexec -n RANKS` and measures its slot times (cached as bench.json in the first seed's run
  directory); the model (mpi_es.commands.scaling) hands those slots to N ranks the way the
  shared counter does, then adds the update per rank at N and the allgathers at the measured
  latency and bandwidth;
- earlier generations played shorter or longer episodes than the final policy: each
  generation's predicted time is scaled by its mean episode length (GenLenMean) over the
  bench's;
- the checks are part of the time: after its update a check generation plays
  stop.eval_episodes noise-free episodes shared by the ranks, ceil(episodes / N) after one
  another on the busiest rank, each as long as that check's mean episode (its steps are the
  generation's steps less its population's and its evaluation episodes') at the bench's
  seconds per step.

Each invocation computes one section of the page (kept as docs/data/scaling/<section>.json,
its figure as docs/scaling/<section>.png) and writes docs/scaling.md from every kept section.

    python benchmarks/time_to_score.py --section ant-population --study population --target 3000
    python benchmarks/time_to_score.py --section ant-population --study population --target auto
    python benchmarks/time_to_score.py --section humanoid-ars --target 6000 --ranks 48 1440 \\
        --runs "ARS Humanoid=docs/data/ars/humanoid/seed0,..." --title "Humanoid-v5 to 6000"
"""
from __future__ import annotations

import argparse
import json
import statistics
import shlex
import sys
from pathlib import Path

from paper_table import REPO, bench, has_check, read_log

RANKS = (64, 256, 1440)
FLAGSHIP_RANKS, FLAGSHIP_EFFICIENCY = 64, 0.90
NODE_RANKS = 64        # ranks of a node: beyond, slot claims cost at least a fabric's latency
SECTION_ORDER = ("ant-population", "humanoid-ars", "humanoid-es")


def first_reaching(rows: list[dict], target: float) -> tuple[int, int] | None:
    """(timesteps, generation) at the first check whose mean reached the target."""
    for row in rows:
        if has_check(row) and float(row["TargetEvalMean"]) >= target:
            return int(row["TimestepsSoFar"]), int(row["Generation"])
    return None


def checks(rows: list[dict]) -> list[tuple[int, float]]:
    """(timesteps, mean) of every 10-episode check: the learning curve."""
    return [(int(r["TimestepsSoFar"]), float(r["TargetEvalMean"])) for r in rows
            if has_check(r)]


def best_check(rows: list[dict]) -> float | None:
    values = [mean for _, mean in checks(rows)]
    return max(values) if values else None


def episodes_per_slot(config: dict) -> int:
    """Episodes a slot plays: a noise vector's mirrored pair, or one."""
    return 2 if config["optimizations"]["mirrored_sampling"] else 1


def predicted_seconds(config: dict, measured: dict, ranks: int) -> tuple[float, float]:
    """(seconds, efficiency) of one generation of this config at `ranks` ranks."""
    from mpi_es.commands import scaling
    per_slot = episodes_per_slot(config)
    population = config["population_size"]
    slots = population // per_slot
    params = measured["num_params"]
    update_s = scaling.update_seconds_per_rank(ranks, episodes=population, params=params)
    comm_s = scaling.allgather_seconds(
        ranks, scaling.generation_bytes(slots, per_slot, params),
        latency_s=measured["allgather_latency_s"],
        bytes_per_s=measured["allgather_bytes_per_s"] or scaling.DEFAULT_BYTES_PER_S)
    claim_s = measured["claim_s"]
    if ranks > NODE_RANKS:     # most claims cross the fabric to rank 0's counter
        claim_s = max(claim_s, scaling.DEFAULT_LATENCY_S)
    p = scaling.predict_generation(measured["slot_seconds"], slots=slots, ranks=ranks,
                                   claim_s=claim_s, update_s=update_s, comm_s=comm_s)
    return p.seconds, p.efficiency


def check_steps(row: dict, population: int) -> float:
    """Timesteps of the row's stop.eval_return check (0 for a generation without one): the
    generation's steps less its population's and its evaluation episodes'."""
    if not has_check(row):
        return 0.0
    evaluation = (float(row["EvalGenLengthMean"]) * int(row["EvalGenCount"])
                  if int(row["EvalGenCount"]) else 0.0)
    return int(row["TimestepsThisGen"]) - float(row["GenLenMean"]) * population - evaluation


def seconds_per_step(config: dict, measured: dict) -> float:
    """One rank's seconds per env step in the bench: a slot's mean time over its steps."""
    return measured["slot_seconds_mean"] / (episodes_per_slot(config)
                                            * measured["episode_length_mean"])


def minutes_to(rows: list[dict], generation: int, per_gen_s: float, length_mean: float,
               check_s_per_step: float = 0.0, population: int = 0) -> float:
    """Predicted wall-clock minutes through `generation`: each generation scaled by its own
    mean episode length over the bench's, plus its check (see check_seconds_per_step)."""
    total = sum(per_gen_s * float(r["GenLenMean"]) / length_mean
                + check_s_per_step * check_steps(r, population)
                for r in rows if int(r["Generation"]) <= generation)
    return total / 60


def check_seconds_per_step(config: dict, measured: dict, ranks: int) -> float:
    """Wall seconds a check costs per step of its episodes at `ranks` ranks: its episodes'
    steps, over their count, ceil(episodes / ranks) times at the bench's seconds per step."""
    episodes = config["stop"].get("eval_episodes", 10)
    rounds = -(-episodes // ranks)
    return rounds * seconds_per_step(config, measured) / episodes


def common_target(configs: list[tuple[str, list[Path]]], step: float = 100.0) -> float:
    """The highest return every configuration reaches: the lowest, over configurations, of
    their seeds' median best 10-episode check, rounded down to a multiple of `step`."""
    reached = []
    for _, runs in configs:
        bests = [best_check(read_log(run)) for run in runs if (run / "log.csv").exists()]
        bests = [b for b in bests if b is not None]
        if not bests:
            raise SystemExit(f"no 10-episode check in {runs}: no common target")
        reached.append(statistics.median(bests))
    return step * (min(reached) // step)


def analyse(label: str, runs: list[Path], target: float, bench_ranks: int,
            ranks: tuple[int, ...] = RANKS) -> dict:
    logs = {run: read_log(run) for run in runs if (run / "log.csv").exists()}
    config = __import__("yaml").safe_load((runs[0] / "config.yaml").read_text())
    measured = bench(runs[0], bench_ranks)
    result = {"label": label, "population": config["population_size"],
              "seeds": len(logs), "target": target, "per_seed": {}, "by_ranks": {}}
    per_rank = {n: predicted_seconds(config, measured, n) for n in ranks}
    for run, rows in logs.items():
        reached = first_reaching(rows, target)
        seed = {"steps_run": int(rows[-1]["TimestepsSoFar"]), "best_check": best_check(rows),
                "checks": checks(rows),
                "steps": reached[0] if reached else None,
                "generations": reached[1] if reached else None,
                "minutes": {str(n): minutes_to(
                    rows, reached[1], per_rank[n][0], measured["episode_length_mean"],
                    check_seconds_per_step(config, measured, n), config["population_size"])
                    for n in ranks} if reached else None}
        result["per_seed"][run.name] = seed
    for n in ranks:
        times = [s["minutes"][str(n)] if s["minutes"] else float("inf")
                 for s in result["per_seed"].values()]
        result["by_ranks"][str(n)] = {"generation_s": per_rank[n][0],
                                      "efficiency": per_rank[n][1],
                                      "minutes_median": statistics.median(times) if times else None}
    steps = [s["steps"] if s["steps"] is not None else float("inf")
             for s in result["per_seed"].values()]
    result["steps_median"] = statistics.median(steps) if steps else None
    result["bench"] = {"ranks": measured["ranks"], "measured_generation_s": measured["gen_time_s"],
                       "predicted_generation_s": measured.get("predicted_generation_s_at_launch"),
                       "population_benched": measured["population_size"]}
    return result


def fmt(x: float | None, unit: str = "", digits: int = 1) -> str:
    if x is None or x == float("inf"):
        return "not reached"
    return f"{x:.{digits}f}{unit}"


def millions(steps: float | None) -> str:
    return "not reached" if steps in (None, float("inf")) else f"{steps / 1e6:.2f}M"


def minutes(x: float | None) -> str:
    return "not reached" if x is None or x == float("inf") else f"{x:.3g}"


def fastest(results: list[dict], n: int, min_efficiency: float = 0.0) -> dict | None:
    """The configuration with the fewest predicted minutes at n ranks (at least this
    efficiency), None when none reached the target."""
    ok = [r for r in results if r["by_ranks"][str(n)]["minutes_median"] not in (None, float("inf"))
          and r["by_ranks"][str(n)]["efficiency"] >= min_efficiency]
    return min(ok, key=lambda r: r["by_ranks"][str(n)]["minutes_median"]) if ok else None


def section_lines(section: dict) -> list[str]:
    results, target, ranks = section["results"], section["target"], section["ranks"]
    lines = [f"## {section['title']}", "", f"Made by `{section['command']}`."]
    if section.get("setup"):
        lines += ["", section["setup"]]
    if section.get("target_rule"):
        lines += ["", section["target_rule"]]
    lines += ["", "| configuration | population | seeds | steps to it (median) | "
              + " | ".join(f"minutes at {n} ranks (efficiency)" for n in ranks) + " |",
              "|---|---|---|---|" + "---|" * len(ranks)]
    for r in results:
        lines.append(f"| {r['label']} | {r['population']} | {r['seeds']} | "
                     f"{millions(r['steps_median'])} | "
                     + " | ".join(f"{minutes(r['by_ranks'][str(n)]['minutes_median'])} "
                                  f"({r['by_ranks'][str(n)]['efficiency']:.0%})" for n in ranks)
                     + " |")
    lines += [""]
    for n in ranks:
        best = fastest(results, n)
        lines.append(f"- Fastest to {target:g} at {n} ranks: "
                     + (f"{best['label']} ({minutes(best['by_ranks'][str(n)]['minutes_median'])}"
                        " min)" if best else "none reached it"))
    if FLAGSHIP_RANKS in ranks and len(results) > 1:
        best = fastest(results, FLAGSHIP_RANKS, FLAGSHIP_EFFICIENCY)
        lines.append(f"- Fastest at {FLAGSHIP_RANKS} ranks among those predicted at least "
                     f"{FLAGSHIP_EFFICIENCY:.0%} efficient there: "
                     + (f"{best['label']}" if best else "none"))
    if section.get("published"):
        lines.append(f"- Published: {section['published']}")
    lines += ["", f"Per seed (steps to {target:g}, best check, steps run):", ""]
    for r in results:
        for seed, s in r["per_seed"].items():
            lines.append(f"- {r['label']} {seed}: {millions(s['steps'])}"
                         f", best check {fmt(s['best_check'])}, "
                         f"{s['steps_run'] / 1e6:.2f}M steps run")
    lines += ["", "The model against the measurement (the bench of each configuration's final "
              "policy, on this machine):", ""]
    for r in results:
        b = r["bench"]
        lines.append(f"- {r['label']}: one generation of population {b['population_benched']} on "
                     f"{b['ranks']} ranks measured {b['measured_generation_s']:.2f} s, predicted "
                     f"{fmt(b['predicted_generation_s'], ' s', 2)}")
    figure = f"scaling/{section['name']}.png"
    lines += ["", f"![predicted minutes to {target:g} against ranks]({figure})", ""]
    if any(s.get("checks") for r in results for s in r["per_seed"].values()):
        lines += ["The learning curves: every 10-episode noise-free check of every seed, "
                  "the target dashed.", "",
                  f"![10-episode checks against steps](scaling/{section['name']}-curves.png)",
                  ""]
    return lines


def write_page(docs: Path) -> None:
    """docs/scaling.md from every kept section, in SECTION_ORDER, then by name."""
    kept = {p.stem: json.loads(p.read_text()) for p in (docs / "data" / "scaling").glob("*.json")}
    for name, section in kept.items():
        if "results" not in section:
            raise SystemExit(f"docs/data/scaling/{name}.json is not a section of the scaling page "
                             "(it has no 'results'); that directory holds sections only")
    names = [n for n in SECTION_ORDER if n in kept] + sorted(set(kept) - set(SECTION_ORDER))
    lines = ["# Time to a score at scale", "",
             "Predicted wall-clock minutes for a run to reach a return (the first 10-episode "
             "noise-free check at or above it) at each rank count. Learning per timestep does not "
             "depend on the rank count (runs are bit-identical for any), so each prediction "
             "combines learning curves measured on a 2-core machine with the scaling model's "
             "generation time at that rank count: see the top of "
             "`benchmarks/time_to_score.py` for how. The minutes include the checks: each "
             "plays its 10 episodes across the ranks after its generation's update (from 10 "
             "ranks on, one episode each while the other ranks wait). Medians over seeds; a "
             "seed that did not reach the target counts as not reached. Efficiency is the "
             "model's: the share of the ranks' time spent playing a generation's episodes "
             "(checks left out). Above 64 ranks (more than one node) each slot claim costs "
             "at least 20 us, a fabric with RDMA atomics (InfiniBand, Slingshot); over plain "
             "TCP a claim can wait for rank 0's next progress call (milliseconds, see "
             "[clusters](clusters.md)), which matters for short episodes.",
             ""]
    for name in names:
        lines += section_lines(kept[name])
    (docs / "scaling.md").write_text("\n".join(lines))


def write_section(name: str, title: str, results: list[dict], target: float,
                  ranks: tuple[int, ...], command: str, docs: Path, published: str | None,
                  target_rule: str | None, setup: str | None = None) -> None:
    section = {"name": name, "title": title, "target": target, "ranks": list(ranks),
               "command": command, "published": published, "target_rule": target_rule,
               "setup": setup, "results": results}
    out = docs / "data" / "scaling" / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(section, indent=1, default=str) + "\n")
    (docs / "scaling").mkdir(exist_ok=True)
    plot(results, target, ranks, docs / "scaling" / f"{name}.png")
    plot_curves(results, target, docs / "scaling" / f"{name}-curves.png")
    write_page(docs)


def plot(results: list[dict], target: float, ranks: tuple[int, ...], out: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4))
    for r in results:
        ys = [r["by_ranks"][str(n)]["minutes_median"] for n in ranks]
        if all(y not in (None, float("inf")) for y in ys):
            ax.plot(ranks, ys, marker="o", label=f"{r['label']} (population {r['population']})")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("ranks")
    ax.set_ylabel(f"predicted minutes to {target:g}")
    ax.set_xticks(ranks, [str(n) for n in ranks])
    ax.minorticks_off()
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def plot_curves(results: list[dict], target: float, out: Path) -> None:
    """Each configuration's checks against steps, a colour per configuration, a marker per
    seed; nothing when no run has a check."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    if not any(s.get("checks") for r in results for s in r["per_seed"].values()):
        return
    fig, ax = plt.subplots(figsize=(7, 4.2))
    markers = "osD^v<>"
    for k, r in enumerate(results):
        colour = f"C{k}"
        for m, (seed, s) in enumerate(sorted(r["per_seed"].items())):
            points = s.get("checks") or []
            if points:
                steps, means = zip(*points)
                ax.plot([x / 1e6 for x in steps], means, color=colour,
                        marker=markers[m % len(markers)], markersize=4, linewidth=1,
                        label=f"{r['label']} {seed}")
    ax.axhline(target, color="black", linestyle="--", linewidth=1, label=f"target {target:g}")
    ax.set_xlabel("environment steps (millions)")
    ax.set_ylabel("10-episode check (mean return)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--section", required=True,
                        help="the page section this computes (kept as docs/data/scaling/NAME.json)")
    parser.add_argument("--target", required=True,
                        help="a return, or 'auto': the highest return every configuration "
                             "reaches (its seeds' median best check, rounded down to 100)")
    parser.add_argument("--study", choices=["population"],
                        help="the Ant-v5 population study of benchmarks/population_study.py")
    parser.add_argument("--root", type=Path, default=REPO / "runs" / "population",
                        help="run directories; finished runs kept in docs/data/population count"
                             " too")
    parser.add_argument("--runs", action="append", default=[], metavar="LABEL=DIR[,DIR...]",
                        help="a configuration and its seeds' run directories (repeatable)")
    parser.add_argument("--ranks", type=int, nargs="+", default=list(RANKS))
    parser.add_argument("--bench-ranks", type=int, default=2)
    parser.add_argument("--title", default="Time to a score at scale")
    parser.add_argument("--published", help="the published figure to show beside these")
    parser.add_argument("--docs", type=Path, default=REPO / "docs")
    args = parser.parse_args()
    configs: list[tuple[str, list[Path]]] = []
    if args.study == "population":
        from population_study import CANDIDATES, DROPPED
        from paper_table import DATA
        for name in (n for n in CANDIDATES if n not in DROPPED):
            seeds = {}
            for root in (DATA / "population", args.root):     # a kept, finished run wins
                for run in sorted((root / name).glob("seed*/")):
                    seeds.setdefault(run.name, run)
            if seeds:
                configs.append((name, [seeds[k] for k in sorted(seeds)]))
    for item in args.runs:
        label, _, dirs = item.partition("=")
        configs.append((label, [Path(d) for d in dirs.split(",")]))
    if not configs:
        parser.error("nothing to analyse: give --study or --runs")
    setup = None
    if args.study == "population":
        from population_study import describe
        setup = describe()
    rule = None
    if args.target == "auto":
        target = common_target(configs)
        rule = (f"The target, {target:g}, is the highest return every configuration reached "
                "within its budget (the lowest of their seeds' median best checks, rounded "
                "down to 100).")
    else:
        target = float(args.target)
    ranks = tuple(args.ranks)
    results = [analyse(label, runs, target, args.bench_ranks, ranks) for label, runs in configs]
    command = "python benchmarks/time_to_score.py " + shlex.join(sys.argv[1:])
    write_section(args.section, args.title, results, target, ranks, command, args.docs,
                  args.published, rule, setup)
    print(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    main()
