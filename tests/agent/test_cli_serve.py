"""`ingrain serve` as a real process (SIGTERM drains and flushes), and the keys/usage commands."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from agent.cli import app as cli_app
from memory import keys, usage
from memory.store import Store

HI = [{"role": "user", "content": "write a summary of the paper"}]


def test_keys_create_prints_a_working_key_and_usage_json_is_one_document(workspace) -> None:
    runner = CliRunner()
    created = runner.invoke(cli_app, ["keys", "create", "--name", "laptop"])
    assert created.exit_code == 0, created.output
    key = created.stdout.strip().splitlines()[0]
    store = Store.open(workspace)
    assert keys.verify_key(store, key)["name"] == "laptop"
    usage.log_requests(store, [{"id": "r1", "ts": time.time(), "status": "ok", "model": "m",
                                "prompt_tokens": 4, "completion_tokens": 2, "latency_s": 0.1}])
    store.close()
    shown = runner.invoke(cli_app, ["usage", "--json"])
    document = json.loads(shown.stdout)
    assert set(document) == {"requests", "summary"}
    assert [r["id"] for r in document["requests"]] == ["r1"] and document["summary"]["requests"] == 1
    listed = json.loads(runner.invoke(cli_app, ["keys", "list", "--json"]).stdout)
    assert [k["name"] for k in listed["keys"]] == ["laptop"] and key not in json.dumps(listed)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_sigterm_finishes_the_open_stream_then_flushes_the_log(workspace, tiny_model_dir: Path) -> None:
    store = Store.open(workspace)
    store.register_model("tiny-v1", base=str(tiny_model_dir), kind="full", path=str(tiny_model_dir))
    store.promote("tiny-v1")
    port = _free_port()
    code = "import sys; from agent.cli import main; sys.argv = ['ingrain'] + sys.argv[1:]; main()"
    proc = subprocess.Popen([sys.executable, "-c", code, "serve", "--port", str(port), "--log-content", "full"],
                            env={**os.environ}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read().decode()
            time.sleep(0.2)
        body = {"model": "tiny-v1", "messages": HI, "max_tokens": 300, "temperature": 0, "stream": True}
        with httpx.stream("POST", base + "/v1/chat/completions", json=body, timeout=60) as response:
            lines = response.iter_lines()
            first = next(lines)
            proc.send_signal(signal.SIGTERM)
            rest = list(lines)
        assert first.startswith("data: ")
        assert [line for line in rest if line][-1] == "data: [DONE]"  # the open stream ran to its end
        # uvicorn re-raises the signal after its graceful shutdown, so the exit status is "killed by SIGTERM".
        assert proc.wait(60) in (0, -signal.SIGTERM)
    finally:
        if proc.poll() is None:
            proc.kill()
    rows = usage.usage_rows(store)
    assert [(r["status"], r["completion_tokens"]) for r in rows] == [("ok", 300)]
    store.close()
