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
    # ARS: the standard deviation of the 2b returns its step was scaled by (blank for ES)
    "ReturnStdUsed",
    "GenRewMin",
    # stop.eval_return's check: mean noise-free return over stop.eval_episodes (blank between)
    "TargetEvalMean",
]
TIMING_COLUMNS = {"TimeElapsedThisGen", "TimeElapsed", "TimeRolloutMin", "TimeRolloutMax",
                  "TimeComm", "TimeUpdate"}


def columns_with(extra: tuple[str, ...] = ()) -> list[str]:
    """Today's columns, then an algorithm's own log columns (those not among them)."""
    return COLUMNS + [c for c in extra if c not in COLUMNS]


class RunLog:
    def __init__(self, path: str | Path, *, keep_through: int, columns: list[str] = COLUMNS):
        """Open the log, keeping only rows of generations <= keep_through.

        A run killed after appending a row but before replacing its checkpoint resumes from the
        previous generation; dropping the later rows keeps each generation in the log once.
        A damaged tail (a partial last row, NUL bytes after a crash) is dropped too, and said.
        """
        self.path = Path(path)
        rows, damaged = read_checked(self.path, columns) if self.path.exists() else ([], 0)
        # columns this version does not know (a newer mpi_es, a tool that added one) are kept
        foreign = [c for c in (_header(self.path) if rows else []) if c not in columns]
        self.columns = columns + foreign
        kept = [r for r in rows if int(r["Generation"]) <= keep_through]
        self.dropped_damaged = damaged
        if rows and len(kept) == len(rows) and not damaged and _header(self.path) == self.columns:
            return
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=self.columns)
            writer.writeheader()
            writer.writerows(kept)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)

    def append(self, row: dict) -> None:
        with open(self.path, "a", newline="") as fh:
            csv.DictWriter(fh, fieldnames=self.columns).writerow(row)
            fh.flush()
            os.fsync(fh.fileno())


def read(path: str | Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def read_checked(path: str | Path, columns: list[str] = COLUMNS) -> tuple[list[dict], int]:
    """The log's good rows (every column, whole generation numbers in order) and how many lines
    after them were damaged and left out."""
    text = Path(path).read_bytes().decode("utf-8", errors="replace")
    lines = text.split("\n")
    complete = text.endswith("\n")
    body = [line for line in lines[1:-1]] if complete else lines[1:]
    # a log written by an earlier version has the columns of its day (a prefix of today's), one
    # by a newer version or another tool more: each row is read by the file's own header
    header = next(csv.reader([lines[0]]), []) if lines else []
    if "Generation" not in header or "" in header or len(set(header)) != len(header):
        header = columns
    good = []
    for index, line in enumerate(body):
        if not line:
            continue
        fields = next(csv.reader([line]), [])
        row = {**dict.fromkeys(columns, ""), **dict(zip(header, fields))}
        partial = index == len(body) - 1 and not complete
        if partial or "\0" in line or len(fields) != len(header) or not _generation_follows(
                row, good):
            return good, sum(1 for rest in body[index:] if rest.strip("\0"))
        good.append(row)
    return good, 0


def _generation_follows(row: dict, good: list[dict]) -> bool:
    try:
        generation = int(row["Generation"])
    except ValueError:
        return False
    return generation >= 1 and (not good or generation > int(good[-1]["Generation"]))


def _header(path: Path) -> list[str]:
    with open(path, newline="") as fh:
        return next(csv.reader(fh), [])
