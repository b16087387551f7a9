"""`--json` failures as separate processes: exactly one JSON document on stdout, `{"error": ...}`, non-zero exit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from memory import Store

INGRAIN = [sys.executable, "-m", "agent.cli"]


def ingrain(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*INGRAIN, *args], capture_output=True, text=True, timeout=300,
                          stdin=subprocess.DEVNULL, env=os.environ.copy())


def error_document(result: subprocess.CompletedProcess[str]) -> dict:
    """The one document on stdout (json.loads fails on anything before or after it), checked for its shape."""
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    document = json.loads(result.stdout)
    assert list(document) == ["error"], document
    error = document["error"]
    assert set(error) == {"type", "message", "exit_code"} and error["message"]
    assert error["exit_code"] == result.returncode
    return error


@pytest.fixture
def held_run() -> Iterator[tuple[int, int]]:
    """A run claimed by another live process (a `sleep`), as while another terminal drives it: (run id, pid)."""
    holder = subprocess.Popen(["sleep", "120"])
    try:
        with Store.open() as store:
            run_id = store.create_run("Write notes in the house style", "interactive")
            assert store.claim_run(run_id, pid=holder.pid)
        yield run_id, holder.pid
    finally:
        holder.kill()
        holder.wait()


def test_empty_goal() -> None:
    error = error_document(ingrain("run", "", "--json"))
    assert error["type"] == "AgentError" and "goal is empty" in error["message"]


def test_unknown_policy() -> None:
    error = error_document(ingrain("run", "goal", "--policy", "bogus", "--json"))
    assert "Unknown policy 'bogus'" in error["message"]
    with Store.open() as store:
        assert store.runs() == []  # refused before a run was created


def test_approving_a_run_that_is_not_paused() -> None:
    with Store.open() as store:
        run_id = store.create_run("Write notes in the house style", "interactive")
    error = error_document(ingrain("approve", str(run_id), "--json"))
    assert "not waiting at a gate" in error["message"]
    with Store.open() as store:
        assert store.run(run_id)["status"] == "created"


def test_approving_or_resuming_a_run_another_live_process_holds(held_run) -> None:
    run_id, pid = held_run
    approve = error_document(ingrain("approve", str(run_id), "--json"))
    assert "not waiting at a gate (it is running)" in approve["message"]
    resume = error_document(ingrain("resume", str(run_id), "--json"))
    assert f"already being continued by process {pid}" in resume["message"]
    with Store.open() as store:
        run = store.run(run_id)
    assert (run["status"], run["owner_pid"]) == ("running", pid)  # the holder keeps it


def test_validating_a_missing_dataset(tmp_path) -> None:
    error = error_document(ingrain("data", "validate", str(tmp_path / "missing.jsonl"), "--json"))
    assert error["type"] == "ToolError" and "does not exist" in error["message"]


@pytest.mark.parametrize(("args", "expected"), [
    (["run", "--json"], "Missing argument"),
    (["report", "1", "--json"], "No such option: --json"),
    (["runs", "--policy", "auto", "--json"], "No such option: --policy"),
])
def test_usage_errors(args, expected) -> None:
    error = error_document(ingrain(*args))
    assert error["type"] == "usage" and error["exit_code"] == 2 and expected in error["message"]


def test_usage_errors_without_json_show_typers_panel_not_a_traceback() -> None:
    result = ingrain("run")
    assert result.returncode == 2 and "Missing argument" in result.stderr and not result.stdout
    assert "Traceback" not in result.stderr
