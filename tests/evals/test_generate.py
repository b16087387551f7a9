"""Batched generation: the token cap, order restoration, adapters, and the on-disk reply cache."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evals.generate import (
    KV_CACHE_BYTES,
    even_batches,
    generate_replies,
    generate_token_ids,
    load_for_eval,
    model_fingerprint,
    rows_that_fit,
)
from tools.errors import ToolError


def _prompts(n: int) -> list[list[dict[str, str]]]:
    # Different lengths so that length sorting really reorders them.
    return [[{"role": "user", "content": "what is the " + "data " * ((7 * i) % 11) + f"value {i}"}]
            for i in range(n)]


def test_generation_is_cut_at_max_new_tokens(noisy_model_dir):
    loaded = load_for_eval(noisy_model_dir)
    rows = generate_token_ids(loaded, _prompts(4), max_new_tokens=6, batch_size=4)
    assert all(len(r) <= 6 for r in rows)
    # A random model does not emit <|im_end|>, so at least one reply runs into the cap and is cut there.
    assert any(len(r) == 6 for r in rows)
    assert not any(t in loaded.stop_ids for r in rows for t in r)


def test_batched_generation_restores_prompt_order(noisy_model_dir):
    loaded = load_for_eval(noisy_model_dir)
    prompts = _prompts(7)
    batched = generate_token_ids(loaded, prompts, max_new_tokens=5, batch_size=3)
    one_by_one = [generate_token_ids(loaded, [p], max_new_tokens=5, batch_size=1)[0] for p in prompts]
    assert len({tuple(r) for r in one_by_one}) > 3, "replies must differ for the order check to mean anything"
    assert batched == one_by_one


def test_batches_are_as_few_and_even_as_the_cap_allows() -> None:
    assert even_batches(80, 64) == [(0, 40), (40, 80)]
    assert even_batches(36, 64) == [(0, 36)]
    assert even_batches(65, 32) == [(0, 22), (22, 44), (44, 65)]
    assert even_batches(0, 8) == [] and even_batches(5, 1) == [(i, i + 1) for i in range(5)]


def test_a_big_models_batch_is_bounded_by_its_kv_cache(tiny_model_dir):
    model = load_for_eval(tiny_model_dir).model
    config = model.config
    per_token = 2 * config.num_hidden_layers * (config.num_key_value_heads or config.num_attention_heads) \
        * (getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads) * 4
    assert rows_that_fit(model, 100) == KV_CACHE_BYTES // (per_token * 100) >= 64  # a tiny model: any batch
    config.num_hidden_layers *= 4096  # the same shape, as deep as a model whose cache would not fit
    assert 1 <= rows_that_fit(model, 100) < 64


def test_reply_cache_avoids_regeneration(noisy_model_dir, tmp_path):
    prompts = _prompts(3)
    first = generate_replies(noisy_model_dir, prompts, max_new_tokens=4, cache_dir=tmp_path)
    files = list(tmp_path.glob("replies-*.json"))
    assert len(files) == 1 and model_fingerprint(noisy_model_dir) in files[0].name
    # Replace the cached replies: if a second call regenerated, it could not return these.
    data = json.loads(files[0].read_text())
    data["replies"] = {key: f"cached {i}" for i, key in enumerate(data["replies"])}
    files[0].write_text(json.dumps(data))
    again = generate_replies(noisy_model_dir, prompts, max_new_tokens=4, cache_dir=tmp_path)
    assert sorted(again) == ["cached 0", "cached 1", "cached 2"] and again != first
    # Other settings are another cache entry, generated afresh.
    fresh = generate_replies(noisy_model_dir, prompts, max_new_tokens=3, cache_dir=tmp_path)
    assert not any(r.startswith("cached") for r in fresh)
    assert len(list(tmp_path.glob("replies-*.json"))) == 2


def test_adapter_pair_generates_and_has_its_own_id(noisy_model_dir, tmp_path):
    import torch
    from peft import LoraConfig, get_peft_model

    from tools.models import load_model

    torch.manual_seed(0)
    config = LoraConfig(r=4, lora_alpha=64, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    peft_model = get_peft_model(load_model(noisy_model_dir), config)
    adapter = tmp_path / "adapter"
    peft_model.save_pretrained(adapter)
    prompts = _prompts(4)
    base = generate_replies(noisy_model_dir, prompts, max_new_tokens=6)
    tuned = generate_replies((noisy_model_dir, adapter), prompts, max_new_tokens=6)
    assert len(tuned) == 4 and tuned != base
    assert model_fingerprint(noisy_model_dir, adapter) != model_fingerprint(noisy_model_dir)


def test_bad_inputs_explain_the_fix(tiny_model_dir):
    with pytest.raises(ToolError, match="strip the reference reply"):
        generate_replies(tiny_model_dir, [[{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]])
    with pytest.raises(ToolError, match="max_new_tokens"):
        generate_replies(tiny_model_dir, [[{"role": "user", "content": "q"}]], max_new_tokens=0)
    with pytest.raises(ToolError, match="not a model folder"):
        generate_replies(Path("/nonexistent/model"), [[{"role": "user", "content": "q"}]], cache_dir="/tmp")
    assert generate_replies(tiny_model_dir, []) == []


def test_thread_budget_runs_tiny_models_single_threaded_and_restores(tiny_model_dir, monkeypatch):
    import torch

    from evals.generate import eval_threads, thread_budget

    loaded = load_for_eval(tiny_model_dir)
    assert eval_threads(loaded.model) == 1
    before = torch.get_num_threads()
    with thread_budget(loaded.model):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    monkeypatch.setenv("INGRAIN_EVAL_THREADS", "3")
    assert eval_threads(loaded.model) == 3
