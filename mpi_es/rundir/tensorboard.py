"""`log.tensorboard: true`: every numeric log.csv column as a TensorBoard scalar under OUT_DIR/tb.

A resumed run purges the steps after its checkpoint's generation (TensorBoard's purge_step), so
no generation appears twice, as in log.csv.
"""
from __future__ import annotations

import math
import time
from pathlib import Path

from ..extras import import_extra


class Scalars:
    def __init__(self, directory: Path, *, first_step: int):
        writer_class = import_extra("tensorboardX", "tensorboard").SummaryWriter
        # Event files are named by the second they were opened in; a resume within the same
        # second would overwrite the run's file. The suffix keeps them apart, in resume order.
        suffix = f".from{first_step:09d}.{time.time_ns()}"
        self.writer = writer_class(str(directory), purge_step=first_step, filename_suffix=suffix)

    def write(self, row: dict) -> None:
        step = int(row["Generation"])
        for key, value in row.items():
            if key != "Generation" and isinstance(value, (int, float)) and math.isfinite(value):
                self.writer.add_scalar(key, value, step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
