"""The config schema: the run's keys, with the sections of its algorithm and policy family.

A run's schema is built for the algorithm and network it names (`schema_for`), so the resolved
config holds their keys and no other's, and a new algorithm or family brings its own section.
"""
from __future__ import annotations

import functools
import os
import re
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Optional

import yaml
from pydantic import Field, create_model, field_validator, model_validator

from ..algorithms import DEFAULT, Algorithm
from ..fields import (KeyedError, NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt,
                      Probability, Section)
from ..policies import PolicyFamily
from .sections import (LogConfig, ModelBase, NoiseDecayConfig, NoiseTableConfig, Optimizations,
                       StopConfig, TrainingRewardConfig)


# `package.module:Id`: one colon, a module path before it, a Gymnasium id (namespace/Name-vN) after
_MODULE_ID = re.compile(r"^[A-Za-z_][\w.]*:[\w./-]+$")
# The largest population every rank's per-generation tables are sized for, and the largest
# perturbation scale: beyond it, theta + sigma x eps overflows float32 long before it learns.
MAX_POPULATION = 10_000_000
MAX_EPISODES_AT_ONCE = 1024
MAX_NOISE_STDEV = 1000.0


def _has(model: Section, dotted: str) -> bool:
    *sections, name = dotted.split(".")
    for section in sections:
        model = getattr(model, section, None)
        if model is None:
            return False
    return name in type(model).model_fields


def _user_set(model: Section, dotted: str) -> bool:
    """Did the config (not a default) give this dotted key?"""
    *sections, name = dotted.split(".")
    for section in sections:
        if section not in model.model_fields_set:
            return False
        model = getattr(model, section)
    return name in model.model_fields_set


def _get(model: Section, dotted: str) -> Any:
    for part in dotted.split("."):
        model = getattr(model, part)
    return model


def _set(model: Section, dotted: str, value: Any) -> None:
    *sections, name = dotted.split(".")
    for section in sections:
        model = getattr(model, section)
    setattr(model, name, value)


def _default(model: Section, dotted: str) -> Any:
    """The schema's own default of a dotted key."""
    *sections, name = dotted.split(".")
    for section in sections:
        model = getattr(model, section)
    return getattr(type(model)(), name)


class Config(Section):
    """A whole training run (the base of every run's schema; see schema_for)."""
    algorithm_class: ClassVar[type[Algorithm]]
    policy_family: ClassVar[type[PolicyFamily]]

    env_id: str
    """any Gymnasium id; `module:Id` imports `module` first (bring your own env); Roboschool ids
    map to their PyBullet port (the `roboschool` extra) or Gymnasium MuJoCo twin, with a notice"""
    env_kwargs: dict[str, Any] = {}
    """keyword arguments for the environment's constructor (gym.make), e.g. `{frame_skip: 2}`
    or `{hardcore: true}`; checked when the env is made, part of what a resume compares"""
    algorithm: str = "openai_es"
    """the update rule: `openai_es`, `ars`, or your own as `package.module:Name`; each brings its
    own section of keys (below)"""
    seed: NonNegativeInt = 0
    """master seed: initial weights, perturbations, episode and action-noise seeds derive from it"""
    out_dir: Optional[str] = None
    """where the run writes; default `runs/<env_id>`"""
    population_size: Annotated[PositiveInt, Field(le=MAX_POPULATION)] = 300
    """training episodes per generation; even when mirrored"""
    learning_rate: PositiveFloat = 0.001
    """plain step `theta += lr/sigma * g`, used when `optimizations.neural_network_optimizer` is
    false"""
    noise_stdev: Annotated[PositiveFloat, Field(le=MAX_NOISE_STDEV)] = 0.02
    """sigma, the perturbation scale"""
    noise_decay: NoiseDecayConfig = NoiseDecayConfig()
    """shrink sigma over the run, to a floor (default: fixed)"""
    snapshot_freq: NonNegativeInt = 1
    """write `snapshots/snapshot_NNNNN.h5` every Nth generation; 0 = never"""
    return_proc_mode: Literal["centered_rank", "sign", "centered_sign_rank"] = "centered_rank"
    """fitness shaping: `centered_rank`, `sign`, `centered_sign_rank`"""
    calc_obstat_prob: Probability = 0.01
    """probability that a training episode feeds the observation statistics"""
    l2coeff: NonNegativeFloat = 0.005
    """weight decay coefficient"""
    eval_prob: Probability = 0.003
    """each training slot adds one noise-free evaluation episode with this probability"""
    reward_shift: Annotated[float, Field(allow_inf_nan=False)] = 0.0
    """subtract this from every step's reward of training episodes before ranking (return - shift x
    length): takes out a survival bonus so standing still stops paying; the log and evaluation
    returns stay unshifted; needs `centered_rank` shaping"""
    training_reward: TrainingRewardConfig = TrainingRewardConfig()
    """change training episodes' step rewards (exact values replaced, then clipped); never
    evaluation episodes, the checks or the log"""
    timestep_limit: Optional[PositiveInt] = None
    """cap on episode length; null = the env's `max_episode_steps`"""
    episode_timeout_s: Optional[PositiveFloat] = None
    """end the job when one episode runs longer than this wall time (also arms the frozen-rank
    detection); episodes played in lockstep share the time: n of them get n times as long"""
    episodes_at_once: Annotated[PositiveInt, Field(le=MAX_EPISODES_AT_ONCE)] = 8
    """each rank plays up to this many episodes in lockstep, each in an environment of its own,
    with one batched forward pass for all of them (networks with a batched pass: the MLP;
    others play one at a time); results do not depend on it"""
    stop: StopConfig = StopConfig()
    """when the run ends (the first limit reached)"""
    noise_table: NoiseTableConfig = NoiseTableConfig()
    """the shared table of float32 normals, one copy per node"""
    optimizations: Optimizations = Optimizations()
    """the notebook's switches"""
    model: ModelBase = ModelBase()
    """the policy network and its optimizer"""
    log: LogConfig = LogConfig()
    """what the run writes besides log.csv"""

    @field_validator("env_id")
    @classmethod
    def _env_id_form(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("env_id must name a Gymnasium environment")
        if ":" in value and not _MODULE_ID.match(value):
            raise ValueError(f"{value!r} is neither a Gymnasium id nor module:Id (one colon: "
                             f"the Python module to import, then the id it registers)")
        return value

    @field_validator("out_dir")
    @classmethod
    def _out_dir_form(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.strip():
            raise ValueError("out_dir must name a directory (it is empty); leave it out for "
                             "runs/<env_id>")
        return os.path.expanduser(value)

    @model_validator(mode="after")
    def _algorithm_settings(self) -> "Config":
        algorithm = self.algorithm_class
        key = algorithm.section_key()
        fixed = algorithm.fixed_settings(getattr(self, key) if key else None)
        for dotted, value in fixed.items():
            if not _has(self, dotted):
                continue
            wanted = _default(self, dotted) if value is DEFAULT else value
            if _user_set(self, dotted) and _get(self, dotted) != wanted:
                raise KeyedError(dotted, f"means nothing for algorithm: {algorithm.name} (it is "
                                 f"fixed to {wanted!r} by the {key} section); remove it, or set "
                                 f"{key}.* instead")
            _set(self, dotted, wanted)
        for dotted, value in algorithm.default_settings().items():
            if _has(self, dotted) and not _user_set(self, dotted):
                _set(self, dotted, value)
        algorithm.check_config(self)
        return self

    @model_validator(mode="after")
    def _family_settings(self) -> "Config":
        family = self.policy_family
        for dotted, value in family.fixed_settings.items():
            if _user_set(self, dotted) and _get(self, dotted) != value:
                raise KeyedError(dotted, f"must be {value!r} with model.network: {family.name} "
                                 f"({family.fixed_reason}); remove it")
            _set(self, dotted, value)
        return self

    @model_validator(mode="after")
    def _cross_checks(self) -> "Config":
        if self.optimizations.mirrored_sampling and self.population_size % 2:
            raise KeyedError("population_size", f"must be even with mirrored sampling "
                             f"(each noise vector is evaluated as +eps and -eps), "
                             f"got {self.population_size}")
        if self.optimizations.observation_normalization and self.calc_obstat_prob == 0:
            raise KeyedError("calc_obstat_prob", "must be > 0 when "
                             "optimizations.observation_normalization is true "
                             "(or turn observation_normalization off)")
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


@functools.cache
def schema_for(algorithm: type[Algorithm], family: type[PolicyFamily]) -> type[Config]:
    """The Config subclass of a run with this algorithm and policy family: the model section
    with the family's keys, and the algorithm's own section."""
    bases = (ModelBase,) if family.Settings is None else (family.Settings, ModelBase)
    model = create_model("ModelConfig", __base__=bases)
    fields: dict[str, Any] = {"model": (model, model())}
    key = algorithm.section_key()
    if key is not None:
        fields[key] = (algorithm.Settings, algorithm.Settings())
    schema = create_model("Config", __base__=Config, **fields)
    schema.algorithm_class = algorithm
    schema.policy_family = family
    return schema
