"""The token loop and the worker queue on the tiny random model."""

from __future__ import annotations

import asyncio
import time

import pytest

from tools.serve.engine import Engine, GenerationJob, QueueFull, SamplingParams, _safe_end, generate
from tools.serve.slot import LoadedModel, load_version


@pytest.fixture(scope="module")
def loaded(tiny_model_dir) -> LoadedModel:
    import torch

    # As the server does: one thread per step is much faster for a tiny model on shared cores.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield load_version({"name": "tiny", "kind": "full", "path": str(tiny_model_dir), "base": "tiny"})
    torch.set_num_threads(previous)


def _prompt(loaded: LoadedModel, text: str = "write a summary of the paper") -> list[int]:
    return list(loaded.tokenizer.apply_chat_template([{"role": "user", "content": text}],
                                                     add_generation_prompt=True, tokenize=True,
                                                     return_dict=True)["input_ids"])


def test_greedy_generation_matches_transformers_generate_and_stops_at_max_tokens(loaded) -> None:
    import torch

    ids = _prompt(loaded)
    pieces: list[str] = []
    result = generate(loaded, ids, SamplingParams(max_tokens=12, temperature=0), emit=pieces.append)
    with torch.inference_mode():
        reference = loaded.model.generate(torch.tensor([ids]), max_new_tokens=12, do_sample=False)
    expected = loaded.tokenizer.decode(reference[0, len(ids):], skip_special_tokens=True)
    assert result.finish_reason == "length" and result.status == "ok"
    assert result.completion_tokens == 12 and result.prompt_tokens == len(ids)
    assert result.text == expected == "".join(pieces)
    assert result.ttft_s is not None and result.finished >= result.started


def test_stop_string_ends_the_reply_and_is_not_returned(loaded) -> None:
    ids = _prompt(loaded)
    full = generate(loaded, ids, SamplingParams(max_tokens=10, temperature=0)).text
    assert full.startswith("\n\n")  # the tiny model's greedy reply is newlines
    pieces: list[str] = []
    result = generate(loaded, ids, SamplingParams(max_tokens=10, temperature=0, stop=("\n\n",)),
                      emit=pieces.append)
    assert result.finish_reason == "stop" and result.text == "" and "".join(pieces) == ""
    assert result.completion_tokens < 10


def test_safe_end_holds_back_possible_stop_prefixes_and_half_characters() -> None:
    assert _safe_end("hello wor", ("world",)) == len("hello ")
    assert _safe_end("hello", ("xyz",)) == 5
    assert _safe_end("abc\ufffd", ()) == 3


def test_sampling_is_reproducible_with_a_seed_and_respects_top_p(loaded) -> None:
    ids = _prompt(loaded)
    params = SamplingParams(max_tokens=15, temperature=1.0, top_p=0.9, seed=7)
    a, b = generate(loaded, ids, params), generate(loaded, ids, params)
    assert a.text == b.text and a.completion_tokens == b.completion_tokens
    tiny_p = generate(loaded, ids, SamplingParams(max_tokens=15, temperature=1.0, top_p=1e-6, seed=3))
    greedy = generate(loaded, ids, SamplingParams(max_tokens=15, temperature=0))
    assert tiny_p.text == greedy.text  # a vanishing top_p keeps only the most likely token


def test_cancel_stops_generation_and_reports_the_disconnect(loaded) -> None:
    ids = _prompt(loaded)
    pieces: list[str] = []
    result = generate(loaded, ids, SamplingParams(max_tokens=500, temperature=0), emit=pieces.append,
                      cancelled=lambda: len(pieces) >= 3)
    assert result.status == "client_disconnected" and result.finish_reason is None
    assert result.completion_tokens == 3 and result.text == "".join(pieces)


def test_engine_runs_jobs_in_order_and_refuses_beyond_its_queue(loaded) -> None:
    async def scenario() -> tuple[list[str], int]:
        loop = asyncio.get_running_loop()
        engine = Engine(queue_size=2, threads=1)
        done: list[str] = []
        jobs = [GenerationJob(loaded, _prompt(loaded), SamplingParams(max_tokens=40, temperature=0), loop,
                              on_done=lambda job, result: done.append(job.id)) for _ in range(3)]
        for job in jobs[:2]:
            engine.submit(job)
        with pytest.raises(QueueFull):
            engine.submit(jobs[2])  # the worker is not started, so two jobs fill the queue
        engine.start()
        results = []
        for job in jobs[:2]:
            while (item := await job.events.get())[0] != "done":
                pass
            results.append(item[1])
        engine.stop()
        assert [r.completion_tokens for r in results] == [40, 40]
        return done, engine.completed

    done, completed = asyncio.run(scenario())
    assert len(done) == 2 and completed == 2


def test_a_job_cancelled_while_queued_never_runs(loaded) -> None:
    async def scenario():
        engine = Engine(queue_size=4)
        job = GenerationJob(loaded, _prompt(loaded), SamplingParams(max_tokens=400, temperature=0),
                            asyncio.get_running_loop())
        job.cancel()
        engine.submit(job)
        started = time.monotonic()
        engine.start()
        while (item := await job.events.get())[0] != "done":
            pass
        engine.stop()
        return item[1], time.monotonic() - started

    result, seconds = asyncio.run(scenario())
    assert result.status == "client_disconnected" and result.completion_tokens == 0 and seconds < 5
