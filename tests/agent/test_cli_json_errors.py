"""`--json` as separate processes: exactly one JSON document on stdout (`{"error": ...}` and a non-zero exit on
failure), whatever else the command, its libraries or its child processes print."""

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


# A command that prints the way libraries and child processes do, registered on the real app and run through
# the real main() in a process of its own.
NOISY = """
import os, subprocess, sys
import typer
from agent.cli import app, main
from agent.cli.common import JsonOpt, emit_json

@app.command()
def noisy(fail: bool = False, as_json: JsonOpt = False) -> None:
    print("step 00001 | progress from a library")
    os.write(1, b"C-level log line\\n")
    subprocess.run(["echo", "from a child process"], check=True)
    if fail:
        from agent.errors import AgentError
        raise AgentError("it broke")
    emit_json({"done": True})

main()
"""


@pytest.mark.parametrize("fail", [False, True])
def test_nothing_but_the_document_reaches_stdout(fail) -> None:
    args = [sys.executable, "-c", NOISY, "noisy", "--json", *(["--fail"] if fail else [])]
    result = subprocess.run(args, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    if fail:
        assert error_document(result)["message"] == "it broke"
    else:
        assert result.returncode == 0 and json.loads(result.stdout) == {"done": True}
    for line in ("progress from a library", "C-level log line", "from a child process"):
        assert line in result.stderr  # moved, not lost


def test_data_validate_report_is_the_only_thing_on_stdout(tmp_path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps({"messages": [{"role": "user", "content": "q"},
                                             {"role": "assistant", "content": "a"}]}) + "\n")
    result = ingrain("data", "validate", str(path), "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["ok"] is True and document["n_valid"] == 1
