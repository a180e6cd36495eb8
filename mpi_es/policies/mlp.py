"""The MLP policy on a flat float32 parameter vector, evaluated in NumPy (model.network: mlp).

With no hidden layers it is the linear (affine) policy ARS uses."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from ..errors import ConfigError
from ..fields import PositiveInt, Section
from .base import PolicyFamily, is_image, register

LRELU_SLOPE = 0.2  # tf.nn.leaky_relu's default, which the notebook used

# Each writes its result into x: the batched forward pass keeps its layers in fixed buffers.


def _tanh(x: np.ndarray) -> np.ndarray:
    return np.tanh(x, out=x)


def _relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0, out=x)


def _lrelu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, LRELU_SLOPE * x, out=x)


def _elu(x: np.ndarray) -> np.ndarray:
    x[...] = np.where(x > 0, x, np.expm1(np.minimum(x, 0)))
    return x


NONLINEARITIES = {"tanh": _tanh, "relu": _relu, "lrelu": _lrelu, "elu": _elu}


def normc(rng: np.random.Generator, shape: tuple[int, int], std: float) -> np.ndarray:
    """Gaussian weights whose columns each have Euclidean norm `std`."""
    out = rng.standard_normal(shape).astype(np.float32)
    out *= std / np.sqrt(np.square(out).sum(axis=0, keepdims=True))
    return out


@dataclass(frozen=True)
class MlpSpec:
    ob_dim: int
    ac_low: np.ndarray
    ac_high: np.ndarray
    hidden_dims: tuple[int, ...]
    nonlin: str = "tanh"
    ac_bins: int | None = None        # None: continuous actions; else bins per action dimension
    normalize_obs: bool = True
    # Discrete / MultiDiscrete action spaces: the choices of each action dimension (ac_low holds
    # the first choice's value); one score per choice, the argmax is the action.
    ac_choices: tuple[int, ...] | None = None
    scalar_action: bool = False       # Discrete: act() returns a plain int
    bias: bool = True                 # False: every layer is W x (ARS's linear policy M x)
    obs_filter: str = "es"            # es: clip((o - mean) / std, -5, 5), std >= 0.1; ars: below

    @property
    def ac_dim(self) -> int:
        return int(self.ac_low.size)

    @property
    def outputs(self) -> int:
        if self.ac_choices:
            return int(sum(self.ac_choices))
        return self.ac_dim * (self.ac_bins or 1)

    @property
    def layer_shapes(self) -> list[tuple[int, int]]:
        out = self.outputs
        dims = [self.ob_dim, *self.hidden_dims, out]
        return list(zip(dims[:-1], dims[1:]))

    @property
    def num_params(self) -> int:
        return sum(i * o + (o if self.bias else 0) for i, o in self.layer_shapes)

    def describe_observations(self) -> str:
        return str(self.ob_dim)

    def describe_actions(self) -> str:
        if self.ac_choices:
            return f"{self.ac_dim}  (choices {', '.join(map(str, self.ac_choices))}, argmax)"
        return f"{self.ac_dim}  (bounds {self.ac_low.min():g} .. {self.ac_high.max():g})"

    def describe(self) -> str:
        layers = " -> ".join(str(d) for d in [self.ob_dim, *self.hidden_dims, self.outputs])
        bins = f", {self.ac_bins} bins per action" if self.ac_bins else ""
        bias = "" if self.bias else ", no bias"
        if not self.hidden_dims:
            return f"linear {layers} ({bins.lstrip(', ') or 'continuous'}{bias}, " \
                   f"{self.obs_filter} filter)"
        return f"MLP {layers} ({self.nonlin}{bins}{bias}, {self.obs_filter} filter)"

    def init_theta(self, rng: np.random.Generator) -> np.ndarray:
        """normc init: std 1.0 for hidden layers, 0.01 for the output layer, zero biases."""
        parts = []
        shapes = self.layer_shapes
        for k, shape in enumerate(shapes):
            parts.append(normc(rng, shape, 0.01 if k == len(shapes) - 1 else 1.0).ravel())
            if self.bias:
                parts.append(np.zeros(shape[1], np.float32))
        return np.concatenate(parts).astype(np.float32)

    def unflatten(self, theta: np.ndarray) -> list[tuple[np.ndarray, np.ndarray | None]]:
        """(W, b) views into theta, W of shape (in, out); b is None without biases."""
        if theta.shape != (self.num_params,):
            raise ValueError(f"theta has shape {theta.shape}, policy needs ({self.num_params},)")
        layers, start = [], 0
        for i, o in self.layer_shapes:
            w = theta[start:start + i * o].reshape(i, o)
            start += i * o
            b = theta[start:start + o] if self.bias else None
            start += o if self.bias else 0
            layers.append((w, b))
        return layers

    def unflatten_rows(self, thetas: np.ndarray) -> list[tuple[np.ndarray, np.ndarray | None]]:
        """(W, b) views into the rows of thetas (n, num_params): W (n, in, out), b (n, out)."""
        layers, start = [], 0
        n = len(thetas)
        for i, o in self.layer_shapes:
            w = thetas[:, start:start + i * o].reshape(n, i, o)
            start += i * o
            b = thetas[:, start:start + o] if self.bias else None
            start += o if self.bias else 0
            layers.append((w, b))
        return layers

    def discrete_action(self, scores: np.ndarray) -> np.ndarray:
        """argmax over ac_bins per action dimension, mapped uniformly onto [low, high]; scores
        may have leading (row) dimensions."""
        bins = self.ac_bins
        idx = scores.reshape(*scores.shape[:-1], self.ac_dim, bins).argmax(axis=-1)
        return self.ac_low + idx * ((self.ac_high - self.ac_low) / (bins - 1))

    def choice_action(self, scores: np.ndarray):
        """The argmax of each action dimension's scores, offset by its first choice."""
        if self.scalar_action:
            return int(self.ac_low[0]) + int(np.argmax(scores))
        picks, start = [], 0
        for n in self.ac_choices:
            picks.append(int(np.argmax(scores[start:start + n])))
            start += n
        return self.ac_low.astype(np.int64) + np.array(picks, dtype=np.int64)


class MlpLanes:
    """`count` MLPs acting at once: row r of every batch acts with the parameters set for row r.

    Each layer is one batched matrix product over the rows ((n, 1, in) @ (n, in, out)), which
    NumPy computes row by row with the same vector-matrix kernel as a single row, so a row's
    action does not depend on the other rows or on n.
    """

    def __init__(self, spec: MlpSpec, count: int, obstat=None):
        self.spec, self.count = spec, count
        self._nonlin = NONLINEARITIES[spec.nonlin]
        self.thetas = np.zeros((count, spec.num_params), np.float32)
        self._layers = spec.unflatten_rows(self.thetas)
        self._ob_buffer = np.empty((count, spec.ob_dim), np.float64)
        # Each layer's input as (count, 1, in) float32, the last layer's output (count, 1, out):
        # products and biases go into these in place, so a forward pass allocates nothing.
        self._inputs = [np.empty((count, 1, i), np.float32) for i, _ in spec.layer_shapes]
        self._output = np.empty((count, 1, spec.layer_shapes[-1][1]), np.float32)
        self._views: dict[int, tuple] = {}
        self.set_obstat(obstat)

    def set_theta(self, row: int, theta: np.ndarray) -> None:
        if theta.shape != (self.spec.num_params,):
            raise ValueError(f"theta has shape {theta.shape}, policy needs "
                             f"({self.spec.num_params},)")
        self.thetas[row] = theta

    def swap(self, i: int, j: int) -> None:
        self.thetas[[i, j]] = self.thetas[[j, i]]

    def set_obstat(self, obstat) -> None:
        if self.spec.normalize_obs and obstat is not None:
            std = obstat.sample_std if self.spec.obs_filter == "ars" else obstat.std
            self.set_normalization(obstat.mean, std)
        else:
            self._ob_mean = None

    def set_normalization(self, ob_mean: np.ndarray, ob_std: np.ndarray) -> None:
        """Normalize with this mean and std (an infinite std turns its component into 0)."""
        self._ob_mean = np.asarray(ob_mean, np.float64)
        self._ob_inv_std = 1.0 / np.asarray(ob_std, np.float64)

    def _rows(self, n: int) -> tuple[np.ndarray, list]:
        """For n rows: the first layer's input as (n, in), and per layer (input (n, 1, in),
        W (n, in, out), b (n, out) or None, destination (n, 1, out), destination as (n, out));
        made once per n."""
        views = self._views.get(n)
        if views is None:
            destinations = self._inputs[1:] + [self._output]
            views = self._views[n] = (self._inputs[0][:n, 0, :], [
                (x[:n], w[:n], None if b is None else b[:n], d[:n], d[:n, 0, :])
                for x, (w, b), d in zip(self._inputs, self._layers, destinations)])
        return views

    def scores(self, obs: np.ndarray) -> np.ndarray:
        """The output layer (n, outputs) for observations (n, ob_dim), a new array."""
        n = len(obs)
        first, rows = self._rows(n)
        if self._ob_mean is not None:
            # (ob - mean) / std, clipped to +-5 by the ES filter, in place
            x = np.subtract(obs, self._ob_mean, out=self._ob_buffer[:n])
            x *= self._ob_inv_std
            if self.spec.obs_filter == "es":
                np.maximum(x, -5.0, out=x)
                np.minimum(x, 5.0, out=x)
            first[...] = x                     # to float32, rounded as astype rounds
        else:
            first[...] = obs
        last = len(rows) - 1
        if n == 1:      # one row: plain vector-matrix products, the same kernel, less overhead
            x = first[0]
            for k, (_, w, b, _, _) in enumerate(rows):
                x = x @ w[0]
                if b is not None:
                    x += b[0]
                if k < last:
                    x = self._nonlin(x)
            return x[None]
        for k, (x, w, b, out, flat) in enumerate(rows):
            np.matmul(x, w, out=out)
            if b is not None:
                np.add(flat, b, out=flat)
            if k < last:
                self._nonlin(flat)
        return flat.copy()

    def act(self, obs: np.ndarray):
        """Noise-free actions, one per row: an array (n, ac_dim), or a list for discrete
        action spaces."""
        x = self.scores(obs)
        if self.spec.ac_choices:
            return [self.spec.choice_action(row) for row in x]
        if self.spec.ac_bins:
            return self.spec.discrete_action(x)
        return x


class MlpPolicy:
    """One MLP with a given theta and observation statistics; cheap to re-point at a new theta."""

    def __init__(self, spec: MlpSpec, theta: np.ndarray, obstat=None):
        self.spec = spec
        self.lanes = MlpLanes(spec, 1, obstat)
        self.set_theta(theta)

    @property
    def _ob_mean(self):
        return self.lanes._ob_mean

    @property
    def _ob_inv_std(self):
        return self.lanes._ob_inv_std

    def set_theta(self, theta: np.ndarray) -> None:
        self.theta = np.asarray(theta, dtype=np.float32)
        self.lanes.set_theta(0, self.theta)

    def set_obstat(self, obstat) -> None:
        self.lanes.set_obstat(obstat)

    def set_normalization(self, ob_mean: np.ndarray, ob_std: np.ndarray) -> None:
        self.lanes.set_normalization(ob_mean, ob_std)

    def act(self, ob: np.ndarray):
        """The noise-free action for one observation."""
        return self.lanes.act(np.asarray(ob)[None])[0]


class MlpSettings(Section):
    """The MLP's keys in the model section."""
    hidden_dims: list[PositiveInt] = [256, 256]
    """hidden layer sizes; `[]` gives a linear policy"""
    nonlin_type: Literal["tanh", "relu", "lrelu", "elu"] = "tanh"
    """`tanh`, `relu`, `lrelu` (slope 0.2), `elu`"""
    bias: bool = True
    """a bias vector in every layer; false gives `W x` (ARS's linear policy `M x`)"""
    obs_filter: Literal["es", "ars"] = "es"
    """with `optimizations.observation_normalization`: `es` feeds `clip((o - mean) / std, -5,
    5)` with std at least 0.1 (the ES paper's); `ars` feeds `(o - mean) / std` with the sample
    std, unclipped, a constant component turned into 0 (the ARS paper's code)"""


@register
class Mlp(PolicyFamily):
    """Fully connected layers; continuous, discretized or discrete (argmax) actions."""
    name = "mlp"
    Settings = MlpSettings

    @classmethod
    def spec(cls, cfg, env) -> MlpSpec:
        from gymnasium import spaces
        if is_image(env.observation_space):
            raise ConfigError(f"'model.network': {cfg.env_id} observes images "
                              f"{env.observation_space.shape}, which the MLP cannot take; set "
                              f"model.network: cnn (the Atari network of the ES paper)")
        space = env.action_space
        common = dict(ob_dim=int(env.observation_space.shape[0]),
                      hidden_dims=tuple(cfg.model.hidden_dims), nonlin=cfg.model.nonlin_type,
                      normalize_obs=cfg.optimizations.observation_normalization,
                      bias=cfg.model.bias, obs_filter=cfg.model.obs_filter)
        if isinstance(space, (spaces.Discrete, spaces.MultiDiscrete)):
            if cfg.optimizations.discretize_actions:
                raise ConfigError(f"'optimizations.discretize_actions': {cfg.env_id} already has "
                                  f"discrete actions ({space}); set it to false")
            if cfg.model.ac_noise_std > 0:
                raise ConfigError(f"'model.ac_noise_std': {cfg.env_id} has discrete actions "
                                  f"({space}), chosen by argmax, which Gaussian action noise "
                                  f"has no meaning for; set model.ac_noise_std: 0")
            scalar = isinstance(space, spaces.Discrete)
            choices = (int(space.n),) if scalar else tuple(int(n) for n in space.nvec)
            start = np.atleast_1d(np.asarray(space.start, dtype=np.float64))
            return MlpSpec(ac_low=start, ac_high=start + np.array(choices) - 1,
                           ac_choices=choices, scalar_action=scalar, **common)
        bins = cfg.model.ac_bins if cfg.optimizations.discretize_actions else None
        if bins and not (np.all(np.isfinite(space.low)) and np.all(np.isfinite(space.high))):
            raise ConfigError("'optimizations.discretize_actions' needs a bounded action space; "
                              f"{cfg.env_id} has bounds {space.low} .. {space.high}")
        return MlpSpec(ac_low=space.low.astype(np.float64), ac_high=space.high.astype(np.float64),
                       ac_bins=bins, **common)

    @classmethod
    def make(cls, spec: MlpSpec, theta: np.ndarray, obstat=None, shared=None) -> MlpPolicy:
        return MlpPolicy(spec, theta, obstat)

    @classmethod
    def make_lanes(cls, spec: MlpSpec, count: int, obstat=None, shared=None) -> MlpLanes:
        return MlpLanes(spec, count, obstat)
