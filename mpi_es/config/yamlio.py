"""YAML from files and checkpoints, read as plain data: safe tags only, bounded in size."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError

MAX_YAML_BYTES = 1 << 20        # a config is a few KB; refuse anything near a megabyte
MAX_YAML_ALIASES = 100
MAX_YAML_NODES = 100_000        # values after expanding aliases (an alias bomb has billions)


def _expanded_size(value: Any, budget: int) -> int:
    """Values in `value` counting every alias expansion, stopping once over `budget`."""
    seen, todo = 0, [value]
    while todo and seen <= budget:
        item = todo.pop()
        seen += 1
        if isinstance(item, dict):
            todo.extend(item.keys())
            todo.extend(item.values())
        elif isinstance(item, list):
            todo.extend(item)
    return seen


def parse_yaml(text: str, source: str) -> Any:
    """YAML from a file or a checkpoint, as plain data: safe tags only, bounded in size.

    Files travel between people: no Python tags, no alias bomb, nothing over a megabyte.
    """
    if len(text) > MAX_YAML_BYTES:
        raise ConfigError(f"{source}: {len(text)} bytes of YAML is too large for a config "
                          f"(at most {MAX_YAML_BYTES})")
    try:
        aliases = sum(1 for event in yaml.parse(text, Loader=yaml.SafeLoader)
                      if isinstance(event, yaml.AliasEvent))
        if aliases > MAX_YAML_ALIASES:
            raise ConfigError(f"{source}: {aliases} YAML aliases (*name); a config needs none "
                              f"(at most {MAX_YAML_ALIASES})")
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f" at line {mark.line + 1}, column {mark.column + 1}"
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{source}: malformed YAML{where}: {problem}") from None
    if _expanded_size(data, MAX_YAML_NODES) > MAX_YAML_NODES:
        raise ConfigError(f"{source}: the YAML expands to more than {MAX_YAML_NODES} values "
                          f"through its aliases (an alias bomb?)")
    return data


def read_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config file not found: {path}")
    if path.is_dir():
        raise ConfigError(f"config path is a directory, not a YAML file: {path}")
    try:
        if path.stat().st_size > MAX_YAML_BYTES:
            raise ConfigError(f"{path}: {path.stat().st_size} bytes is too large for a config "
                              f"(at most {MAX_YAML_BYTES})")
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config {path}: {exc}") from None
    raw = parse_yaml(text, str(path))
    if raw is None:
        raise ConfigError(f"{path}: the file is empty")
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys to values")
    return raw
