"""`python -m mpi_es bench CONFIG`: where the time goes, measured in one run under mpiexec."""
from __future__ import annotations

import dataclasses
import json
import time

import numpy as np

from ..config import Config
from ..core.state import TrainState
from ..errors import ConfigError
from ..rundir import checkpoint
from ..core import noise, slots
from ..distributed.memory import mapping_of
from ..blas import blas_kernel
from ..distributed.world import World, mpi_library
from ..rundir.outputs import Outputs
from ..training.loop import Trainer
from ..training.rollout import play_in_lockstep, slot_jobs
from ..training.setup import Setup, algorithm_of, build_noise_table, initial_state
from . import scaling
from .scaling import SCALE_EPISODES, SCALE_PARAMS

REPLAY_REPEATS = 7
RAW_SECONDS = 2.0   # measured twice: before and after the ES generations
FORWARD_CALLS = 3000
SCALE_RANKS = (1, 64, 1440)          # update per rank for the synthetic population
PREDICT_RANKS = (64, 256, 1440)      # predicted efficiency of this job's generation


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


def policy_forward_us(policy, obs: np.ndarray, calls: int = FORWARD_CALLS) -> float:
    start = time.perf_counter()
    for i in range(calls):
        policy.act(obs[i % len(obs)])
    return (time.perf_counter() - start) / calls * 1e6


def keras_forward_us(spec, theta: np.ndarray, obs: np.ndarray,
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


def replay_comparison(cfg: Config, setup: Setup, table: noise.NoiseTable, theta: np.ndarray,
                      obstat, *, rank: int) -> dict:
    """ES against a replay on identical trajectories: perturbed episodes are played the way
    training plays them (episodes_at_once in lockstep), then their exact action sequences
    replayed in one environment without the policy. Returns ES and replay steps/s, and the ES
    step split into env step, policy forward pass (batched as in training) and the rest."""
    spec = setup.spec
    algorithm = algorithm_of(cfg)
    lanes = setup.policies.lanes(cfg.episodes_at_once, theta, obstat)
    envs = setup.envs(lanes.count)
    jobs = []
    for k in range(max(3, 2 * lanes.count)):
        slot = slots.make_slot(rank * 1000 + k, seed=cfg.seed, generation=0,
                               train_slots=10**9, episodes_per_slot=1,
                               noise_size=table.size, num_params=spec.num_params,
                               obstat_prob=0.0, action_noise=cfg.model.ac_noise_std > 0)
        job = next(slot_jobs(slot, algorithm.perturb(
            theta, table.get(slot.noise_index, spec.num_params), 1),
            cfg.training_reward.transform()))
        jobs.append(job)
    # Interleaved and repeated: on a shared machine a burst of someone else's work lands in
    # some of the passes, not in all. The ratio is the median of the paired passes' ratios.
    es_times, raw_times = [], []
    for repeat in range(REPLAY_REPEATS):
        steps = []
        for job in jobs:
            job.actions = [] if repeat == 0 else None
            if job.action_noise is not None:
                job.action_noise = np.random.Generator(np.random.PCG64(job.tag[0].action_noise[0]))
        start = time.perf_counter()
        play_in_lockstep(jobs, envs, lanes, limit=setup.limit,
                         ac_noise_std=cfg.model.ac_noise_std,
                         done=lambda job, episode, seconds: steps.append(episode.length))
        es_times.append(time.perf_counter() - start)
        if repeat == 0:
            recorded = [(job.reset_seed, job.actions) for job in jobs]
        start = time.perf_counter()
        for reset_seed, actions in recorded:
            setup.env.reset(seed=reset_seed)
            for action in actions:
                setup.env.step(action)
        raw_times.append(time.perf_counter() - start)
    es_time, raw_time = min(es_times), min(raw_times)
    ratio = float(np.median(np.array(raw_times) / np.array(es_times)))
    total = sum(steps)
    forward = batched_forward_us(lanes, envs[0], seed=rank)
    es_step, env_step = es_time / total * 1e6, raw_time / total * 1e6
    return {"es_steps_per_s": total / es_time, "raw_steps_per_s": total / raw_time,
            "ratio": ratio, "episodes_at_once": lanes.count,
            "step_us": {"total": es_step, "env": env_step, "forward": forward,
                        "rest": es_step - env_step - forward}}


def batched_forward_us(lanes, env, seed: int, rounds: int = 300) -> float:
    """The policy's forward pass per episode step, as training batches it (all places full)."""
    ob, _ = env.reset(seed=seed)
    batch = np.repeat(np.asarray(ob, np.float64)[None], lanes.count, axis=0)
    lanes.act(batch)
    start = time.perf_counter()
    for _ in range(rounds):
        lanes.act(batch)
    return (time.perf_counter() - start) / rounds / lanes.count * 1e6


def communication_model(world: World, nbytes: int, repeats: int = 20) -> tuple[float, float]:
    """(latency s, bytes/s) of this world's allgather, from a tiny and an nbytes-sized one."""
    tiny = np.zeros((1, 1))
    big = np.zeros((max(1, nbytes // 8 // max(world.size, 1)), 1))

    def timed(rows):
        world.barrier()
        start = time.perf_counter()
        for _ in range(repeats):
            world.allgather_rows(rows)
        return world.max(time.perf_counter() - start) / repeats
    latency, bulk = timed(tiny), timed(big)
    total = big.nbytes * world.size
    rate = total / max(bulk - latency, 1e-9) if world.size > 1 else float("inf")
    return latency, rate


def claim_seconds(world: World, claims: int = 200) -> float:
    """Mean time of one slot claim while every rank claims at once."""
    counter = world.slot_counter()
    world.barrier()
    start = time.perf_counter()
    for _ in range(claims):
        counter.claim()
    return world.max((time.perf_counter() - start) / claims)


def claim_seconds_while_root_is_busy(world: World, busy_s: float = 1.0, claims: int = 50,
                                     poke=None) -> dict | None:
    """Slot claims by the other ranks while rank 0 plays episodes: {'mean', 'max'} seconds per
    claim. Rank 0 computes in rounds of ~50 us (an env step and a forward pass) and calls
    `poke` between them, as the trainer does (World.progress_poke); with poke=None it never
    enters MPI. Where the MPI needs rank 0's own progress to serve a fetch-and-add (across
    nodes, without hardware atomics), 'max' is then about busy_s. None on one rank."""
    if world.size == 1:
        return None
    counter = world.slot_counter()
    world.barrier()
    times = []
    if world.is_root:
        end = time.perf_counter() + busy_s
        while (now := time.perf_counter()) < end:
            while time.perf_counter() < now + 50e-6:
                pass
            if poke is not None:
                poke()
    else:
        for _ in range(claims):
            start = time.perf_counter()
            counter.claim()
            times.append(time.perf_counter() - start)
    world.barrier()
    means = world.allgather(float(np.mean(times)) if times else None)
    maxes = world.allgather(float(np.max(times)) if times else None)
    return {"mean": float(np.mean([m for m in means if m is not None])),
            "max": max(m for m in maxes if m is not None), "busy_s": busy_s}


def scaling_figures(cfg: Config, setup: Setup, table: noise.NoiseTable, slot_seconds: list,
                    claim_s: float, latency_s: float, bytes_per_s: float,
                    launch: int = 1) -> dict:
    """Update per rank at 1/64/1440 ranks (synthetic 10,000 x 100,000) and this job's predicted
    generation time and efficiency at 64/256/1440 ranks."""
    by_ranks = {str(r): scaling.update_seconds_per_rank(r) for r in SCALE_RANKS}
    params, slots_per_gen = setup.spec.num_params, cfg.train_slots
    predictions = {}
    for ranks in (launch, *PREDICT_RANKS):
        update_s = scaling.update_seconds_per_rank(
            ranks, episodes=cfg.population_size, params=params, table=table.noise)
        comm_s = scaling.allgather_seconds(
            ranks, scaling.generation_bytes(slots_per_gen, cfg.episodes_per_slot, params),
            latency_s=latency_s, bytes_per_s=bytes_per_s)
        predictions[str(ranks)] = scaling.predict_generation(
            np.asarray(slot_seconds), slots=slots_per_gen, ranks=ranks, claim_s=claim_s,
            update_s=update_s, comm_s=comm_s)
    return {"update_s_per_rank_by_ranks": by_ranks, "update_s_at_scale": by_ranks["1"],
            "predicted_efficiency_by_ranks": {str(n): predictions[str(n)].efficiency
                                              for n in PREDICT_RANKS},
            "predicted_generation_s_by_ranks": {str(n): predictions[str(n)].seconds
                                                for n in PREDICT_RANKS},
            # the model's generation for this very launch, against gen_time_s measured
            "predicted_generation_s_at_launch": predictions[str(launch)].seconds,
            "claim_s": claim_s, "allgather_latency_s": latency_s,
            "allgather_bytes_per_s": bytes_per_s if np.isfinite(bytes_per_s) else None,
            "slot_seconds_mean": float(np.mean(slot_seconds)),
            "slot_seconds_cv": float(np.std(slot_seconds) / np.mean(slot_seconds)),
            "slot_seconds": [round(float(t), 6) for t in slot_seconds]}


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
        "episode_length_mean": float(np.mean([r["GenLenMean"] for r in rows])),
    }


def start_state(cfg: Config, setup: Setup, path: str | None) -> TrainState:
    """The state the bench's generations start from: the config's initial one, or the policy
    (theta and observation statistics) of a checkpoint, to time the episodes a trained policy
    plays. ConfigError when its policy is not this config's."""
    state = initial_state(cfg, setup.spec)
    if path is None:
        return state
    loaded = checkpoint.load(path).state
    if loaded.theta.size != setup.spec.num_params:
        raise ConfigError(f"--checkpoint {path}: /theta has {loaded.theta.size} parameters, "
                          f"this config's policy has {setup.spec.num_params}")
    return dataclasses.replace(state, theta=loaded.theta, obstat=loaded.obstat)


def run(cfg: Config, world: World, setup: Setup, *, generations: int,
        keras: bool = True, state: TrainState | None = None) -> dict | None:
    """Every rank takes part; rank 0 returns the figures, the others None. `state`: where the
    generations start (default the config's initial state)."""
    world.barrier()
    start = time.perf_counter()
    table = build_noise_table(world, cfg)
    build_s = world.max(time.perf_counter() - start)
    table.noise.sum()   # every rank maps every page, as training eventually does
    world.barrier()
    mapping = mapping_of(table.noise)
    node_pss = world.node_sum(mapping.pss_bytes if mapping else 0)

    raw_before, obs = raw_env_steps_per_s(setup.env, RAW_SECONDS, seed=world.rank)

    state = state or initial_state(cfg, setup.spec)
    policy = setup.policy(state.theta, state.obstat)
    forward = policy_forward_us(policy, obs)

    trainer = Trainer(cfg, world, setup, table, state, Outputs(cfg, active=False))
    rows, slot_seconds = [], []
    for _ in range(generations):
        report = trainer.generation()
        slot_seconds += [t for part in world.gather(report.slot_seconds) or [] for t in part]
        if world.is_root:
            row = dict(report.row)
            row["_rollout_mean"] = float(np.mean(report.rollout_seconds))
            rows.append(row)
    # Raw speed before and after the generations, averaged: a short burst alone reads high on a
    # machine whose clock drifts over the minutes the generations take.
    raw_after, _ = raw_env_steps_per_s(setup.env, RAW_SECONDS, seed=world.rank + world.size)
    raw_per_rank = world.sum((raw_before + raw_after) / 2) / world.size
    replay = replay_comparison(cfg, setup, table, trainer.state.theta, trainer.state.obstat,
                               rank=world.rank)
    es_replay = world.sum(replay["es_steps_per_s"]) / world.size
    raw_replay = world.sum(replay["raw_steps_per_s"]) / world.size
    step_us = {part: world.sum(us) / world.size for part, us in replay["step_us"].items()}
    ratio = world.sum(replay["ratio"]) / world.size
    claim_s = claim_seconds(world)
    claim_busy = claim_seconds_while_root_is_busy(world, poke=world.progress_poke())
    claim_busy_unserved = claim_seconds_while_root_is_busy(world)
    latency_s, bytes_per_s = communication_model(world, 12 * setup.spec.num_params)
    if not world.is_root:
        return None
    result = {
        "env_id": cfg.env_id, "ranks": world.size, "num_params": setup.spec.num_params,
        "mpi_library": mpi_library(), "blas_kernel": blas_kernel(),
        "population_size": cfg.population_size, "generations": generations,
        "raw_env_steps_per_s": raw_per_rank,
        "raw_replay_env_steps_per_s": raw_replay, "es_replay_env_steps_per_s": es_replay,
        "es_vs_replay": ratio, "episodes_at_once": replay["episodes_at_once"],
        "step_us": step_us,
        **generation_fractions(rows, world.size),
        "policy_forward_us": forward,
        "keras_forward_us": (keras_forward_us(setup.spec, state.theta, obs)
                             if keras and cfg.model.network == "mlp" else None),
        "noise_build_s": build_s, "noise_table_bytes": table.size * 4,
        "noise_node_pss_bytes": int(node_pss),
        "claim_while_root_busy_s": claim_busy,
        "claim_while_root_busy_without_progress_s": claim_busy_unserved,
        **scaling_figures(cfg, setup, table, slot_seconds, claim_s, latency_s, bytes_per_s,
                          launch=world.size),
    }
    result["overhead"] = 1.0 - result["es_env_steps_per_s"] / raw_per_rank
    result["overhead_vs_replay"] = 1.0 - es_replay / raw_replay
    return result


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
        f"  policy forward, one observation (NumPy)     {r['policy_forward_us']:12.1f} us",
        "  policy forward (Keras predict_on_batch)     "
        + (f"{keras:12.1f} us   ({ratio(keras, r['policy_forward_us'])} slower)" if keras
           else "         n/a   (TensorFlow not installed, or not an MLP)"),
        f"  noise table: {r['noise_table_bytes'] / 2**20:.0f} MiB built in "
        f"{r['noise_build_s']:.2f} s; node PSS {r['noise_node_pss_bytes'] / 2**20:.0f} MiB "
        f"({r['noise_node_pss_bytes'] / r['noise_table_bytes']:.2f}x the table)",
        f"  generation {r['gen_time_s']:.2f} s: rollout {r['rollout_frac']:.1%}, "
        f"idle {r['idle_frac']:.1%}, update {r['update_frac']:.1%}, comm {r['comm_frac']:.1%}",
        f"  ES vs replay of the same actions per rank   {r['es_replay_env_steps_per_s']:12.0f}"
        f" / {r['raw_replay_env_steps_per_s']:.0f}   (paired ratio {r['es_vs_replay']:.2f}, "
        f"{r['episodes_at_once']} episode{'s' if r['episodes_at_once'] > 1 else ''} at once)",
        f"  per ES step: {r['step_us']['total']:.1f} us = env step {r['step_us']['env']:.1f} + "
        f"policy forward {r['step_us']['forward']:.1f} + rest of the loop "
        f"{r['step_us']['rest']:.1f} us",
        f"  update per rank for {SCALE_EPISODES} episodes x {SCALE_PARAMS} params: "
        + ", ".join(f"{s:.4f} s at {n} rank{'s' if n != '1' else ''}"
                    for n, s in r["update_s_per_rank_by_ranks"].items()),
        f"  slot claim {r['claim_s'] * 1e6:.1f} us"
        + (f" ({r['claim_while_root_busy_s']['mean'] * 1e6:.1f} us mean, "
           f"{r['claim_while_root_busy_s']['max'] * 1e6:.1f} us at most while rank 0 plays for "
           f"{r['claim_while_root_busy_s']['busy_s']:.0f} s; without its progress calls "
           f"{r['claim_while_root_busy_without_progress_s']['max'] * 1e6:.1f} us at most)"
           if r.get("claim_while_root_busy_s") else "")
        + "; allgather latency "
        f"{r['allgather_latency_s'] * 1e6:.1f} us; slot time mean "
        f"{r['slot_seconds_mean']:.3f} s (cv {r['slot_seconds_cv']:.2f})",
        "  predicted generation: "
        + ", ".join(f"{r['predicted_generation_s_by_ranks'][n]:.2f} s ({e:.1%} efficiency) at "
                    f"{n} ranks" for n, e in r["predicted_efficiency_by_ranks"].items()),
        f"  model check: this launch's generation predicted "
        f"{r['predicted_generation_s_at_launch']:.2f} s, measured {r['gen_time_s']:.2f} s",
        f"  MPI: {r['mpi_library']}; BLAS kernel: {r['blas_kernel']}",
    ]
    return "\n".join(lines)


def report(result: dict, json_path: str | None) -> None:
    print(format_table(result))
    if json_path:
        with open(json_path, "w") as fh:
            json.dump(result, fh, indent=2)
        print(f"wrote {json_path}")
