"""Checks every rank runs, agreed on: when one rank fails, rank 0 says it once and all leave."""
from __future__ import annotations

import sys
from typing import Callable, TypeVar

from ..errors import EXIT_USAGE, ConfigError
from .world import World

T = TypeVar("T")


class UsageExit(Exception):
    """Leave with a status after the message was printed (once, by rank 0); `message` is that
    message, on every rank."""

    def __init__(self, status: int, message: str = ""):
        super().__init__(status)
        self.status = status
        self.message = message


def agreed(world: World, step: Callable[[], T]) -> T:
    """Run a check on every rank; if any rank fails, rank 0 prints it once and all leave with 2
    (UsageExit)."""
    from ..envs import EnvError
    result, error = None, None
    try:
        result = step()
    except (ConfigError, EnvError) as exc:
        error = str(exc)
    first = world.first_error(error)
    if first is not None:
        rank, message = first
        if world.is_root:
            where = f" (on rank {rank})" if rank and world.size > 1 else ""
            print(f"error{where}: {message}", file=sys.stderr, flush=True)
        raise UsageExit(EXIT_USAGE, message)
    return result
