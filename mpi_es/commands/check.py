"""`python -m mpi_es check CONFIG`: everything a job would verify, without training."""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from ..config import Config
from ..core import noise
from ..envs import resolve_env_id
from ..rundir import checkpoint, runlock
from ..rundir.outputs import duration
from ..training.rollout import run_episode
from ..training.setup import Setup, initial_state
from . import scaling


def describe(cfg: Config, setup: Setup, world_size: int, ranks: int | None = None) -> str:
    """What a job would do; `ranks`: the launch size to predict for (default this launch's)."""
    ranks = ranks or world_size
    spec = setup.spec
    gym_id, note = resolve_env_id(cfg.env_id)
    expected_eval = cfg.eval_prob * cfg.train_slots
    table_bytes = cfg.noise_table.size * 4
    lines = ["resolved config:"]
    lines += ["  " + line for line in cfg.to_yaml().rstrip().splitlines()]
    lines += [
        "",
        f"environment:        {gym_id}" + (f"  ({note})" if note else ""),
        f"observation size:   {spec.describe_observations()}",
        f"action size:        {spec.describe_actions()}",
        f"episode limit:      {setup.limit} steps",
        f"policy:             {spec.describe()}",
        f"parameters:         {spec.num_params}",
        f"noise table:        {cfg.noise_table.size} float32 = {table_bytes / 2**20:.1f} MiB "
        f"per node (shared by the node's ranks)",
        f"episodes/gen:       {cfg.population_size} training ({cfg.train_slots} noise vectors) "
        f"+ {expected_eval:.2f} evaluation on average",
        f"timesteps/gen:      at most {(cfg.population_size + expected_eval) * setup.limit:.0f}",
        f"ranks:              {ranks}{'' if ranks != world_size else ' (this launch)'}; about "
        f"{cfg.train_slots / ranks:.1f} noise vectors per rank per generation",
        f"out_dir:            {cfg.out_dir} ({out_dir_status(cfg)})",
    ]
    step_s = seconds_per_step(cfg, setup)
    return "\n".join(lines + scale_lines(cfg, setup, ranks, step_s))


def seconds_per_step(cfg: Config, setup: Setup, seconds: float = 1.0) -> float:
    """Env step plus policy forward pass, timed with the initial policy for about `seconds`."""
    state = initial_state(cfg, setup.spec)
    policy = setup.policy(state.theta, state.obstat)
    steps, start, seed = 0, time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        steps += run_episode(setup.env, policy, limit=min(setup.limit, 200),
                             reset_seed=seed).length
        seed += 1
    return (time.perf_counter() - start) / max(steps, 1)


def cost_line(cfg: Config, ranks: int, step: float, per_gen: float, limit: int) -> str:
    """What the run costs at `per_gen` seconds a generation (every episode at the env's limit:
    a fresh policy often ends sooner, a trained one often goes the distance)."""
    line = (f"estimated cost:     {step * 1e6:.0f} us per step here; at most {per_gen:.1f} s "
            f"per generation on {ranks} rank{'s' if ranks != 1 else ''}")
    totals = []
    if cfg.stop.generations:
        totals.append(f"{duration(per_gen * cfg.stop.generations)} for "
                      f"{cfg.stop.generations} generations")
    if cfg.stop.timesteps:
        steps_per_gen = (cfg.population_size + cfg.eval_prob * cfg.train_slots) * limit
        totals.append(f"{duration(per_gen * cfg.stop.timesteps / steps_per_gen)} for "
                      f"{cfg.stop.timesteps / 1e6:g}M timesteps")
    return line + "".join(f", {t}" for t in totals)


def out_dir_problem(cfg: Config) -> str | None:
    """Why a run could not write its out_dir, or None (what the start would find out)."""
    target = Path(cfg.out_dir)
    while not target.exists() and target != target.parent:
        target = target.parent
    if not target.is_dir():
        return f"out_dir {cfg.out_dir}: {target} is a file, not a directory"
    if not os.access(target, os.W_OK | os.X_OK):
        return f"out_dir {cfg.out_dir}: {target} is not writable by this user"
    return None


def out_dir_status(cfg: Config) -> str:
    out = Path(cfg.out_dir)
    path = out / "checkpoint.h5"
    holder = runlock.held_by(out)
    if holder:
        return f"in use by another job ({holder}): a run there would be refused"
    if path.exists():
        try:
            generation = checkpoint.load(path).state.generation
        except checkpoint.CheckpointError as exc:
            return f"holds an unusable checkpoint: {exc}"
        return f"--resume auto would continue from generation {generation}"
    if out.exists() and any(p.name != runlock.LOCK_NAME for p in out.iterdir()):
        return "exists, no checkpoint: a run would start fresh"
    return "new run"


# Slots a rank needs for the shared counter to even out episodes of unequal length: bench's
# model on measured Ant-v5 episodes predicts >= 90% from about this many on (docs/scaling.md).
SLOTS_PER_RANK = 8


def prediction(cfg: Config, params: int, ranks: int, slot_s: float,
               population: int | None = None) -> scaling.Prediction:
    """The scaling model for `ranks` ranks, every slot taking `slot_s`, the interconnect as
    scaling's defaults, the update timed here."""
    population = population or cfg.population_size
    slots = population // cfg.episodes_per_slot
    table = noise.build_serial(max(4 * params, 1 << 20), 0)
    update_s = scaling.update_seconds_per_rank(ranks, episodes=population, params=params,
                                               table=table)
    comm_s = scaling.allgather_seconds(
        ranks, scaling.generation_bytes(slots, cfg.episodes_per_slot, params),
        latency_s=scaling.DEFAULT_LATENCY_S, bytes_per_s=scaling.DEFAULT_BYTES_PER_S)
    return scaling.predict_generation(np.array([slot_s]), slots=slots, ranks=ranks, claim_s=0.0,
                                      update_s=update_s, comm_s=comm_s, trials=1)


def scale_lines(cfg: Config, setup: Setup, ranks: int, step_s: float) -> list[str]:
    """The predicted generation at `ranks` ranks, and a warning with a population that keeps
    them busy when this one cannot."""
    slot_s = cfg.episodes_per_slot * setup.limit * step_s
    params = setup.spec.num_params
    here = prediction(cfg, params, ranks, slot_s)
    lines = [cost_line(cfg, ranks, step_s, here.seconds, setup.limit),
             f"predicted:          {here.seconds:.2f} s per generation on {ranks} rank"
             f"{'s' if ranks != 1 else ''}, {here.efficiency:.0%} efficiency (every episode at "
             f"the limit; interconnect {scaling.DEFAULT_LATENCY_S * 1e6:.0f} us, "
             f"{scaling.DEFAULT_BYTES_PER_S / 1e9:.0f} GB/s; `bench` measures a launch)"]
    slots = cfg.train_slots
    if ranks > 1 and (slots < SLOTS_PER_RANK * ranks or here.efficiency < 0.9):
        wanted = SLOTS_PER_RANK * ranks * cfg.episodes_per_slot
        better = prediction(cfg, params, ranks, slot_s, wanted)
        lines.append(f"warning: population_size {cfg.population_size} gives {slots} noise "
                     f"vector{'s' if slots != 1 else ''} for {ranks} ranks "
                     f"({slots / ranks:.1f} per rank): "
                     + (f"{ranks - slots} ranks idle the whole generation, "
                        if slots < ranks else "")
                     + f"{here.efficiency:.0%} efficiency even if every episode took as long, "
                     f"less when they differ. A population of at least {wanted} "
                     f"({SLOTS_PER_RANK} noise vectors per rank) keeps {ranks} ranks busy "
                     f"({better.efficiency:.0%} predicted, {better.seconds:.1f} s per "
                     f"generation).")
    return lines
