"""`python -m mpi_es check CONFIG`: everything a job would verify, without training."""
from __future__ import annotations

import os
import time
from pathlib import Path

from ..config import Config
from ..envs import resolve_env_id
from ..rundir import checkpoint, runlock
from ..rundir.outputs import duration
from ..training.rollout import run_episode
from ..training.setup import Setup, initial_state


def describe(cfg: Config, setup: Setup, world_size: int) -> str:
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
        f"ranks (this launch): {world_size}; about {cfg.train_slots / world_size:.1f} "
        f"noise vectors per rank per generation",
        f"out_dir:            {cfg.out_dir} ({out_dir_status(cfg)})",
        cost_line(cfg, setup, world_size),
    ]
    warning = cfg.idle_ranks_warning(world_size)
    if warning:
        lines.append(warning)
    return "\n".join(lines)


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


def cost_line(cfg: Config, setup: Setup, ranks: int) -> str:
    """An upper estimate of a generation's wall time on `ranks` ranks: every episode at the
    env's limit (a fresh policy often ends sooner; a trained one often goes the distance)."""
    step = seconds_per_step(cfg, setup)
    episodes = cfg.population_size + cfg.eval_prob * cfg.train_slots
    per_gen = episodes * setup.limit * step / ranks
    line = (f"estimated cost:     {step * 1e6:.0f} us per step here; at most {per_gen:.1f} s "
            f"per generation on {ranks} rank{'s' if ranks != 1 else ''}")
    if cfg.stop.generations:
        line += (f", {duration(per_gen * cfg.stop.generations)} for {cfg.stop.generations} "
                 f"generations")
    return line


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
