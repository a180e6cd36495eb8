"""The sections every config has: one pydantic model per YAML group.

The model section here holds the keys every policy family shares; a family adds its own (see
policies/), and an algorithm its own section (see algorithms/). schema.py puts them together.
"""
from __future__ import annotations

import math
from typing import Annotated, Literal, Optional

from pydantic import Field, model_validator

from ..core.optimizers import make_optimizer
from ..core.rewards import RewardTransform
from ..fields import (Int, KeyedError, NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt,
                      Section)


class StopConfig(Section):
    """The first limit reached ends the run; null disables a limit."""
    generations: Optional[PositiveInt] = 1000
    """end after this many generations"""
    timesteps: Optional[PositiveInt] = None
    """end once this many environment steps were taken (evaluation episodes included)"""
    seconds: Optional[PositiveFloat] = None
    """end once the run has trained this long (wall time, summed over resumes)"""
    # Stop once the noise-free policy's mean return over eval_episodes episodes (played across
    # the ranks after every eval_every-th generation) reaches eval_return.
    eval_return: Optional[float] = Field(default=None, allow_inf_nan=False)
    """also end once the noise-free policy reaches this mean return: after every `eval_every`-th
    generation the ranks share `eval_episodes` evaluation episodes (exactly what `evaluate
    CHECKPOINT --seed GENERATION --episodes N` prints), logged as `TargetEvalMean`, their steps
    counted"""
    eval_episodes: PositiveInt = 10
    """episodes of each `eval_return` check"""
    eval_every: PositiveInt = 10
    """generations between `eval_return` checks"""

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
                    raise KeyedError(key, "means nothing without stop.eval_return; set it or "
                                     "remove this key")
        return self


class NoiseTableConfig(Section):
    """The shared table of standard-normal float32 entries every perturbation is cut from."""
    seed: NonNegativeInt = 123
    """seed of the table (chunk c comes from its own generator seeded by (seed, c))"""
    size: PositiveInt = 250_000_000
    """float32 entries: size x 4 bytes per node, in shared memory"""


class NoiseDecayConfig(Section):
    """A sigma that shrinks over the run (estool's recipe for BipedalWalker): the perturbations
    of generation g (counted from 0) have sigma = max(floor, noise_stdev x rate^g), and the
    update divides by that sigma. The default keeps sigma fixed."""
    rate: Annotated[PositiveFloat, Field(le=1.0)] = 1.0
    """sigma is multiplied by this each generation (1 = no decay)"""
    floor: NonNegativeFloat = 0.0
    """sigma never goes below this"""


FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]


class TrainingRewardConfig(Section):
    """Rewards as training episodes rank them, for recipes that need it; evaluation episodes,
    the `eval_return` checks and the log keep the environment's own rewards. Applied to each
    step's reward: `replace` first, then `clip`. Default: unchanged."""
    replace: dict[FiniteFloat, FiniteFloat] = {}
    """exact step rewards and what they become, e.g. `{-100: 0}` (estool's BipedalWalker recipe:
    no fall penalty in training)"""
    clip: tuple[Optional[FiniteFloat], Optional[FiniteFloat]] = (None, None)
    """[low, high] bounds on each step's reward (null: unbounded), e.g. `[-1, null]`"""

    @model_validator(mode="after")
    def _ordered(self) -> "TrainingRewardConfig":
        low, high = self.clip
        if low is not None and high is not None and low > high:
            raise KeyedError("clip", f"low {low} is above high {high}")
        return self

    def transform(self) -> RewardTransform:
        low, high = self.clip
        return RewardTransform(tuple(sorted(self.replace.items())), low, high)


class Optimizations(Section):
    """The notebook's switches."""
    mirrored_sampling: bool = True
    """evaluate each noise vector as +eps and -eps"""
    fitness_shaping: bool = True
    """use `return_proc_mode`; false = raw returns"""
    weight_decay: bool = True
    """add `l2coeff * theta` to the loss gradient (the plain step decays by
    `lr * l2coeff * theta`)"""
    discretize_actions: bool = False
    """`model.ac_bins` outputs per action dimension, argmax mapped onto [low, high]"""
    neural_network_optimizer: bool = True
    """Adam/SGD on `-g + l2coeff*theta`, else the plain step"""
    observation_normalization: bool = True
    """feed `clip((o - mean) / std, -5, 5)` to the network"""


OPTIMIZER_ARGS = {
    "adam": {"stepsize": None, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8},
    "sgd": {"stepsize": None, "momentum": 0.9},
}


class ModelBase(Section):
    """The policy network and its optimizer: the keys every network shares. `network` names
    a registered family (mlp, cnn) or your own as package.module:Name."""
    network: str = "mlp"
    """`mlp`, `cnn` (the Atari network, for image observations) or your own as
    `package.module:Name`"""
    ac_noise_std: NonNegativeFloat = 0.01
    """Gaussian action noise in training episodes (never in evaluation episodes)"""
    ac_bins: Annotated[Int, Field(ge=2)] = 5
    """bins per action dimension with `optimizations.discretize_actions`"""
    nn_optimizer: Literal["adam", "sgd"] = "adam"
    """`adam`, or `sgd` (with momentum)"""
    nn_optimizer_args: dict[str, float] = {"stepsize": 0.01}
    """`stepsize` plus `beta1`/`beta2`/`epsilon` (adam) or `momentum` (sgd)"""

    @model_validator(mode="after")
    def _optimizer_args(self) -> "ModelBase":
        allowed = OPTIMIZER_ARGS[self.nn_optimizer]
        key = "nn_optimizer_args"
        unknown = sorted(set(self.nn_optimizer_args) - set(allowed))
        if unknown:
            raise KeyedError(f"{key}.{unknown[0]}", f"is not an argument of {self.nn_optimizer} "
                             f"(allowed: {', '.join(allowed)})")
        args = {name: self.nn_optimizer_args.get(name, default)
                for name, default in allowed.items()}
        if args["stepsize"] is None:
            raise KeyedError(f"{key}.stepsize", "is required (e.g. stepsize: 0.01)")
        for name, value in args.items():
            if not math.isfinite(value):
                raise KeyedError(f"{key}.{name}", f"must be finite, got {value}")
        if args["stepsize"] <= 0:
            raise KeyedError(f"{key}.stepsize", f"must be > 0, got {args['stepsize']}")
        for name in ("beta1", "beta2", "momentum"):
            if name in args and not 0.0 <= args[name] < 1.0:
                raise KeyedError(f"{key}.{name}", f"must be in [0, 1), got {args[name]}")
        if "epsilon" in args and args["epsilon"] <= 0:
            raise KeyedError(f"{key}.epsilon", f"must be > 0, got {args['epsilon']}")
        self.nn_optimizer_args = args
        return self

    def optimizer(self):
        """The optimizer object nn_optimizer and nn_optimizer_args describe."""
        return make_optimizer(self.nn_optimizer, self.nn_optimizer_args)


class LogConfig(Section):
    """What the run writes besides log.csv."""
    tensorboard: bool = False
    """also write every numeric log.csv column as TensorBoard scalars under `OUT_DIR/tb/` (the
    `tensorboard` extra)"""
