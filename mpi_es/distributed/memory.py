"""Memory figures for this process from /proc/self/smaps (Linux)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Mapping:
    start: int
    end: int
    perms: str
    path: str
    rss_bytes: int
    pss_bytes: int

    @property
    def shared(self) -> bool:
        return self.perms.endswith("s")


def mapping_of(array: np.ndarray) -> Mapping | None:
    """The memory mapping that holds the first byte of `array`, with its Rss and Pss."""
    address = array.__array_interface__["data"][0]
    found, sizes = None, {}
    with open("/proc/self/smaps") as fh:
        for line in fh:
            head = line.split()
            if "-" in head[0] and len(head) >= 5 and not head[0].endswith(":"):
                if found is not None:
                    break
                lo, hi = (int(x, 16) for x in head[0].split("-"))
                if lo <= address < hi:
                    found = (lo, hi, head[1], head[5] if len(head) > 5 else "")
            elif found is not None and head[0] in ("Rss:", "Pss:"):
                sizes[head[0]] = int(head[1]) * 1024
    if found is None:
        return None
    return Mapping(*found, rss_bytes=sizes.get("Rss:", 0), pss_bytes=sizes.get("Pss:", 0))
