"""OUT_DIR/log.csv: one row per generation, the notebook's column names first."""
from __future__ import annotations

import csv
import os
from pathlib import Path

COLUMNS = [
    "Generation",
    "GenRewMean", "GenRewStd", "GenLenMean",
    "EvalGenRewardMean", "EvalGenRewardStd", "EvalGenLengthMean", "EvalGenCount",
    "EpisodesThisGen", "EpisodesSoFar", "TimestepsThisGen", "TimestepsSoFar",
    "UniqueWorkers", "ObCount",
    "TimeElapsedThisGen", "TimeElapsed",
    # mpi_es additions
    "GenRewMax", "UpdateRatio", "ThetaNorm",
    "TimeRolloutMin", "TimeRolloutMax", "TimeComm", "TimeUpdate",
]
TIMING_COLUMNS = {"TimeElapsedThisGen", "TimeElapsed", "TimeRolloutMin", "TimeRolloutMax",
                  "TimeComm", "TimeUpdate"}


class RunLog:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.exists() or self.path.stat().st_size == 0:
            with open(self.path, "w", newline="") as fh:
                csv.writer(fh).writerow(COLUMNS)

    def append(self, row: dict) -> None:
        with open(self.path, "a", newline="") as fh:
            csv.DictWriter(fh, fieldnames=COLUMNS).writerow(row)
            fh.flush()
            os.fsync(fh.fileno())


def read(path: str | Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))
