"""Training: setup, the generation loop, stopping rules, and the run lifecycle (`run`)."""
