"""HDF5 checkpoints and snapshots: the full training state, written atomically."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import __version__
from .es import RunningStat, make_optimizer

FORMAT_VERSION = 1
TEMP_MARK = ".tmp-"


@dataclass
class TrainState:
    theta: np.ndarray
    optimizer: object | None          # es.Adam / es.SGD, or None for the plain step
    obstat: RunningStat
    generation: int = 0               # completed generations
    timesteps_so_far: int = 0
    episodes_so_far: int = 0
    time_elapsed: float = 0.0
    extra: dict = field(default_factory=dict)


def library_versions() -> dict[str, str]:
    import gymnasium
    import mujoco
    return {"mpi_es_version": __version__, "numpy_version": np.__version__,
            "gymnasium_version": gymnasium.__version__, "mujoco_version": mujoco.__version__}


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_h5(path: Path, state: TrainState, *, env_id: str, config_yaml: str) -> None:
    import h5py
    with h5py.File(path, "w") as f:
        f.create_dataset("theta", data=state.theta.astype(np.float32))
        ob = f.create_group("obstat")
        ob.create_dataset("sum", data=state.obstat.sum.astype(np.float64))
        ob.create_dataset("sumsq", data=state.obstat.sumsq.astype(np.float64))
        ob.create_dataset("count", data=np.float64(state.obstat.count))
        opt = f.create_group("optimizer")
        opt.attrs["name"] = type(state.optimizer).__name__.lower() if state.optimizer else "none"
        if state.optimizer is not None:
            for key, value in state.optimizer.state().items():
                if isinstance(value, np.ndarray):
                    opt.create_dataset(key, data=value)
                else:
                    opt.attrs[key] = value
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["generation"] = state.generation
        f.attrs["timesteps_so_far"] = state.timesteps_so_far
        f.attrs["episodes_so_far"] = state.episodes_so_far
        f.attrs["time_elapsed"] = state.time_elapsed
        f.attrs["env_id"] = env_id
        f.attrs["config"] = config_yaml
        f.attrs["num_params"] = state.theta.size
        for key, value in library_versions().items():
            f.attrs[key] = value


def save(path: str | Path, state: TrainState, *, env_id: str, config_yaml: str) -> None:
    """Write to a temp file beside `path`, fsync, then os.replace: never a half-written file."""
    path = Path(path)
    tmp = path.with_name(f"{path.name}{TEMP_MARK}{os.getpid()}")
    try:
        _write_h5(tmp, state, env_id=env_id, config_yaml=config_yaml)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    _fsync_dir(path.parent)


def remove_stale_temps(directory: str | Path) -> list[Path]:
    """Delete temp files a killed run left behind; returns what was removed."""
    removed = []
    for tmp in Path(directory).glob(f"*.h5{TEMP_MARK}*"):
        tmp.unlink(missing_ok=True)
        removed.append(tmp)
    return removed


@dataclass
class Loaded:
    state: TrainState
    attrs: dict


def load(path: str | Path, *, optimizer_name: str | None = None,
         optimizer_args: dict | None = None) -> Loaded:
    """Read a checkpoint or snapshot. The optimizer is rebuilt when its name and args are given."""
    import h5py
    with h5py.File(path, "r") as f:
        attrs = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in f.attrs.items()}
        theta = f["theta"][...]
        obstat = RunningStat(f["obstat/sum"][...], f["obstat/sumsq"][...],
                             float(f["obstat/count"][()]))
        opt_group = f["optimizer"]
        opt_state = {k: v[...] for k, v in opt_group.items()}
        opt_state.update({k: int(v) for k, v in opt_group.attrs.items() if k != "name"})
        stored_name = str(opt_group.attrs.get("name", "none"))
    optimizer = None
    if optimizer_name is not None and stored_name != "none":
        optimizer = make_optimizer(optimizer_name, optimizer_args or {}, theta.size, opt_state)
    state = TrainState(theta=theta, optimizer=optimizer, obstat=obstat,
                       generation=int(attrs["generation"]),
                       timesteps_so_far=int(attrs["timesteps_so_far"]),
                       episodes_so_far=int(attrs["episodes_so_far"]),
                       time_elapsed=float(attrs.get("time_elapsed", 0.0)))
    return Loaded(state, attrs)
