"""The CLI as separate processes: pause without a terminal, approve from another process, kill -9 and resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from memory import Store

INGRAIN = [sys.executable, "-m", "agent.cli"]
GOAL = "Write notes in the house style, lr 1e-2, 2 trials"


def ingrain(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*INGRAIN, *args], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, env=os.environ.copy())


def node_counts(run_id: int) -> dict[str, int]:
    store = Store.open()
    try:
        names = [e["name"] for e in store.events(run_id, kinds=["node_start"])]
    finally:
        store.close()
    return {name: names.count(name) for name in set(names)}


def test_interactive_without_a_terminal_exits_3_then_approve_in_other_processes(style_data, tiny_model_dir) -> None:
    first = ingrain("run", GOAL, "--data", str(style_data), "--base", str(tiny_model_dir),
                    "--policy", "interactive", "--budget-minutes", "20", "--json")
    assert first.returncode == 3, first.stderr
    paused = json.loads(first.stdout)  # --json: one document on stdout, progress went to stderr
    assert paused["gate"] == "plan" and paused["status"] == "paused"
    run_id = str(paused["run_id"])
    assert f"ingrain approve {run_id}" in paused["message"]
    gates = ["plan"]
    result = first
    for _ in range(4):
        result = ingrain("approve", run_id, "--json")
        if result.returncode != 3:
            break
        gates.append(json.loads(result.stdout)["gate"])
    assert result.returncode == 0, result.stderr
    assert gates[:2] == ["plan", "winner"]
    assert json.loads(result.stdout)["status"] == "finished"
    again = ingrain("approve", run_id)
    assert again.returncode == 1 and "not waiting at a gate" in again.stderr
    assert "Traceback" not in again.stderr


def test_kill_9_during_training_then_resume_finishes_without_redoing_nodes(style_data, tiny_model_dir,
                                                                          workspace) -> None:
    proc = subprocess.Popen([*INGRAIN, "run", GOAL, "--data", str(style_data),
                             "--base", str(tiny_model_dir), "--policy", "auto", "--budget-minutes", "25"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    run_dir = workspace.root / "runs" / "1"
    deadline = time.time() + 300
    try:
        while time.time() < deadline:
            if list((run_dir / "train").glob("**/checkpoint-*/trainer_state.json")):
                break
            assert proc.poll() is None, "the run ended before training wrote a checkpoint"
            time.sleep(0.2)
        else:
            raise AssertionError("no training checkpoint within 300 s")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert node_counts(1)["train"] == 1
    resumed = ingrain("resume", "1")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    counts = node_counts(1)
    for node in ("parse_goal", "plan", "gather", "build_data", "sweep"):
        assert counts[node] == 1, counts
    assert counts["train"] == 2
    store = Store.open()
    try:
        decisions = [e["name"] for e in store.events(1, kinds=["decision"])]
    finally:
        store.close()
    assert "resume training" in decisions
    assert Path(run_dir / "report.html").exists()
