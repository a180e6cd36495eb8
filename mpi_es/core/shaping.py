"""Fitness shaping: returns turned into the weights of the gradient estimate (pure functions)."""
from __future__ import annotations

import numpy as np


def ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 0..n-1 of a flat array; equal values share the average of their ranks, so a tie
    carries no signal (a mirrored pair whose two episodes return the same weighs exactly 0)."""
    x = np.asarray(x).ravel()
    order = np.argsort(x, kind="stable")
    ordered = x[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    ends = np.r_[starts[1:], x.size]
    out = np.empty(x.size, dtype=np.float64)
    out[order] = np.repeat((starts + ends - 1) / 2.0, ends - starts)
    return out


def centered_ranks(x: np.ndarray) -> np.ndarray:
    """Ranks over all entries scaled to [-0.5, 0.5]: rank / (n - 1) - 0.5, same shape as x."""
    x = np.asarray(x)
    if x.size < 2:
        return np.zeros(x.shape, dtype=np.float32)
    r = ranks(x).reshape(x.shape)
    return (r / (x.size - 1) - 0.5).astype(np.float32)


def shape_returns(returns: np.ndarray, signreturns: np.ndarray, *, fitness_shaping: bool,
                  mode: str) -> np.ndarray:
    """Processed returns, shape (slots, episodes_per_slot)."""
    if not fitness_shaping:
        return np.asarray(returns, dtype=np.float32)
    if mode == "centered_rank":
        return centered_ranks(returns)
    if mode == "sign":
        return np.asarray(signreturns, dtype=np.float32)
    if mode == "centered_sign_rank":
        return centered_ranks(signreturns)
    raise ValueError(f"unknown return_proc_mode {mode!r}")
