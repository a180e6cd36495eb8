"""mpi_es: OpenAI Evolution Strategies, parallel over MPI ranks.

The Python API (`mpi_es.load`, `mpi_es.evaluate`, `mpi_es.train`) is in mpi_es.api; it is
imported on first use, so `python -m mpi_es` pins BLAS threads before NumPy loads.
"""

__version__ = "0.1.0"

_API = ("load", "evaluate", "train", "Stopped", "TrainResult", "LoadedPolicy")


def __getattr__(name: str):
    if name in _API:
        from . import api
        return getattr(api, name)
    raise AttributeError(f"module 'mpi_es' has no attribute {name!r}")
