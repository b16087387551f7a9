"""The live bars a run shows for the tools' progress callbacks: one per stage, with count, rate and ETA, on stderr."""

from __future__ import annotations

import threading

import pytest

from agent.progress import live_progress


def test_each_stage_gets_a_bar_with_its_count_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    with live_progress(True, "knowledge") as progress:
        assert progress is not None
        for done in range(4):
            progress("generate", done, 3)
        # the teacher reports from worker threads
        workers = [threading.Thread(target=progress, args=("teacher", n, 8)) for n in range(1, 9)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        progress("teacher", 8, 8)
    captured = capsys.readouterr()
    assert captured.out == ""  # stdout belongs to --json
    lines = {line.split("━")[0].strip(): line for line in captured.err.splitlines() if "━" in line}
    assert set(lines) == {"knowledge generate", "knowledge teacher"}
    assert "3/3" in lines["knowledge generate"] and "8/8" in lines["knowledge teacher"]
    assert "/s" in lines["knowledge teacher"] and "eta" in lines["knowledge teacher"]
    assert str(progress) == "live progress (knowledge)"  # how it reads in a trace event


def test_no_bars_when_the_run_shows_no_progress(capsys: pytest.CaptureFixture[str]) -> None:
    with live_progress(False, "gather") as progress:
        assert progress is None
    assert capsys.readouterr().err == ""
