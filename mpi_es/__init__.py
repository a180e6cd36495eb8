"""mpi_es: OpenAI Evolution Strategies, parallel over MPI ranks."""

__version__ = "0.1.0"
