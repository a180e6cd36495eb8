"""`python -m mpi_es evaluate SNAPSHOT.h5`: the noise-free policy of a checkpoint, played again."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import checkpoint, config, slots
from .config import ConfigError
from .policy import Policy
from .envs import episode_limit, make_env
from .rollout import run_episode
from .train import policy_spec

VIDEO_SUFFIXES = (".mp4", ".gif")


@dataclass
class Snapshot:
    cfg: config.Config
    policy: Policy
    generation: int


def stored_config(path, loaded: checkpoint.Loaded) -> config.Config:
    source = f"{path} (stored config)"
    return config.validate(config.parse_yaml(loaded.attrs["config"], source), source=source)


def check_import_allowed(env_id: str, path, allowed: list[str]) -> None:
    """A `module:Id` env stored in a file imports that module only if the user named it."""
    module = env_id.split(":", 1)[0] if ":" in env_id else None
    if module is not None and module not in allowed:
        raise ConfigError(f"{path}: its env_id {env_id!r} would import the Python module "
                          f"{module!r}, named only inside the file; if you trust it, pass "
                          f"--allow-import {module}")


def load_snapshot(path: str | Path, allow_import: list[str] = ()) -> Snapshot:
    """The config and noise-free policy stored in a checkpoint or snapshot."""
    loaded = checkpoint.load(path)
    cfg = stored_config(path, loaded)
    check_import_allowed(cfg.env_id, path, list(allow_import))
    env = make_env(cfg.env_id)
    spec = policy_spec(cfg, env)
    env.close()
    if spec.num_params != loaded.state.theta.size:
        raise checkpoint.CheckpointError(f"{path}: /theta has {loaded.state.theta.size} "
                                         f"parameters, its config's policy has {spec.num_params}")
    stat = loaded.state.obstat
    policy = Policy(spec, loaded.state.theta, stat.mean, stat.std)
    return Snapshot(cfg, policy, loaded.state.generation)


def episode_seed(seed: int, episode: int) -> int:
    return int(slots.generator(seed, 3, episode).integers(0, 2**31 - 1))


def play(snapshot: Snapshot, episodes: list[int], seed: int, env=None,
         frames: list | None = None) -> list[tuple[int, float, int]]:
    """(episode, return, length) for each episode index, without action noise."""
    own = env is None
    env = env or make_env(snapshot.cfg.env_id)
    limit = episode_limit(env, snapshot.cfg.timestep_limit)
    results = []
    for i in episodes:
        ep = run_episode(env, snapshot.policy, limit=limit, reset_seed=episode_seed(seed, i),
                         frames=frames)
        results.append((i, ep.ret, ep.length))
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


def check_video_path(path: str) -> None:
    if not path.lower().endswith(VIDEO_SUFFIXES):
        raise ConfigError(f"--video {path}: the file name must end in .mp4 or .gif")


def model_cameras(env_id: str) -> list[str]:
    """Named cameras of a MuJoCo env's model (empty for other envs)."""
    env = make_env(env_id)
    try:
        model = getattr(env.unwrapped, "model", None)
        if model is None:
            return []
        import mujoco
        names = (mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_CAMERA, i)
                 for i in range(model.ncam))
        return [n for n in names if n]
    finally:
        env.close()


def choose_camera(env_id: str, camera: str | None) -> str | None:
    """The camera to render with: the one asked for (checked), else 'track' when there is one."""
    cameras = model_cameras(env_id)
    if camera is None:
        return "track" if "track" in cameras else None
    if camera not in cameras:
        raise ConfigError(f"--camera {camera}: {env_id} has cameras {cameras or 'none'}")
    return camera


def rendering_env(env_id: str, *, width: int, height: int, camera: str | None):
    """The env with rgb_array rendering at width x height.

    MuJoCo envs take the size and camera as arguments; PyBullet's render in software at the
    size held on the env (a tracking camera of their own)."""
    env = make_env(env_id, render_mode="rgb_array")
    unwrapped = env.unwrapped
    if hasattr(unwrapped, "mujoco_renderer"):
        env.close()
        kwargs = {"camera_name": camera} if camera else {}
        return make_env(env_id, render_mode="rgb_array", width=width, height=height, **kwargs)
    if hasattr(unwrapped, "_render_width"):
        unwrapped._render_width, unwrapped._render_height = width, height
    return env


def record_video(snapshot: Snapshot, path: str, *, episodes: int, seed: int, fps: int,
                 width: int, height: int, camera: str | None = None) -> int:
    """Render `episodes` episodes offscreen (rgb_array) into an .mp4 or .gif; frames.

    The camera defaults to the model's "track" camera when it has one, which follows the
    robot; gymnasium's default free camera stays put while a runner leaves the picture.
    """
    if "MUJOCO_GL" not in os.environ and not os.environ.get("DISPLAY"):
        os.environ["MUJOCO_GL"] = "osmesa"          # no screen: software rendering
    if os.environ.get("MUJOCO_GL") == "osmesa":
        os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")
    import imageio.v2 as imageio
    camera = choose_camera(snapshot.cfg.env_id, camera)
    env = rendering_env(snapshot.cfg.env_id, width=width, height=height, camera=camera)
    frames: list = []
    try:
        play(snapshot, list(range(episodes)), seed, env=env, frames=frames)
    finally:
        env.close()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    if path.lower().endswith(".gif"):
        imageio.mimsave(path, frames, duration=1000 / fps, loop=0)
    else:
        imageio.mimsave(path, frames, fps=fps, macro_block_size=1)
    return len(frames)


def run(snapshot: Snapshot, args, world) -> dict | None:
    """Every rank plays its share of the episodes; rank 0 gathers, prints and renders."""
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
