#!/usr/bin/env python
"""The long studies as one queue: W workers take its commands in order, each to its end.

Each line of the queue file is one command, usually a benchmarks/ driver for one run; `{runs}`
in it becomes --runs. A worker takes the first command no worker has taken, runs it (its
output appended to <runs>/queue/<key>.out) and takes the next, so no core idles while work is
left. A command that exits 0 is marked done and skipped from then on; one that fails is
reported and left for the next start. The file is read again at each take, so it can be edited
while the queue runs. The drivers resume unfinished runs and skip finished ones, so after a
stop (or a new session) the same command picks up where the queue was:

    nohup nice -n 10 python benchmarks/long_runs.py --workers 2 --runs /work/runs &

SIGTERM or SIGINT stops the running commands (SIGTERM to each; the drivers stop their runs
cleanly) and the queue.
"""
from __future__ import annotations

import argparse
import fcntl
import hashlib
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def read_queue(path: Path, runs: Path) -> list[str]:
    """The commands of a queue file: one a line, `#` comments and blank lines left out."""
    commands = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            commands.append(line.replace("{runs}", str(runs)))
    return commands


def argv_of(command: str) -> list[str]:
    """The command's words; a leading `python` is this Python, a leading `mpiexec` the one
    beside it (the venv's MPI), when there is one."""
    argv = shlex.split(command)
    beside = Path(sys.executable).parent
    if argv[0] == "python":
        argv[0] = sys.executable
    elif argv[0] == "mpiexec" and (beside / "mpiexec").exists():
        argv[0] = str(beside / "mpiexec")
    return argv


def key(command: str) -> str:
    """A short file name for a command: its first words and a hash of all of it."""
    words = re.sub(r"[^A-Za-z0-9]+", "-", " ".join(shlex.split(command)[1:4])).strip("-")
    return f"{words[:60]}-{hashlib.sha1(command.encode()).hexdigest()[:8]}"


class Queue:
    def __init__(self, read, state: Path):
        self.read, self.state = read, state        # read(): the queue file's commands, now
        self.taken: set[str] = set()
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.running: dict[str, subprocess.Popen] = {}
        self.failed: list[str] = []

    def done_file(self, command: str) -> Path:
        return self.state / f"{key(command)}.done"

    def take(self) -> str | None:
        """The first command not done and not taken before by this queue; the file is read
        again each time, so an edit (a run added, the order changed) applies to the next take."""
        with self.lock:
            if self.stopping.is_set():
                return None
            for command in self.read():
                if command not in self.taken and not self.done_file(command).exists():
                    self.taken.add(command)
                    return command
            return None

    def worker(self) -> None:
        while (command := self.take()) is not None:
            self.run(command)

    def run(self, command: str) -> None:
        name = key(command)
        print(f"queue: start  {command}", flush=True)
        with open(self.state / f"{name}.out", "ab") as out:
            out.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {command}\n".encode())
            out.flush()
            process = subprocess.Popen(argv_of(command), cwd=REPO, stdout=out,
                                       stderr=subprocess.STDOUT, start_new_session=True)
            with self.lock:
                self.running[name] = process
            rc = process.wait()
            with self.lock:
                del self.running[name]
        if rc == 0:
            self.done_file(command).write_text("0\n")
            print(f"queue: done   {command}", flush=True)
        else:
            self.failed.append(command)
            print(f"queue: exit {rc} {command} (see {self.state / name}.out)", flush=True)

    def stop(self, signum, frame) -> None:
        self.stopping.set()
        with self.lock:
            for process in self.running.values():
                try:
                    os.killpg(process.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", type=Path, default=REPO / "benchmarks" / "long_runs.txt")
    parser.add_argument("--runs", type=Path, required=True,
                        help="where the runs go ({runs} in the queue file); outside the repo")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    last: list[str] = []

    def read() -> list[str]:
        try:
            last[:] = read_queue(args.file, args.runs.resolve())
        except OSError as exc:           # caught mid-edit: the last list read
            print(f"queue: cannot read {args.file} ({exc}); using the last one", flush=True)
        return list(last)
    commands = read()
    state = args.runs.resolve() / "queue"
    state.mkdir(parents=True, exist_ok=True)
    holder = open(state / "queue.lock", "w")
    try:
        fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print(f"queue: another queue is running on {state}", file=sys.stderr)
        return 1
    queue = Queue(read, state)
    signal.signal(signal.SIGTERM, queue.stop)
    signal.signal(signal.SIGINT, queue.stop)
    left = sum(not queue.done_file(c).exists() for c in commands)
    print(f"queue: {len(commands)} commands, {left} not done, {args.workers} workers", flush=True)
    workers = [threading.Thread(target=queue.worker) for _ in range(args.workers)]
    for worker in workers:
        worker.start()
    for worker in workers:
        while worker.is_alive():
            worker.join(timeout=1.0)       # wakes for signals
    if queue.stopping.is_set():
        print("queue: stopped", flush=True)
        return 75
    return 1 if queue.failed else 0


if __name__ == "__main__":
    sys.exit(main())
