"""Where a run starts: fresh, or from a checkpoint whose config still matches."""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from ..config import Config, parse_yaml, validate
from ..errors import ConfigError
from ..plugins import is_reference
from . import checkpoint
from .runlock import LOCK_NAME

# Keys that may differ between a checkpoint and the run resuming it: they do not change the math.
HARMLESS_KEYS = ("stop", "snapshot_freq", "out_dir", "episode_timeout_s", "episodes_at_once", "log")


def checkpoint_to_resume(cfg: Config, resume: str) -> Path | None:
    """The checkpoint to continue from, or None for a fresh start. Raises ConfigError."""
    out_dir = Path(cfg.out_dir)
    if resume == "never":
        if out_dir.exists() and any(p.name != LOCK_NAME for p in out_dir.iterdir()):
            raise ConfigError(f"--resume never: out_dir {out_dir} is not empty; choose another "
                              f"--out-dir, remove it, or use --resume auto to continue the run")
        return None
    if resume == "auto":
        path = out_dir / "checkpoint.h5"
        return path if path.exists() else None
    path = Path(resume)
    if not path.exists():
        raise ConfigError(f"--resume {resume}: no such file")
    return path


def _flatten(tree: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def config_differences(stored_yaml: str, cfg: Config, source: str = "checkpoint") -> list[str]:
    """Math-changing differences between a checkpoint's config and cfg, one line each."""
    where = f"{source} (stored config)"
    # validated, so keys added since the checkpoint was written count with their defaults
    stored = validate(parse_yaml(stored_yaml, where), source=where,
                      allow_import=user_modules(cfg))
    old = _flatten(stored.model_dump(mode="json"))
    new = _flatten(cfg.model_dump(mode="json"))
    lines = []
    for key in sorted(set(old) | set(new)):
        if key.split(".")[0] in HARMLESS_KEYS:
            continue
        if old.get(key, "<unset>") != new.get(key, "<unset>"):
            lines.append(f"{key}: checkpoint has {old.get(key, '<unset>')!r}, "
                         f"config has {new.get(key, '<unset>')!r}")
    return lines


def user_modules(cfg: Config) -> set[str]:
    """The modules the user's own config imports for its algorithm and network: a stored
    config may name these, and no others."""
    return {name.partition(":")[0] for name in (cfg.algorithm, cfg.model.network)
            if is_reference(name)}


def load_for_resume(path: Path, cfg: Config, num_params: int) -> tuple[checkpoint.TrainState,
                                                                       list[str]]:
    """The state to continue from and any warnings. Raises ConfigError when it cannot be used."""
    loaded = checkpoint.load(path, user_modules(cfg))
    differences = config_differences(loaded.attrs["config"], cfg, str(path))
    if differences:
        raise ConfigError(f"cannot resume from {path}: the config changes the training math\n  "
                          + "\n  ".join(differences)
                          + "\n(only stop.*, snapshot_freq, out_dir, episode_timeout_s, "
                            "episodes_at_once and log.* may change on resume; to train this "
                            "config, start a new run with "
                            f"--out-dir NEW, or remove {Path(cfg.out_dir)} first)")
    if loaded.state.theta.size != num_params:
        raise ConfigError(f"{path}: /theta has {loaded.state.theta.size} parameters, "
                          f"the policy of this config has {num_params}")
    warnings = []
    for key, value in checkpoint.library_versions().items():
        stored = loaded.attrs.get(key)
        # MPI only moves the floats (no reduction sums them), so another MPI gives the same bits
        if key != "mpi_version" and stored is not None and str(stored) != value:
            warnings.append(f"warning: {path} was written with {key.removesuffix('_version')} "
                            f"{stored}, this run uses {value}; the result may not be bit-exact")
    layout = type(cfg).algorithm_class(cfg).layout()
    if loaded.state.param_state.kind != layout.kind:
        raise ConfigError(f"{path}: /optimizer holds a {loaded.state.param_state.kind} state; "
                          f"this config's algorithm keeps {layout.kind}")
    return loaded.state, warnings


def set_aside_later_generations(out_dir: Path, generation: int) -> str | None:
    """Resuming OUT_DIR from an earlier generation (--resume PATH) discards what the run did
    after it: move its log, checkpoint and later snapshots to OUT_DIR/discarded-<time>/ (so
    nothing is lost) and say what moved; None when there is nothing after `generation`."""
    from . import runlog
    later_snapshots = sorted(
        p for p in (out_dir / "snapshots").glob("snapshot_*.h5")
        if p.stem.split("_")[-1].isdigit() and int(p.stem.split("_")[-1]) > generation)
    log = out_dir / "log.csv"
    later_rows = [r for r in (runlog.read_checked(log)[0] if log.exists() else [])
                  if int(r["Generation"]) > generation]
    current = out_dir / "checkpoint.h5"
    try:
        ahead = current.exists() and checkpoint.load(current).state.generation > generation
    except ConfigError:
        ahead = False
    if not (later_snapshots or later_rows or ahead):
        return None
    aside = out_dir / f"discarded-{time.strftime('%Y%m%d-%H%M%S')}"
    (aside / "snapshots").mkdir(parents=True, exist_ok=True)
    if log.exists():
        shutil.copy2(log, aside / "log.csv")          # the log itself is cut back in place
    if ahead:
        shutil.copy2(current, aside / "checkpoint.h5")
    for snap in later_snapshots:
        os.replace(snap, aside / "snapshots" / snap.name)
    last = max([int(r["Generation"]) for r in later_rows] or [generation])
    return (f"resuming at generation {generation} discards generations {generation + 1}.."
            f"{last} of this run: its log, checkpoint and {len(later_snapshots)} later "
            f"snapshot(s) are kept in {aside}")
