"""Reading configs: YAML files, --set overrides, and pydantic's errors turned into one message
that names the dotted key and says what is allowed."""
from __future__ import annotations

import copy
import difflib
from pathlib import Path
from typing import Any, Collection

from pydantic import BaseModel, ValidationError

from .. import algorithms, policies
from ..algorithms import Algorithm
from ..errors import ConfigError
from ..fields import KeyedError, Section
from ..plugins import is_reference
from ..policies import PolicyFamily
from .schema import Config, schema_for
from .sections import ModelBase
from .yamlio import parse_yaml, read_yaml


REMOVED_KEYS = {
    "num_workers": "num_workers does not exist in mpi_es: the number of workers is the MPI "
                   "world size, set with `mpiexec -n N` (or srun's task count)",
}


def _dotted(loc: tuple) -> str:
    key = ""
    for part in loc:
        key += f"[{part}]" if isinstance(part, int) else (f".{part}" if key else str(part))
    return key


def _section_at(schema: type[Config], loc: tuple) -> type[BaseModel] | None:
    model: Any = schema
    for part in loc:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        if field is None or not (isinstance(field.annotation, type)
                                 and issubclass(field.annotation, BaseModel)):
            return None
        model = field.annotation
    return model


def _describe(schema: type[Config], error: dict) -> str:
    loc = tuple(error["loc"])
    key = _dotted(loc)
    if error["type"] == "extra_forbidden":
        name = loc[-1]
        if name in REMOVED_KEYS:
            return REMOVED_KEYS[name]
        section = _section_at(schema, loc[:-1])
        choices = list(section.model_fields) if section else []
        close = difflib.get_close_matches(str(name), choices, n=1, cutoff=0.5)
        hint = f" (did you mean '{_dotted(loc[:-1] + (close[0],))}'?)" if close else ""
        return f"unknown key '{key}'{hint}"
    if error["type"] == "missing":
        return f"'{key}' is required"
    ctx = error.get("ctx") or {}
    cause = ctx.get("error")
    if isinstance(cause, KeyedError):
        return f"'{_dotted(loc + tuple(cause.key.split('.')))}' {cause}"
    message = str(cause) if cause is not None else error["msg"]
    message = message.removeprefix("Value error, ")
    if error["type"] == "value_error" or cause is not None:
        return f"'{key}': {message}" if key else message
    return f"'{key}': {message} (got {error.get('input')!r})"


def validate(raw: dict, source: str = "config", *,
             allow_import: Collection[str] | None = None) -> Config:
    """Build a Config from a plain dict, turning pydantic's errors into one ConfigError.

    `allow_import`: the modules a `package.module:Name` algorithm or network may import; None
    (the user's own config) allows any, a stored config only those the user named."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of keys to values, "
                          f"got {type(raw).__name__}")
    try:
        algorithm, family = _classes(raw, allow_import)
        raw = _without_foreign_defaults(raw, algorithm, family)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    schema = schema_for(algorithm, family)
    try:
        return schema.model_validate(raw)
    except ValidationError as exc:
        lines = [_describe(schema, err) for err in exc.errors()]
        raise ConfigError(f"{source}: " + "\n  ".join(lines)) from None


def _allowed(name: str, key: str, allow_import: Collection[str] | None) -> str:
    module = name.partition(":")[0]
    if is_reference(name) and allow_import is not None and module not in allow_import:
        raise ConfigError(f"'{key}': {name!r} would import the Python module {module!r}, named "
                          f"only inside the file; if you trust it, pass --allow-import {module}")
    return name


def _classes(raw: dict, allow_import) -> tuple[type[Algorithm], type[PolicyFamily]]:
    """The algorithm and policy family a raw config names (their defaults when it names none,
    or names them with the wrong type: the schema then says what is wrong)."""
    name = raw.get("algorithm", "openai_es")
    algorithm = (algorithms.get(_allowed(name, "algorithm", allow_import))
                 if isinstance(name, str) else algorithms.get("openai_es"))
    model = raw.get("model")
    network = model.get("network", "mlp") if isinstance(model, dict) else "mlp"
    family = (policies.get(_allowed(network, "model.network", allow_import))
              if isinstance(network, str) else policies.get("mlp"))
    return algorithm, family


def _is_default(settings: type[Section], values: dict) -> bool:
    try:
        given = settings.model_validate(values)
    except ValidationError:
        return False
    default = settings()
    return all(getattr(given, key) == getattr(default, key) for key in values)


def _without_foreign_defaults(raw: dict, algorithm, family) -> dict:
    """The raw config without the sections of other algorithms and the model keys of other
    networks when they hold their defaults (resolved configs of older versions list them
    all); ConfigError when one is really set."""
    raw = dict(raw)
    own_key = algorithm.section_key()
    for other in list(algorithms.REGISTRY.values()):
        key = other.section_key()
        if key is None or key == own_key or key not in raw:
            continue
        if not (isinstance(raw[key], dict) and _is_default(other.Settings, raw[key])):
            raise ConfigError(f"'{key}' applies to algorithm: {other.name} only (this config "
                              f"uses {raw.get('algorithm', 'openai_es')})")
        del raw[key]
    model = raw.get("model")
    if not isinstance(model, dict):
        return raw
    model = raw["model"] = dict(model)
    own = set(ModelBase.model_fields) | set(family.Settings.model_fields if family.Settings
                                            else ())
    for other in list(policies.REGISTRY.values()):
        if other is family or other.Settings is None:
            continue
        for key in set(other.Settings.model_fields) - own:
            if key not in model:
                continue
            if not _is_default(other.Settings, {key: model[key]}):
                raise ConfigError(f"'model.{key}' applies to network: {other.name} only (this "
                                  f"model is network: {model.get('network', 'mlp')}); remove it")
            del model[key]
    return raw


def parse_override(text: str) -> tuple[list[str], Any]:
    """`model.hidden_dims=[64,64]` -> (['model', 'hidden_dims'], [64, 64])."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE, e.g. --set stop.generations=50")
    parts = key.strip().split(".")
    if any(not p for p in parts):
        raise ConfigError(f"--set {text!r}: malformed key {key!r}")
    # the same bounded, safe reading a config file gets (no alias bomb through --set either)
    return parts, parse_yaml(value, f"--set {text!r}: value") if value.strip() else None


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    for text in overrides:
        parts, value = parse_override(text)
        node = raw
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, dict):
                raise ConfigError(f"--set {text!r}: '{part}' is not a section")
            node = child
        node[parts[-1]] = value
    return raw


def load(path: str | Path, overrides: list[str] = (), out_dir: str | None = None) -> Config:
    """The config of a YAML file with --set overrides and --out-dir applied."""
    from_file = read_yaml(path)
    raw = apply_overrides(copy.deepcopy(from_file), list(overrides))
    if out_dir is not None:
        raw["out_dir"] = out_dir
    try:
        return validate(raw, source=str(path))
    except ConfigError as exc:
        if overrides and _valid(from_file):
            # the file alone is fine: say that the --set options broke it
            raise ConfigError(str(exc).replace(
                f"{path}:", f"--set {' '.join(overrides)} (on {path}):", 1)) from None
        raise


def _valid(raw: dict) -> bool:
    try:
        validate(raw)
    except ConfigError:
        return False
    return True
