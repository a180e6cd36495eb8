"""`python -m mpi_es evaluate SNAPSHOT.h5`: the noise-free policy of a checkpoint, played again."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import config, policies
from ..errors import ConfigError
from ..envs import episode_limit, make_env
from ..plugins import is_reference
from ..policies import Policy
from ..rundir import checkpoint
from ..training.rollout import play_noise_free


@dataclass
class Snapshot:
    cfg: config.Config
    policy: Policy
    generation: int


def stored_config(path, loaded: checkpoint.Loaded, allowed: list[str] = ()) -> config.Config:
    """The config stored in a checkpoint; the `package.module:Name` algorithm or network it
    names imports its module only if the user allowed it."""
    source = f"{path} (stored config)"
    return config.validate(config.parse_yaml(loaded.attrs["config"], source), source=source,
                           allow_import=set(allowed))


def check_import_allowed(env_id: str, path, allowed: list[str]) -> None:
    """A `module:Id` env stored in a file imports that module only if the user named it."""
    module = env_id.split(":", 1)[0] if is_reference(env_id) else None
    if module is not None and module not in allowed:
        raise ConfigError(f"{path}: its env_id {env_id!r} would import the Python module "
                          f"{module!r}, named only inside the file; if you trust it, pass "
                          f"--allow-import {module}")


def load_snapshot(path: str | Path, allow_import: list[str] = ()) -> Snapshot:
    """The config and noise-free policy stored in a checkpoint or snapshot."""
    loaded = checkpoint.load(path, list(allow_import))
    cfg = stored_config(path, loaded, list(allow_import))
    check_import_allowed(cfg.env_id, path, list(allow_import))
    env = make_env(cfg.env_id, cfg.env_kwargs)
    maker = policies.build(cfg, env)
    env.close()
    if maker.num_params != loaded.state.theta.size:
        raise checkpoint.CheckpointError(f"{path}: /theta has {loaded.state.theta.size} "
                                         f"parameters, its config's policy has "
                                         f"{maker.num_params}")
    policy = maker.make(loaded.state.theta, loaded.state.obstat)
    return Snapshot(cfg, policy, loaded.state.generation)


def play(snapshot: Snapshot, episodes: list[int], seed: int, env=None,
         frames: list | None = None) -> list[tuple[int, float, int]]:
    """(episode, return, length) for each episode index, without action noise."""
    own = env is None
    env = env or make_env(snapshot.cfg.env_id, snapshot.cfg.env_kwargs)
    results = play_noise_free(env, snapshot.policy, episodes, run_seed=snapshot.cfg.seed,
                              seed=seed, frames=frames,
                              limit=episode_limit(env, snapshot.cfg.timestep_limit))
    if own:
        env.close()
    return results


def summary(results: list[tuple[int, float, int]], path: str, generation: int) -> dict:
    returns = np.array([r for _, r, _ in sorted(results)])
    lengths = np.array([n for _, _, n in sorted(results)])
    return {"file": str(path), "generation": generation, "episodes": int(returns.size),
            "return_mean": float(returns.mean()), "return_std": float(returns.std()),
            "return_min": float(returns.min()), "return_max": float(returns.max()),
            "length_mean": float(lengths.mean()), "length_min": int(lengths.min()),
            "length_max": int(lengths.max()), "returns": returns.tolist()}


def format_summary(s: dict) -> str:
    plural = "" if s["episodes"] == 1 else "s"
    return (f"{s['file']} (generation {s['generation']}): {s['episodes']} episode{plural}\n"
            f"  return  mean {s['return_mean']:.2f}  std {s['return_std']:.2f}  "
            f"min {s['return_min']:.2f}  max {s['return_max']:.2f}\n"
            f"  length  mean {s['length_mean']:.1f}  min {s['length_min']}  "
            f"max {s['length_max']}")


def run(snapshot: Snapshot, args, world, record_video=None) -> dict | None:
    """Every rank plays its share of the episodes; rank 0 gathers, prints and renders
    (`record_video`, video.record_video, when --video is given)."""
    mine = list(range(world.rank, args.episodes, world.size))
    gathered = world.gather(play(snapshot, mine, args.seed))
    if not world.is_root:
        return None
    result = summary([r for part in gathered for r in part], args.file, snapshot.generation)
    if args.video:
        frames = record_video(snapshot, args.video, episodes=args.video_episodes,
                              seed=args.seed, fps=args.fps, width=args.width,
                              height=args.height, camera=args.camera)
        result["video"] = {"path": args.video, "frames": frames}
    print(json.dumps(result, indent=2) if args.json else format_summary(result)
          + (f"\n  video   {args.video} ({result['video']['frames']} frames)"
             if args.video else ""))
    return result
