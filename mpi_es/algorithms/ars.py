"""Augmented Random Search (Mania, Guy and Recht 2018): the b best of N mirrored directions,
a step alpha / (b sigma_R) * sum (r+ - r-) delta, with sigma_R the standard deviation of the 2b
returns used. V1 acts on raw observations, V2 on observations normalized by the statistics of
every training step; the _t versions keep the top b directions, the others all N."""
from __future__ import annotations

import numpy as np

from .. import es


def initial_theta(cfg, spec, rng: np.random.Generator) -> np.ndarray:
    """Zeros for the linear policy, as the paper starts; a network keeps its normc start."""
    if not spec.hidden_dims:
        return np.zeros(spec.num_params, np.float32)
    return spec.init_theta(rng)


def initial_optimizer(cfg, dim: int):
    return None


def top_directions(returns: np.ndarray, b: int) -> np.ndarray:
    """Slot indices of the b directions with the largest max(r+, r-), in slot order
    (ties go to the earlier slot, so every rank picks the same ones)."""
    best = np.max(returns, axis=1)
    chosen = np.argsort(-best, kind="stable")[:b]
    return np.sort(chosen)


def update_block(cfg, returns: np.ndarray, data, theta_block: np.ndarray, noise_slice,
                 optimizer) -> tuple[np.ndarray, dict]:
    b = cfg.ars.top_directions if cfg.ars.version.endswith("_t") else returns.shape[0]
    chosen = top_directions(returns, b)
    used = returns[chosen]
    sigma_r = float(np.std(used))
    extras = {"ReturnStdUsed": sigma_r}
    if sigma_r == 0.0:           # all returns equal: no direction is better, no step
        return theta_block.copy(), extras
    weights = (used[:, 0] - used[:, 1]).astype(np.float32)
    total = es.weighted_noise_sum(weights, data.noise_indices[chosen], noise_slice,
                                  theta_block.size)
    step = np.float32(cfg.ars.step_size / (b * sigma_r)) * total
    return (theta_block + step).astype(np.float32), extras
