"""One job per run directory: an exclusive lock on OUT_DIR/.lock, held for the whole run.

flock(2) is released by the kernel when the holder dies, however it dies, so a crashed job
never leaves a stale lock. (On Lustre the file system must be mounted with `-o flock`.)
"""
from __future__ import annotations

import errno
import fcntl
import os
import socket
from pathlib import Path

from ..errors import ConfigError

LOCK_NAME = ".lock"


def holder_description() -> str:
    job = os.environ.get("SLURM_JOB_ID")
    where = f"pid {os.getpid()} on {socket.gethostname()}"
    return f"SLURM job {job}, {where}" if job else where


class RunDirectoryBusy(ConfigError):
    """Another job holds the run directory (exit status 2)."""


class RunLock:
    """Hold it for as long as the process writes to the directory."""

    def __init__(self, fd: int, path: Path):
        self.fd, self.path = fd, path

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)          # closing the descriptor drops the lock
            self.fd = -1


def _open(out_dir: Path) -> tuple[int, Path]:
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"out_dir {out_dir} is a file, not a directory")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / LOCK_NAME
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    except OSError as exc:
        raise ConfigError(f"out_dir {out_dir}: cannot create its lock file: "
                          f"{exc.strerror}") from None
    return fd, path


def acquire(out_dir: str | Path) -> RunLock:
    """Lock OUT_DIR for this job, or raise RunDirectoryBusy naming the job that holds it."""
    out_dir = Path(out_dir)
    fd, path = _open(out_dir)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        holder = _read_holder(fd)
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            raise RunDirectoryBusy(
                f"out_dir {out_dir.resolve()} is in use by another job ({holder or 'unknown'}); "
                f"one job per run directory: wait for it, or use --out-dir NEW") from None
        raise ConfigError(f"out_dir {out_dir}: cannot lock {path}: {exc.strerror}") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, (holder_description() + "\n").encode(), 0)
    return RunLock(fd, path)


def held_by(out_dir: str | Path) -> str | None:
    """Who holds the lock of OUT_DIR right now (None when nobody does), without keeping it."""
    path = Path(out_dir) / LOCK_NAME
    if not path.is_file():
        return None
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return _read_holder(fd) or "another job"
    finally:
        os.close(fd)
    return None


def _read_holder(fd: int) -> str:
    try:
        return os.pread(fd, 200, 0).decode(errors="replace").strip()
    except OSError:
        return ""
