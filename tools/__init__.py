"""Plain typed functions that do ingrain's work: models, datasets, training, sweeps, deploy, serve."""
