"""`python -m mpi_es bench CONFIG`: where the time goes, measured in one run under mpiexec."""
from __future__ import annotations

import json
import time

import numpy as np

from . import es, noise
from .config import Config
from .memory import mapping_of
from .parallel import World
from .policy import Policy, PolicySpec
from .train import Outputs, Setup, Trainer, build_noise_table, initial_state

RAW_SECONDS = 2.0   # measured twice: before and after the ES generations
FORWARD_CALLS = 3000
SCALE_EPISODES, SCALE_PARAMS = 10_000, 100_000


def raw_env_steps_per_s(env, seconds: float, seed: int) -> tuple[float, np.ndarray]:
    """Env steps per second with a zero-cost policy (a constant action); also some observations."""
    action = np.zeros(env.action_space.shape, env.action_space.dtype)
    ob, _ = env.reset(seed=seed)
    obs, steps = [ob], 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(100):
            ob, _, terminated, truncated, _ = env.step(action)
            steps += 1
            if terminated or truncated:
                ob, _ = env.reset()
        obs.append(ob)
    return steps / (time.perf_counter() - start), np.array(obs)


def policy_forward_us(policy: Policy, obs: np.ndarray, calls: int = FORWARD_CALLS) -> float:
    start = time.perf_counter()
    for i in range(calls):
        policy.act(obs[i % len(obs)])
    return (time.perf_counter() - start) / calls * 1e6


def keras_forward_us(spec: PolicySpec, theta: np.ndarray, obs: np.ndarray,
                     calls: int = 300) -> float | None:
    """The same network through Keras predict_on_batch (the notebook's way); None without TF."""
    try:
        import tensorflow as tf
    except ImportError:
        return None
    activation = {"tanh": "tanh", "relu": "relu", "elu": "elu",
                  "lrelu": tf.nn.leaky_relu}[spec.nonlin]
    inputs = tf.keras.Input((spec.ob_dim,))
    x = inputs
    for width in spec.hidden_dims:
        x = tf.keras.layers.Dense(width, activation=activation)(x)
    model = tf.keras.Model(inputs, tf.keras.layers.Dense(spec.layer_shapes[-1][1])(x))
    model.set_weights([a for layer in spec.unflatten(theta) for a in layer])
    batch = obs[:1].astype(np.float32)
    model.predict_on_batch(batch)
    start = time.perf_counter()
    for i in range(calls):
        model.predict_on_batch(obs[i % len(obs)][None].astype(np.float32))
    return (time.perf_counter() - start) / calls * 1e6


def update_seconds_at_scale(episodes: int = SCALE_EPISODES, params: int = SCALE_PARAMS,
                            table_size: int = 20_000_000) -> float:
    """Rank 0's update (shaping, gradient over the noise table, Adam) for a synthetic population."""
    rng = np.random.default_rng(0)
    table = noise.build_serial(table_size, 0)
    pairs = episodes // 2
    returns = rng.normal(size=(pairs, 2))
    indices = rng.integers(0, table_size - params + 1, size=pairs)
    theta = np.zeros(params, np.float32)
    optimizer = es.Adam(stepsize=0.01, dim=params)
    start = time.perf_counter()
    shaped = es.shape_returns(returns, returns, fitness_shaping=True, mode="centered_rank")
    g = es.es_gradient(shaped, indices, lambda i: table[i:i + params], params)
    es.update_theta(theta, g, optimizer=optimizer, learning_rate=0.0, noise_stdev=0.02,
                    l2coeff=0.005, weight_decay=True)
    return time.perf_counter() - start


def generation_fractions(rows: list[dict], ranks: int) -> dict:
    """Split generation time into rollout, idle (waiting for the slowest rank), update and comm."""
    gen = np.array([r["TimeElapsedThisGen"] for r in rows])
    mean_rollout = np.array([r["_rollout_mean"] for r in rows])
    max_rollout = np.array([r["TimeRolloutMax"] for r in rows])
    update = np.array([r["TimeUpdate"] for r in rows])
    steps = np.array([r["TimestepsThisGen"] for r in rows])
    total = gen.sum()
    rollout_frac = float(mean_rollout.sum() / total)
    idle_frac = float((max_rollout - mean_rollout).sum() / total)
    update_frac = float(update.sum() / total)
    return {
        "gen_time_s": float(gen.mean()),
        "es_env_steps_per_s": float(steps.sum() / total / ranks),
        "rollout_frac": rollout_frac, "idle_frac": idle_frac, "update_frac": update_frac,
        "comm_frac": max(0.0, 1.0 - rollout_frac - idle_frac - update_frac),
    }


def run(cfg: Config, world: World, setup: Setup, *, generations: int,
        keras: bool = True) -> dict | None:
    """Every rank takes part; rank 0 returns the figures, the others None."""
    world.barrier()
    start = time.perf_counter()
    table = build_noise_table(world, cfg)
    build_s = world.comm.allreduce(time.perf_counter() - start, op=_max())
    table.noise.sum()   # every rank maps every page, as training eventually does
    world.barrier()
    mapping = mapping_of(table.noise)
    node_pss = world.node.allreduce(mapping.pss_bytes if mapping else 0)

    raw_before, obs = raw_env_steps_per_s(setup.env, RAW_SECONDS, seed=world.rank)

    state = initial_state(cfg, setup.spec)
    policy = Policy(setup.spec, state.theta, state.obstat.mean, state.obstat.std)
    forward = policy_forward_us(policy, obs)

    trainer = Trainer(cfg, world, setup, table, state, Outputs(cfg, active=False))
    rows = []
    for _ in range(generations):
        trainer.state.generation = world.bcast(trainer.state.generation)
        trainer.generation()
        if world.is_root:
            row = dict(trainer.last_row)
            row["_rollout_mean"] = float(np.mean(trainer.last_rollout_times))
            rows.append(row)
    # Raw speed before and after the generations, averaged: a short burst alone reads high on a
    # machine whose clock drifts over the minutes the generations take.
    raw_after, _ = raw_env_steps_per_s(setup.env, RAW_SECONDS, seed=world.rank + world.size)
    raw_per_rank = world.comm.allreduce((raw_before + raw_after) / 2) / world.size
    if not world.is_root:
        return None
    result = {
        "env_id": cfg.env_id, "ranks": world.size, "num_params": setup.spec.num_params,
        "population_size": cfg.population_size, "generations": generations,
        "raw_env_steps_per_s": raw_per_rank,
        **generation_fractions(rows, world.size),
        "policy_forward_us": forward,
        "keras_forward_us": keras_forward_us(setup.spec, state.theta, obs) if keras else None,
        "noise_build_s": build_s, "noise_table_bytes": table.size * 4,
        "noise_node_pss_bytes": int(node_pss),
        "update_s_at_scale": update_seconds_at_scale(),
    }
    result["overhead"] = 1.0 - result["es_env_steps_per_s"] / raw_per_rank
    return result


def _max():
    from mpi4py import MPI
    return MPI.MAX


def format_table(r: dict) -> str:
    def ratio(a, b):
        return f"{a / b:.1f}x" if a and b else "n/a"
    keras = r["keras_forward_us"]
    lines = [
        f"mpi_es bench: {r['env_id']}, {r['ranks']} ranks, {r['num_params']} parameters, "
        f"population {r['population_size']}, {r['generations']} generations",
        f"  raw env steps/s per rank (zero-cost policy) {r['raw_env_steps_per_s']:12.0f}",
        f"  ES env steps/s per rank                     {r['es_env_steps_per_s']:12.0f}"
        f"   (overhead {r['overhead']:.1%})",
        f"  policy forward (NumPy)                      {r['policy_forward_us']:12.1f} us",
        "  policy forward (Keras predict_on_batch)     "
        + (f"{keras:12.1f} us   ({ratio(keras, r['policy_forward_us'])} slower)" if keras
           else "         n/a   (TensorFlow not installed)"),
        f"  noise table: {r['noise_table_bytes'] / 2**20:.0f} MiB built in "
        f"{r['noise_build_s']:.2f} s; node PSS {r['noise_node_pss_bytes'] / 2**20:.0f} MiB "
        f"({r['noise_node_pss_bytes'] / r['noise_table_bytes']:.2f}x the table)",
        f"  generation {r['gen_time_s']:.2f} s: rollout {r['rollout_frac']:.1%}, "
        f"idle {r['idle_frac']:.1%}, update {r['update_frac']:.1%}, comm {r['comm_frac']:.1%}",
        f"  update for {SCALE_EPISODES} episodes x {SCALE_PARAMS} params   "
        f"{r['update_s_at_scale']:12.3f} s",
    ]
    return "\n".join(lines)


def report(result: dict, json_path: str | None) -> None:
    print(format_table(result))
    if json_path:
        with open(json_path, "w") as fh:
            json.dump(result, fh, indent=2)
        print(f"wrote {json_path}")

