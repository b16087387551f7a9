"""`ingrain serve --upstream`: the real endpoint relaying to a real fake upstream, driven by the openai client."""

from __future__ import annotations

import json
import socket
import time

import httpx
import openai
import pytest
from typer.testing import CliRunner

from memory import keys, usage
from tests.support.fake_upstream import TRIAGE_SYSTEM_PROMPT, FakeUpstream, triage_messages
from tests.tools.serve.test_app import client, serving
from tools.errors import ToolError
from tools.serve.config import ServeConfig
from tools.serve.server import build_server

TEACHER = "teacher-large"
UPSTREAM_KEY = "sk-upstream-secret"


@pytest.fixture
def upstream_key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("UPSTREAM_KEY", UPSTREAM_KEY)
    return "UPSTREAM_KEY"


def _chat(text: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": TRIAGE_SYSTEM_PROMPT}, {"role": "user", "content": text}]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_stream_and_non_stream_relay_equal_the_upstream_and_are_logged(store, workspace, upstream_key) -> None:
    (first, _), (second, _) = triage_messages(2, seed=7)
    client_key = keys.create_key(store, "tests")
    with FakeUpstream(require_key=UPSTREAM_KEY) as fake, \
            serving(workspace, upstream=fake.url, upstream_key_env=upstream_key, log_content="full") as base:
        direct = openai.OpenAI(base_url=fake.url, api_key=UPSTREAM_KEY, max_retries=0)
        proxied = client(base, client_key)
        want = direct.chat.completions.create(model=TEACHER, messages=_chat(first))
        got = proxied.chat.completions.create(model=TEACHER, messages=_chat(first))
        assert got.choices[0].message.content == want.choices[0].message.content
        assert (got.model, got.usage.prompt_tokens, got.usage.completion_tokens) == \
            (TEACHER, want.usage.prompt_tokens, want.usage.completion_tokens)
        chunks = list(proxied.chat.completions.create(model=TEACHER, messages=_chat(second), stream=True,
                                                      stream_options={"include_usage": True}))
        streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        direct_text = direct.chat.completions.create(model=TEACHER, messages=_chat(second))
        assert streamed == direct_text.choices[0].message.content and chunks[-1].usage.completion_tokens > 10
        # A client that did not ask for usage does not get the usage chunk the proxy asked for.
        raw = httpx.post(base + "/v1/chat/completions", headers={"Authorization": f"Bearer {client_key}"},
                         json={"model": TEACHER, "messages": _chat(second), "stream": True}, timeout=30)
        events = [line for line in raw.text.split("\n\n") if line]
        assert events[-1] == "data: [DONE]" and raw.headers["content-type"].startswith("text/event-stream")
        assert all(json.loads(e[6:])["choices"] for e in events[:-1])
        assert fake.chat_requests()[-1]["body"]["stream_options"] == {"include_usage": True}
        rated = httpx.post(base + "/v1/feedback", headers={"Authorization": f"Bearer {client_key}"},
                           json={"response_id": got.id, "rating": 1})
        assert rated.status_code == 200
    sent = [r["headers"] for r in fake.chat_requests()]
    assert len(sent) == 5 and all(h["authorization"] == f"Bearer {UPSTREAM_KEY}" for h in sent)
    assert not any(client_key in json.dumps(h) for h in sent)  # the client's key never left the proxy
    rows = {r["id"]: r for r in usage.usage_rows(store)}
    assert len(rows) == 3 and {r["source"] for r in rows.values()} == {"upstream"}
    row = rows[got.id]
    assert (row["model"], row["status"], row["stream"], row["partial"]) == (TEACHER, "ok", False, 0)
    assert (row["prompt_tokens"], row["completion_tokens"]) == (want.usage.prompt_tokens,
                                                                 want.usage.completion_tokens)
    assert row["system_prompt"] == TRIAGE_SYSTEM_PROMPT and row["messages"] == [{"role": "user", "content": first}]
    assert row["response"] == want.choices[0].message.content and row["latency_s"] > 0
    streamed_row = rows[chunks[0].id]
    assert streamed_row["stream"] and streamed_row["response"] == streamed and streamed_row["ttft_s"] > 0
    assert streamed_row["completion_tokens"] == chunks[-1].usage.completion_tokens
    assert streamed_row["finish_reason"] == "stop"


def test_upstream_failures_keep_their_status_or_become_502(store, workspace) -> None:
    with FakeUpstream() as fake, serving(workspace, upstream=fake.url, upstream_timeout_s=0.5) as base:
        api = client(base)

        def post(stream: bool = False) -> httpx.Response:
            return httpx.post(base + "/v1/chat/completions", timeout=30,
                              json={"model": TEACHER, "messages": _chat("hi"), "stream": stream})

        fake.fail_status = 429
        with pytest.raises(openai.RateLimitError) as limited:
            api.chat.completions.create(model=TEACHER, messages=_chat("hi"))
        assert limited.value.body["code"] == "fake_failure"
        fake.fail_status = 503
        failed_stream = post(stream=True)
        assert failed_stream.status_code == 503 and "told to fail" in failed_stream.json()["error"]["message"]
        fake.fail_status, fake.garbage = None, True
        for stream in (False, True):
            garbage = post(stream)
            assert garbage.status_code == 502 and garbage.json()["error"]["code"] == "upstream_bad_response"
        fake.garbage, fake.delay_s = False, 2.0
        slow = post()
        assert slow.status_code == 502 and "did not answer within 0.5 s" in slow.json()["error"]["message"]
        fake.delay_s = 0.0
        assert post().status_code == 200
    with serving(workspace, upstream=f"http://127.0.0.1:{_free_port()}/v1") as base:
        down = httpx.post(base + "/v1/chat/completions", json={"model": TEACHER, "messages": _chat("hi")})
        error = down.json()["error"]
        assert down.status_code == 502 and error["code"] == "upstream_unavailable"
        assert "could not be reached" in error["message"]
        assert [m["id"] for m in httpx.get(base + "/v1/models").json()["data"]] == ["tiny-v1"]
    rows = usage.usage_rows(store)
    assert [r["status"] for r in rows] == ["error", "ok"] + ["error"] * 5  # newest first
    assert all(r["source"] == "upstream" and r["model"] == TEACHER for r in rows)
    assert "upstream 429" in rows[-1]["error"]


def test_a_client_leaving_mid_stream_leaves_a_partial_row(store, workspace) -> None:
    long_answer = " ".join(f"word{i}" for i in range(200))
    with FakeUpstream(answer=lambda messages: long_answer, chunk_delay_s=0.05) as fake, \
            serving(workspace, upstream=fake.url) as base:
        body = {"model": TEACHER, "messages": _chat("tell me everything"), "stream": True}
        with httpx.stream("POST", base + "/v1/chat/completions", json=body, timeout=30) as response:
            lines = response.iter_lines()
            received = [next(lines) for _ in range(6)]
        assert received[0].startswith("data: ")
        deadline = time.monotonic() + 10
        while not usage.usage_rows(store) and time.monotonic() < deadline:
            time.sleep(0.1)
    [row] = usage.usage_rows(store)
    assert (row["status"], row["partial"], row["source"], row["stream"]) == ("client_disconnected", 1,
                                                                             "upstream", True)
    assert row["response"].startswith("word0 word1") and len(row["response"]) < len(long_answer)


def test_models_lists_the_local_version_and_the_upstreams_models(store, workspace) -> None:
    with FakeUpstream(models=(TEACHER, "teacher-small")) as fake, serving(workspace, upstream=fake.url) as base:
        listed = client(base).models.list().data
        assert [(m.id, m.owned_by) for m in listed] == [("tiny-v1", "ingrain"), (TEACHER, "upstream"),
                                                         ("teacher-small", "upstream")]
        client(base).models.list()
        assert len([r for r in fake.requests if r["path"] == "/v1/models"]) == 1  # cached
        # Local names still answer locally with an upstream set.
        local = client(base).chat.completions.create(model="ingrain", messages=_chat("hi"), max_tokens=2)
        assert local.model == "tiny-v1" and not fake.chat_requests()


def test_upstream_options_are_checked_at_start(store, workspace, monkeypatch) -> None:
    with pytest.raises(ToolError, match="--route auto needs --upstream"):
        ServeConfig(route="auto")
    with pytest.raises(ToolError, match="not an http"):
        ServeConfig(upstream="ftp://example.org/v1")
    with pytest.raises(ToolError, match="--route"):
        ServeConfig(upstream="http://127.0.0.1:1/v1", route="sometimes")
    monkeypatch.delenv("NO_SUCH_KEY_VAR", raising=False)
    with pytest.raises(ToolError, match=r"\$NO_SUCH_KEY_VAR, which is not set"):
        build_server(ServeConfig(port=0, upstream="http://127.0.0.1:1/v1", upstream_key_env="NO_SUCH_KEY_VAR"),
                     workspace)


def test_serve_help_shows_the_proxy_flags() -> None:
    from agent.cli import app as cli_app

    shown = CliRunner().invoke(cli_app, ["serve", "--help"], env={"COLUMNS": "200"})
    assert shown.exit_code == 0
    for flag in ("--upstream", "--upstream-key-env", "--route"):
        assert flag in shown.output
    refused = CliRunner().invoke(cli_app, ["serve", "--route", "auto", "--port", "0"])
    assert isinstance(refused.exception, ToolError) and "--route auto needs --upstream" in str(refused.exception)
