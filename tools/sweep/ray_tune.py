"""Run a sweep's trials as one Ray Tune experiment: one Tune trial per grid entry, a GPU each where there are GPUs."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

from tools.errors import ToolError
from tools.sweep.trial import Trial, run_one

# One CPU trainer keeps about two cores busy (see tools.train.threads.pick_threads); more trials than that per two
# cores only make each one slower.
CPUS_PER_TRIAL = 2
# Trials exchange only a few kB of results; Ray would otherwise reserve a third of the memory for objects.
LOCAL_OBJECT_STORE_BYTES = 256 * 1024**2


def trial_resources(cluster: dict[str, float], n_trials: int, *, largest_node_cpus: float | None = None
                    ) -> tuple[dict[str, float], int]:
    """Resources each trial asks for, and how many trials may run at once, on a cluster with `cluster` resources.

    With GPUs every trial gets one, so k trials run on k GPUs at once; without, CPU trials run one at a time
    unless the cluster has room for several `CPUS_PER_TRIAL`-core trainers.
    """
    gpus = int(cluster.get("GPU", 0))
    if gpus >= 1:
        return {"cpu": 1, "gpu": 1}, max(1, min(gpus, n_trials))
    cpus = int(cluster.get("CPU", 1))
    # A trial must fit on one node, however many CPUs the whole cluster adds up to.
    per_trial = max(1, min(CPUS_PER_TRIAL, int(largest_node_cpus or cpus), cpus))
    return {"cpu": per_trial}, max(1, min(n_trials, cpus // per_trial))


def connect(address: str, **init_kwargs: Any) -> bool:
    """Join the Ray cluster at `address` ("local" starts one in this process); True when this call started Ray."""
    # Ray reports usage statistics over the network unless told not to; a sweep has no business doing that.
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if address == "local":
        # A single-machine cluster: bind its processes to the loopback address, not the machine's network one.
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    try:
        import ray
    except ImportError as exc:
        raise ToolError(f"ray is not importable ({exc}): pip install 'ingrain-agent[ray]', or unset "
                        "INGRAIN_RAY_ADDRESS to run the sweep here, one trial after another.") from exc
    if ray.is_initialized():
        return False
    options = ({"include_dashboard": False, "object_store_memory": LOCAL_OBJECT_STORE_BYTES, **init_kwargs}
               if address == "local" else init_kwargs)
    try:
        ray.init(address=address, configure_logging=False, **options)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        raise ToolError(f"Could not reach the Ray cluster at {address!r}: {exc}. Start it (`ray start --head`), "
                        "fix INGRAIN_RAY_ADDRESS (ray://HOST:10001, auto or local), or unset it to sweep "
                        "here.") from exc
    return True


def run_trials_on_ray(trials: list[Trial], run_trial: Callable[[Trial], Any],
                      score_fn: Callable[[Trial], float | None] | None, address: str) -> list[Trial]:
    """Run `trials` as Ray Tune trials calling the same `run_trial`/`score_fn`; returns them filled in, in order.

    The functions are pickled to Ray workers, so whatever they read and write (base model, data, the run
    directory) must be at the same paths there: one machine, or a file system the cluster shares.
    """
    # Ray prints its progress on stdout, which belongs to `ingrain ... --json`.
    with contextlib.redirect_stdout(sys.stderr):
        return _run(trials, run_trial, score_fn, address)


def _run(trials: list[Trial], run_trial: Callable[[Trial], Any],
         score_fn: Callable[[Trial], float | None] | None, address: str) -> list[Trial]:
    started_here = connect(address)
    try:
        import ray

        try:
            from ray import tune
        except ImportError as exc:
            raise ToolError(f"Ray Tune is not importable ({exc}): pip install 'ingrain-agent[ray]' "
                            "(ray[tune]), or unset INGRAIN_RAY_ADDRESS to sweep here.") from exc
        nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
        resources, concurrency = trial_resources(
            ray.cluster_resources(), len(trials), largest_node_cpus=max((n.get("CPU", 0) for n in nodes), default=None))
        # Tune would otherwise move each trial into its own directory and break relative paths.
        os.environ.setdefault("RAY_CHDIR_TO_TRIAL_DIR", "0")
        # With verbose=0 the classic reporter stays silent; the newer one still prints tables.
        os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
        trainable = tune.with_resources(
            tune.with_parameters(_tune_trial, trials=[t.to_dict() for t in trials], run_trial=run_trial,
                                 score_fn=score_fn), resources)
        run_config: dict[str, Any] = {"name": "ingrain-sweep", "verbose": 0,
                                      "failure_config": tune.FailureConfig(max_failures=0)}
        with tempfile.TemporaryDirectory(prefix="ingrain-ray-") as storage:
            if not address.startswith("ray://"):
                # Tune's experiment state is of no use after the sweep: keep it out of ~/ray_results.
                run_config["storage_path"] = storage
            # reuse_actors: a worker imports torch and transformers once for all the trials it runs, not per trial.
            tuner = tune.Tuner(trainable, param_space={"index": tune.grid_search(list(range(len(trials))))},
                               tune_config=tune.TuneConfig(num_samples=1, max_concurrent_trials=concurrency,
                                                           reuse_actors=True),
                               run_config=tune.RunConfig(**run_config))
            results = tuner.fit()
            return _collect(trials, results)
    finally:
        if started_here:
            import ray

            ray.shutdown()


def _tune_trial(config: dict[str, Any], trials: list[dict[str, Any]], run_trial: Callable[[Trial], Any],
                score_fn: Callable[[Trial], float | None] | None) -> None:
    """The Tune trainable: one grid entry through the same `run_one` as a sequential sweep."""
    from ray import tune

    trial = Trial(**trials[config["index"]])
    started = time.time()
    try:
        run_one(trial, run_trial, score_fn)
    except Exception as exc:  # a crash in one trial must not take the finished ones with it
        trial.status, trial.error = "failed", f"{type(exc).__name__}: {exc}"
        trial.wall_seconds = round(time.time() - started, 1)
    tune.report({"trial": json.dumps(trial.to_dict(), default=str), "ok": trial.status == "ok"})


def _collect(trials: list[Trial], results: Any) -> list[Trial]:
    """The trials as their Tune runs reported them; one that reported nothing is failed with Ray's error."""
    done = [Trial(**{**t.to_dict(), "status": "failed", "error": "the Ray trial reported no result"})
            for t in trials]
    for result in results:
        index = (result.config or {}).get("index")
        if index is None:
            continue
        reported = (result.metrics or {}).get("trial")
        if reported:
            done[index] = Trial(**json.loads(reported))
        elif result.error is not None:
            done[index].error = f"the Ray trial failed: {str(result.error).strip().splitlines()[-1][:500]}"
    return done
