"""OpenAI-ES (Salimans et al. 2017): fitness shaping, the gradient estimate, Adam/SGD or a plain
step, weight decay."""
from __future__ import annotations

import numpy as np

from .. import es


def initial_theta(cfg, spec, rng: np.random.Generator) -> np.ndarray:
    return spec.init_theta(rng)


def initial_optimizer(cfg, dim: int):
    if not cfg.optimizations.neural_network_optimizer:
        return None
    return es.make_optimizer(cfg.model.nn_optimizer, cfg.model.nn_optimizer_args, dim)


def update_block(cfg, returns: np.ndarray, data, theta_block: np.ndarray, noise_slice,
                 optimizer) -> tuple[np.ndarray, dict]:
    processed = es.shape_returns(returns, data.signreturns,
                                 fitness_shaping=cfg.optimizations.fitness_shaping,
                                 mode=cfg.return_proc_mode)
    g = es.es_gradient(processed, data.noise_indices, noise_slice, theta_block.size)
    new_block = es.update_theta(
        theta_block, g, optimizer=optimizer, learning_rate=cfg.learning_rate,
        noise_stdev=cfg.noise_stdev, l2coeff=cfg.l2coeff,
        weight_decay=cfg.optimizations.weight_decay)
    return new_block, {}
