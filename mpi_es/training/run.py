"""The run lifecycle, in one place: config and env checked on every rank, the run directory's
lock, the resume, the start, the generations, the stop."""
from __future__ import annotations

import sys
import time
from pathlib import Path

from .. import config as config_module
from ..config import Config
from ..errors import ConfigError
from ..core.state import TrainState
from ..distributed.agreement import agreed
from ..distributed.signals import StopRequest
from ..distributed.world import World
from ..envs import resolve_env_id, show_mujoco_warnings
from ..errors import EXIT_OK, EXIT_STOPPED, EXIT_USAGE
from ..rundir import runlock
from ..rundir.outputs import Outputs
from ..rundir.resume import (checkpoint_to_resume, load_for_resume,
                             set_aside_later_generations)
from .loop import Trainer
from .setup import Setup, build_noise_table, initial_state, prepare, verify_consistent
from .stopping import stop_reason


def load_and_prepare(world: World, path: str, overrides: list[str] = (),
                     out_dir: str | None = None, cfg: Config | None = None
                     ) -> tuple[Config, Setup]:
    """The config (of the YAML file with --set/--out-dir, or `cfg` as given) and the env
    checked against it, agreed on by every rank."""
    show_mujoco_warnings(world.is_root)
    if cfg is None:
        cfg = agreed(world, lambda: config_module.load(path, list(overrides), out_dir))
    return cfg, agreed(world, lambda: prepare(cfg, world.node_size))


def run(cfg: Config, world: World, setup: Setup, *, resume: str = "auto",
        stop: StopRequest) -> int:
    """Train a checked config: lock the run directory, resume or start, train until a limit
    or a signal. Returns the exit status (0 done, 75 stopped by a signal, 2 refused)."""
    # Before anything in out_dir is read for a resume, cleaned up or written: one job per run
    # directory. Rank 0 holds the lock until the process ends.
    lock = agreed(world, lambda: runlock.acquire(cfg.out_dir) if world.is_root else None)
    try:
        resumed = agreed(world, lambda: starting_state(cfg, world, setup, resume))
        if world.bcast(finished_already(cfg, resumed) if world.is_root else None):
            return EXIT_OK
        if world.any_true(stop.requested) and resumed is None:
            if world.is_root:
                print("stopped: a signal arrived before training started; nothing to resume "
                      "yet (run the same command again to start)", flush=True)
            return EXIT_STOPPED
        try:
            signalled = train(cfg, world, setup, resumed, stop)
        except ConfigError as exc:     # raised on every rank alike (start-up consistency check)
            if world.is_root:
                print(f"error: {exc}", file=sys.stderr, flush=True)
            return EXIT_USAGE
        return EXIT_STOPPED if signalled else EXIT_OK
    finally:
        if lock is not None:
            lock.release()


def starting_state(cfg: Config, world: World, setup: Setup, resume: str) -> TrainState | None:
    """Rank 0: the checkpoint state to continue from (None: a fresh start); ConfigError when
    it cannot be used."""
    if not world.is_root:
        return None
    path = checkpoint_to_resume(cfg, resume)
    if path is None:
        return None
    state, warnings = load_for_resume(path, cfg, setup.spec.num_params)
    for line in warnings:
        print(line, file=sys.stderr, flush=True)
    if resume not in ("auto", "never"):
        moved = set_aside_later_generations(Path(cfg.out_dir), state.generation)
        if moved:
            print(moved, flush=True)
    print(f"resuming from {path} at generation {state.generation} "
          f"({state.timesteps_so_far} timesteps so far)", flush=True)
    return state


def finished_already(cfg: Config, resumed: TrainState | None) -> bool:
    """A run resumed at or past its stop limit says so before building any noise table."""
    reason = stop_reason(cfg, resumed) if resumed is not None else None
    if reason:
        hint = ("stop.eval_return" if "eval_return" in reason
                else f"the limit, e.g. --set stop.generations={resumed.generation * 2}")
        print(f"done: {reason} already ({resumed.generation} generations, "
              f"{resumed.timesteps_so_far} timesteps); raise {hint} with --set to train on",
              flush=True)
    return reason is not None


def train(cfg: Config, world: World, setup: Setup, resumed: TrainState | None,
          stop: StopRequest) -> bool:
    """Everything after the config, env and checkpoint checks passed on every rank.

    `resumed` is the state to continue from (rank 0 only), or None for a fresh start.
    Returns True when a signal stopped the run.
    """
    outputs = Outputs(cfg, active=world.is_root)
    gym_id, note = resolve_env_id(cfg.env_id)
    if note:
        outputs.say(note)
    t0 = time.perf_counter()
    table = build_noise_table(world, cfg)
    verify_consistent(world, cfg, table)
    outputs.say(f"mpi_es: {gym_id} | {world.size} rank(s) on this job "
                f"({world.nodes} node{'s' if world.nodes > 1 else ''}) | "
                f"{setup.spec.num_params} parameters | population {cfg.population_size} | "
                f"noise table {table.size * 4 / 2**20:.0f} MiB per node, built in "
                f"{time.perf_counter() - t0:.2f} s | out_dir {Path(cfg.out_dir).resolve()} ("
                + ("fresh start" if resumed is None else
                   f"resuming from generation {resumed.generation}") + ")")
    warning = cfg.idle_ranks_warning(world.size)
    if warning:
        outputs.say(warning)
    state = resumed if resumed is not None else initial_state(cfg, setup.spec)
    outputs.start(state, fresh=resumed is None)
    state = world.bcast(state if world.is_root else None)   # the same start on every rank
    trainer = Trainer(cfg, world, setup, table, state, outputs)
    reason, signalled = trainer.run(stop)
    state = trainer.state
    outputs.say(f"{'stopped' if signalled else 'done'}: {reason}; {state.generation} "
                f"generations, {state.timesteps_so_far} timesteps; checkpoint "
                f"{outputs.checkpoint_path}")
    return signalled
