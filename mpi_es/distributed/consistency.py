"""Start-up checks that every rank runs the same thing, and that the noise table fits."""
from __future__ import annotations

import zlib

import numpy as np


def noise_checksum(table: np.ndarray) -> str:
    """A cheap fingerprint of the table: size plus a CRC of about a million spread entries."""
    stride = max(1, table.size // (1 << 20))
    return f"{table.size}:{zlib.crc32(np.ascontiguousarray(table[::stride]).tobytes()):08x}"


def _flat(tree: dict, prefix: str = "") -> dict[str, str]:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = repr(value)
    return out


def fingerprint(config: dict, table: np.ndarray, versions: dict[str, str]) -> dict[str, str]:
    """What every rank must agree on: each resolved config key (named, so a mismatch says which
    key differs), the noise table's checksum and the library versions."""
    return {**{f"config {k}": v for k, v in _flat(config).items()},
            "noise table checksum": noise_checksum(table),
            **{k.removesuffix("_version"): v for k, v in versions.items()}}


def _ranks(ranks: list[int]) -> str:
    return ("rank " if len(ranks) == 1 else "ranks ") + ",".join(map(str, ranks))


def mismatches(per_rank: list[dict[str, str]]) -> list[str]:
    """One line per key on which the ranks disagree, naming which ranks hold which value."""
    lines = []
    for key in per_rank[0]:
        groups: dict[str, list[int]] = {}
        for rank, values in enumerate(per_rank):
            groups.setdefault(values.get(key, "<missing>"), []).append(rank)
        if len(groups) > 1:
            lines.append(f"{key}: " + "; ".join(f"{_ranks(r)} {v}" for v, r in groups.items()))
    return lines
