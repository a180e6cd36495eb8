"""Every MPI call of mpi_es lives here.

`World` wraps COMM_WORLD and the node-local communicator. One process without mpiexec is
simply a world of size 1.
"""
from __future__ import annotations

import os
import socket
import sys
import tempfile
import time
import traceback

import numpy as np

from .memory import shared_window_directory


def _mpi():
    quiet_open_mpi_rma_without_rdma()
    from mpi4py import MPI
    return MPI


def quiet_open_mpi_rma_without_rdma(environ=os.environ, rdma_devices="/sys/class/infiniband"):
    """Leave Open MPI's UCX one-sided component out where it cannot serve (no RDMA device).

    Open MPI 5 asks UCX whether it can do RMA on every window it creates; where UCX has only
    TCP and shared memory it says no, another component is chosen, and each rank prints
    "osc_ucx_component.c:375 Error: OSC UCX component priority set inside component query
    failed" (open-mpi/ompi#14086), six lines per run. Without an RDMA device the component is
    never chosen, so excluding it changes nothing but the noise. A user's own OMPI_MCA_osc
    wins; other MPIs ignore the variable. Must run before MPI_Init.
    """
    if "OMPI_MCA_osc" in environ:
        return
    try:
        has_rdma = bool(os.listdir(rdma_devices))
    except OSError:
        has_rdma = False
    if not has_rdma:
        environ["OMPI_MCA_osc"] = "^ucx"


def host_name() -> str:
    """Which machine this rank runs on (SLURM's node name where there is one: the test
    cluster runs two nodes on one host)."""
    return os.environ.get("SLURMD_NODENAME") or socket.gethostname()


def no_locality(hosts: list[tuple[str, int]]) -> bool:
    """True when the MPI put every rank in a shared-memory group of its own although some
    share a host: (host, shared-memory group size) per rank. MPICH told to simulate nodes on
    one host (MPIR_CVAR_NUM_CLIQUES, MPIR_CVAR_ODD_EVEN_CLIQUES) is taken at its word."""
    if any(size > 1 for _, size in hosts) or len({name for name, _ in hosts}) == len(hosts):
        return False
    return not any(os.environ.get(v) for v in ("MPIR_CVAR_NUM_CLIQUES",
                                               "MPIR_CVAR_ODD_EVEN_CLIQUES"))


def mpi_library() -> str:
    """The MPI library this process runs on, e.g. 'MPICH Version: 5.0.2' or 'Open MPI v5.0.8'."""
    text = _mpi().Get_library_version().replace("\x00", " ")    # Open MPI ends it with a NUL
    line = text.strip().splitlines()[0]
    return " ".join(line.replace("\t", " ").split()).rstrip(",")


def unlink_mpich_start_up_segments() -> None:
    """Remove the names of the /dev/shm files MPICH maps at start-up for its ranks on a node.

    MPICH unlinks them only in MPI_Finalize, so every aborted or killed job left ~1-3 MB in
    /dev/shm. Once every rank on the node has mapped the file, MPICH never opens it by name again;
    the mapping lives on without the name, and the memory is freed when the last rank exits,
    however it exits. (Shared windows, like the noise table's, are unlinked by MPICH itself.)
    """
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split(None, 5)[5].strip() for line in maps
                     if "/dev/shm/mpich_shm_" in line}
    except OSError:                     # not Linux
        return
    for path in paths:
        if not path.endswith("(deleted)"):
            try:
                os.unlink(path)
            except OSError:             # another rank of the node was first
                pass


PROGRESS_INTERVAL_S = 0.001


class World:
    ROOT = 0

    def __init__(self, comm=None):
        MPI = _mpi()
        self.comm = comm if comm is not None else MPI.COMM_WORLD
        self.rank = self.comm.Get_rank()
        self.size = self.comm.Get_size()
        self.node = self.comm.Split_type(MPI.COMM_TYPE_SHARED, key=self.rank)
        self.shared_by_file = False
        hosts = self.comm.allgather((host_name(), self.node.Get_size()))
        if no_locality(hosts):
            # Open MPI under `srun --mpi=pmix` when SLURM's PMIx server gives no locality
            # (open-mpi/ompi#8299): every rank is alone, and would build its own noise table.
            # Group the ranks by host and share the table through a file they all map.
            self.node.Free()
            names = sorted({name for name, _ in hosts})
            self.node = self.comm.Split(names.index(hosts[self.rank][0]), key=self.rank)
            self.shared_by_file = True
        self.node_rank = self.node.Get_rank()
        self.node_size = self.node.Get_size()
        self.nodes = self.comm.allreduce(1 if self.node_rank == 0 else 0)   # one table each
        self._windows = []
        if self.node_size > 1:
            self.node.Barrier()         # every rank on the node has attached MPICH's segment
            unlink_mpich_start_up_segments()

    @property
    def is_root(self) -> bool:
        return self.rank == self.ROOT

    # -- collectives -------------------------------------------------------------------------
    def bcast(self, obj):
        return self.comm.bcast(obj, root=self.ROOT)

    def gather(self, obj) -> list | None:
        return self.comm.gather(obj, root=self.ROOT)

    def allgather(self, obj) -> list:
        return self.comm.allgather(obj)

    def allgather_rows(self, rows: np.ndarray) -> np.ndarray:
        """Every rank's rows (2-D, same columns and dtype), concatenated in rank order, everywhere.

        Packed buffers (Allgather of the row counts, then Allgatherv), nothing pickled.
        """
        rows = np.ascontiguousarray(rows)
        cols = rows.shape[1]
        counts = np.zeros(self.size, np.int64)
        self.comm.Allgather(np.array([rows.shape[0]], np.int64), counts)
        out = np.empty((int(counts.sum()), cols), rows.dtype)
        self.comm.Allgatherv(rows, [out, counts * cols])
        return out

    def allgather_blocks(self, block: np.ndarray, counts: np.ndarray) -> np.ndarray:
        """The 1-D array whose rank-r block (counts[r] elements) every rank r holds, everywhere."""
        out = np.empty(int(counts.sum()), block.dtype)
        self.comm.Allgatherv(np.ascontiguousarray(block), [out, counts])
        return out

    def gather_blocks(self, block: np.ndarray, counts: np.ndarray) -> np.ndarray | None:
        """The same assembled on rank 0 only (None elsewhere)."""
        out = np.empty(int(counts.sum()), block.dtype) if self.is_root else None
        self.comm.Gatherv(np.ascontiguousarray(block), [out, counts] if self.is_root else None,
                          root=self.ROOT)
        return out

    def barrier(self) -> None:
        self.comm.Barrier()

    def any_true(self, flag: bool) -> bool:
        """Collective: True on every rank when any rank passes True."""
        return bool(self.comm.allreduce(bool(flag), op=_mpi().LOR))

    def max(self, value: float) -> float:
        """Collective: the largest of every rank's value, everywhere."""
        return self.comm.allreduce(value, op=_mpi().MAX)

    def sum(self, value: float) -> float:
        """Collective: the sum of every rank's value, everywhere."""
        return self.comm.allreduce(value)

    def node_sum(self, value: float) -> float:
        """Collective on this node: the sum of the node's ranks' values."""
        return self.node.allreduce(value)

    def first_error(self, error: str | None) -> tuple[int, str] | None:
        """Collective: (rank, message) of the lowest rank that reports an error, on every rank."""
        errors = self.comm.allgather(error)
        for rank, message in enumerate(errors):
            if message is not None:
                return rank, message
        return None

    # -- node shared memory ------------------------------------------------------------------
    def node_shared_array(self, count: int, dtype=np.float32) -> np.ndarray:
        """One array per node in MPI-3 shared memory, mapped into every rank of the node."""
        if self.shared_by_file:
            return self._file_shared_array(count, dtype)
        MPI = _mpi()
        itemsize = np.dtype(dtype).itemsize
        nbytes = count * itemsize if self.node_rank == 0 else 0
        win = MPI.Win.Allocate_shared(nbytes, itemsize, comm=self.node)
        self._windows.append(win)
        buf, _ = win.Shared_query(0)
        return np.ndarray(buffer=buf, dtype=dtype, shape=(count,))

    def _file_shared_array(self, count: int, dtype) -> np.ndarray:
        """One array per host in a file every rank of the host maps (where the MPI reports no
        shared memory): in the directory the MPI would use, its name removed once all mapped."""
        nbytes = max(1, count * np.dtype(dtype).itemsize)
        path, error = None, None
        if self.node_rank == 0:
            directory, _ = shared_window_directory()     # where the pre-flight looked
            try:
                fd, path = tempfile.mkstemp(prefix="mpi_es_noise_", dir=directory)
                try:
                    os.posix_fallocate(fd, 0, nbytes)     # no space: an error now, not SIGBUS
                finally:
                    os.close(fd)
            except OSError as e:
                error = f"cannot make the shared noise table file in {directory}: {e}"
        path, error = self.node.bcast((path, error))
        array = None
        if error is None:
            try:
                array = np.memmap(path, dtype=dtype, mode="r+", shape=(count,))
            except OSError as e:
                error = f"cannot map the shared noise table file {path}: {e}"
        errors = [e for e in self.node.allgather(error) if e is not None]
        if self.node_rank == 0 and path is not None:
            os.unlink(path)
        if errors:
            raise OSError(errors[0])
        return array

    def node_barrier(self) -> None:
        self.node.Barrier()

    # -- dynamic slot assignment -------------------------------------------------------------
    def progress_poke(self, interval_s: float = PROGRESS_INTERVAL_S):
        """For rank 0's episode rounds: a callable that enters MPI's progress engine at most
        every interval_s, or None where nobody needs it.

        Rank 0 hosts the slot counter and the progress board. On its own node the other ranks'
        fetch-and-adds go through shared memory, but from another node (MPICH, Intel MPI over
        TCP: measured with bench) a claim waited until rank 0 next entered MPI, that is for the
        rest of rank 0's episode. One Iprobe a millisecond serves them; it costs ~1 us.
        """
        if not self.is_root or self.node_size == self.size:
            return None
        comm, clock = self.comm, time.perf_counter
        due = [0.0]

        def poke() -> None:
            now = clock()
            if now >= due[0]:
                comm.Iprobe()
                due[0] = now + interval_s
        return poke

    def slot_counter(self) -> "SlotCounter":
        """Collective: a job-wide counter ranks claim episode slots from."""
        counter = SlotCounter(self)
        self._windows.append(counter)
        return counter

    def progress_board(self) -> "ProgressBoard":
        """Collective: where each rank marks how far through the run it has come."""
        board = ProgressBoard(self)
        self._windows.append(board)
        return board

    # -- ending ------------------------------------------------------------------------------
    def free(self) -> None:
        for win in self._windows:
            win.Free()
        self._windows.clear()


class SlotCounter:
    """The next unclaimed slot of the generation: an int64 on rank 0, fetch-and-add by any rank.

    A rank that drew short episodes claims more slots, so no rank idles while another works
    through a long tail. One passive-target epoch (Lock_all) stays open for the whole run: with
    it a claim completes without rank 0 entering MPI (rank 0 is busy playing episodes too).
    """

    def __init__(self, world: World):
        MPI = _mpi()
        self._world = world
        self._single = world.size == 1
        self._next = 0
        self._base = 0
        if self._single:
            return
        self._win = MPI.Win.Allocate(8 if world.is_root else 0, 8, comm=world.comm)
        if world.is_root:
            np.frombuffer(self._win.tomemory(), dtype=np.int64)[:] = 0
        self._one = np.ones(1, np.int64)
        self._got = np.zeros(1, np.int64)
        world.barrier()
        self._win.Lock_all()

    def claim(self) -> int:
        if self._single:
            self._next += 1
            return self._next - 1
        self._win.Fetch_and_op(self._one, self._got, 0, 0, _mpi().SUM)
        self._win.Flush(0)
        return int(self._got[0])

    def claims(self, total: int):
        """This generation's slot indices below total, as this rank claims them.

        The counter is never reset: every rank ends a generation with exactly one claim past
        its end, so the next generation starts at base + total + size on every rank, and no
        rank has to wait for a reset before claiming again.
        """
        while (index := self.claim() - self._base) < total:
            yield index
        self._base += total + self._world.size

    def Free(self) -> None:
        if not self._single:
            self._win.Unlock_all()
            self._win.Free()


class ProgressBoard:
    """How far each rank has come: one int64 step count per rank, on rank 0, and a heartbeat
    count per rank.

    A rank marks each step it reaches (its episodes done, entering an exchange) and can see
    which ranks have not reached it, without entering a collective that a frozen rank would
    never join (or from a watchdog thread while it waits inside one). A rank busy on purpose
    outside the collectives (rank 0 writing a checkpoint to slow storage) beats its heartbeat,
    and the others see that it is alive. Reads and writes are atomic RMA operations in one
    passive epoch, like the slot counter's.
    """

    def __init__(self, world: World):
        MPI = _mpi()
        self._world = world
        self._win = MPI.Win.Allocate(16 * world.size if world.is_root else 0, 8,
                                     comm=world.comm)
        if world.is_root:
            np.frombuffer(self._win.tomemory(), dtype=np.int64)[:] = 0
        self._one = np.ones(1, np.int64)
        self._mark = np.zeros(1, np.int64)
        self._entries = np.zeros(world.size, np.int64)
        world.barrier()
        self._win.Lock_all()

    def mark(self, step: int) -> None:
        MPI = _mpi()
        self._mark[0] = step
        self._win.Accumulate([self._mark, MPI.INT64_T], 0,
                             target=(self._world.rank, 1, MPI.INT64_T), op=MPI.REPLACE)
        self._win.Flush(0)

    def behind(self, step: int) -> list[int]:
        """The ranks that have not reached `step` yet."""
        MPI = _mpi()
        entries = np.zeros(self._world.size, np.int64)
        self._win.Get_accumulate([entries, MPI.INT64_T], [entries, MPI.INT64_T], 0,
                                 target=(0, self._world.size, MPI.INT64_T), op=MPI.NO_OP)
        self._win.Flush(0)
        return [int(r) for r in np.flatnonzero(entries < step)]

    def beat(self) -> None:
        """This rank is alive and busy (from any thread)."""
        MPI = _mpi()
        self._win.Accumulate([self._one, MPI.INT64_T], 0,
                             target=(self._world.size + self._world.rank, 1, MPI.INT64_T),
                             op=MPI.SUM)
        self._win.Flush(0)

    def beats(self) -> np.ndarray:
        """Every rank's heartbeat count."""
        MPI = _mpi()
        counts = np.zeros(self._world.size, np.int64)
        self._win.Get_accumulate([counts, MPI.INT64_T], [counts, MPI.INT64_T], 0,
                                 target=(self._world.size, self._world.size, MPI.INT64_T),
                                 op=MPI.NO_OP)
        self._win.Flush(0)
        return counts

    def Free(self) -> None:
        self._win.Unlock_all()
        self._win.Free()


ABORT_GRACE_S = 0.5


def abort_job(message: str, code: int = 1) -> None:
    """Print a rank-prefixed message and end the whole job, from any thread."""
    MPI = _mpi()
    rank = MPI.COMM_WORLD.Get_rank() if MPI.Is_initialized() else 0
    prefix = f"[rank {rank}] "
    sys.stderr.write("".join(prefix + line + "\n" for line in message.rstrip().splitlines()))
    sys.stderr.flush()
    sys.stdout.flush()
    if MPI.Is_initialized() and not MPI.Is_finalized() and MPI.COMM_WORLD.Get_size() > 1:
        # MPI_Abort tears down the launcher's output forwarding at once: measured with hydra,
        # 1 abort in 30 lost the message just flushed. A moment's grace lets it through.
        time.sleep(ABORT_GRACE_S)
        MPI.COMM_WORLD.Abort(code)
    os._exit(code)


def install_abort_on_exception() -> None:
    """An uncaught exception on any rank prints once (rank-prefixed) and aborts the whole job.

    Without this, one failed rank leaves the others waiting in a collective forever.
    """
    def hook(exc_type, exc, tb):
        if issubclass(exc_type, (KeyboardInterrupt, SystemExit)):
            sys.__excepthook__(exc_type, exc, tb)
            return
        status = getattr(exc, "exit_status", None)
        if status is not None:        # a problem the user can fix: one line, no traceback
            abort_job(f"error: {exc}", status)
        abort_job("".join(traceback.format_exception(exc_type, exc, tb)), 1)

    sys.excepthook = hook
