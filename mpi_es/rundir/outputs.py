"""Everything a run writes to OUT_DIR (rank 0 only), and the progress line it prints."""
from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

from ..config import Config
from ..core.state import TrainState
from ..errors import EXIT_USAGE
from . import checkpoint, runlog


class OutputError(Exception):
    """OUT_DIR cannot be written (disk full, read-only, quota): the user can fix it."""
    exit_status = EXIT_USAGE


class Outputs:
    """Everything written to OUT_DIR. Only rank 0 writes; on other ranks each call does nothing."""

    def __init__(self, cfg: Config, active: bool):
        self.active = active
        self.cfg = cfg
        self.dir = Path(cfg.out_dir)
        self.config_yaml = cfg.to_yaml()
        self.log = None
        self.scalars = None
        # test-only: pause inside every checkpoint write, so kill tests can land in one
        self.write_pause_s = float(os.environ.get("MPI_ES_TEST_CHECKPOINT_PAUSE") or 0)

    def start(self, state: TrainState, fresh: bool) -> None:
        """Prepare OUT_DIR; a fresh run gets its generation-0 checkpoint at once."""
        if not self.active:
            return
        with self.writing(state):
            self._start(state, fresh)

    @contextmanager
    def writing(self, state: TrainState):
        """Turn a failed write (no space, read-only, quota) into one line for the user."""
        try:
            yield
        except OSError as exc:
            where = f" (file {exc.filename})" if exc.filename else ""
            raise OutputError(
                f"cannot write to out_dir {self.dir.resolve()}{where}: {exc.strerror or exc}; "
                f"the last complete checkpoint stays; free space (or fix the permissions) "
                f"and run the same command again to resume") from None

    @property
    def extra_columns(self) -> tuple[str, ...]:
        """The algorithm's log columns, and the training returns' mean under training_reward."""
        trained = ("GenTrainRewMean",) if self.cfg.training_reward.transform() else ()
        return tuple(self.cfg.algorithm_class.log_columns) + trained

    def _start(self, state: TrainState, fresh: bool) -> None:
        (self.dir / "snapshots").mkdir(parents=True, exist_ok=True)
        checkpoint.remove_stale_temps(self.dir)
        checkpoint.remove_stale_temps(self.dir / "snapshots")
        write_atomically(self.dir / "config.yaml", self.config_yaml)
        self.log = runlog.RunLog(self.dir / "log.csv", keep_through=state.generation,
                                 columns=runlog.columns_with(self.extra_columns))
        if self.log.dropped_damaged:
            self.say(f"warning: {self.dir / 'log.csv'}: dropped {self.log.dropped_damaged} "
                     f"damaged line(s) at its end (a crash mid-write?); the good rows are kept")
        if self.cfg.log.tensorboard:
            from .tensorboard import Scalars
            self.scalars = Scalars(self.dir / "tb", first_step=state.generation + 1)
        if fresh:
            self.save_checkpoint(state)

    def save_checkpoint(self, state: TrainState) -> None:
        self._save(self.checkpoint_path, state)

    def _save(self, path: Path, state: TrainState) -> None:
        checkpoint.save(path, state, env_id=self.cfg.env_id, config_yaml=self.config_yaml,
                        write_pause_s=self.write_pause_s)

    @property
    def checkpoint_path(self) -> Path:
        return self.dir / "checkpoint.h5"

    def say(self, message: str) -> None:
        if self.active:
            print(message, flush=True)

    def generation_done(self, state: TrainState, row: dict) -> None:
        if not self.active:
            return
        with self.writing(state):
            self._generation_done(state, row)

    def _generation_done(self, state: TrainState, row: dict) -> None:
        # Log row first, checkpoint last: a kill in between leaves a row the resume drops,
        # never a checkpoint whose row is missing.
        self.log.append(row)
        if self.scalars is not None:
            self.scalars.write(row)
        freq = self.cfg.snapshot_freq
        if freq and state.generation % freq == 0:
            path = self.dir / "snapshots" / f"snapshot_{state.generation:05d}.h5"
            self._save(path, state)
        self.save_checkpoint(state)
        print(progress_line(row, self.cfg), flush=True)


def write_atomically(path: Path, text: str) -> None:
    """Temp file, fsync, os.replace: never half a file, and never written through a symlink
    (os.replace swaps the link itself)."""
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def progress(cfg: Config, row: dict) -> tuple[str, float | None]:
    """('/LIMIT' text, fraction done) for the stop limit nearest to ending the run."""
    limits = []
    if cfg.stop.generations:
        limits.append((row["Generation"] / cfg.stop.generations, f"/{cfg.stop.generations}"))
    if cfg.stop.timesteps:
        limits.append((row["TimestepsSoFar"] / cfg.stop.timesteps,
                       f" (steps {row['TimestepsSoFar'] / 1e6:.2f}M/"
                       f"{cfg.stop.timesteps / 1e6:.2f}M)"))
    if cfg.stop.seconds:
        limits.append((row["TimeElapsed"] / cfg.stop.seconds, f" ({row['TimeElapsed']:.0f}/"
                                                              f"{cfg.stop.seconds:.0f} s)"))
    if not limits:
        return "", None
    fraction, text = max(limits)
    return text, min(fraction, 1.0)


def duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


def progress_line(row: dict, cfg: Config) -> str:
    limit, fraction = progress(cfg, row)
    line = (f"gen {row['Generation']:>5}{limit} | return {row['GenRewMean']:9.2f} "
            f"± {row['GenRewStd']:8.2f} (max {row['GenRewMax']:9.2f}) | len {row['GenLenMean']:7.1f}")
    if row["EvalGenCount"]:
        line += f" | eval {row['EvalGenRewardMean']:9.2f} ({row['EvalGenCount']})"
    if row.get("TargetEvalMean") is not None:
        line += f" | check {row['TargetEvalMean']:.2f}/{cfg.stop.eval_return:g}"
    rate = row["TimestepsThisGen"] / max(row["TimeElapsedThisGen"], 1e-9)
    line += (f" | {row['TimeElapsedThisGen']:6.2f} s, {rate:,.0f} steps/s "
             f"(rollout {row['TimeRolloutMax']:.2f}, comm {row['TimeComm']:.2f}, "
             f"update {row['TimeUpdate']:.3f})")
    if fraction:
        line += f" | left ~{duration(row['TimeElapsed'] * (1 - fraction) / fraction)}"
    return line
