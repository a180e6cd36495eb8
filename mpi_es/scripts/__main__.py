"""`python -m mpi_es.scripts` prints where launch.sh is installed (for the job scripts)."""
from . import LAUNCH_SH

print(LAUNCH_SH)
