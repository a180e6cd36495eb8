"""The policy families, one module each on the PolicyFamily interface (see base.py), and the
lookup of `model.network`: a registered name, or `package.module:Name` from the user's config."""
from __future__ import annotations

from ..plugins import look_up
from . import cnn, mlp  # noqa: F401  (registers the built-in families)
from .base import REGISTRY, Policy, PolicyFamily, PolicyMaker, PolicySpec, is_image, register

__all__ = ["Policy", "PolicyFamily", "PolicyMaker", "PolicySpec", "REGISTRY", "build", "get",
           "is_image", "register"]


def get(name: str) -> type[PolicyFamily]:
    """The family `model.network: name` means (imports a `package.module:Name`)."""
    return look_up(REGISTRY, name, PolicyFamily, "model.network", "network")


def build(cfg, env) -> PolicyMaker:
    """The policy the config asks for, checked against the env's spaces, with its shared data."""
    family = get(cfg.model.network)
    spec = family.spec(cfg, env)
    return PolicyMaker(family, spec, family.shared_data(cfg, spec, env))
