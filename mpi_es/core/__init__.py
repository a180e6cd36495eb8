"""The pure math and data of ES: fitness shaping, the gradient estimate, optimizers and
per-parameter state, observation statistics, the noise table, slots, parameter blocks.

Nothing here knows about MPI, environments or files."""
