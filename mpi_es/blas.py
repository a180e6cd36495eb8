"""How NumPy's BLAS runs in every rank: set before NumPy is first imported.

- One thread: one rank per core, and threaded sums would add in an order that varies per run.
- One kernel: OpenBLAS picks its matrix kernels by CPU at load time (Haswell, SkylakeX, Zen,
  ...), and they round differently, so the same policy gave other actions on an AMD EPYC than
  on an Intel Xeon (different bits, measured here). Where the CPU can run it, every rank uses
  OpenBLAS's Haswell kernels (AVX2 + FMA, on x86-64 CPUs since 2013), so results do not depend
  on the node type. A user's own OPENBLAS_CORETYPE wins.
"""
from __future__ import annotations

import os
import platform

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
PORTABLE_X86_KERNEL = "Haswell"


def cpu_flags(cpuinfo: str = "/proc/cpuinfo") -> set[str]:
    try:
        with open(cpuinfo) as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def portable_kernel(machine: str, flags: set[str]) -> str | None:
    """The OpenBLAS kernel every node of this kind can run alike, or None to leave the choice."""
    if machine in ("x86_64", "AMD64") and {"avx2", "fma"} <= flags:
        return PORTABLE_X86_KERNEL
    return None


def pin_blas(environ=os.environ) -> None:
    for variable in THREAD_VARIABLES:
        environ.setdefault(variable, "1")
    kernel = portable_kernel(platform.machine(), cpu_flags())
    if kernel is not None:
        environ.setdefault("OPENBLAS_CORETYPE", kernel)


_CORENAME_SYMBOLS = ("scipy_openblas_get_corename64_", "scipy_openblas_get_corename",
                     "openblas_get_corename64_", "openblas_get_corename")


def blas_kernel() -> str:
    """The OpenBLAS kernel NumPy runs on (e.g. 'Haswell'), or 'unknown' (another BLAS)."""
    import ctypes

    import numpy  # noqa: F401  (loads NumPy's BLAS)
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split(None, 5)[5].strip() for line in maps
                     if "openblas" in line.lower() and line.rstrip().endswith(".so")}
    except (OSError, IndexError):
        paths = set()
    for path in sorted(paths):
        try:
            library = ctypes.CDLL(path)
        except OSError:
            continue
        for symbol in _CORENAME_SYMBOLS:
            getter = getattr(library, symbol, None)
            if getter is not None:
                getter.restype = ctypes.c_char_p
                return getter().decode().strip() or "unknown"
    return "unknown"
