"""Pairwise judging against a real OpenAI-shaped HTTP server on 127.0.0.1."""

from __future__ import annotations

import json
import re
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from evals.judge import JudgeConfig, judge_pairwise, parse_choice

PROMPTS = ["Summarise paper 1", "Summarise paper 2", "Summarise paper 3"]
BASE = ["a plain answer", "another plain answer", "plain again"]
TUNED = ["Summary: structured answer", "Summary: structured two", "Summary: structured three"]


def prefers_summary_label(user_text: str) -> str:
    """A fair judge: picks whichever reply carries the 'Summary:' label, wherever it is placed."""
    first = re.search(r"Reply A:\n(.*?)\n\nReply B:", user_text, re.DOTALL).group(1)
    second = re.search(r"Reply B:\n(.*?)\n\nWhich reply", user_text, re.DOTALL).group(1)
    if ("Summary:" in first) == ("Summary:" in second):
        return "TIE"
    return "A" if "Summary:" in first else "B"


@contextmanager
def judge_server(decide: Callable[[str], str]) -> Iterator[tuple[str, list[dict]]]:
    requests: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            requests.append(body)
            user = next(m["content"] for m in body["messages"] if m["role"] == "user")
            payload = json.dumps({
                "id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": body["model"],
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": decide(user)}}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 1, "total_tokens": 11},
            }).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", requests
    finally:
        server.shutdown()
        server.server_close()


def test_fair_judge_prefers_tuned_in_both_orders():
    with judge_server(prefers_summary_label) as (url, requests):
        result = judge_pairwise(PROMPTS, BASE, TUNED, config=JudgeConfig(base_url=url, model="judge-x"))
    assert result.available and result.tuned_wins == 3 and result.base_wins == 0
    assert result.tuned_win_rate == 1.0 and result.position_consistency == 1.0
    assert len(requests) == 6 and {r["model"] for r in requests} == {"judge-x"}
    assert json.loads(json.dumps(result.to_dict()))["tuned_win_rate"] == 1.0


def test_position_biased_judge_cancels_out_to_ties():
    with judge_server(lambda _: "A") as (url, _requests):
        result = judge_pairwise(PROMPTS, BASE, TUNED, config=JudgeConfig(base_url=url))
    assert result.available and result.ties == 3 and result.tuned_win_rate == 0.5
    assert result.position_consistency == 0.0


def test_judge_reads_its_endpoint_from_the_environment(monkeypatch):
    with judge_server(prefers_summary_label) as (url, requests):
        monkeypatch.setenv("OPENAI_BASE_URL", url)
        monkeypatch.setenv("INGRAIN_AGENT_MODEL", "env-judge")
        result = judge_pairwise(PROMPTS[:1], BASE[:1], TUNED[:1])
    assert result.tuned_wins == 1 and requests[0]["model"] == "env-judge"


def test_unconfigured_judge_returns_a_reason():
    result = judge_pairwise(PROMPTS, BASE, TUNED)
    assert not result.available and "OPENAI_BASE_URL" in result.reason
    assert result.tuned_win_rate is None


def test_endpoint_down_returns_a_reason():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = judge_pairwise(PROMPTS, BASE, TUNED, config=JudgeConfig(base_url=f"http://127.0.0.1:{port}/v1",
                                                                     timeout=2))
    assert not result.available and "failed after 0 of 3" in result.reason


def test_parse_choice_reads_loose_answers():
    assert parse_choice(" b.") == "B" and parse_choice("Tie") == "TIE" and parse_choice("Answer: A") == "A"
    assert parse_choice("both are fine") == "TIE"
