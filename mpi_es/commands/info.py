"""`python -m mpi_es info FILE.h5`: what a checkpoint or snapshot holds."""
from __future__ import annotations

import unicodedata

from ..rundir import checkpoint


def printable(text: object) -> str:
    """Text from a file, safe to print: control and format characters (escape sequences,
    carriage returns, line separators) are shown escaped instead of acting on the terminal."""
    return "".join(ch if ch == " " or not unicodedata.category(ch).startswith(("C", "Z"))
                   or ch == "\t" else ch.encode("unicode_escape").decode("ascii")
                   for ch in str(text))


def describe(path: str, allow_import: list[str] = ()) -> str:
    loaded = checkpoint.load(path, allow_import)
    attrs, state = loaded.attrs, loaded.state
    lines = [
        f"file:              {printable(path)}",
        f"env_id:            {printable(attrs['env_id'])}",
        f"generation:        {state.generation}",
        f"timesteps_so_far:  {state.timesteps_so_far}",
        f"episodes_so_far:   {state.episodes_so_far}",
        f"time_elapsed:      {state.time_elapsed:.1f} s",
        f"parameters:        {state.theta.size}",
        f"optimizer:         {state.param_state.kind}",
        f"obstat count:      {state.obstat.count:g}",
        f"format_version:    {attrs['format_version']}",
    ]
    for key in ("mpi_es_version", "numpy_version", "gymnasium_version", "mujoco_version",
                "mpi_version", "blas_kernel"):
        lines.append(f"{key + ':':<19}{printable(attrs.get(key, 'unknown'))}")
    lines.append("config:")
    lines.extend("  " + printable(line) for line in str(attrs["config"]).rstrip().split("\n"))
    return "\n".join(lines)
