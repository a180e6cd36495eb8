"""The config's sections: one pydantic model per YAML group, and the value types they share."""
from __future__ import annotations

import math
from typing import Annotated, Any, Literal, Optional

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator


class _KeyedError(ValueError):
    """A cross-field error that belongs to one key rather than the section it sits in."""

    def __init__(self, key: str, message: str):
        super().__init__(message)
        self.key = key


def _whole_number(value: Any) -> Any:
    # YAML 1.1 reads 2.5e8 as a string and users write sizes that way; accept any whole number.
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return value


Int = Annotated[int, BeforeValidator(_whole_number)]
PositiveInt = Annotated[Int, Field(gt=0)]
NonNegativeInt = Annotated[Int, Field(ge=0)]
Probability = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
PositiveFloat = Annotated[float, Field(gt=0.0, allow_inf_nan=False)]
NonNegativeFloat = Annotated[float, Field(ge=0.0, allow_inf_nan=False)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)

    def _changed(self, key: str) -> bool:
        """Did the config give this key a value other than its default? (A resolved config
        holds every key at its default: keys that mean nothing are refused only when changed.)"""
        return key in self.model_fields_set and \
            getattr(self, key) != type(self).model_fields[key].default


class StopConfig(_Section):
    """The first limit reached ends the run; null disables a limit."""
    generations: Optional[PositiveInt] = 1000
    timesteps: Optional[PositiveInt] = None
    seconds: Optional[PositiveFloat] = None
    # Stop once the noise-free policy's mean return over eval_episodes episodes (played across
    # the ranks after every eval_every-th generation) reaches eval_return.
    eval_return: Optional[float] = Field(default=None, allow_inf_nan=False)
    eval_episodes: PositiveInt = 10
    eval_every: PositiveInt = 10

    @model_validator(mode="after")
    def _some_limit(self) -> "StopConfig":
        if self.generations is None and self.timesteps is None and self.seconds is None:
            raise ValueError("set at least one of stop.generations, stop.timesteps, stop.seconds"
                             " (stop.eval_return may never be reached)")
        return self

    @model_validator(mode="after")
    def _eval_keys(self) -> "StopConfig":
        if self.eval_return is None:
            for key in ("eval_episodes", "eval_every"):
                if self._changed(key):
                    raise _KeyedError(key, "means nothing without stop.eval_return; set it or "
                                      "remove this key")
        return self


class NoiseTableConfig(_Section):
    """The shared table of standard-normal float32 entries every perturbation is cut from."""
    seed: NonNegativeInt = 123
    size: PositiveInt = 250_000_000


class Optimizations(_Section):
    """The notebook's switches."""
    mirrored_sampling: bool = True
    fitness_shaping: bool = True
    weight_decay: bool = True
    discretize_actions: bool = False
    neural_network_optimizer: bool = True
    observation_normalization: bool = True


OPTIMIZER_ARGS = {
    "adam": {"stepsize": None, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8},
    "sgd": {"stepsize": None, "momentum": 0.9},
}


MLP_ONLY = ("hidden_dims", "nonlin_type")
CNN_ONLY = ("vbn", "vbn_batch")


class ModelConfig(_Section):
    """The policy network (an MLP, or the Atari CNN) and its optimizer."""
    network: Literal["mlp", "cnn"] = "mlp"
    ac_noise_std: NonNegativeFloat = 0.01
    ac_bins: Annotated[Int, Field(ge=2)] = 5
    hidden_dims: list[PositiveInt] = [256, 256]
    nonlin_type: Literal["tanh", "relu", "lrelu", "elu"] = "tanh"
    vbn: bool = True                  # CNN: virtual batch normalization
    vbn_batch: Annotated[Int, Field(ge=2)] = 128   # CNN: observations in the reference batch
    nn_optimizer: Literal["adam", "sgd"] = "adam"
    nn_optimizer_args: dict[str, float] = {"stepsize": 0.01}

    @model_validator(mode="after")
    def _network_keys(self) -> "ModelConfig":
        other = "cnn" if self.network == "mlp" else "mlp"
        for key in CNN_ONLY if self.network == "mlp" else MLP_ONLY:
            if self._changed(key):
                raise _KeyedError(key, f"applies to network: {other} only (this model is "
                                  f"network: {self.network}); remove it")
        return self

    @model_validator(mode="after")
    def _optimizer_args(self) -> "ModelConfig":
        allowed = OPTIMIZER_ARGS[self.nn_optimizer]
        key = "nn_optimizer_args"
        unknown = sorted(set(self.nn_optimizer_args) - set(allowed))
        if unknown:
            raise _KeyedError(f"{key}.{unknown[0]}", f"is not an argument of {self.nn_optimizer} "
                              f"(allowed: {', '.join(allowed)})")
        args = {name: self.nn_optimizer_args.get(name, default)
                for name, default in allowed.items()}
        if args["stepsize"] is None:
            raise _KeyedError(f"{key}.stepsize", "is required (e.g. stepsize: 0.01)")
        for name, value in args.items():
            if not math.isfinite(value):
                raise _KeyedError(f"{key}.{name}", f"must be finite, got {value}")
        if args["stepsize"] <= 0:
            raise _KeyedError(f"{key}.stepsize", f"must be > 0, got {args['stepsize']}")
        for name in ("beta1", "beta2", "momentum"):
            if name in args and not 0.0 <= args[name] < 1.0:
                raise _KeyedError(f"{key}.{name}", f"must be in [0, 1), got {args[name]}")
        if "epsilon" in args and args["epsilon"] <= 0:
            raise _KeyedError(f"{key}.epsilon", f"must be > 0, got {args['epsilon']}")
        self.nn_optimizer_args = args
        return self


class ARSConfig(_Section):
    """Augmented Random Search (Mania et al. 2018); used with algorithm: ars."""
    version: Literal["v1", "v2", "v1_t", "v2_t"] = "v2_t"
    directions: PositiveInt = 8               # N: mirrored directions per generation
    top_directions: PositiveInt = 4           # b <= N: the best directions used (_t versions)
    step_size: PositiveFloat = 0.02           # alpha
    delta_std: PositiveFloat = 0.03           # nu: the exploration noise

    @model_validator(mode="after")
    def _top(self) -> "ARSConfig":
        if not self.version.endswith("_t"):
            if "top_directions" in self.model_fields_set and \
                    self.top_directions != self.directions:
                raise _KeyedError("top_directions", f"is used by versions v1_t and v2_t only; "
                                  f"{self.version} uses all {self.directions} directions")
            self.top_directions = self.directions
        if self.top_directions > self.directions:
            raise _KeyedError("top_directions", f"must be <= directions ({self.directions}), "
                              f"got {self.top_directions}")
        return self


class LogConfig(_Section):
    """What the run writes besides log.csv."""
    tensorboard: bool = False         # scalars under OUT_DIR/tb (the tensorboard extra)
