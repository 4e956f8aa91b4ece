"""The training application: the loop (Algorithm 1), rollouts, evaluation (Algorithm 2), the run
directory and what a run writes (metrics, media)."""
