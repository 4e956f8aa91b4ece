"""The learner: latent state model, SAC, the agent (belief filter + act + updates) and replay."""
