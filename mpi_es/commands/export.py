"""`python -m mpi_es export SNAPSHOT.h5 -o model.keras`: the policy as a Keras model.

Needs the `keras` extra (tensorflow-cpu). The model maps a batch of raw observations to the
policy's noise-free actions, observation normalization and discretized actions included. It
uses two small layers of mpi_es's own; load it with
    from mpi_es.commands.export import load_model; model = load_model("model.keras")
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ConfigError


def _keras():
    try:
        import keras
    except ImportError:
        raise ConfigError("export needs TensorFlow/Keras: pip install -e \".[keras]\"") from None
    return keras


def custom_layers():
    keras = _keras()
    ops = keras.ops

    @keras.saving.register_keras_serializable(package="mpi_es")
    class ObservationNormalization(keras.layers.Layer):
        """clip((o - mean) / std, -5, 5), or unclipped (the ARS filter: clip false)."""

        def __init__(self, mean, std, clip=True, **kwargs):
            super().__init__(**kwargs)
            self.mean = [float(v) for v in np.ravel(mean)]
            self.std = [float(v) for v in np.ravel(std)]
            self.clip = bool(clip)

        def call(self, x):
            mean = ops.convert_to_tensor(np.array(self.mean, np.float32))
            std = ops.convert_to_tensor(np.array(self.std, np.float32))
            x = (x - mean) / std
            return ops.clip(x, -5.0, 5.0) if self.clip else x

        def get_config(self):
            return {**super().get_config(), "mean": self.mean, "std": self.std,
                    "clip": self.clip}

    @keras.saving.register_keras_serializable(package="mpi_es")
    class DiscretizeActions(keras.layers.Layer):
        """argmax over the bins of each action dimension, mapped uniformly onto [low, high]."""

        def __init__(self, bins, low, high, **kwargs):
            super().__init__(**kwargs)
            self.bins = int(bins)
            self.low = [float(v) for v in np.ravel(low)]
            self.high = [float(v) for v in np.ravel(high)]

        def call(self, x):
            low = ops.convert_to_tensor(np.array(self.low, np.float32))
            high = ops.convert_to_tensor(np.array(self.high, np.float32))
            scores = ops.reshape(x, (-1, len(self.low), self.bins))
            index = ops.cast(ops.argmax(scores, axis=-1), "float32")
            return low + index * ((high - low) / (self.bins - 1))

        def get_config(self):
            return {**super().get_config(), "bins": self.bins, "low": self.low,
                    "high": self.high}

    return ObservationNormalization, DiscretizeActions


def load_model(path: str | Path):
    """Load an exported model (registers mpi_es's layers with Keras first)."""
    custom_layers()
    return _keras().saving.load_model(path)


def build_model(snapshot):
    """A Keras model computing snapshot.policy.act for a batch of observations."""
    keras = _keras()
    ObservationNormalization, DiscretizeActions = custom_layers()
    policy = snapshot.policy
    spec = policy.spec
    # keras's leaky_relu has the 0.2 slope of the NumPy policy
    activation = {"tanh": "tanh", "relu": "relu", "elu": "elu", "lrelu": "leaky_relu"}[spec.nonlin]
    inputs = keras.Input((spec.ob_dim,), name="observation")
    x = inputs
    if policy._ob_mean is not None:
        x = ObservationNormalization(policy._ob_mean, 1.0 / policy._ob_inv_std,
                                     clip=spec.obs_filter == "es")(x)
    layers = spec.unflatten(policy.theta)
    for k, (w, b) in enumerate(layers):
        last = k == len(layers) - 1
        dense = keras.layers.Dense(w.shape[1], activation=None if last else activation,
                                   use_bias=b is not None,
                                   name="output" if last else f"hidden_{k}")
        x = dense(x)
        dense.set_weights([w] if b is None else [w, b])
    if spec.ac_bins:
        x = DiscretizeActions(spec.ac_bins, spec.ac_low, spec.ac_high)(x)
    return keras.Model(inputs, x, name=f"mpi_es_{snapshot.cfg.env_id.replace(':', '_')}")


def export(snapshot, output: str) -> Path:
    if not output.endswith(".keras"):
        raise ConfigError(f"-o {output}: the file name must end in .keras")
    if snapshot.cfg.model.network != "mlp":
        raise ConfigError(f"export: {snapshot.cfg.env_id} was trained with model.network: "
                          f"{snapshot.cfg.model.network}, which the Keras export does not "
                          f"support yet: it exports the MLP (evaluate, --video and info take "
                          f"every network)")
    if snapshot.policy.spec.ac_choices:
        raise ConfigError(f"export: {snapshot.cfg.env_id} has discrete actions (argmax over one "
                          f"score per choice), which the Keras export does not support yet")
    model = build_model(snapshot)
    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    model.save(out)
    return out


def sample_observations(snapshot, count: int = 100, seed: int = 0) -> np.ndarray:
    """Observations spread around the snapshot's statistics (or the unit box)."""
    rng = np.random.default_rng(seed)
    spec = snapshot.policy.spec
    if snapshot.policy._ob_mean is not None:
        mean, std = snapshot.policy._ob_mean, 1.0 / snapshot.policy._ob_inv_std
        std = np.where(np.isfinite(std), std, 1.0)      # the ARS filter's constant components
    else:
        mean, std = np.zeros(spec.ob_dim), np.ones(spec.ob_dim)
    return mean + 3.0 * std * rng.standard_normal((count, spec.ob_dim))


def max_action_difference(snapshot, model, observations: np.ndarray) -> float:
    """Largest |Keras - NumPy| over a batch of observations."""
    ours = np.stack([snapshot.policy.act(o) for o in observations])
    theirs = np.asarray(model.predict_on_batch(observations.astype(np.float32)))
    return float(np.max(np.abs(ours - theirs)))
