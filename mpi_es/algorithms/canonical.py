"""Canonical ES (Chrabaszcz, Loshchilov and Hutter 2018, "Back to Basics: Benchmarking Canonical
Evolution Strategies for Playing Atari"): a (mu, lambda)-ES. Of the lambda offspring
theta + sigma eps_i, the best mu are kept, and theta moves to their weighted mean:
theta <- theta + step_size * sigma * sum_j w_j eps_(j), with log-rank weights
w_j = log(mu + 0.5) - log(j) normalized to sum 1 (j = 1 is the best). No fitness shaping
beyond the ranking, no Adam, no weight decay; sigma stays fixed."""
from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from ..core.gradient import weighted_noise_sum
from ..fields import KeyedError, PositiveFloat, PositiveInt, Section
from .base import DEFAULT, Algorithm, register


class CanonicalSettings(Section):
    """Canonical ES's keys; `population_size` is lambda, `noise_stdev` is sigma."""
    parents: PositiveInt | None = None
    """mu: the offspring whose mean theta moves to (default lambda / 2, as the paper)"""
    weights: Literal["log", "equal"] = "log"
    """`log`: w_j = log(mu + 0.5) - log(j), normalized (the paper's); `equal`: 1 / mu each"""
    step_size: PositiveFloat = Field(default=1.0, le=100.0)
    """multiplies the move sigma * sum w_j eps_(j) (the paper: 1, theta becomes the mean)"""
    mirrored: bool = False
    """offspring in mirrored pairs, +eps and -eps (the paper samples them independently)"""


def log_weights(mu: int) -> np.ndarray:
    """The paper's recombination weights for ranks 1..mu, summing to 1."""
    w = np.log(mu + 0.5) - np.log(np.arange(1, mu + 1))
    return w / w.sum()


def parent_weights(returns: np.ndarray, mu: int, kind: str = "log") -> np.ndarray:
    """One weight per offspring (same shape as returns: slots x episodes): w_j for the j-th
    best of the mu best, 0 for the rest. Ties go to the earlier offspring in slot order, so every
    rank picks the same parents."""
    flat = np.asarray(returns, dtype=np.float64).ravel()
    best = np.argsort(-flat, kind="stable")[:mu]
    weights = np.zeros(flat.size, dtype=np.float64)
    weights[best] = log_weights(mu) if kind == "log" else np.full(mu, 1.0 / mu)
    return weights.reshape(np.shape(returns))


@register
class Canonical(Algorithm):
    """Canonical ES (Chrabaszcz et al. 2018): theta moves to the weighted mean of the best
    `parents` of `population_size` offspring; sigma fixed, no Adam. Competitive with OpenAI-ES
    on Atari with small populations."""
    name = "canonical"
    Settings = CanonicalSettings
    log_columns = ("ParentReturnMean",)

    def __init__(self, cfg):
        super().__init__(cfg)
        self.settings: CanonicalSettings = cfg.canonical

    @classmethod
    def fixed_settings(cls, settings: CanonicalSettings) -> dict:
        return {"optimizations.mirrored_sampling": settings.mirrored,
                "optimizations.fitness_shaping": False, "optimizations.weight_decay": False,
                "optimizations.neural_network_optimizer": False, "l2coeff": 0.0,
                "return_proc_mode": "centered_rank",
                "model.nn_optimizer": DEFAULT, "model.nn_optimizer_args": DEFAULT}

    @classmethod
    def check_config(cls, cfg) -> None:
        mu = cfg.canonical.parents
        if mu is not None and mu > cfg.population_size:
            raise KeyedError("canonical.parents", f"must be at most population_size "
                             f"({cfg.population_size}), got {mu}")
        if cfg.population_size < 2:
            raise KeyedError("population_size", "needs at least 2 offspring to select from")

    def parents(self) -> int:
        return self.settings.parents or max(1, self.cfg.population_size // 2)

    def update_block(self, returns, data, theta_block, noise, state):
        weights = parent_weights(returns, self.parents(), self.settings.weights)
        chosen = weights > 0
        extras = {"ParentReturnMean": float(np.mean(np.asarray(returns)[chosen]))}
        # one weight per noise vector: +eps offspring count +w, mirrored -eps ones -w
        per_slot = (weights[:, 0] - weights[:, 1] if weights.shape[1] == 2 else weights[:, 0])
        total = weighted_noise_sum(per_slot.astype(np.float32), data.noise_indices, noise,
                                   theta_block.size)
        step = np.float32(self.settings.step_size * self.sigma(data.generation)) * total
        return (theta_block + step).astype(np.float32), extras
