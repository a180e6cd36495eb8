"""The run directory: checkpoints (and the careful reading of files from elsewhere), log.csv,
the lock, what a run writes, resume, TensorBoard."""
