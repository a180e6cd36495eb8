#!/usr/bin/env bash
# A one-node SLURM cluster on this machine for the job-script tests, as root and without systemd.
#   bash .ci/slurm-cluster.sh start    install (Debian slurm-wlm + munge) if needed, configure, start
#   bash .ci/slurm-cluster.sh stop     stop the daemons
set -euo pipefail

conf=/etc/slurm/slurm.conf
state=/var/spool/slurmctld
spool=/var/spool/slurmd
logs=/var/log/slurm

install() {
    if command -v slurmctld >/dev/null && command -v munged >/dev/null; then return; fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
}

configure() {
    local host cpus mem
    host=$(hostname)
    cpus=$(nproc)
    mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))
    mkdir -p "$state" "$spool" "$logs" /etc/slurm /run/munge
    cat > "$conf" <<CONF
# Written by .ci/slurm-cluster.sh: one localhost node for mpi_es's job-script tests.
ClusterName=mpies
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
# A requeued job waits for its credential to expire (120 s by default): keep tests quick.
AuthInfo=cred_expire=10
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
MpiDefault=none
JobRequeue=1
ReturnToService=2
StateSaveLocation=$state
SlurmdSpoolDir=$spool
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=$logs/slurmctld.log
SlurmdLogFile=$logs/slurmd.log
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
MinJobAge=600
OverTimeLimit=0
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
CONF
}

start() {
    install
    configure
    stop_daemons quiet
    if ! pgrep -x munged >/dev/null; then
        chown -R munge:munge /run/munge /etc/munge /var/lib/munge /var/log/munge 2>/dev/null || true
        runuser -u munge -- /usr/sbin/munged
    fi
    /usr/sbin/slurmctld
    /usr/sbin/slurmd
    for _ in $(seq 1 60); do
        if sinfo -h -o '%t' 2>/dev/null | grep -qE '^(idle|mix|alloc)'; then
            scontrol update nodename="$(hostname)" state=resume >/dev/null 2>&1 || true
            sinfo
            return 0
        fi
        sleep 0.5
    done
    echo "SLURM did not come up; see $logs" >&2
    tail -20 "$logs"/*.log >&2 || true
    return 1
}

stop_daemons() {
    pkill -x slurmd 2>/dev/null || true
    pkill -x slurmctld 2>/dev/null || true
    for _ in $(seq 1 20); do
        pgrep -x slurmd >/dev/null || pgrep -x slurmctld >/dev/null || return 0
        sleep 0.25
    done
    [ "${1:-}" = quiet ] || echo "daemons still running" >&2
}

case "${1:-start}" in
    start) start ;;
    stop) stop_daemons ;;
    *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
