"""OpenAI-ES (Salimans et al. 2017): fitness shaping, the gradient estimate, Adam/SGD or a plain
step, weight decay."""
from __future__ import annotations

import numpy as np

from ..core.gradient import es_gradient
from ..core.optimizers import NO_STATE, SGD, Adam, ParamState, StateLayout
from ..core.shaping import shape_returns
from ..fields import KeyedError
from .base import Algorithm, register


def update_theta(theta: np.ndarray, g: np.ndarray, *, optimizer, state: ParamState | None,
                 learning_rate: float, noise_stdev: float, l2coeff: float,
                 weight_decay: bool) -> np.ndarray:
    """One ES step. With an optimizer it minimises -g (+ l2coeff*theta), advancing `state`;
    else theta += lr/sigma*g.

    The plain step decays weights too when weight_decay is on: theta -= lr*l2coeff*theta.
    """
    decay = np.float32(l2coeff) * theta if weight_decay else np.float32(0)
    if optimizer is not None:
        return (theta + optimizer.step(state, -g + decay)).astype(np.float32)
    step = np.float32(learning_rate / noise_stdev) * g - np.float32(learning_rate) * decay
    return (theta + step).astype(np.float32)


@register
class OpenAIES(Algorithm):
    """OpenAI-ES (Salimans et al. 2017), the default: rank-shaped returns, the gradient
    estimate, Adam/SGD (or a plain step) with weight decay. Its keys are the shared ones."""
    name = "openai_es"
    state_layouts = (NO_STATE, Adam.layout, SGD.layout)

    def __init__(self, cfg):
        super().__init__(cfg)
        self.optimizer = (cfg.model.optimizer()
                          if cfg.optimizations.neural_network_optimizer else None)

    @classmethod
    def check_config(cls, cfg) -> None:
        if cfg.reward_shift and (not cfg.optimizations.fitness_shaping
                                 or cfg.return_proc_mode != "centered_rank"):
            raise KeyedError("reward_shift", "only shifts returns (return - reward_shift x "
                             "episode length), so it needs fitness_shaping with "
                             "return_proc_mode centered_rank; sign-based modes and raw "
                             "returns would ignore it")

    def layout(self) -> StateLayout:
        return NO_STATE if self.optimizer is None else self.optimizer.layout

    def update_block(self, returns, data, theta_block, noise, state):
        cfg = self.cfg
        processed = shape_returns(returns, data.signreturns,
                                  fitness_shaping=cfg.optimizations.fitness_shaping,
                                  mode=cfg.return_proc_mode)
        g = es_gradient(processed, data.noise_indices, noise, theta_block.size)
        new_block = update_theta(
            theta_block, g, optimizer=self.optimizer, state=state,
            learning_rate=cfg.learning_rate, noise_stdev=self.sigma(data.generation),
            l2coeff=cfg.l2coeff,
            weight_decay=cfg.optimizations.weight_decay)
        return new_block, {}
