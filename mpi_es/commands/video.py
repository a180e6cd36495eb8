"""`evaluate --video`: episodes rendered offscreen (rgb_array) into an .mp4 or .gif."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from gymnasium.error import DependencyNotInstalled

from ..errors import ConfigError
from ..envs import make_env, resolve_env_id
from ..extras import import_extra
from .evaluate import Snapshot, play

VIDEO_SUFFIXES = (".mp4", ".gif")
GL_PACKAGES = {"egl": "libegl1 libegl-mesa0", "osmesa": "libosmesa6"}


def is_mujoco(env_id: str) -> bool:
    import gymnasium as gym
    gym_id, _ = resolve_env_id(env_id)
    try:
        entry = str(gym.spec(gym_id).entry_point)
    except gym.error.Error:
        return False
    return "mujoco" in entry


def gl_works(backend: str) -> bool:
    """Can MuJoCo make an offscreen context with this backend? Tried in a child process, since
    a failing backend cannot be swapped out inside one."""
    code = "import mujoco; c = mujoco.GLContext(8, 8); c.make_current(); c.free()"
    env = {**os.environ, "MUJOCO_GL": backend, "PYOPENGL_PLATFORM": backend}
    try:
        return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                              timeout=60).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def pick_gl() -> str:
    """The offscreen OpenGL for MuJoCo: MUJOCO_GL if set, a display if there is one, else EGL,
    else OSMesa; neither working is one line naming the packages that provide them."""
    if os.environ.get("MUJOCO_GL") or os.environ.get("DISPLAY"):
        return os.environ.get("MUJOCO_GL", "glfw")
    for backend in ("egl", "osmesa"):
        if gl_works(backend):
            os.environ["MUJOCO_GL"] = backend
            os.environ.setdefault("PYOPENGL_PLATFORM", backend)
            return backend
    raise ConfigError("--video: no offscreen OpenGL works here for MuJoCo; install Mesa's EGL "
                      f"({GL_PACKAGES['egl']}) or OSMesa ({GL_PACKAGES['osmesa']}), e.g. "
                      f"apt-get install {GL_PACKAGES['egl']}, and the video extra "
                      f'(pip install -e ".[video]")')


class FrameCounter(list):
    """The frames, with a progress line every few seconds: software rendering is slow."""

    def __init__(self):
        super().__init__()
        import time
        self._clock = time.monotonic
        self._last = self._clock()

    def append(self, frame) -> None:
        super().append(frame)
        if self._clock() - self._last > 5:
            self._last = self._clock()
            print(f"  rendered {len(self)} frames", file=sys.stderr, flush=True)

    def done(self) -> None:
        print(f"  rendered {len(self)} frames; encoding", file=sys.stderr, flush=True)


def check_video_path(path: str) -> None:
    if not path.lower().endswith(VIDEO_SUFFIXES):
        raise ConfigError(f"--video {path}: the file name must end in .mp4 or .gif")


def model_cameras(env_id: str, env_kwargs: dict | None = None) -> list[str]:
    """Named cameras of a MuJoCo env's model (empty for other envs)."""
    env = make_env(env_id, env_kwargs)
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


def choose_camera(env_id: str, camera: str | None, env_kwargs: dict | None = None) -> str | None:
    """The camera to render with: the one asked for (checked), else 'track' when there is one."""
    cameras = model_cameras(env_id, env_kwargs)
    if camera is None:
        return "track" if "track" in cameras else None
    if camera not in cameras:
        raise ConfigError(f"--camera {camera}: {env_id} has cameras {cameras or 'none'}")
    return camera


def rendering_env(env_id: str, *, width: int, height: int, camera: str | None,
                  env_kwargs: dict | None = None):
    """The env with rgb_array rendering at width x height.

    MuJoCo envs take the size and camera as arguments; PyBullet's render in software at the
    size held on the env (a tracking camera of their own)."""
    if is_mujoco(env_id):
        pick_gl()
    try:
        env = make_env(env_id, env_kwargs, render_mode="rgb_array")
    except DependencyNotInstalled as exc:
        raise ConfigError(f"--video: {env_id} cannot render without a package that is not "
                          f"installed ({str(exc).splitlines()[0]}); "
                          f'pip install -e ".[video]"') from None
    unwrapped = env.unwrapped
    if hasattr(unwrapped, "mujoco_renderer"):
        env.close()
        kwargs = {"camera_name": camera} if camera else {}
        return make_env(env_id, env_kwargs, render_mode="rgb_array", width=width,
                        height=height, **kwargs)
    if hasattr(unwrapped, "_render_width"):
        unwrapped._render_width, unwrapped._render_height = width, height
    return env


def record_video(snapshot: Snapshot, path: str, *, episodes: int, seed: int, fps: int,
                 width: int, height: int, camera: str | None = None) -> int:
    """Render `episodes` episodes offscreen (rgb_array) into an .mp4 or .gif; frames.

    The camera defaults to the model's "track" camera when it has one, which follows the
    robot; gymnasium's default free camera stays put while a runner leaves the picture.
    """
    imageio = import_extra("imageio.v2", "video")
    # pygame (classic control, Box2D) renders offscreen: no display or sound to look for, and
    # no "XDG_RUNTIME_DIR is invalid" from SDL probing for one
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    camera = choose_camera(snapshot.cfg.env_id, camera, snapshot.cfg.env_kwargs)
    env = rendering_env(snapshot.cfg.env_id, width=width, height=height, camera=camera,
                        env_kwargs=snapshot.cfg.env_kwargs)
    frames = FrameCounter()
    try:
        play(snapshot, list(range(episodes)), seed, env=env, frames=frames)
    except DependencyNotInstalled as exc:        # an env that imports its renderer late
        raise ConfigError(f"--video: {snapshot.cfg.env_id} cannot render without a package "
                          f"that is not installed ({str(exc).splitlines()[0]}); "
                          f'pip install -e ".[video]"') from None
    finally:
        env.close()
    frames.done()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    if path.lower().endswith(".gif"):
        imageio.mimsave(path, frames, duration=1000 / fps, loop=0)
    else:
        imageio.mimsave(path, frames, fps=fps, macro_block_size=1)
    return len(frames)
