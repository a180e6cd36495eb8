"""What lockstep episodes would give the Atari CNN, measured before building them.

The MLP plays `episodes_at_once` episodes in lockstep with one stacked matrix product per
layer; the CNN plays one episode at a time. This measures, for a config's game and CNN, in one
process: one env step, one forward pass, and K rounds of play (K env steps with their forward
passes) done two ways: K different networks one after another, and the K networks as one
stacked product per layer (what CNN lanes would do). It also checks that the stacked scores
are bit-identical to each network's own.

    python benchmarks/cnn_lanes.py jobs/pong.yaml --lanes 8 --rounds 200
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mpi_es import blas  # noqa: E402,F401  (pins the BLAS kernel before NumPy loads)
from mpi_es.config.loading import load  # noqa: E402
from mpi_es.policies import cnn  # noqa: E402
from mpi_es.training.setup import prepare  # noqa: E402


class StackedCnns:
    """K CNN policies' forward passes as one stacked product per layer."""

    def __init__(self, policies: list):
        self.policies = policies
        self.hidden = [(np.stack([p._hidden[k][0] for p in policies]),
                        np.stack([p._hidden[k][1] for p in policies]))
                       for k in range(len(policies[0]._hidden))]
        self.out = (np.stack([p._out[0] for p in policies]),
                    np.stack([p._out[1] for p in policies]))
        self.channels_first = not policies[0].spec.channels_last

    def scores(self, obs: np.ndarray) -> np.ndarray:
        """(K, actions) for observations (K, ...): row k is policy k's scores of obs[k]."""
        n = len(obs)
        x = cnn._blocks(obs, cnn.CONVS[0][2], channels_first=self.channels_first)
        for k, (w, b) in enumerate(self.hidden):
            if k < len(cnn.CONVS):
                # tiles (n, Hb, Wb, F) @ (n, 1, F, 4 out): a product per image row, as one
                # network's (Hb, Wb, F) @ (F, 4 out) does, so each row sums in the same order
                x = cnn._conv(x, w[:, None])
                x += b[:, None, None, :]
                np.maximum(x, 0, out=x)
                if k + 1 < len(cnn.CONVS):
                    x = cnn._blocks(x, cnn.CONVS[k + 1][2], channels_first=False)
            else:
                x = np.matmul(x.reshape(n, 1, -1), w)[:, 0]
                x += b
                np.maximum(x, 0, out=x)
        w, b = self.out
        return np.matmul(x[:, None], w)[:, 0] + b


def paired(passes: int, first, second) -> tuple[float, float, float]:
    """Best seconds of first() and of second() over `passes` interleaved passes, and the median
    of the passes' ratios first/second (a shared machine's bursts land in some passes, not
    all, and hit both ways alike when they alternate)."""
    times = []
    for _ in range(passes):
        pair = []
        for run in (first, second):
            start = time.perf_counter()
            run()
            pair.append(time.perf_counter() - start)
        times.append(pair)
    times = np.array(times)
    return times[:, 0].min(), times[:, 1].min(), float(np.median(times[:, 0] / times[:, 1]))


def play(envs: list, observations: np.ndarray, act, rounds: int) -> None:
    """`rounds` rounds of one step in every env, actions from act(observations)."""
    for _ in range(rounds):
        actions = act(observations)
        for k, env in enumerate(envs):
            ob, _, terminated, truncated, _ = env.step(int(actions[k]))
            if terminated or truncated:
                ob, _ = env.reset()
            observations[k] = ob


def measure(setup, lanes: int, rounds: int, passes: int, seed: int = 0) -> dict:
    """Per-step figures in microseconds, and whether stacking changed any score bit."""
    spec = setup.spec
    rng = np.random.default_rng(seed)
    policies = [setup.policy(spec.init_theta(rng)) for _ in range(lanes)]
    stacked = StackedCnns(policies)
    envs = setup.envs(lanes)
    observations = np.stack([env.reset(seed=seed + k)[0] for k, env in enumerate(envs)])
    play(envs, observations, lambda obs: np.zeros(lanes, int), 30)   # varied frames
    alone = np.stack([p.scores(ob) for p, ob in zip(policies, observations)])
    identical = bool(np.array_equal(stacked.scores(observations), alone))

    start = spec.action_start

    def one_after_another(obs):
        return [start + int(np.argmax(p.scores(ob))) for p, ob in zip(policies, obs)]

    def all_at_once(obs):
        return start + np.argmax(stacked.scores(obs), axis=1)

    steps = rounds * lanes
    env_alone, _, _ = paired(passes, lambda: play(envs, observations,
                                                  lambda obs: np.zeros(lanes, int), rounds),
                             lambda: None)
    forward, forward_stacked, forward_ratio = paired(
        passes, lambda: [one_after_another(observations) for _ in range(rounds)],
        lambda: [all_at_once(observations) for _ in range(rounds)])
    one, batched, play_ratio = paired(
        passes, lambda: play(envs, observations, one_after_another, rounds),
        lambda: play(envs, observations, all_at_once, rounds))
    us = 1e6 / steps
    return {"lanes": lanes, "rounds": rounds, "identical": identical,
            "env_step_us": env_alone * us, "forward_us": forward * us,
            "forward_stacked_us": forward_stacked * us, "forward_ratio": forward_ratio,
            "step_one_after_another_us": one * us, "step_stacked_us": batched * us,
            "play_ratio": play_ratio}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config")
    parser.add_argument("--lanes", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--passes", type=int, default=5)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    cfg = load(args.config, args.set)
    if cfg.model.network != "cnn":
        parser.error(f"{args.config} has model.network {cfg.model.network!r}; this measures "
                     f"the CNN")
    r = measure(prepare(cfg), args.lanes, args.rounds, args.passes)
    print(f"{cfg.env_id}, CNN, {r['lanes']} lanes, {r['rounds']} rounds, microseconds per "
          f"env step (best of {args.passes} interleaved passes):")
    print(f"  env step alone                          {r['env_step_us']:8.1f}")
    print(f"  forward pass, one network at a time     {r['forward_us']:8.1f}")
    print(f"  forward pass, {r['lanes']} networks stacked        {r['forward_stacked_us']:8.1f}"
          f"   ({r['forward_ratio']:.2f}x, median of paired passes)")
    print(f"  play, one network at a time             {r['step_one_after_another_us']:8.1f}")
    print(f"  play, {r['lanes']} networks stacked                {r['step_stacked_us']:8.1f}"
          f"   ({r['play_ratio']:.2f}x, median of paired passes)")
    print(f"  stacked scores bit-identical to each network's own: "
          f"{'yes' if r['identical'] else 'NO'}")


if __name__ == "__main__":
    main()
