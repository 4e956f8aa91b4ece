"""Task environments: the TaskEnv protocol and the simulated task families."""
