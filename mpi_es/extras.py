"""Optional dependencies: imported when needed, or one line naming the extra that has them."""
from __future__ import annotations

import importlib

from .errors import ConfigError


def import_extra(module: str, extra: str):
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ConfigError(f"{module.split('.')[0]} is not installed: "
                          f'pip install -e ".[{extra}]"') from None
