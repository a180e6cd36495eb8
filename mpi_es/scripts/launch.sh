#!/usr/bin/env bash
# Shared by train.sbatch and sweep.sbatch: start mpi_es under srun (or mpiexec), pass SLURM's
# warning / preemption signal on to the ranks, and requeue the job when they stop with exit 75.
#   launch.sh CONFIG.yaml [mpi_es options...]
set -u

config=${1:?usage: launch.sh CONFIG.yaml [mpi_es options...]}
shift
launcher=${LAUNCHER:-srun}        # srun | mpiexec
srun_mpi=${SRUN_MPI:-pmi2}        # srun's --mpi plugin; pmix for Open MPI built with PMIx
python=${PYTHON:-python}

# One rank per core: no BLAS or OpenMP threads on top.
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1

case "$launcher" in
    srun)    cmd=(srun --mpi="$srun_mpi" --kill-on-bad-exit=1 "$python" -m mpi_es train "$config" "$@") ;;
    mpiexec) cmd=(mpiexec -n "${SLURM_NTASKS:-1}" "$python" -m mpi_es train "$config" "$@") ;;
    *)       echo "LAUNCHER must be srun or mpiexec, not '$launcher'" >&2; exit 2 ;;
esac

echo "mpi_es: job ${SLURM_JOB_ID:-?} (restart ${SLURM_RESTART_COUNT:-0}) on ${SLURM_JOB_NODELIST:-$(hostname)}: ${cmd[*]}"

# The launcher runs in the background so that this shell can take SLURM's signals
# (--signal=B:USR1@..., preemption's SIGTERM) and forward them; srun and mpiexec pass them on
# to every rank, which then finish the generation, checkpoint and exit 75. The traps go in
# before anything else runs: a signal that came while this shell was still busy (the version
# check below can take seconds on a loaded node) would otherwise be lost, and the job would
# run on past its preemption.
child=
pending=
forward() {
    echo "mpi_es: got SIG$1, asking the ranks to checkpoint and stop"
    if [ -z "$child" ]; then pending=$1; return; fi
    send "$1"
}
send() {
    local sig=$1
    if [ "$open_mpi" = 1 ] && { [ "$sig" = TERM ] || [ "$sig" = INT ]; }; then sig=USR1; fi
    kill -s "$sig" "$child" 2>/dev/null
}
trap 'forward USR1' USR1
trap 'forward TERM' TERM
trap 'forward INT' INT

# Open MPI's mpirun (prterun) passes SIGTERM and SIGINT on to the ranks but ends the job half
# a second later, before any generation can finish; SIGUSR1 it only passes on. So under Open
# MPI's mpiexec a stop request reaches the ranks as SIGUSR1.
open_mpi=0
if [ "$launcher" = mpiexec ] && mpiexec --version 2>&1 | grep -qiE "open mpi|openrte"; then open_mpi=1; fi

# MPICH's UCX netmod sends its ~4 KB address through PMI-1 lines that SLURM's pmi2 plugin can
# cut at 1,024 bytes, and the job then hangs in MPI_Init (docs/clusters.md). Where the MPICH has
# its libfabric netmod too (the PyPI wheel), use that, unless a netmod was chosen already.
if [ "$launcher" = srun ] && [ "$srun_mpi" = pmi2 ] && [ -z "${MPIR_CVAR_CH4_NETMOD:-}" ]; then
    device=$("$python" -c 'import mpi4py; mpi4py.rc.initialize = False
from mpi4py import MPI; print(MPI.Get_library_version())' 2>/dev/null | grep -i "^MPICH Device")
    case "$device" in
        *ucx*ofi*|*ofi*ucx*)
            export MPIR_CVAR_CH4_NETMOD=ofi
            echo "mpi_es: MPIR_CVAR_CH4_NETMOD=ofi (MPICH's UCX address can be cut by srun --mpi=pmi2)" ;;
    esac
fi

if [ -n "$pending" ]; then
    # Asked to stop before anything ran: the last checkpoint (if any) is where the next start
    # resumes, as after a stop.
    echo "mpi_es: stopped before the launch (SIG$pending); nothing ran"
    status=75
else
    "${cmd[@]}" &
    child=$!
    if [ -n "$pending" ]; then send "$pending"; fi      # came between the launch and child=$!
    wait "$child"
    status=$?
    while kill -0 "$child" 2>/dev/null; do      # a trapped signal interrupts `wait`: wait again
        wait "$child"
        status=$?
    done
fi

# 0 finished and 2 (bad config or checkpoint: the same next time) end the job. 75 (stopped by a
# signal with a checkpoint) always requeues. Anything else (a lost rank or node, out of memory,
# a crash) requeues too, up to MAX_RESTARTS times: the next start resumes from the last checkpoint.
max_restarts=${MAX_RESTARTS:-3}
restarts=${SLURM_RESTART_COUNT:-0}
requeue() {
    echo "mpi_es: $1; requeueing job $SLURM_JOB_ID (restart $(( restarts + 1 )))"
    scontrol requeue "$SLURM_JOB_ID" || echo "mpi_es: requeue failed; resubmit to resume" >&2
}
if [ -n "${SLURM_JOB_ID:-}" ]; then
    case "$status" in
        0|2) ;;
        75) requeue "stopped with a checkpoint (exit 75)" ;;
        *)  if [ "$restarts" -lt "$max_restarts" ]; then
                requeue "the job failed with exit $status (a lost rank or node?); restart $(( restarts + 1 )) of at most $max_restarts"
            else
                echo "mpi_es: the job failed with exit $status after $restarts restarts (MAX_RESTARTS=$max_restarts): not requeueing" >&2
            fi ;;
    esac
fi
exit "$status"
