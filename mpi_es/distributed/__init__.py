"""Everything between ranks: the world and every MPI call, peer liveness, the watchdog,
signals, cross-rank consistency checks and memory pre-flights."""
