#!/usr/bin/env bash
# A private two-node SLURM on this machine for the job-script tests, as root, without systemd.
#   bash .ci/slurm-cluster.sh start    install (Debian slurm-wlm + munge) if needed, configure, start
#   bash .ci/slurm-cluster.sh stop     stop the daemons this script started (by their pid files)
#   bash .ci/slurm-cluster.sh conf     print the path of its slurm.conf (export SLURM_CONF=...)
#
# Nodes n1 and n2 are two slurmd daemons on this host, each with its own port and spool. The
# cluster lives in its own directory (config, munge socket and key, state, logs) with its own
# ports, chosen from this checkout's path: it never touches /etc/slurm, a system munged or
# another checkout's test cluster. Commands reach it through SLURM_CONF.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
tag=$(printf '%s' "$repo" | sha1sum | cut -c1-8)
dir=${MPI_ES_SLURM_DIR:-${TMPDIR:-/tmp}/mpi_es-slurm-$tag}
conf=$dir/slurm.conf
# Ports 20000-29999 + 3 per checkout: away from SLURM's defaults (6817-6819).
base=$(( 20000 + (16#${tag:0:4} % 3000) * 3 ))

install() {
    # libpmi2-0: Intel MPI under srun --mpi=pmi2; libpmix-dev: srun --mpi=pmix (Open MPI), whose
    # SLURM plugin loads libpmix.so at start
    if command -v slurmctld >/dev/null && command -v munged >/dev/null \
        && ldconfig -p | grep -q libpmi2.so.0 \
        && [ -n "$(find /usr/lib -name libpmix.so -print -quit 2>/dev/null)" ]; then return; fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge libpmi2-0 libpmix-dev \
        >/dev/null
}

configure() {
    local host cpus mem first
    host=$(hostname)
    cpus=$(nproc)
    mem=$(( ($(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024) / 2 ))
    mkdir -p "$dir"/{state,spool-n1,spool-n2,munge}
    if [ ! -s "$dir/munge/munge.key" ]; then
        dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
        chmod 0400 "$dir/munge/munge.key"
    fi
    # Job ids name MPICH's shared-memory segments under srun (/dev/shm/mpich_shm_*), and a job
    # killed by a test leaves its segment behind: a later job with the same id, of this cluster
    # after a restart or of another checkout's, would attach to it and fail in MPI_Init. Each
    # start numbers its jobs from its own point in time instead of from 1.
    first=$(( ($(date +%s) % 6000000) * 10 + 1 ))
    cat > "$conf" <<CONF
# Written by .ci/slurm-cluster.sh: two nodes on this host for mpi_es's job-script tests.
ClusterName=mpies$tag
FirstJobId=$first
SlurmctldHost=$host
SlurmctldPort=$base
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# its own munged; a requeued job waits for its credential to expire: keep tests quick
AuthInfo=socket=$dir/munge/munge.socket,cred_expire=10
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
MpiDefault=none
JobRequeue=1
ReturnToService=2
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool-%n
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd-%n.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd-%n.log
SlurmctldTimeout=30
SlurmdTimeout=10
InactiveLimit=0
KillWait=5
MinJobAge=600
OverTimeLimit=0
NodeName=n1 NodeHostname=$host NodeAddr=127.0.0.1 Port=$(( base + 1 )) CPUs=$cpus RealMemory=$mem State=UNKNOWN
NodeName=n2 NodeHostname=$host NodeAddr=127.0.0.1 Port=$(( base + 2 )) CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=n1,n2 Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
CONF
    # Each slurmd reads its own copy, beside an mpi.conf of its own: SLURM's PMIx plugin names
    # its client directory by job and step only, so two nodes on one host would collide on it.
    for node in n1 n2; do
        mkdir -p "$dir/conf-$node" "$dir/pmix-$node"
        cp "$conf" "$dir/conf-$node/slurm.conf"
        echo "PMIxCliTmpDirBase=$dir/pmix-$node" > "$dir/conf-$node/mpi.conf"
    done
}

running() {   # is the daemon of this pid file alive?
    [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}

start() {
    install
    configure
    stop_daemons quiet
    export SLURM_CONF=$conf
    /usr/sbin/munged --force --socket="$dir/munge/munge.socket" --key-file="$dir/munge/munge.key" \
        --pid-file="$dir/munge/munged.pid" --log-file="$dir/munge/munged.log" \
        --seed-file="$dir/munge/munged.seed"
    /usr/sbin/slurmctld -c -f "$conf"      # -c: no jobs from an earlier start, ids from FirstJobId
    /usr/sbin/slurmd -f "$dir/conf-n1/slurm.conf" -N n1
    /usr/sbin/slurmd -f "$dir/conf-n2/slurm.conf" -N n2
    for _ in $(seq 1 60); do
        if [ "$(sinfo -h -o '%t %D' 2>/dev/null | awk '/^(idle|mix|alloc)/ {n += $2} END {print n+0}')" = 2 ]; then
            sinfo
            echo "export SLURM_CONF=$conf"
            return 0
        fi
        scontrol update nodename=n1,n2 state=resume >/dev/null 2>&1 || true
        sleep 0.5
    done
    echo "SLURM did not come up; see $dir" >&2
    tail -20 "$dir"/*.log >&2 || true
    return 1
}

stop_daemons() {
    local pidfile
    for pidfile in "$dir"/slurmd-n1.pid "$dir"/slurmd-n2.pid "$dir"/slurmctld.pid "$dir"/munge/munged.pid; do
        running "$pidfile" && kill "$(cat "$pidfile")" 2>/dev/null || true
    done
    for _ in $(seq 1 40); do
        local alive=0
        for pidfile in "$dir"/slurmd-n1.pid "$dir"/slurmd-n2.pid "$dir"/slurmctld.pid "$dir"/munge/munged.pid; do
            running "$pidfile" && alive=1
        done
        [ "$alive" = 0 ] && return 0
        sleep 0.25
    done
    [ "${1:-}" = quiet ] || echo "daemons still running" >&2
}

case "${1:-start}" in
    start) start ;;
    stop) stop_daemons ;;
    conf) echo "$conf" ;;
    *) echo "usage: $0 start|stop|conf" >&2; exit 2 ;;
esac
