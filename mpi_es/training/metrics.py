"""What a generation reports: its log.csv row, and the check that theta stayed finite."""
from __future__ import annotations

import numpy as np

from ..core.optimizers import ParamState
from ..core.slots import GenerationData
from ..core.state import TrainState


def non_finite(theta: np.ndarray, state: ParamState, *, generation: int) -> str | None:
    """The message for a theta (block) or optimizer state that stopped being finite, or None."""
    bad = [] if np.all(np.isfinite(theta)) else ["theta"]
    bad += [f"optimizer {k}" for k, v in state.arrays.items() if not np.all(np.isfinite(v))]
    if not bad:
        return None
    return (f"generation {generation}: {' and '.join(bad)} became non-finite "
            f"(NaN or inf); stopping. The checkpoint on disk is generation "
            f"{generation - 1}, the last good one. Lower the step size "
            f"or turn on fitness_shaping.")


def _mean(x: np.ndarray) -> float:
    return float(np.mean(x)) if x.size else float("nan")


def _std(x: np.ndarray) -> float:
    return float(np.std(x)) if x.size else float("nan")


def generation_row(data: GenerationData, state: TrainState, *, workers: int,
                   timing: dict, t_update: float, elapsed_this_gen: float, update_ratio: float,
                   theta_norm: float) -> dict:
    return {
        "Generation": state.generation,
        "GenRewMean": _mean(data.returns), "GenRewStd": _std(data.returns),
        "GenLenMean": _mean(data.lengths),
        "EvalGenRewardMean": _mean(data.eval_returns),
        "EvalGenRewardStd": _std(data.eval_returns),
        "EvalGenLengthMean": _mean(data.eval_lengths),
        "EvalGenCount": int(data.eval_returns.size),
        "EpisodesThisGen": data.episodes,
        "EpisodesSoFar": state.episodes_so_far,
        "TimestepsThisGen": data.timesteps,
        "TimestepsSoFar": state.timesteps_so_far,
        "UniqueWorkers": workers, "ObCount": int(data.ob_count),
        "TimeElapsedThisGen": round(elapsed_this_gen, 6),
        "TimeElapsed": round(state.time_elapsed, 6),
        "GenRewMax": float(np.max(data.returns)), "GenRewMin": float(np.min(data.returns)),
        "UpdateRatio": update_ratio, "ThetaNorm": theta_norm,
        "TimeRolloutMin": round(min(timing["rollout"]), 6),
        "TimeRolloutMax": round(max(timing["rollout"]), 6),
        "TimeComm": round(timing["comm"], 6), "TimeUpdate": round(t_update, 6),
    }
