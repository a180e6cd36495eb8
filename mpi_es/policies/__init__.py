"""The policy families: the MLP (with its action heads) and the Atari CNN, built from a config."""
from __future__ import annotations

import numpy as np

from ..errors import ConfigError
from .cnn import CnnPolicy, CnnSpec
from .mlp import Policy, PolicySpec

__all__ = ["CnnPolicy", "CnnSpec", "Policy", "PolicySpec", "make_policy", "policy_spec",
           "is_image"]


def is_image(space) -> bool:
    return len(space.shape or ()) == 3


def policy_spec(cfg, env) -> PolicySpec | CnnSpec:
    """The policy the config asks for, checked against the env's spaces."""
    if cfg.model.network == "cnn":
        return _cnn_spec(cfg, env)
    if is_image(env.observation_space):
        raise ConfigError(f"'model.network': {cfg.env_id} observes images "
                          f"{env.observation_space.shape}, which the MLP cannot take; set "
                          f"model.network: cnn (the Atari network of the ES paper)")
    return _mlp_spec(cfg, env)


def _cnn_spec(cfg, env) -> CnnSpec:
    from gymnasium import spaces
    ob, action = env.observation_space, env.action_space
    if not is_image(ob):
        raise ConfigError(f"'model.network': cnn needs image observations (stacked frames, "
                          f"as Atari games give); {cfg.env_id} observes {ob}")
    if not isinstance(action, spaces.Discrete):
        raise ConfigError(f"'model.network': cnn chooses one of a Discrete set of actions; "
                          f"{cfg.env_id} has {action}")
    spec = CnnSpec(obs_shape=tuple(int(n) for n in ob.shape), num_actions=int(action.n),
                   action_start=int(action.start), vbn=cfg.model.vbn,
                   vbn_batch=cfg.model.vbn_batch)
    try:
        spec.conv_shapes
    except ValueError as exc:
        raise ConfigError(f"'model.network': {cfg.env_id}: {exc}") from None
    return spec


def _mlp_spec(cfg, env) -> PolicySpec:
    from gymnasium import spaces
    space = env.action_space
    common = dict(ob_dim=int(env.observation_space.shape[0]),
                  hidden_dims=tuple(cfg.model.hidden_dims), nonlin=cfg.model.nonlin_type,
                  normalize_obs=cfg.optimizations.observation_normalization)
    if isinstance(space, (spaces.Discrete, spaces.MultiDiscrete)):
        if cfg.optimizations.discretize_actions:
            raise ConfigError(f"'optimizations.discretize_actions': {cfg.env_id} already has "
                              f"discrete actions ({space}); set it to false")
        if cfg.model.ac_noise_std > 0:
            raise ConfigError(f"'model.ac_noise_std': {cfg.env_id} has discrete actions "
                              f"({space}), chosen by argmax, which Gaussian action noise has no "
                              f"meaning for; set model.ac_noise_std: 0")
        scalar = isinstance(space, spaces.Discrete)
        choices = (int(space.n),) if scalar else tuple(int(n) for n in space.nvec)
        start = np.atleast_1d(np.asarray(space.start, dtype=np.float64))
        return PolicySpec(ac_low=start, ac_high=start + np.array(choices) - 1,
                          ac_choices=choices, scalar_action=scalar, **common)
    bins = cfg.model.ac_bins if cfg.optimizations.discretize_actions else None
    if bins and not (np.all(np.isfinite(space.low)) and np.all(np.isfinite(space.high))):
        raise ConfigError("'optimizations.discretize_actions' needs a bounded action space; "
                          f"{cfg.env_id} has bounds {space.low} .. {space.high}")
    return PolicySpec(ac_low=space.low.astype(np.float64), ac_high=space.high.astype(np.float64),
                      ac_bins=bins, **common)


def make_policy(spec: PolicySpec | CnnSpec, theta: np.ndarray, obstat=None,
                reference: np.ndarray | None = None) -> Policy | CnnPolicy:
    """The policy of a spec: the MLP with observation statistics, or the CNN with its VBN
    reference batch."""
    if isinstance(spec, CnnSpec):
        return CnnPolicy(spec, theta, reference)
    if obstat is None:
        return Policy(spec, theta)
    return Policy(spec, theta, obstat.mean, obstat.std)
