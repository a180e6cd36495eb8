#!/usr/bin/env bash
# Submit N dependent train jobs for a run longer than the queue's time limit:
#   bash jobs/chain.sh CONFIG.yaml N [mpi_es options...]
# Job k+1 starts after job k ended in any way (afterany) and never beside another job of the
# same name (singleton); each one resumes from the run's checkpoint, and a job that finds the
# run finished exits at once. Extra sbatch options go in SBATCH_ARGS, e.g.
#   SBATCH_ARGS="--time=4:00:00 --ntasks-per-node=64" bash jobs/chain.sh jobs/ant.yaml 6
set -euo pipefail
config=${1:?usage: chain.sh CONFIG.yaml N [mpi_es options...]}
count=${2:?usage: chain.sh CONFIG.yaml N [mpi_es options...]}
shift 2
name=${JOB_NAME:-mpi_es-$(basename "$config" .yaml)}
here=$(cd "$(dirname "$0")" && pwd)
read -r -a extra <<< "${SBATCH_ARGS:-}"

previous=""
for i in $(seq 1 "$count"); do
    dependency=(--dependency=singleton)
    [ -n "$previous" ] && dependency=(--dependency="afterany:$previous,singleton")
    previous=$(sbatch --parsable --job-name="$name" "${dependency[@]}" "${extra[@]}" \
               "$here/train.sbatch" "$config" "$@")
    previous=${previous%%;*}
    echo "submitted job $previous ($i of $count)"
done
