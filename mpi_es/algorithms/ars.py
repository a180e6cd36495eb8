"""Augmented Random Search (Mania, Guy and Recht 2018): the b best of N mirrored directions,
a step alpha / (b sigma_R) * sum (r+ - r-) delta, with sigma_R the standard deviation of the 2b
returns used. V1 acts on raw observations, V2 on observations normalized by the statistics of
every training step; the _t versions keep the top b directions, the others all N."""
from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import model_validator

from ..core.gradient import weighted_noise_sum
from ..fields import KeyedError, PositiveFloat, PositiveInt, Section
from .base import DEFAULT, Algorithm, register


class ARSSettings(Section):
    """Augmented Random Search (Mania et al. 2018); used with algorithm: ars."""
    version: Literal["v1", "v2", "v1_t", "v2_t"] = "v2_t"
    """`v2` normalizes observations with statistics of every training step (`v1`: raw); the `_t`
    versions keep the top b directions"""
    directions: PositiveInt = 8
    """N: mirrored directions per generation (population = 2N)"""
    top_directions: PositiveInt = 4
    """b <= N: the best directions used (`_t` versions)"""
    step_size: PositiveFloat = 0.02
    """alpha, the step size"""
    delta_std: PositiveFloat = 0.03
    """nu, the exploration noise (noise_stdev)"""

    @model_validator(mode="after")
    def _top(self) -> "ARSSettings":
        if not self.version.endswith("_t"):
            if "top_directions" in self.model_fields_set and \
                    self.top_directions != self.directions:
                raise KeyedError("top_directions", f"is used by versions v1_t and v2_t only; "
                                 f"{self.version} uses all {self.directions} directions")
            self.top_directions = self.directions
        if self.top_directions > self.directions:
            raise KeyedError("top_directions", f"must be <= directions ({self.directions}), "
                             f"got {self.top_directions}")
        return self


def top_directions(returns: np.ndarray, b: int) -> np.ndarray:
    """Slot indices of the b directions with the largest max(r+, r-), in slot order
    (ties go to the earlier slot, so every rank picks the same ones)."""
    best = np.max(returns, axis=1)
    chosen = np.argsort(-best, kind="stable")[:b]
    return np.sort(chosen)


@register
class ARS(Algorithm):
    """Augmented Random Search (Mania, Guy and Recht 2018): the step uses the `top_directions`
    best of `directions` mirrored directions, scaled by the standard deviation of their
    returns; a linear policy by default."""
    name = "ars"
    Settings = ARSSettings
    log_columns = ("ReturnStdUsed",)

    def __init__(self, cfg):
        super().__init__(cfg)
        self.settings: ARSSettings = cfg.ars

    @classmethod
    def fixed_settings(cls, settings: ARSSettings) -> dict:
        v2 = settings.version.startswith("v2")
        return {
            "population_size": 2 * settings.directions, "noise_stdev": settings.delta_std,
            "learning_rate": settings.step_size, "l2coeff": 0.0,
            "return_proc_mode": "centered_rank", "calc_obstat_prob": 1.0 if v2 else 0.0,
            "optimizations.mirrored_sampling": True, "optimizations.fitness_shaping": False,
            "optimizations.weight_decay": False,
            "optimizations.neural_network_optimizer": False,
            "optimizations.observation_normalization": v2,
            "model.nn_optimizer": DEFAULT, "model.nn_optimizer_args": DEFAULT,
        }

    @classmethod
    def default_settings(cls) -> dict:
        """The published method: a linear policy M x (no bias), observations normalized by
        the ARS code's filter (V2), no action noise."""
        return {"model.hidden_dims": [], "model.bias": False, "model.obs_filter": "ars",
                "model.ac_noise_std": 0.0}

    @classmethod
    def check_config(cls, cfg) -> None:
        if cfg.model.network == "cnn":
            raise KeyedError("model.network", "cnn is trained with algorithm: openai_es; ARS "
                             "(Mania et al.) is defined for linear and MLP policies")

    def initial_theta(self, spec, rng: np.random.Generator) -> np.ndarray:
        """Zeros for the linear policy, as the paper starts; a network keeps its normc start."""
        if not getattr(spec, "hidden_dims", ()):
            return np.zeros(spec.num_params, np.float32)
        return spec.init_theta(rng)

    def update_block(self, returns, data, theta_block, noise, state):
        s = self.settings
        b = s.top_directions if s.version.endswith("_t") else returns.shape[0]
        chosen = top_directions(returns, b)
        used = returns[chosen]
        sigma_r = float(np.std(used))
        extras = {"ReturnStdUsed": sigma_r}
        if sigma_r == 0.0:           # all returns equal: no direction is better, no step
            return theta_block.copy(), extras
        weights = (used[:, 0] - used[:, 1]).astype(np.float32)
        total = weighted_noise_sum(weights, data.noise_indices[chosen], noise,
                                   theta_block.size)
        step = np.float32(self.settings.step_size / (b * sigma_r)) * total
        return (theta_block + step).astype(np.float32), extras
