"""Memory: what a node can hold (checked before any allocation), and this process's figures
from /proc/self/smaps (Linux)."""
from __future__ import annotations

import os
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


def _meminfo_available() -> int | None:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


# What one rank holds per parameter, in bytes: theta, the two perturbed copies of a mirrored
# slot and the scaled noise, the policy's float32 weights, the block's gradient and optimizer
# state, and on rank 0 the whole optimizer state and the old theta for the log.
BYTES_PER_PARAMETER_PER_RANK = 40


OPEN_MPI_WINDOW_DIRECTORY = "OMPI_MCA_osc_sm_backing_directory"


def shared_window_directory(environ=os.environ) -> tuple[str, str]:
    """Where this MPI backs the node's shared windows (the noise table), and how to move it.

    All three keep them as files in /dev/shm (seen in the ranks' /proc/PID/maps: MPICH
    `mpich_shm_*`, Open MPI 5 `osc_sm.*`, Intel MPI `Intel_MPI_*`); Open MPI alone can be told
    another directory.
    """
    if "OMPI_COMM_WORLD_SIZE" in environ or OPEN_MPI_WINDOW_DIRECTORY in environ:
        directory = environ.get(OPEN_MPI_WINDOW_DIRECTORY, "/dev/shm")
        return directory, (f"or set {OPEN_MPI_WINDOW_DIRECTORY} to a node-local directory "
                           f"with room (Open MPI puts shared windows there)")
    return "/dev/shm", "or enlarge /dev/shm (MPI puts shared windows there)"


def memory_problem(table_bytes: int, num_params: int = 0, ranks_on_node: int = 1,
                   shm_dir: str | None = None, episodes_at_once: int = 1) -> str | None:
    """Why a node cannot hold the noise table and its ranks' parameter vectors, or None. Runs
    before any allocation. Each episode a rank plays at once holds its float32 parameters."""
    gib = 2**30
    fix = ("reduce noise_table.size (each perturbation only needs as many entries as the policy "
           "has parameters; 20-50 million is plenty for most policies)")
    per_rank = (BYTES_PER_PARAMETER_PER_RANK + 4 * episodes_at_once) * num_params
    available = _meminfo_available()
    if available is not None and table_bytes + ranks_on_node * per_rank > 0.9 * available:
        if ranks_on_node * per_rank > table_bytes:
            return (f"'model': {num_params} parameters need about {per_rank / gib:.2f} GiB per "
                    f"rank ({ranks_on_node} rank{'s' if ranks_on_node != 1 else ''} on this "
                    f"node: {ranks_on_node * per_rank / gib:.2f} GiB, with the "
                    f"{table_bytes / gib:.2f} GiB noise table) but only "
                    f"{available / gib:.2f} GiB of memory is available on this node; use a "
                    f"smaller network, fewer ranks per node or a smaller episodes_at_once "
                    f"({episodes_at_once})")
        return (f"'noise_table.size': the table needs {table_bytes / gib:.2f} GiB per node (and "
                f"the ranks' parameters {ranks_on_node * per_rank / gib:.2f} GiB) but only "
                f"{available / gib:.2f} GiB of memory is available on this node; {fix}")
    shm_dir, move = (shm_dir, f"or enlarge {shm_dir}") if shm_dir else shared_window_directory()
    if os.path.isdir(shm_dir):
        st = os.statvfs(shm_dir)
        free = st.f_bavail * st.f_frsize
        if table_bytes > free:
            return (f"'noise_table.size': the table needs {table_bytes / gib:.2f} GiB of shared "
                    f"memory but {shm_dir} has {free / gib:.2f} GiB free; {fix}, {move}")
    return None
