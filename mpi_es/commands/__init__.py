"""The tools beside training: check, bench (and its scaling model), evaluate, video, plot,
export, info."""
