"""Config schema, YAML loading and --set overrides.

Every value is checked here, before any rank starts work; errors name the dotted key
and say what is allowed.
"""
from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Annotated, Any, Literal, Optional

import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator


from .config_sections import (ARSConfig, LogConfig, ModelConfig, NonNegativeFloat,
                              NonNegativeInt, NoiseTableConfig, Optimizations, PositiveFloat,
                              PositiveInt, Probability, StopConfig, _KeyedError, _Section)
from .errors import ConfigError
from .yamlio import parse_yaml, read_yaml  # noqa: F401  (part of this module's interface)


def _user_set(model: BaseModel, dotted: str) -> bool:
    """Did the config (not a default) give this dotted key?"""
    *sections, name = dotted.split(".")
    for section in sections:
        if section not in model.model_fields_set:
            return False
        model = getattr(model, section)
    return name in model.model_fields_set


def _get(model: BaseModel, dotted: str) -> Any:
    for part in dotted.split("."):
        model = getattr(model, part)
    return model


def _set(model: BaseModel, dotted: str, value: Any) -> None:
    *sections, name = dotted.split(".")
    for section in sections:
        model = getattr(model, section)
    setattr(model, name, value)


def ars_settings(ars: ARSConfig) -> dict[str, Any]:
    """The shared keys an ARS run fixes: set them only to these values, or not at all."""
    v2 = ars.version.startswith("v2")
    return {
        "population_size": 2 * ars.directions, "noise_stdev": ars.delta_std,
        "learning_rate": ars.step_size, "l2coeff": 0.0, "return_proc_mode": "centered_rank",
        "calc_obstat_prob": 1.0 if v2 else 0.0,
        "optimizations.mirrored_sampling": True, "optimizations.fitness_shaping": False,
        "optimizations.weight_decay": False, "optimizations.neural_network_optimizer": False,
        "optimizations.observation_normalization": v2,
        "model.nn_optimizer": "adam", "model.nn_optimizer_args": ModelConfig().nn_optimizer_args,
    }


ARS_DEFAULTS = {"model.hidden_dims": [], "model.ac_noise_std": 0.0}


CNN_SETTINGS = {"optimizations.observation_normalization": False, "model.ac_noise_std": 0.0}


class Config(_Section):
    """A whole training run."""
    env_id: str
    algorithm: Literal["openai_es", "ars"] = "openai_es"
    ars: ARSConfig = ARSConfig()
    seed: NonNegativeInt = 0
    out_dir: Optional[str] = None
    population_size: PositiveInt = 300
    learning_rate: PositiveFloat = 0.001
    noise_stdev: PositiveFloat = 0.02
    snapshot_freq: NonNegativeInt = 1
    return_proc_mode: Literal["centered_rank", "sign", "centered_sign_rank"] = "centered_rank"
    calc_obstat_prob: Probability = 0.01
    l2coeff: NonNegativeFloat = 0.005
    eval_prob: Probability = 0.003
    reward_shift: Annotated[float, Field(allow_inf_nan=False)] = 0.0
    timestep_limit: Optional[PositiveInt] = None
    episode_timeout_s: Optional[PositiveFloat] = None
    stop: StopConfig = StopConfig()
    noise_table: NoiseTableConfig = NoiseTableConfig()
    optimizations: Optimizations = Optimizations()
    model: ModelConfig = ModelConfig()
    log: LogConfig = LogConfig()

    @field_validator("env_id")
    @classmethod
    def _env_id_not_empty(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("env_id must name a Gymnasium environment")
        return value.strip()

    @model_validator(mode="after")
    def _algorithm(self) -> "Config":
        if self.algorithm != "ars":
            if self.ars != ARSConfig():
                raise _KeyedError("ars", "applies to algorithm: ars only (this config uses "
                                  f"{self.algorithm})")
            return self
        for key, value in ars_settings(self.ars).items():
            if _user_set(self, key) and _get(self, key) != value:
                raise _KeyedError(key, f"means nothing for algorithm: ars (it is fixed to "
                                  f"{value!r} by the ars section); remove it, or set ars.* "
                                  f"instead")
            _set(self, key, value)
        for key, value in ARS_DEFAULTS.items():
            if not _user_set(self, key):
                _set(self, key, value)
        return self

    @model_validator(mode="after")
    def _cnn(self) -> "Config":
        if self.model.network != "cnn":
            return self
        if self.algorithm == "ars":
            raise _KeyedError("model.network", "cnn is trained with algorithm: openai_es; ARS "
                              "(Mania et al.) is defined for linear and MLP policies")
        # The CNN scales pixels to [0, 1] and normalizes inside the network (VBN), and Atari's
        # actions are discrete: observation statistics and Gaussian action noise are off.
        for key, value in CNN_SETTINGS.items():
            if _user_set(self, key) and _get(self, key) != value:
                raise _KeyedError(key, f"must be {value!r} with model.network: cnn (pixels are "
                                  f"scaled to [0, 1] and normalized by the network itself, "
                                  f"actions are chosen by argmax); remove it")
            _set(self, key, value)
        return self

    @model_validator(mode="after")
    def _cross_checks(self) -> "Config":
        if self.optimizations.mirrored_sampling and self.population_size % 2:
            raise _KeyedError("population_size", f"must be even with mirrored sampling "
                              f"(each noise vector is evaluated as +eps and -eps), "
                              f"got {self.population_size}")
        if self.optimizations.observation_normalization and self.calc_obstat_prob == 0:
            raise _KeyedError("calc_obstat_prob", "must be > 0 when "
                              "optimizations.observation_normalization is true "
                              "(or turn observation_normalization off)")
        if self.reward_shift and self.algorithm == "openai_es" and (
                not self.optimizations.fitness_shaping
                or self.return_proc_mode != "centered_rank"):
            raise _KeyedError("reward_shift", "only shifts returns (return - reward_shift x "
                              "episode length), so it needs fitness_shaping with "
                              "return_proc_mode centered_rank; sign-based modes and raw "
                              "returns would ignore it")
        if self.out_dir is None:
            self.out_dir = str(Path("runs") / re.sub(r"[^A-Za-z0-9_.-]+", "_", self.env_id))
        return self

    @property
    def episodes_per_slot(self) -> int:
        return 2 if self.optimizations.mirrored_sampling else 1

    @property
    def train_slots(self) -> int:
        """Noise vectors per generation: one slot is one episode, or a mirrored pair."""
        return self.population_size // self.episodes_per_slot

    def idle_ranks_warning(self, ranks: int) -> str | None:
        """A warning when a generation has too few noise vectors to keep `ranks` ranks busy."""
        slots = self.train_slots
        if ranks == 1 or slots >= 2 * ranks:
            return None
        suggested = 2 * ranks * self.episodes_per_slot
        idle = (f"{ranks - slots} of the {ranks} ranks have no noise vector at all"
                if slots < ranks else "the ranks wait on each other's last episode")
        return (f"warning: population_size {self.population_size} gives {slots} noise vector"
                f"{'s' if slots != 1 else ''} "
                f"per generation for {ranks} ranks: {idle}. A population of at least "
                f"{suggested} (2 noise vectors per rank) keeps them busy.")

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


REMOVED_KEYS = {
    "num_workers": "num_workers does not exist in mpi_es: the number of workers is the MPI "
                   "world size, set with `mpiexec -n N` (or srun's task count)",
}


def _dotted(loc: tuple) -> str:
    key = ""
    for part in loc:
        key += f"[{part}]" if isinstance(part, int) else (f".{part}" if key else str(part))
    return key


def _section_at(loc: tuple) -> type[BaseModel] | None:
    model: Any = Config
    for part in loc:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        if field is None or not (isinstance(field.annotation, type)
                                 and issubclass(field.annotation, BaseModel)):
            return None
        model = field.annotation
    return model


def _describe(error: dict) -> str:
    loc = tuple(error["loc"])
    key = _dotted(loc)
    if error["type"] == "extra_forbidden":
        name = loc[-1]
        if name in REMOVED_KEYS:
            return REMOVED_KEYS[name]
        section = _section_at(loc[:-1])
        choices = list(section.model_fields) if section else []
        close = difflib.get_close_matches(str(name), choices, n=1, cutoff=0.5)
        hint = f" (did you mean '{_dotted(loc[:-1] + (close[0],))}'?)" if close else ""
        return f"unknown key '{key}'{hint}"
    if error["type"] == "missing":
        return f"'{key}' is required"
    ctx = error.get("ctx") or {}
    cause = ctx.get("error")
    if isinstance(cause, _KeyedError):
        return f"'{_dotted(loc + tuple(cause.key.split('.')))}' {cause}"
    message = str(cause) if cause is not None else error["msg"]
    message = message.removeprefix("Value error, ")
    if error["type"] == "value_error" or cause is not None:
        return f"'{key}': {message}" if key else message
    return f"'{key}': {message} (got {error.get('input')!r})"


def validate(raw: dict, source: str = "config") -> Config:
    """Build a Config from a plain dict, turning pydantic's errors into one ConfigError."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of keys to values, "
                          f"got {type(raw).__name__}")
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        lines = [_describe(err) for err in exc.errors()]
        raise ConfigError(f"{source}: " + "\n  ".join(lines)) from None


def parse_override(text: str) -> tuple[list[str], Any]:
    """`model.hidden_dims=[64,64]` -> (['model', 'hidden_dims'], [64, 64])."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE, e.g. --set stop.generations=50")
    parts = key.strip().split(".")
    if any(not p for p in parts):
        raise ConfigError(f"--set {text!r}: malformed key {key!r}")
    try:
        parsed = yaml.safe_load(value) if value.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {text!r}: value is not valid YAML ({exc.problem})") from None
    return parts, parsed


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
    import copy
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
