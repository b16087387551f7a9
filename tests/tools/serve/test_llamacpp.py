"""The llama.cpp runner on the packaged SmolLM2 GGUF: same tokens as llama.cpp's own API, batched decoding."""

from __future__ import annotations

import asyncio

import pytest

from tools.errors import ToolError
from tools.serve.engine import Engine, GenerationJob, SamplingParams, generate
from tools.serve.slot import LoadedModel, RunnerOptions, load_base

pytestmark = pytest.mark.real_model

PROMPTS = ["What is a Python decorator?", "Name three prime numbers.", "Say hello in French.",
           "Explain recursion in one sentence."]


@pytest.fixture(scope="module")
def loaded(smollm2_dir) -> LoadedModel:
    model = load_base("smollm2-135m", RunnerOptions("llamacpp", max_batch=4))
    yield model
    model.runner.close()


def _ids(loaded: LoadedModel, text: str) -> list[int]:
    return list(loaded.tokenizer.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True,
                                                     tokenize=True, return_dict=True)["input_ids"])


def _greedy(runner, ids: list[int], steps: int) -> list[int]:
    handle, logits = runner.start(ids)
    tokens = []
    try:
        for _ in range(steps):
            tokens.append(int(logits.argmax()))
            logits = runner.step([(handle, tokens[-1])])[0]
    finally:
        runner.release(handle)
    return tokens


def test_auto_backend_serves_the_default_base_with_llamacpp(loaded) -> None:
    assert loaded.backend == "llama.cpp" and loaded.model is None
    assert loaded.runner.vocab_size == len(loaded.tokenizer)


def test_greedy_tokens_match_llamacpps_own_completion_api(loaded) -> None:
    from llama_cpp import Llama

    ids = _ids(loaded, PROMPTS[0])
    ours = _greedy(loaded.runner, ids, 24)
    assert loaded.runner.path.name.endswith("-f16.gguf")  # the f16 copy, not the packaged Q4_1
    llm = Llama(model_path=str(loaded.runner.path), n_ctx=1024, n_threads=2, verbose=False)
    theirs = llm.create_completion(prompt=ids, max_tokens=24, temperature=0.0)["choices"][0]["text"]
    text = loaded.tokenizer.decode(ours, skip_special_tokens=True)
    assert text.strip() and text == theirs


def test_batched_decoding_gives_each_sequence_its_own_reply(loaded) -> None:
    runner = loaded.runner
    alone = [_greedy(runner, _ids(loaded, p), 12) for p in PROMPTS]
    handles, logits = zip(*(runner.start(_ids(loaded, p)) for p in PROMPTS), strict=True)
    together: list[list[int]] = [[] for _ in PROMPTS]
    logits = list(logits)
    for _ in range(12):
        tokens = [int(row.argmax()) for row in logits]
        for reply, token in zip(together, tokens, strict=True):
            reply.append(token)
        logits = runner.step(list(zip(handles, tokens, strict=True)))
    for handle in handles:
        runner.release(handle)
    # Batched kernels may round differently from single-sequence ones; the first tokens must agree.
    assert [t[:4] for t in together] == [a[:4] for a in alone]
    assert len({tuple(t) for t in together}) == len(PROMPTS)


def test_sequences_are_limited_and_reused_after_release(loaded) -> None:
    runner = loaded.runner
    handles = [runner.start(_ids(loaded, "hi"))[0] for _ in range(runner.max_batch)]
    with pytest.raises(ToolError, match="sequences are in use"):
        runner.start(_ids(loaded, "hi"))
    for handle in handles:
        runner.release(handle)
    assert _greedy(runner, _ids(loaded, PROMPTS[1]), 4)


def test_engine_decodes_concurrent_jobs_together(loaded) -> None:
    async def scenario() -> tuple[list, int]:
        loop = asyncio.get_running_loop()
        engine = Engine(queue_size=8)
        jobs = [GenerationJob(loaded, _ids(loaded, p), SamplingParams(max_tokens=16, temperature=0), loop)
                for p in PROMPTS]
        for job in jobs:
            engine.submit(job)
        engine.start()
        results = []
        for job in jobs:
            while (item := await job.events.get())[0] != "done":
                pass
            results.append(item[1])
        engine.stop()
        return results, engine.max_live

    results, max_live = asyncio.run(scenario())
    assert max_live == len(PROMPTS)  # all four were live in the same steps
    assert all(r.status == "ok" and r.completion_tokens > 0 for r in results)
    single = generate(loaded, _ids(loaded, PROMPTS[2]), SamplingParams(max_tokens=16, temperature=0))
    assert results[2].text[:10] == single.text[:10]


def test_a_deployed_version_gets_a_gguf_copy_that_llamacpp_serves_like_transformers(tiny_model_dir, tmp_path):
    import shutil

    from tools.deploy import GGUF_FILE, write_serving_gguf
    from tools.serve.slot import load_version

    shutil.copytree(tiny_model_dir, tmp_path / "model")
    assert write_serving_gguf(tmp_path / "model", tmp_path / GGUF_FILE, name="tiny-v1", base_dir=tiny_model_dir)
    row = {"name": "tiny-v1", "kind": "full", "path": str(tmp_path / "model"), "base": str(tiny_model_dir)}
    fast, reference = load_version(row), load_version(row, RunnerOptions("torch"))
    assert (fast.backend, reference.backend) == ("llama.cpp", "torch")
    ids = _ids(reference, "write a summary of the paper")
    params = SamplingParams(max_tokens=16, temperature=0)
    assert generate(fast, ids, params).text == generate(reference, ids, params).text
    fast.runner.close()


def test_the_endpoint_streams_concurrent_clients_through_llamacpp(workspace, tiny_model_dir, tmp_path) -> None:
    import shutil
    import threading

    import httpx
    import openai

    from memory import usage
    from memory.store import Store
    from tools.deploy import GGUF_FILE, write_serving_gguf
    from tools.serve.config import ServeConfig
    from tools.serve.server import bound_port, running_server

    shutil.copytree(tiny_model_dir, tmp_path / "model")
    write_serving_gguf(tmp_path / "model", tmp_path / GGUF_FILE, name="tiny-v1", base_dir=tiny_model_dir)
    with Store.open(workspace) as store:
        store.register_model("tiny-v1", base=str(tiny_model_dir), kind="full", path=str(tmp_path / "model"))
        store.promote("tiny-v1")
    replies: list[str] = []
    with running_server(ServeConfig(port=0, log_content="full"), workspace) as server:
        base = f"http://127.0.0.1:{bound_port(server)}"
        assert httpx.get(base + "/healthz").json()["backend"] == "llama.cpp"
        api = openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0, timeout=60)

        def ask(i: int) -> None:
            chunks = api.chat.completions.create(model="tiny-v1", max_tokens=24, temperature=0, stream=True,
                                                 messages=[{"role": "user", "content": f"summary {i}"}])
            replies.append("".join(c.choices[0].delta.content or "" for c in chunks if c.choices))

        clients = [threading.Thread(target=ask, args=(i,)) for i in range(4)]
        for thread in clients:
            thread.start()
        for thread in clients:
            thread.join()
    assert len(replies) == 4 and all(replies)
    with Store.open(workspace) as store:
        rows = usage.usage_rows(store, limit=None)
    assert len(rows) == 4 and {r["status"] for r in rows} == {"ok"}
    assert all(r["completion_tokens"] > 0 for r in rows)


def test_llamacpp_without_a_gguf_copy_names_the_export_that_writes_it(tiny_model_dir) -> None:
    from tools.serve.slot import load_version

    row = {"name": "tiny-v1", "kind": "full", "path": str(tiny_model_dir), "base": str(tiny_model_dir)}
    with pytest.raises(ToolError, match=r"ingrain models export tiny-v1 --format gguf --out .*model\.gguf"):
        load_version(row, RunnerOptions("llamacpp"))
    assert load_version(row).backend == "torch"  # auto falls back when there is no copy
