"""Thread choice: an explicit request wins; otherwise the idle cores, read from /proc/stat."""

from __future__ import annotations

import multiprocessing
import time

from tools.train.threads import idle_fraction, pick_threads, usable_cores


def _spin(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


def test_an_explicit_request_is_obeyed():
    assert pick_threads(3) == 3


def test_the_choice_stays_within_the_usable_cores():
    assert 1 <= pick_threads() <= usable_cores()


def test_busy_cores_lower_the_idle_fraction():
    quiet = idle_fraction(0.5)
    assert quiet is not None and 0.0 <= quiet <= 1.0
    spinners = [multiprocessing.Process(target=_spin, args=(3.0,)) for _ in range(usable_cores())]
    for process in spinners:
        process.start()
    try:
        time.sleep(0.5)
        busy = idle_fraction(1.0)
        threads = pick_threads()
    finally:
        for process in spinners:
            process.join()
    assert busy is not None and busy < 0.35  # every core had a spinning process on it
    assert threads == 1
