"""`python -m mpi_es` from the folder that holds a clone named mpi_es: Python takes the clone's
top folder for the package (a folder without __init__.py) and lands here. Hand over to the
real package, the clone's mpi_es/, so the command works where people stand after `git clone`."""
import os
import sys

clone = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, clone)
for name in [m for m in sys.modules if m == "mpi_es" or m.startswith("mpi_es.")]:
    del sys.modules[name]
from mpi_es.cli import main  # noqa: E402

sys.exit(main())
