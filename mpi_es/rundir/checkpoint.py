"""HDF5 checkpoints and snapshots: the full training state, written atomically."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Collection

import numpy as np

from .. import __version__, algorithms
from ..algorithms import state_layouts
from ..config.yamlio import parse_yaml
from ..core.obstat import RunningStat
from ..core.optimizers import ParamState
from ..core.state import Check, TrainState
from ..errors import ConfigError
from ..plugins import is_reference
from . import h5read

FORMAT_VERSION = 1
TEMP_MARK = ".tmp-"
REQUIRED = ("theta", "obstat/sum", "obstat/sumsq", "obstat/count", "optimizer")
REQUIRED_ATTRS = ("format_version", "generation", "timesteps_so_far", "episodes_so_far",
                  "env_id", "config")


class CheckpointError(ConfigError):
    """A checkpoint that cannot be used: names the file and the problem (exit status 2)."""


__all__ = ["CheckpointError", "Loaded", "TrainState", "load", "save", "remove_stale_temps",
           "library_versions"]


def library_versions() -> dict[str, str]:
    """What a checkpoint records it was written with (a resume warns when one differs)."""
    import gymnasium
    import mujoco
    from ..blas import blas_kernel
    from ..distributed.world import mpi_library
    return {"mpi_es_version": __version__, "numpy_version": np.__version__,
            "gymnasium_version": gymnasium.__version__, "mujoco_version": mujoco.__version__,
            "mpi_version": mpi_library(), "blas_kernel": blas_kernel()}


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_h5(path: Path, state: TrainState, *, env_id: str, config_yaml: str,
              write_pause_s: float = 0.0) -> None:
    import h5py
    with h5py.File(path, "w") as f:
        f.create_dataset("theta", data=state.theta.astype(np.float32))
        ob = f.create_group("obstat")
        ob.create_dataset("sum", data=state.obstat.sum.astype(np.float64))
        ob.create_dataset("sumsq", data=state.obstat.sumsq.astype(np.float64))
        ob.create_dataset("count", data=np.float64(state.obstat.count))
        # the algorithm's per-parameter state, whatever it holds, under /optimizer (its name
        # attribute is the state's kind: adam, sgd, none, ...)
        opt = f.create_group("optimizer")
        opt.attrs["name"] = state.param_state.kind
        for key, value in state.param_state.scalars.items():
            opt.attrs[key] = value
        for key, value in state.param_state.arrays.items():
            opt.create_dataset(key, data=value)
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["generation"] = state.generation
        f.attrs["timesteps_so_far"] = state.timesteps_so_far
        f.attrs["episodes_so_far"] = state.episodes_so_far
        f.attrs["time_elapsed"] = state.time_elapsed
        f.attrs["env_id"] = env_id
        f.attrs["config"] = config_yaml
        f.attrs["num_params"] = state.theta.size
        if state.last_check is not None:
            f.attrs["check_generation"] = state.last_check.generation
            f.attrs["check_episodes"] = state.last_check.episodes
            f.attrs["check_mean"] = state.last_check.mean
        for key, value in library_versions().items():
            f.attrs[key] = value
        if write_pause_s:
            f.flush()
            time.sleep(write_pause_s)


def save(path: str | Path, state: TrainState, *, env_id: str, config_yaml: str,
         write_pause_s: float = 0.0) -> None:
    """Write to a temp file beside `path`, fsync, then os.replace: never a half-written file.
    `write_pause_s` (tests only) pauses mid-write, so a kill can land inside a write."""
    path = Path(path)
    tmp = path.with_name(f"{path.name}{TEMP_MARK}{os.getpid()}")
    try:
        _write_h5(tmp, state, env_id=env_id, config_yaml=config_yaml, write_pause_s=write_pause_s)
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


def _read(path: Path, allow_import: Collection[str]) -> tuple[dict, dict[str, np.ndarray],
                                                              ParamState]:
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
            return _read_fields(f, allow_import)
    except h5read.BadField as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise CheckpointError(f"{path}: not a readable HDF5 checkpoint ({exc})") from None


def _read_fields(f, allow_import: Collection[str]
                 ) -> tuple[dict, dict[str, np.ndarray], ParamState]:
    missing = [name for name in REQUIRED if name.split("/")[0] not in f]
    missing += [f"attribute {a}" for a in REQUIRED_ATTRS if a not in f.attrs]
    if missing:
        raise h5read.BadField(f"not a complete mpi_es checkpoint (missing {', '.join(missing)})")
    attr = h5read.attribute
    version = attr(f, "format_version", int, minimum=1)
    if version > FORMAT_VERSION:
        raise h5read.BadField(f"format_version {version} is newer than this mpi_es "
                              f"({__version__}) reads (up to {FORMAT_VERSION}); upgrade mpi_es")
    attrs = {"format_version": version,
             "generation": attr(f, "generation", int, minimum=0),
             "timesteps_so_far": attr(f, "timesteps_so_far", int, minimum=0),
             "episodes_so_far": attr(f, "episodes_so_far", int, minimum=0),
             "env_id": attr(f, "env_id", str), "config": attr(f, "config", str)}
    if "time_elapsed" in f.attrs:
        attrs["time_elapsed"] = attr(f, "time_elapsed", float, minimum=0.0)
    if "check_generation" in f.attrs:           # written since the stored check (0.1.0+)
        attrs["last_check"] = Check(attr(f, "check_generation", int, minimum=1),
                                    attr(f, "check_episodes", int, minimum=1),
                                    attr(f, "check_mean", float))
    for key in ("num_params", *library_versions()):
        if key in f.attrs:
            attrs[key] = attr(f, key, int if key == "num_params" else str)
    theta = h5read.dataset(f, "theta", dtype=np.float32, ndim=1, max_elements=h5read.MAX_PARAMS)
    sum_ = h5read.dataset(f, "obstat/sum", dtype=np.float64, ndim=1,
                          max_elements=h5read.MAX_OB_DIM)
    arrays = {"theta": theta, "obstat/sum": sum_,
              "obstat/sumsq": h5read.dataset(f, "obstat/sumsq", dtype=np.float64, ndim=1,
                                             max_elements=h5read.MAX_OB_DIM, shape=sum_.shape),
              "obstat/count": h5read.dataset(f, "obstat/count", dtype=np.float64, ndim=0,
                                             max_elements=1)}
    if float(arrays["obstat/count"]) <= 0:
        raise h5read.BadField(f"/obstat/count must be > 0, got {float(arrays['obstat/count'])}")
    if np.any(arrays["obstat/sumsq"] < 0):
        raise h5read.BadField("/obstat/sumsq holds negative values")
    return attrs, arrays, _read_param_state(f, theta.shape, allow_import)


def _read_param_state(f, shape: tuple[int, ...], allow_import: Collection[str]) -> ParamState:
    """/optimizer: a known kind of per-parameter state, holding exactly its arrays (float32,
    theta's shape, finite, where required non-negative) and scalars."""
    group = f["optimizer"]
    kind = h5read.attribute(group, "name", str)
    layouts = state_layouts()
    if kind not in layouts:
        layouts = _with_own_algorithm(f, allow_import) or layouts
    if kind not in layouts:
        raise h5read.BadField(f"/optimizer has unknown name {kind!r} "
                              f"(known: {', '.join(sorted(layouts))}){_own_algorithm_hint(f)}")
    layout = layouts[kind]
    extra = sorted(set(group) - set(layout.arrays))
    if extra:
        raise h5read.BadField(f"/optimizer ({kind}) holds {', '.join(extra)}, which a {kind} "
                              f"state does not have")
    scalars = {key: h5read.attribute(group, key, kind_of, minimum=0)
               for key, kind_of in layout.scalars.items()}
    arrays = {key: h5read.dataset(f, f"optimizer/{key}", dtype=np.float32, ndim=1,
                                  max_elements=h5read.MAX_PARAMS, shape=shape)
              for key in layout.arrays}
    for key in layout.nonnegative:
        if np.any(arrays[key] < 0):
            raise h5read.BadField(f"/optimizer/{key} ({kind}) holds negative values")
    return ParamState(kind, arrays, scalars)


def _stored_algorithm(f) -> str | None:
    """The `package.module:Name` algorithm the stored config names, if any (read as data)."""
    try:
        raw = parse_yaml(h5read.attribute(f, "config", str), "stored config")
    except Exception:                # the config's own problems are reported where it is used
        return None
    name = raw.get("algorithm") if isinstance(raw, dict) else None
    return name if isinstance(name, str) and is_reference(name) else None


def _with_own_algorithm(f, allow_import: Collection[str]) -> dict | None:
    name = _stored_algorithm(f)
    if name is None or name.partition(":")[0] not in allow_import:
        return None
    algorithms.get(name)             # registers its kinds of state
    return state_layouts()


def _own_algorithm_hint(f) -> str:
    name = _stored_algorithm(f)
    if name is None:
        return ""
    return (f"; its run used the algorithm {name}: if you trust it, pass --allow-import "
            f"{name.partition(':')[0]}")


@dataclass
class Loaded:
    state: TrainState
    attrs: dict


def load(path: str | Path, allow_import: Collection[str] = ()) -> Loaded:
    """Read and check a checkpoint or snapshot; CheckpointError (exit 2) names what is wrong.

    `allow_import`: modules the stored config's own algorithm (`package.module:Name`) may be
    imported from, so that its kind of state is known."""
    path = Path(path)
    attrs, arrays, param_state = _read(path, allow_import)
    obstat = RunningStat(arrays["obstat/sum"], arrays["obstat/sumsq"],
                         float(arrays["obstat/count"]))
    state = TrainState(theta=arrays["theta"], param_state=param_state, obstat=obstat,
                       generation=attrs["generation"],
                       timesteps_so_far=attrs["timesteps_so_far"],
                       episodes_so_far=attrs["episodes_so_far"],
                       time_elapsed=attrs.get("time_elapsed", 0.0),
                       last_check=attrs.get("last_check"))
    return Loaded(state, attrs)
