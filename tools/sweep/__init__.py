"""Hyperparameter sweeps: the grid, one trial (train, score, divergence stop), and the runners that execute
the trials, one after another in this process or as a Ray Tune experiment on a cluster."""

from tools.sweep.runner import (
    GRID_CANDIDATES,
    RAY_ADDRESS_ENV,
    TRIAL_NAMES,
    SweepResult,
    default_grid,
    rank,
    ray_address,
    ray_installed,
    requested_overrides,
    run_sweep,
)
from tools.sweep.trial import Trial, TrialDiverged, check_divergence, divergence_watch, run_one, trial_dir

__all__ = [
    "GRID_CANDIDATES", "RAY_ADDRESS_ENV", "TRIAL_NAMES", "SweepResult", "Trial", "TrialDiverged",
    "check_divergence", "default_grid", "divergence_watch", "rank", "ray_address", "ray_installed",
    "requested_overrides", "run_one", "run_sweep", "trial_dir",
]
