"""The Python API: load a trained policy and act with it, evaluate it, and train from a script.

    import mpi_es
    policy = mpi_es.load("runs/ant")                 # a run directory, checkpoint or snapshot
    action = policy.act(observation)
    result = mpi_es.train("jobs/ant_laptop.yaml", out_dir="runs/mine", overrides={"seed": 3})

`train` and `evaluate` behave under `mpiexec -n N python my_script.py` as the command line does
(every rank calls them; results are bit-identical for any N). Exit statuses become exceptions:
a bad config or checkpoint raises ConfigError (on every rank), a stop by SIGTERM, SIGINT or
SIGUSR1 raises Stopped after the checkpoint is written; an uncaught exception on one rank ends
the whole job, as on the command line.
"""
from __future__ import annotations


# BLAS threads and kernel: before NumPy is imported (mpi_es.blas says why)
from .blas import pin_blas  # noqa: E402

pin_blas()

from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Mapping  # noqa: E402

from .errors import EXIT_STOPPED, EXIT_USAGE, ConfigError  # noqa: E402

__all__ = ["LoadedPolicy", "Stopped", "TrainResult", "evaluate", "load", "train"]


class Stopped(Exception):
    """Training stopped on a signal after writing its checkpoint: call train() again (or run
    the same command) to resume exactly."""
    exit_status = EXIT_STOPPED


@dataclass
class TrainResult:
    out_dir: Path
    checkpoint: Path
    generation: int
    timesteps: int


class LoadedPolicy:
    """The noise-free policy of a checkpoint: its config, generation and `act`."""

    def __init__(self, snapshot):
        self._snapshot = snapshot
        self.cfg = snapshot.cfg
        self.generation = snapshot.generation

    def act(self, observation):
        """The action for one observation (observation statistics and action head included)."""
        return self._snapshot.policy.act(observation)


def _checkpoint_of(path: str | Path) -> Path:
    path = Path(path)
    return path / "checkpoint.h5" if path.is_dir() else path


def load(path: str | Path, *, allow_import: list[str] = ()) -> LoadedPolicy:
    """The policy stored in a run directory, checkpoint or snapshot. `allow_import`: modules a
    `module:Id` env (or `module:Name` network or algorithm) stored in it may import."""
    from .commands.evaluate import load_snapshot
    return LoadedPolicy(load_snapshot(_checkpoint_of(path), list(allow_import)))


def evaluate(path: str | Path, *, episodes: int = 10, seed: int = 0,
             allow_import: list[str] = ()) -> dict:
    """Play the noise-free policy of a checkpoint for `episodes` episodes (spread over the ranks
    under mpiexec) and return the figures `evaluate --json` prints, on every rank."""
    from .commands.evaluate import load_snapshot, play, summary
    from .distributed.world import World
    if episodes < 1:
        raise ConfigError("episodes must be at least 1")
    world = World()
    snapshot = load_snapshot(_checkpoint_of(path), list(allow_import))
    gathered = world.allgather(play(snapshot, list(range(world.rank, episodes, world.size)),
                                    seed))
    return summary([r for part in gathered for r in part], str(path), snapshot.generation)


def train(config: str | Path | Mapping[str, Any], *, out_dir: str | Path | None = None,
          overrides: Mapping[str, Any] | None = None, resume: str = "auto") -> TrainResult:
    """Train a config (a YAML file, or a dict of its keys) with `overrides` ({"dotted.key":
    value}, as --set) into `out_dir`; `resume` is auto, never or a checkpoint's path."""
    from . import config as config_module
    from .cli import STOP
    from .distributed.agreement import UsageExit, agreed
    from .distributed.world import World, install_abort_on_exception
    from .rundir import checkpoint
    from .training.run import load_and_prepare, run
    install_abort_on_exception()
    STOP.install()
    world = World()
    STOP.verbose = world.is_root
    sets = [f"{key}={_yaml_value(value)}" for key, value in (overrides or {}).items()]
    try:
        if isinstance(config, Mapping):
            raw = config_module.apply_overrides(dict(config), sets)
            if out_dir is not None:
                raw["out_dir"] = str(out_dir)
            cfg = agreed(world, lambda: config_module.validate(raw, source="config"))
            cfg, setup = load_and_prepare(world, "", cfg=cfg)
        else:
            cfg, setup = load_and_prepare(world, str(config), sets,
                                          None if out_dir is None else str(out_dir))
        status = run(cfg, world, setup, resume=resume, stop=STOP)
    except UsageExit as exc:
        world.free()
        raise ConfigError(exc.message) from None
    world.free()
    if status == EXIT_USAGE:
        raise ConfigError(f"the ranks of this job disagree on {config} (see the message above)")
    path = Path(cfg.out_dir) / "checkpoint.h5"
    state = checkpoint.load(path).state
    if status == EXIT_STOPPED:
        raise Stopped(f"stopped by a signal at generation {state.generation}; the checkpoint "
                      f"{path} resumes it")
    return TrainResult(Path(cfg.out_dir), path, state.generation, state.timesteps_so_far)


def _yaml_value(value: Any) -> str:
    import json
    return json.dumps(value)       # JSON is YAML: numbers, strings, lists and dicts read back
