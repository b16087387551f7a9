"""The real endpoint (uvicorn on a loopback port, tiny model) driven by the real `openai` client."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import openai
import pytest

from memory import feedback, keys, usage
from tools.errors import ToolError
from tools.serve.config import ServeConfig
from tools.serve.server import bound_port, build_server, running_server

HI = [{"role": "user", "content": "write a summary of the paper"}]


@contextmanager
def serving(workspace, **overrides) -> Iterator[str]:
    """Base URL of a server on a free loopback port; leaving the block shuts it down and flushes the log."""
    with running_server(ServeConfig(port=0, **overrides), workspace) as server:
        yield f"http://127.0.0.1:{bound_port(server)}"


def client(base: str, key: str = "unused") -> openai.OpenAI:
    return openai.OpenAI(base_url=base + "/v1", api_key=key, max_retries=0, timeout=60)


def test_chat_stream_and_models_with_usage_rows_matching_responses(store, workspace) -> None:
    with serving(workspace) as base:
        api = client(base)
        assert [m.id for m in api.models.list()] == ["tiny-v1"]
        reply = api.chat.completions.create(model="tiny-v1", messages=HI, max_tokens=8, temperature=0)
        assert reply.model == "tiny-v1" and reply.choices[0].finish_reason == "length"
        assert reply.usage.completion_tokens == 8 and reply.usage.prompt_tokens > 10
        chunks = list(api.chat.completions.create(
            model="ingrain", messages=[{"role": "system", "content": "Be brief."}, *HI], max_tokens=8,
            temperature=0, stream=True, stream_options={"include_usage": True}))
        streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
        assert finish == ["length"] and chunks[-1].usage.completion_tokens == 8
        assert streamed == reply.choices[0].message.content  # greedy: same reply either way
        stopped = api.chat.completions.create(model="tiny-v1", messages=HI, max_tokens=8, temperature=0,
                                              stop=["\n"])
        assert stopped.choices[0].finish_reason == "stop" and stopped.choices[0].message.content == ""
        assert httpx.get(base + "/healthz").json()["model"] == "tiny-v1"
    rows = {r["id"]: r for r in usage.usage_rows(store)}
    assert len(rows) == 3
    row = rows[reply.id]
    assert (row["status"], row["model"], row["finish_reason"]) == ("ok", "tiny-v1", "length")
    assert (row["prompt_tokens"], row["completion_tokens"]) == (reply.usage.prompt_tokens, 8)
    assert row["messages"] == HI and row["latency_s"] > 0 and row["params"]["max_tokens"] == 8
    streamed_row = rows[chunks[0].id]
    assert streamed_row["stream"] and streamed_row["system_prompt"] == "Be brief."
    assert streamed_row["completion_tokens"] == chunks[-1].usage.completion_tokens
    assert streamed_row["ttft_s"] is not None
    assert rows[stopped.id]["finish_reason"] == "stop"


def test_keys_are_required_once_one_exists(store, workspace) -> None:
    key = keys.create_key(store, "tests")
    with serving(workspace) as base:
        with pytest.raises(openai.AuthenticationError) as wrong:
            client(base, "ingr-wrong").chat.completions.create(model="tiny-v1", messages=HI, max_tokens=2)
        assert wrong.value.body["code"] == "invalid_api_key"
        missing = httpx.post(base + "/v1/chat/completions", json={"model": "tiny-v1", "messages": HI})
        assert missing.status_code == 401 and missing.json()["error"]["type"] == "authentication_error"
        assert httpx.get(base + "/v1/models").status_code == 401
        assert httpx.get(base + "/healthz").status_code == 200
        reply = client(base, key).chat.completions.create(model="tiny-v1", messages=HI, max_tokens=2)
        assert reply.usage.completion_tokens >= 1
    rows = usage.usage_rows(store)
    assert sorted(r["status"] for r in rows) == ["ok", "unauthorized", "unauthorized"]
    assert [r["key_id"] for r in rows if r["status"] == "ok"] == [keys.verify_key(store, key)["id"]]


def test_a_keyless_server_refuses_to_bind_beyond_loopback(store, workspace) -> None:
    with pytest.raises(ToolError, match="keys create"):
        build_server(ServeConfig(host="0.0.0.0", port=0), workspace)
    with pytest.raises(ToolError, match="log-content"):
        ServeConfig(log_content="everything")


def test_malformed_requests_get_openai_style_errors(store, workspace) -> None:
    url_for = "{}/v1/chat/completions".format
    with serving(workspace) as base:
        url = url_for(base)

        def post(body, **kw) -> httpx.Response:
            raw = body if isinstance(body, bytes) else json.dumps(body).encode()
            return httpx.post(url, content=raw, headers={"content-type": "application/json"}, timeout=30, **kw)

        bad_json = post(b"{not json")
        assert bad_json.status_code == 400 and bad_json.json()["error"]["code"] == "invalid_json"
        no_messages = post({"model": "tiny-v1"})
        assert no_messages.status_code == 400 and "messages" in no_messages.json()["error"]["message"]
        bad_role = post({"model": "tiny-v1", "messages": [{"role": "robot", "content": "hi"}]})
        assert bad_role.status_code == 400 and bad_role.json()["error"]["param"] == "messages.0.role"
        assert post({"model": "tiny-v1", "messages": HI, "temperature": 5}).status_code == 400
        unknown = post({"model": "gpt-4o", "messages": HI})
        assert unknown.status_code == 404 and "tiny-v1" in unknown.json()["error"]["message"]
        too_long = post({"model": "tiny-v1", "messages": [{"role": "user", "content": "paper " * 2000}]})
        body = too_long.json()["error"]
        assert too_long.status_code == 400 and body["code"] == "context_length_exceeded" and "1024" in \
            body["message"]
        with pytest.raises(openai.BadRequestError, match="n=2"):
            client(base).chat.completions.create(model="tiny-v1", messages=HI, n=2)
        route = httpx.get(base + "/v1/nothing-here")
        assert route.status_code == 404 and set(route.json()["error"]) >= {"message", "type", "code"}
    rows = usage.usage_rows(store)
    assert sorted(r["status"] for r in rows) == ["invalid_request"] * 6 + ["not_found"]
    too_long_row = next(r for r in rows if "maximum context length" in r["error"])
    assert too_long_row["prompt_tokens"] > 1024  # a refusal after tokenizing still logs the prompt's length


def test_promote_and_rollback_while_streaming(store, workspace, tiny_model_dir, tmp_path: Path) -> None:
    adapter = _tiny_adapter(tiny_model_dir, tmp_path / "adapter")
    store.register_model("tiny-v2", base=str(tiny_model_dir), kind="adapter", path=str(adapter))
    api = None
    with serving(workspace) as base:
        api = client(base)
        for change, before, after in ((lambda: store.promote("tiny-v2"), "tiny-v1", "tiny-v2"),
                                      (store.rollback, "tiny-v2", "tiny-v1")):
            stream = api.chat.completions.create(model="ingrain", messages=HI, max_tokens=300,
                                                 temperature=0, stream=True)
            chunks = [next(stream), next(stream)]
            change()  # promote/rollback in the store while the reply is still being generated
            chunks += list(stream)
            assert {c.model for c in chunks} == {before}
            assert chunks[-1].choices[0].finish_reason == "length"
            nxt = api.chat.completions.create(model="ingrain", messages=HI, max_tokens=3, temperature=0)
            assert nxt.model == after
            assert [m.id for m in api.models.list()] == [after]
        assert httpx.get(base + "/healthz").json()["swaps"] == 2
    rows = usage.usage_rows(store)
    streams = [r for r in rows if r["stream"]]
    assert all(r["status"] == "ok" and r["completion_tokens"] == 300 for r in streams)
    assert sorted(r["model"] for r in rows) == ["tiny-v1", "tiny-v1", "tiny-v2", "tiny-v2"]


def _tiny_adapter(base_dir: Path, out: Path) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model

    from tools.models import load_model

    model = get_peft_model(load_model(base_dir), LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.5)  # a visibly different model, not an identity adapter
    model.save_pretrained(out)
    return out


def test_a_burst_beyond_the_queue_gets_429_and_every_request_is_logged(store, workspace) -> None:
    total, results = 12, []
    with serving(workspace, queue_size=2) as base:
        barrier = threading.Barrier(total)

        def call() -> None:
            barrier.wait()
            results.append(httpx.post(base + "/v1/chat/completions", timeout=120, json={
                "model": "tiny-v1", "messages": HI, "max_tokens": 200, "temperature": 0}))

        threads = [threading.Thread(target=call) for _ in range(total)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert httpx.get(base + "/healthz").status_code == 200  # the process survived the burst
    codes = sorted(r.status_code for r in results)
    refused = [r for r in results if r.status_code == 429]
    assert set(codes) == {200, 429} and len(codes) == total
    assert all(int(r.headers["retry-after"]) >= 1 and r.json()["error"]["type"] == "rate_limit_error"
               for r in refused)
    rows = usage.usage_rows(store)
    assert len(rows) == total
    assert sum(r["status"] == "queue_full" for r in rows) == len(refused)
    assert sum(r["status"] == "ok" and r["completion_tokens"] == 200 for r in rows) == total - len(refused)


def test_a_client_that_disconnects_mid_stream_stops_generation(store, workspace) -> None:
    with serving(workspace) as base:
        body = {"model": "tiny-v1", "messages": HI, "max_tokens": 1000, "temperature": 0, "stream": True}
        with httpx.stream("POST", base + "/v1/chat/completions", json=body, timeout=60) as response:
            lines = response.iter_lines()
            received = [next(lines) for _ in range(6)]
        assert received[0].startswith("data: ")
        # The worker is free again well before 1000 tokens would have taken.
        after = client(base).chat.completions.create(model="tiny-v1", messages=HI, max_tokens=2)
        assert after.usage.completion_tokens >= 1
    rows = {r["status"]: r for r in usage.usage_rows(store)}
    assert set(rows) == {"client_disconnected", "ok"}
    assert 0 < rows["client_disconnected"]["completion_tokens"] < 1000


def test_feedback_on_a_response_is_recorded(store, workspace) -> None:
    with serving(workspace, log_content="redacted") as base:
        reply = client(base).chat.completions.create(
            model="tiny-v1", max_tokens=3,
            messages=[{"role": "user", "content": "mail me at someone@example.org"}])
        ok = httpx.post(base + "/v1/feedback", json={"response_id": reply.id, "rating": -1,
                                                     "correction": "A better answer."})
        assert ok.status_code == 200 and ok.json()["status"] == "recorded"
        unknown = httpx.post(base + "/v1/feedback", json={"response_id": "chatcmpl-nope", "rating": 1})
        assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "response_not_found"
        assert httpx.post(base + "/v1/feedback", json={"response_id": reply.id, "rating": 5}).status_code == 400
    [row] = feedback.feedback_rows(store, reply.id)
    assert (row["rating"], row["correction"]) == (-1, "A better answer.")
    assert usage.usage_row(store, reply.id)["messages"] == [{"role": "user", "content": "mail me at [email]"}]


def test_a_knowledge_version_is_asked_with_its_excerpts_and_logs_the_question(store, workspace, tiny_model_dir,
                                                                               tmp_path: Path) -> None:
    import shutil

    from tools.data.chunk import Chunk
    from tools.deploy import GROUNDING_DIR
    from tools.grounding import GroundingIndex
    from tools.patterns.embed import wordllama_cache

    folder = tmp_path / "versions" / "tiny-kb"
    shutil.copytree(tiny_model_dir, folder / "model")
    text = "Heron runs the nightly tests at 02:10. Build logs are kept for 45 days. Heron has 96 CPU cores."
    GroundingIndex.build([Chunk(text, "build.md", "Build server", "Build server", 0, 20, "build")],
                         wordllama_cache()).save(folder / GROUNDING_DIR)
    store.register_model("tiny-kb", base=str(tiny_model_dir), kind="full", path=str(folder / "model"))
    asked = [{"role": "user", "content": "How long are build logs retained, in days?"}]
    with serving(workspace) as base:
        api = client(base)
        plain = api.chat.completions.create(model="tiny-v1", messages=asked, max_tokens=2, temperature=0)
        general = api.chat.completions.create(model="tiny-v1", messages=HI, max_tokens=2, temperature=0)
        store.promote("tiny-kb")
        grounded = api.chat.completions.create(model="ingrain", messages=asked, max_tokens=2, temperature=0)
        untouched = api.chat.completions.create(model="ingrain", messages=HI, max_tokens=2, temperature=0)
    assert grounded.model == "tiny-kb"
    # The three sentences and their header went in front of the question; a prompt far from the sources is as sent.
    assert grounded.usage.prompt_tokens > plain.usage.prompt_tokens + 25
    assert untouched.usage.prompt_tokens == general.usage.prompt_tokens
    rows = {r["id"]: r for r in usage.usage_rows(store)}
    assert rows[grounded.id]["messages"] == asked  # the log keeps what the user asked, for pattern mining
