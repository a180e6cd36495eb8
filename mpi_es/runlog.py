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
    def __init__(self, path: str | Path, *, keep_through: int):
        """Open the log, keeping only rows of generations <= keep_through.

        A run killed after appending a row but before replacing its checkpoint resumes from the
        previous generation; dropping the later rows keeps each generation in the log once.
        """
        self.path = Path(path)
        rows = read(self.path) if self.path.exists() and self.path.stat().st_size else []
        kept = [r for r in rows if int(r["Generation"]) <= keep_through]
        if rows and len(kept) == len(rows):
            return
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=COLUMNS)
            writer.writeheader()
            writer.writerows(kept)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)

    def append(self, row: dict) -> None:
        with open(self.path, "a", newline="") as fh:
            csv.DictWriter(fh, fieldnames=COLUMNS).writerow(row)
            fh.flush()
            os.fsync(fh.fileno())


def read(path: str | Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))
