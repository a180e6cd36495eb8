"""The Atari network of Mnih et al. (2016), as the ES paper trained it, evaluated in NumPy.

conv 16 8x8 stride 4 -> conv 32 4x4 stride 2 -> dense 256 -> one score per action (argmax),
ReLU between. With virtual batch normalization (VBN) each hidden layer is normalized by the
statistics of a fixed reference batch of observations passed through the same parameters, so
the statistics are recomputed whenever theta changes (once per perturbed policy, before its
episodes) and the per-step forward pass is plain affine layers.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import numpy as np
from pydantic import Field

from ..core.slots import reference_generator
from ..errors import ConfigError
from ..fields import Int, Section
from .base import PolicyFamily, is_image, register
from .mlp import normc

# (out channels, kernel, stride) of the two convolutions, then the dense layer's width
CONVS = ((16, 8, 4), (32, 4, 2))
DENSE = 256
VBN_EPSILON = 1e-3
PIXEL_SCALE = np.float32(1.0 / 255.0)


@dataclass(frozen=True)
class CnnSpec:
    obs_shape: tuple[int, int, int]    # (stacked frames, height, width), as the Atari wrappers give
    num_actions: int
    action_start: int = 0
    vbn: bool = True
    vbn_batch: int = 128
    channels_last: bool = False        # (height, width, channels) images, e.g. raw RGB frames

    scalar_action = True

    @property
    def chw(self) -> tuple[int, int, int]:
        """(channels, height, width), whichever way the env lays its images out."""
        if self.channels_last:
            height, width, channels = self.obs_shape
            return channels, height, width
        return self.obs_shape

    @property
    def ob_dim(self) -> int:
        return int(np.prod(self.obs_shape))

    @property
    def conv_shapes(self) -> list[tuple[int, int, int]]:
        """(height, width, channels) after each convolution."""
        channels, height, width = self.chw
        out = []
        for filters, kernel, stride in CONVS:
            height = (height - kernel) // stride + 1
            width = (width - kernel) // stride + 1
            if height < 1 or width < 1:
                raise ValueError(f"observations of shape {self.obs_shape} are too small for "
                                 f"the Atari network (it needs at least 20x20 pixels)")
            channels = filters
            out.append((height, width, channels))
        return out

    @property
    def layer_shapes(self) -> list[tuple[int, int]]:
        """(fan in, fan out) of conv1, conv2, dense, output, as matrices."""
        channels = self.chw[0]
        shapes = []
        for filters, kernel, _ in CONVS:
            shapes.append((channels * kernel * kernel, filters))
            channels = filters
        flat = int(np.prod(self.conv_shapes[-1]))
        return shapes + [(flat, DENSE), (DENSE, self.num_actions)]

    def _layout(self) -> list[tuple[str, tuple[int, ...]]]:
        """Name and shape of each array in theta, in order."""
        parts = []
        for k, (fan_in, fan_out) in enumerate(self.layer_shapes[:-1]):
            parts.append((f"w{k}", (fan_in, fan_out)))
            if self.vbn:      # a bias before a normalization would cancel out; gamma, beta
                parts += [(f"gamma{k}", (fan_out,)), (f"beta{k}", (fan_out,))]
            else:
                parts.append((f"b{k}", (fan_out,)))
        fan_in, fan_out = self.layer_shapes[-1]
        return parts + [("w_out", (fan_in, fan_out)), ("b_out", (fan_out,))]

    @property
    def num_params(self) -> int:
        return sum(int(np.prod(shape)) for _, shape in self._layout())

    def unflatten(self, theta: np.ndarray) -> dict[str, np.ndarray]:
        if theta.shape != (self.num_params,):
            raise ValueError(f"theta has shape {theta.shape}, policy needs ({self.num_params},)")
        arrays, start = {}, 0
        for name, shape in self._layout():
            size = int(np.prod(shape))
            arrays[name] = theta[start:start + size].reshape(shape)
            start += size
        return arrays

    def describe_observations(self) -> str:
        frames, height, width = self.chw
        layout = ", channels last" if self.channels_last else ""
        return (f"{'x'.join(map(str, self.obs_shape))}  ({frames} stacked {height}x{width} "
                f"frames{layout})")

    def describe_actions(self) -> str:
        return f"1  (choices {self.num_actions}, argmax)"

    def describe(self) -> str:
        convs = ", ".join(f"conv {f} {k}x{k}/{s}" for f, k, s in CONVS)
        norm = (f"VBN on a reference batch of {self.vbn_batch}" if self.vbn
                else "no normalization")
        return f"CNN {convs}, dense {DENSE}, {self.num_actions} outputs (relu, {norm})"

    def init_theta(self, rng: np.random.Generator) -> np.ndarray:
        """normc: std 1.0 for hidden weights, 0.01 for the output layer; gamma 1, biases 0."""
        parts = []
        for name, shape in self._layout():
            if name.startswith("w"):
                parts.append(normc(rng, shape, 0.01 if name == "w_out" else 1.0).ravel())
            else:
                fill = 1.0 if name.startswith("gamma") else 0.0
                parts.append(np.full(shape, fill, np.float32))
        return np.concatenate(parts).astype(np.float32)


def channels_last(shape: tuple[int, int, int]) -> bool:
    """(height, width, channels) rather than (channels, height, width): a last axis of a few
    channels after a larger one (Atari's stacked frames are (4, 84, 84); RGB frames
    (210, 160, 3))."""
    return shape[2] < shape[0] and shape[2] <= 16


def _blocks(x: np.ndarray, stride: int, channels_first: bool) -> np.ndarray:
    """(..., H, W, C) (or (..., C, H, W)) -> (..., H/s, W/s, C*s*s): each stride x stride tile
    of the image as one row, ordered (c, a, b). Rows past a whole number of tiles are dropped:
    a kernel of two tiles never reaches them."""
    if channels_first:
        *lead, c, h, w = x.shape
        hb, wb = h // stride, w // stride
        x = x[..., :hb * stride, :wb * stride].reshape(*lead, c, hb, stride, wb, stride)
        x = np.moveaxis(x, (-5, -3), (-3, -2))       # (..., hb, wb, c, a, b)
    else:
        *lead, h, w, c = x.shape
        hb, wb = h // stride, w // stride
        x = x[..., :hb * stride, :wb * stride, :].reshape(*lead, hb, stride, wb, stride, c)
        x = np.moveaxis(x, (-1, -4), (-3, -2))       # (..., hb, wb, c, a, b)
    return x.astype(np.float32).reshape(*lead, hb, wb, c * stride * stride)


def _tile_weights(w: np.ndarray, channels: int, stride: int) -> np.ndarray:
    """A kernel of 2x2 tiles, rows ordered (c, kh, kw), as (c*s*s, 4*out): one block of
    columns per tile offset (di, dj), so one matmul of the tiles serves all four offsets."""
    out = w.shape[1]
    w = w.reshape(channels, 2, stride, 2, stride, out)          # c, di, a, dj, b, o
    return np.ascontiguousarray(w.transpose(0, 2, 4, 1, 3, 5)).reshape(-1, 4 * out)


def _conv(tiles: np.ndarray, w_tiles: np.ndarray) -> np.ndarray:
    """Convolution with kernel 2*stride and the given stride, from _blocks' tiles:
    (..., Hb, Wb, F) -> (..., Hb-1, Wb-1, out). Each output sums four adjacent tiles."""
    z = tiles @ w_tiles
    z = z.reshape(*z.shape[:-1], 2, 2, -1)
    return (z[..., :-1, :-1, 0, 0, :] + z[..., :-1, 1:, 0, 1, :]
            + z[..., 1:, :-1, 1, 0, :] + z[..., 1:, 1:, 1, 1, :])


class CnnPolicy:
    """Acts with a given theta; VBN statistics come from `reference` (uint8 observations)."""

    def __init__(self, spec: CnnSpec, theta: np.ndarray, reference: np.ndarray | None = None):
        if spec.vbn and reference is None:
            raise ValueError("a CNN with VBN needs its reference batch of observations")
        self.spec = spec
        # the first layer's tiles do not depend on theta: cut them once
        self._reference_tiles = (None if reference is None else
                                 _blocks(reference, CONVS[0][2],
                                         channels_first=not spec.channels_last))
        self.set_theta(theta)

    def set_obstat(self, obstat) -> None:
        """The CNN normalizes inside the network; observation statistics are not used."""

    def set_theta(self, theta: np.ndarray) -> None:
        self.theta = np.asarray(theta, dtype=np.float32)
        arrays = self.spec.unflatten(self.theta)
        layers = []
        channels = self.spec.chw[0]
        x = self._reference_tiles
        for k in range(len(self.spec.layer_shapes) - 1):
            w = arrays[f"w{k}"] * PIXEL_SCALE if k == 0 else arrays[f"w{k}"]
            if k < len(CONVS):
                w = _tile_weights(w, channels, CONVS[k][2])
                channels = CONVS[k][0]
            if self.spec.vbn:
                w, shift, x = self._normalized(k, w, arrays, x)
            else:
                shift = arrays[f"b{k}"]
            layers.append((w, shift))
        self._hidden = layers
        self._out = (arrays["w_out"], arrays["b_out"])

    def _normalized(self, k: int, w: np.ndarray, arrays, x: np.ndarray):
        """Batch normalization of layer k with the reference batch's statistics under these
        weights, folded into the layer: w * s and beta - mean * s with s = gamma / std.
        Returns them and the reference batch's input to the next layer."""
        if k < len(CONVS):
            pre = _conv(x, w)
        else:
            pre = x.reshape(x.shape[0], -1) @ w
        axes = tuple(range(pre.ndim - 1))                # batch (and positions, for convolutions)
        mean = pre.mean(axis=axes, dtype=np.float64)
        var = pre.var(axis=axes, dtype=np.float64)
        scale = arrays[f"gamma{k}"] / np.sqrt(var + VBN_EPSILON)
        shift = (arrays[f"beta{k}"] - mean * scale).astype(np.float32)
        scale = scale.astype(np.float32)
        after = np.maximum(pre * scale + shift, 0)
        if k + 1 < len(CONVS):
            after = _blocks(after, CONVS[k + 1][2], channels_first=False)
        w_scaled = (w.reshape(w.shape[0], -1, scale.size) * scale).reshape(w.shape)
        return w_scaled, shift, after

    def scores(self, ob: np.ndarray) -> np.ndarray:
        """One score per action for one observation ((frames, H, W) uint8)."""
        x = _blocks(ob, CONVS[0][2], channels_first=not self.spec.channels_last)
        for k, (w, b) in enumerate(self._hidden):
            if k < len(CONVS):
                x = _conv(x, w)
                x += b
                np.maximum(x, 0, out=x)
                if k + 1 < len(CONVS):
                    x = _blocks(x, CONVS[k + 1][2], channels_first=False)
            else:
                x = x.reshape(-1) @ w
                x += b
                np.maximum(x, 0, out=x)
        w, b = self._out
        return x @ w + b

    def act(self, ob: np.ndarray) -> int:
        return self.spec.action_start + int(np.argmax(self.scores(ob)))


class CnnSettings(Section):
    """The CNN's keys in the model section."""
    vbn: bool = True
    """virtual batch normalization"""
    vbn_batch: Annotated[Int, Field(ge=2)] = 128
    """observations in the VBN reference batch"""


@register
class Cnn(PolicyFamily):
    """The paper's Atari network, with virtual batch normalization."""
    name = "cnn"
    Settings = CnnSettings
    # pixels are scaled to [0, 1] and normalized inside the network (VBN), and Atari's actions
    # are discrete: observation statistics and Gaussian action noise are off
    fixed_settings = {"optimizations.observation_normalization": False,
                      "model.ac_noise_std": 0.0}
    fixed_reason = ("pixels are scaled to [0, 1] and normalized by the network itself, "
                    "actions are chosen by argmax")

    @classmethod
    def spec(cls, cfg, env) -> CnnSpec:
        from gymnasium import spaces
        ob, action = env.observation_space, env.action_space
        if not is_image(ob):
            raise ConfigError(f"'model.network': cnn needs image observations (stacked frames, "
                              f"as Atari games give); {cfg.env_id} observes {ob}")
        if not isinstance(action, spaces.Discrete):
            raise ConfigError(f"'model.network': cnn chooses one of a Discrete set of actions; "
                              f"{cfg.env_id} has {action}")
        shape = tuple(int(n) for n in ob.shape)
        spec = CnnSpec(obs_shape=shape, num_actions=int(action.n),
                       action_start=int(action.start), vbn=cfg.model.vbn,
                       vbn_batch=cfg.model.vbn_batch, channels_last=channels_last(shape))
        try:
            spec.conv_shapes
        except ValueError as exc:
            raise ConfigError(f"'model.network': {cfg.env_id}: {exc}") from None
        return spec

    @classmethod
    def shared_data(cls, cfg, spec: CnnSpec, env) -> np.ndarray | None:
        """The VBN reference batch, collected by random play from the run's seed: every rank
        (and `evaluate`) collects the same one."""
        if not spec.vbn:
            return None
        from ..envs.atari import reference_batch
        return reference_batch(env, reference_generator(cfg.seed), spec.vbn_batch)

    @classmethod
    def make(cls, spec: CnnSpec, theta: np.ndarray, obstat=None, shared=None) -> CnnPolicy:
        return CnnPolicy(spec, theta, shared)
