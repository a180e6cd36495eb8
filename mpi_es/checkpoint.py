"""HDF5 checkpoints and snapshots: the full training state, written atomically."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import __version__
from .config import ConfigError
from .es import RunningStat, make_optimizer

FORMAT_VERSION = 1
TEMP_MARK = ".tmp-"
REQUIRED = ("theta", "obstat/sum", "obstat/sumsq", "obstat/count", "optimizer")
REQUIRED_ATTRS = ("format_version", "generation", "timesteps_so_far", "episodes_so_far",
                  "env_id", "config")
# Test-only: seconds to pause mid-write, so kill tests can land inside a checkpoint write.
_WRITE_PAUSE = float(os.environ.get("MPI_ES_TEST_CHECKPOINT_PAUSE", "0") or 0)


class CheckpointError(ConfigError):
    """A checkpoint that cannot be used: names the file and the problem (exit status 2)."""


@dataclass
class TrainState:
    theta: np.ndarray
    optimizer: object | None          # es.Adam / es.SGD, or None for the plain step
    obstat: RunningStat
    generation: int = 0               # completed generations
    timesteps_so_far: int = 0
    episodes_so_far: int = 0
    time_elapsed: float = 0.0


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
        if _WRITE_PAUSE:
            f.flush()
            import time
            time.sleep(_WRITE_PAUSE)


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


def _read(path: Path) -> tuple[dict, dict[str, np.ndarray], dict]:
    import h5py
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint file")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: the file is empty")
    try:
        with h5py.File(path, "r") as f:
            missing = [name for name in REQUIRED if name not in f]
            missing += [f"attribute {a}" for a in REQUIRED_ATTRS if a not in f.attrs]
            if missing:
                raise CheckpointError(f"{path}: not a complete mpi_es checkpoint "
                                      f"(missing {', '.join(missing)})")
            attrs = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in f.attrs.items()}
            version = int(attrs["format_version"])
            if version > FORMAT_VERSION:
                raise CheckpointError(f"{path}: format_version {version} is newer than this "
                                      f"mpi_es ({__version__}) reads (up to {FORMAT_VERSION}); "
                                      f"upgrade mpi_es")
            arrays = {name: f[name][()] for name in REQUIRED if name != "optimizer"}
            opt_group = f["optimizer"]
            optimizer = {k: v[...] for k, v in opt_group.items()}
            optimizer.update({k: v.item() if isinstance(v, np.generic) else v
                              for k, v in opt_group.attrs.items()})
    except CheckpointError:
        raise
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise CheckpointError(f"{path}: not a readable HDF5 checkpoint ({exc})") from None
    return attrs, arrays, optimizer


@dataclass
class Loaded:
    state: TrainState                 # optimizer not rebuilt yet: see with_optimizer
    attrs: dict
    optimizer_name: str
    optimizer_state: dict

    def with_optimizer(self, args: dict) -> TrainState:
        """The state with its optimizer rebuilt from the stored moments and the given args."""
        if self.optimizer_name != "none":
            self.state.optimizer = make_optimizer(self.optimizer_name, args,
                                                  self.state.theta.size, self.optimizer_state)
        return self.state


def load(path: str | Path) -> Loaded:
    """Read and check a checkpoint or snapshot."""
    path = Path(path)
    attrs, arrays, opt = _read(path)
    theta = np.asarray(arrays["theta"])
    if theta.dtype != np.float32 or theta.ndim != 1 or not np.all(np.isfinite(theta)):
        raise CheckpointError(f"{path}: /theta must be a finite 1-D float32 array")
    obstat = RunningStat(np.asarray(arrays["obstat/sum"], np.float64),
                         np.asarray(arrays["obstat/sumsq"], np.float64),
                         float(arrays["obstat/count"]))
    name = str(opt.pop("name", "none"))
    opt_state = {k: (int(v) if k == "t" else v) for k, v in opt.items()}
    if any(np.shape(v) not in ((), theta.shape) for v in opt_state.values()):
        raise CheckpointError(f"{path}: optimizer state does not match /theta's size")
    state = TrainState(theta=theta, optimizer=None, obstat=obstat,
                       generation=int(attrs["generation"]),
                       timesteps_so_far=int(attrs["timesteps_so_far"]),
                       episodes_so_far=int(attrs["episodes_so_far"]),
                       time_elapsed=float(attrs.get("time_elapsed", 0.0)))
    return Loaded(state, attrs, name, opt_state)
