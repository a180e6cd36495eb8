"""HDF5 checkpoints and snapshots: the full training state, written atomically."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import __version__, h5check
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


OPTIMIZER_ARRAYS = {"adam": ("m", "v"), "sgd": ("v",), "none": ()}


def _read(path: Path) -> tuple[dict, dict[str, np.ndarray], dict]:
    """Every field checked (links, storage, dtype, shape, size, finite, ranges) while read."""
    import h5py
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint file")
    if not path.is_file():
        raise CheckpointError(f"{path}: not a regular file")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: the file is empty")
    try:
        f = h5py.File(path, "r")
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a readable HDF5 checkpoint ({exc})") from None
    try:
        with f:
            return _read_fields(f)
    except h5check.BadField as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise CheckpointError(f"{path}: not a readable HDF5 checkpoint ({exc})") from None


def _read_fields(f) -> tuple[dict, dict[str, np.ndarray], dict]:
    missing = [name for name in REQUIRED if name.split("/")[0] not in f]
    missing += [f"attribute {a}" for a in REQUIRED_ATTRS if a not in f.attrs]
    if missing:
        raise h5check.BadField(f"not a complete mpi_es checkpoint (missing {', '.join(missing)})")
    attr = h5check.attribute
    version = attr(f, "format_version", int, minimum=1)
    if version > FORMAT_VERSION:
        raise h5check.BadField(f"format_version {version} is newer than this mpi_es "
                               f"({__version__}) reads (up to {FORMAT_VERSION}); upgrade mpi_es")
    attrs = {"format_version": version,
             "generation": attr(f, "generation", int, minimum=0),
             "timesteps_so_far": attr(f, "timesteps_so_far", int, minimum=0),
             "episodes_so_far": attr(f, "episodes_so_far", int, minimum=0),
             "env_id": attr(f, "env_id", str), "config": attr(f, "config", str)}
    if "time_elapsed" in f.attrs:
        attrs["time_elapsed"] = attr(f, "time_elapsed", float, minimum=0.0)
    for key in ("num_params", *library_versions()):
        if key in f.attrs:
            attrs[key] = attr(f, key, int if key == "num_params" else str)
    theta = h5check.dataset(f, "theta", dtype=np.float32, ndim=1, max_elements=h5check.MAX_PARAMS)
    sum_ = h5check.dataset(f, "obstat/sum", dtype=np.float64, ndim=1,
                           max_elements=h5check.MAX_OB_DIM)
    arrays = {"theta": theta, "obstat/sum": sum_,
              "obstat/sumsq": h5check.dataset(f, "obstat/sumsq", dtype=np.float64, ndim=1,
                                              max_elements=h5check.MAX_OB_DIM, shape=sum_.shape),
              "obstat/count": h5check.dataset(f, "obstat/count", dtype=np.float64, ndim=0,
                                              max_elements=1)}
    if float(arrays["obstat/count"]) <= 0:
        raise h5check.BadField(f"/obstat/count must be > 0, got {float(arrays['obstat/count'])}")
    if np.any(arrays["obstat/sumsq"] < 0):
        raise h5check.BadField("/obstat/sumsq holds negative values")
    group = f["optimizer"]
    name = attr(group, "name", str)
    if name not in OPTIMIZER_ARRAYS:
        raise h5check.BadField(f"/optimizer has unknown name {name!r} "
                               f"(known: {', '.join(OPTIMIZER_ARRAYS)})")
    optimizer: dict = {"name": name}
    if name != "none":
        optimizer["t"] = attr(group, "t", int, minimum=0)
    for key in OPTIMIZER_ARRAYS[name]:
        optimizer[key] = h5check.dataset(f, f"optimizer/{key}", dtype=np.float32, ndim=1,
                                         max_elements=h5check.MAX_PARAMS, shape=theta.shape)
    if name == "adam" and np.any(optimizer["v"] < 0):
        raise h5check.BadField("/optimizer/v (Adam) holds negative values")
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
    """Read and check a checkpoint or snapshot; CheckpointError (exit 2) names what is wrong."""
    path = Path(path)
    attrs, arrays, opt = _read(path)
    theta = arrays["theta"]
    obstat = RunningStat(arrays["obstat/sum"], arrays["obstat/sumsq"],
                         float(arrays["obstat/count"]))
    name = opt.pop("name")
    state = TrainState(theta=theta, optimizer=None, obstat=obstat,
                       generation=attrs["generation"],
                       timesteps_so_far=attrs["timesteps_so_far"],
                       episodes_so_far=attrs["episodes_so_far"],
                       time_elapsed=attrs.get("time_elapsed", 0.0))
    return Loaded(state, attrs, name, opt)
