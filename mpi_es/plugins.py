"""Bring your own: a class named `package.module:Name` in the user's config.

Only the user's own config may name code to import (`model.network`, `algorithm`), the way
`env_id: module:Id` imports an env's module; a config stored in a checkpoint never imports
anything by itself.
"""
from __future__ import annotations

import importlib
import re

from .errors import ConfigError

_REFERENCE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


def is_reference(name: str) -> bool:
    """Does `name` have the form `package.module:Name`?"""
    return ":" in name


def load_class(reference: str, base: type, key: str) -> type:
    """Import `package.module:Name` and check that it is a subclass of `base`; ConfigError
    naming `key` otherwise."""
    if not _REFERENCE.match(reference):
        raise ConfigError(f"'{key}': {reference!r} is not of the form package.module:Name")
    module_name, _, name = reference.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"'{key}': cannot import {module_name!r} for {reference!r}: {exc} "
                          f"(it is looked up on sys.path, which holds the current directory "
                          f"under `python -m mpi_es`)") from None
    found = getattr(module, name, None)
    if not (isinstance(found, type) and issubclass(found, base)):
        what = "nothing" if found is None else repr(found)
        raise ConfigError(f"'{key}': {reference} is {what}, not a subclass of "
                          f"{base.__module__}.{base.__qualname__}")
    return found


def register_in(registry: dict[str, type], cls: type) -> type:
    """Add a class to a registry under its `name` (a decorator's body)."""
    if not cls.name:
        raise ValueError(f"{cls.__qualname__} has no name")
    registry[cls.name] = cls
    return cls


def look_up(registry: dict[str, type], name: str, base: type, key: str, what: str) -> type:
    """The class `key: name` means: a registered one, or `package.module:Name` imported (and
    registered under that reference); ConfigError naming the known ones otherwise."""
    if name in registry:
        return registry[name]
    if is_reference(name):
        return registry.setdefault(name, load_class(name, base, key))
    known = ", ".join(n for n in registry if not is_reference(n))
    raise ConfigError(f"'{key}': unknown {what} {name!r} (known: {known}, or "
                      f"package.module:Name for your own)")
