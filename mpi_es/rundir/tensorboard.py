"""`log.tensorboard: true`: every numeric log.csv column as a TensorBoard scalar under OUT_DIR/tb.

A resumed run purges the steps after its checkpoint's generation (TensorBoard's purge_step), so
no generation appears twice, as in log.csv.

The events are written in the calling thread, one record per generation, and fsynced before the
checkpoint: tensorboardX's SummaryWriter writes from a thread of its own, where a full disk
kills the thread silently, loses what it held and then blocks the trainer on its full queue.
"""
from __future__ import annotations

import math
import time
from contextlib import contextmanager
from pathlib import Path

from ..extras import import_extra


class Scalars:
    def __init__(self, directory: Path, *, first_step: int):
        import_extra("tensorboardX", "tensorboard")
        from tensorboardX.event_file_writer import EventsWriter
        from tensorboardX.proto.event_pb2 import Event, SessionLog
        from tensorboardX.proto.summary_pb2 import Summary
        self.Event, self.Summary = Event, Summary
        # Event files are named by the second they were opened in; a resume within the same
        # second would overwrite the run's file. The suffix keeps them apart, in resume order.
        suffix = f".from{first_step:09d}.{time.time_ns()}"
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory
        with self.naming_the_file():
            self.writer = EventsWriter(str(directory / "events"), filename_suffix=suffix)
            self.path = Path(self.writer._file_name)
            # What SummaryWriter(purge_step=first_step) writes: TensorBoard hides the steps
            # from first_step on that earlier event files hold.
            self.writer.write_event(Event(step=first_step, file_version="brain.Event:2"))
            self.writer.write_event(Event(step=first_step,
                                          session_log=SessionLog(status=SessionLog.START)))
            self.writer.flush()

    def write(self, row: dict) -> None:
        values = [self.Summary.Value(tag=key, simple_value=float(value))
                  for key, value in row.items()
                  if key != "Generation" and isinstance(value, (int, float))
                  and math.isfinite(value)]
        event = self.Event(step=int(row["Generation"]), wall_time=time.time(),
                           summary=self.Summary(value=values))
        with self.naming_the_file():
            self.writer.write_event(event)
            self.writer.flush()

    def close(self) -> None:
        with self.naming_the_file():
            self.writer.close()

    @contextmanager
    def naming_the_file(self):
        """A failed write to an open file raises OSError without a filename: add the event
        file's, so the user is told which file could not be written."""
        try:
            yield
        except OSError as exc:
            if exc.filename:
                raise
            raise OSError(exc.errno, exc.strerror or str(exc), str(self.path)) from None
