"""The update rules, one module each on the Algorithm interface (see base.py), and the lookup
of the `algorithm:` key: a registered name, or `package.module:Name` from the user's config."""
from __future__ import annotations

from ..core.optimizers import StateLayout
from ..plugins import look_up
from . import ars, canonical, openai_es  # noqa: F401  (registers the built-in algorithms)
from .base import DEFAULT, REGISTRY, Algorithm, register

__all__ = ["Algorithm", "DEFAULT", "REGISTRY", "get", "register", "state_layouts"]


def get(name: str) -> type[Algorithm]:
    """The Algorithm class `algorithm: name` means (imports a `package.module:Name`);
    ConfigError when there is none."""
    return look_up(REGISTRY, name, Algorithm, "algorithm", "algorithm")


def state_layouts() -> dict[str, StateLayout]:
    """Every kind of per-parameter state the known algorithms keep, by kind."""
    return {layout.kind: layout for cls in REGISTRY.values() for layout in cls.state_layouts}
