"""Shell scripts shipped with the package: job scripts find them with `python -m mpi_es.scripts`,
so they work from any submit directory."""
from pathlib import Path

LAUNCH_SH = Path(__file__).with_name("launch.sh")
