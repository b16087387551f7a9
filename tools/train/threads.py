"""How many CPU threads torch should use: the cores that are idle right now.

OpenMP threads spin-wait for each other at every parallel region. When other processes already keep
the cores busy, threads that outnumber the free cores get descheduled in the middle of that wait:
measured on 2 busy cores, a LoRA step ran 12x slower with 2 threads than with 1, and SmolLM2 decoding
2.1 tok/s with 2 threads against 18.6 with 1. Training and evaluation both ask here.
"""

from __future__ import annotations

import os
import time
from pathlib import Path


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity), at least one."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def idle_fraction(interval: float = 0.3) -> float | None:
    """Share of CPU time spent idle over `interval` seconds, from /proc/stat; None where it is unreadable.

    Sampled rather than read from the load average, which lags by a minute and counts waiting threads.
    """
    def sample() -> tuple[int, int]:
        values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        return values[3] + values[4], sum(values[:8])  # idle + iowait, total (without guest time)

    try:
        idle_a, total_a = sample()
        time.sleep(interval)
        idle_b, total_b = sample()
    except (OSError, ValueError, IndexError):
        return None
    return (idle_b - idle_a) / max(1, total_b - total_a)


def pick_threads(requested: int = 0) -> int:
    """`requested` when > 0, else the cores idle right now (at least one, at most the usable cores)."""
    if requested > 0:
        return requested
    cores = usable_cores()
    idle = idle_fraction()
    if idle is None:
        return cores
    return max(1, min(cores, round(cores * idle + 0.25)))
