"""Batched chat generation for evaluation: left padding, KV cache, hard token cap, on-disk reply cache."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memory.workspace import atomic_write_text
from tools.errors import ToolError
from tools.models import adapter_tokenizer_dir, load_merged, load_model, load_tokenizer
from tools.train.threads import pick_threads

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

Message = dict[str, str]
_FINGERPRINT_SUFFIXES = (".safetensors", ".bin", ".json", ".model", ".txt", ".jinja")


@dataclass
class LoadedModel:
    """A model and tokenizer in memory, with the id that keys cached replies."""

    model: PreTrainedModel
    """Causal LM in eval mode (a LoRA adapter, if any, is merged in)."""
    tokenizer: PreTrainedTokenizerBase
    """Tokenizer with a chat template and a pad token."""
    model_id: str
    """Content fingerprint of the weight and config files; changes when the weights change."""
    label: str = ""
    """Human-readable name (folder, or base + adapter)."""
    stop_ids: list[int] = field(default_factory=list)
    """Token ids that end a reply (EOS and `<|im_end|>`)."""


def model_fingerprint(*folders: str | Path) -> str:
    """A cheap id of model folders from file names, sizes and modification times (no hashing of GBs)."""
    digest = hashlib.sha256()
    for folder in folders:
        folder = Path(folder).resolve()
        if not folder.is_dir():
            raise ToolError(f"{folder} is not a model folder: pass a Hugging Face model folder or a "
                            "(base folder, adapter folder) pair.")
        for path in sorted(folder.iterdir()):
            if path.is_file() and path.suffix in _FINGERPRINT_SUFFIXES:
                stat = path.stat()
                digest.update(f"{path.name}:{stat.st_size}:{stat.st_mtime_ns};".encode())
    return digest.hexdigest()[:20]


def load_for_eval(spec: Any) -> LoadedModel:
    """Load a model folder, or a (base folder, PEFT adapter folder) pair merged into one model."""
    if isinstance(spec, LoadedModel):
        return spec
    if isinstance(spec, tuple):
        base_dir, adapter_dir = (Path(p) for p in spec)
        model_id = model_fingerprint(base_dir, adapter_dir)
        tokenizer = load_tokenizer(adapter_tokenizer_dir(base_dir, adapter_dir))
        # Merging removes the per-layer LoRA matmuls, which dominate small-model decode time on a CPU.
        model = load_merged(base_dir, adapter_dir)
        label = f"{base_dir.name}+{adapter_dir.name}"
    else:
        folder = Path(spec)
        model_id = model_fingerprint(folder)
        tokenizer = load_tokenizer(folder)
        model = load_model(folder)
        label = folder.name
    model.eval()
    return LoadedModel(model, tokenizer, model_id, label, stop_token_ids(tokenizer))


def stop_token_ids(tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """EOS plus ChatML's `<|im_end|>` when the vocabulary has it: either one ends a reply."""
    ids = {tokenizer.eos_token_id}
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    if isinstance(im_end, int) and im_end != tokenizer.unk_token_id:
        ids.add(im_end)
    return sorted(i for i in ids if i is not None)


def render_prompt(tokenizer: PreTrainedTokenizerBase, messages: Sequence[Message]) -> str:
    """The chat-templated prompt text, ending with the assistant header the reply follows."""
    if not messages:
        raise ToolError("An evaluation prompt has no messages: "
                        "every hold-out example needs at least a user turn.")
    if messages[-1]["role"] == "assistant":
        raise ToolError("A prompt ends with an assistant message: strip the reference reply "
                        "before generating (pass `example['messages'][:-1]`).")
    return tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)


def prompts_hash(prompt: Sequence[Message]) -> str:
    text = json.dumps(list(prompt), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def _settings_key(max_new_tokens: int, temperature: float, seed: int) -> str:
    return f"n{max_new_tokens}-t{temperature:g}-s{seed}"


def _cache_file(cache_dir: Path, model_id: str, settings: str) -> Path:
    return Path(cache_dir) / f"replies-{model_id}-{settings}.json"


def _read_cache(path: Path) -> dict[str, str]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))["replies"]
    except (OSError, ValueError, KeyError):
        # A missing or damaged cache only costs a regeneration.
        return {}


def generate_replies(
    model: Any,
    prompts: list[list[Message]],
    *,
    max_new_tokens: int = 128,
    batch_size: int = 8,
    temperature: float = 0.0,
    cache_dir: str | Path | None = None,
    seed: int = 0,
    autocast_bf16: bool = False,
) -> list[str]:
    """Replies to chat prompts, in prompt order; greedy when temperature is 0.

    `model` is a model folder, a (base folder, adapter folder) pair, or a `LoadedModel`.
    With `cache_dir`, replies are stored per (model id, prompt hash, settings) and reused.
    """
    if max_new_tokens < 1 or batch_size < 1 or temperature < 0:
        raise ToolError(f"Invalid generation settings (max_new_tokens={max_new_tokens}, "
                        f"batch_size={batch_size}, temperature={temperature}): "
                        "use max_new_tokens >= 1, batch_size >= 1, temperature >= 0.")
    if not prompts:
        return []
    settings = _settings_key(max_new_tokens, temperature, seed)
    keys = [prompts_hash(p) for p in prompts]
    cached: dict[str, str] = {}
    cache_path: Path | None = None
    if cache_dir is not None:
        model_id = model.model_id if isinstance(model, LoadedModel) else model_fingerprint(
            *(model if isinstance(model, tuple) else (model,)))
        cache_path = _cache_file(Path(cache_dir), model_id, settings)
        cached = _read_cache(cache_path)
    todo = sorted({k: p for k, p in zip(keys, prompts, strict=True) if k not in cached}.items())
    if todo:
        loaded = load_for_eval(model)
        ids = generate_token_ids(loaded, [p for _, p in todo], max_new_tokens=max_new_tokens,
                                 batch_size=batch_size, temperature=temperature, seed=seed,
                                 autocast_bf16=autocast_bf16)
        fresh = [loaded.tokenizer.decode(row, skip_special_tokens=True).strip() for row in ids]
        cached.update(zip([k for k, _ in todo], fresh, strict=True))
        if cache_path is not None:
            atomic_write_text(cache_path, json.dumps({"settings": settings, "replies": cached},
                                                     ensure_ascii=False, indent=0))
    return [cached[k] for k in keys]


BATCH_ROWS = 64
"""Most prompts a generation batch decodes together (evaluation, the suite, replay); see `even_batches`."""

SMALL_MODEL_PARAMS = 20_000_000
"""Below this size a matmul is too small to split across threads: the hand-off costs more than it saves."""


def eval_threads(model: PreTrainedModel) -> int | None:
    """Threads for evaluation forward passes (INGRAIN_EVAL_THREADS overrides); None keeps torch's default.

    A model this small decodes fastest on one thread (per-token overhead, not arithmetic); a larger one
    gets the cores that are idle right now (tools.train.threads).
    """
    override = os.environ.get("INGRAIN_EVAL_THREADS")
    if override:
        return max(1, int(override))
    if sum(p.numel() for p in model.parameters()) < SMALL_MODEL_PARAMS:
        return 1
    return pick_threads()


@contextmanager
def thread_budget(model: PreTrainedModel) -> Iterator[None]:
    """Run a block with `eval_threads(model)` threads, restoring torch's setting afterwards."""
    import torch

    previous, wanted = torch.get_num_threads(), eval_threads(model)
    if wanted:
        torch.set_num_threads(min(wanted, previous))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def generate_token_ids(loaded: LoadedModel, prompts: list[list[Message]], *, max_new_tokens: int = 128,
                       batch_size: int = 8, temperature: float = 0.0, seed: int = 0,
                       autocast_bf16: bool = False) -> list[list[int]]:
    """The new token ids of each reply, in prompt order, without the stop token; never above the cap."""
    import torch
    from transformers import GenerationConfig

    tokenizer = loaded.tokenizer
    tokenizer.padding_side = "left"
    encoded = [tokenizer(render_prompt(tokenizer, p), add_special_tokens=False)["input_ids"] for p in prompts]
    context = int(getattr(loaded.model.config, "max_position_embeddings", 2048) or 2048)
    budget = max(1, context - max_new_tokens)
    # Keep the end of an over-long prompt: the question and the assistant header are there.
    encoded = [ids[-budget:] for ids in encoded]
    config = GenerationConfig(
        max_new_tokens=max_new_tokens, min_new_tokens=0, do_sample=temperature > 0,
        temperature=temperature if temperature > 0 else None, top_p=None, top_k=None,
        eos_token_id=loaded.stop_ids, pad_token_id=tokenizer.pad_token_id, use_cache=True,
    )
    # Length-sorted batches waste less compute on padding; the order is restored at the end.
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
    rows = min(batch_size, rows_that_fit(loaded.model, max(map(len, encoded), default=0) + max_new_tokens))
    replies: list[list[int]] = [[] for _ in encoded]
    torch.manual_seed(seed)
    with thread_budget(loaded.model):
        for start, end in even_batches(len(order), rows):
            idx = order[start:end]
            batch = tokenizer.pad({"input_ids": [encoded[i] for i in idx]}, padding=True, return_tensors="pt")
            with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast_bf16):
                out = loaded.model.generate(**batch, generation_config=config)
            for row, i in zip(out[:, batch["input_ids"].shape[1]:].tolist(), idx, strict=True):
                replies[i] = _cut_at_stop(row, loaded.stop_ids)
    return replies


def even_batches(n: int, batch_size: int) -> list[tuple[int, int]]:
    """(start, end) of the fewest batches of at most `batch_size` rows that hold `n`, as even as they come.

    A batch decodes until its longest row stops, and on a CPU a small model's decode step costs mostly its
    fixed overhead, not its rows: 80 sampled suite answers took 28 s as 40 + 40 rows and 36 s as 32 + 32 + 16
    (SmolLM2, 2 cores; the 36 greedy suite answers 12.5 s in one batch, 16 s as 32 + 4, token for token alike).
    """
    count = max(1, -(-n // max(1, batch_size)))
    size = -(-n // count)
    return [(start, min(n, start + size)) for start in range(0, n, size)] if n else []


KV_CACHE_BYTES = 1 << 30
"""Key/value cache a generation batch may fill: it bounds the rows of a big model's batch, not a small one's."""


def rows_that_fit(model: Any, tokens_per_row: int) -> int:
    """How many rows of `tokens_per_row` (prompt and reply) keep the batch's KV cache under KV_CACHE_BYTES;
    effectively unbounded when the config does not say its shape."""
    config = getattr(model, "config", None)
    layers = getattr(config, "num_hidden_layers", None)
    heads = getattr(config, "num_attention_heads", None)
    if not layers or not heads or not getattr(config, "hidden_size", None):
        return 1 << 20
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    per_token = 2 * layers * kv_heads * head_dim * next(model.parameters()).element_size()
    return max(1, KV_CACHE_BYTES // (per_token * max(1, tokens_per_row)))


def _cut_at_stop(ids: list[int], stop_ids: list[int]) -> list[int]:
    """Drop the stop token and the padding that follows a finished row in a batch."""
    for pos, token in enumerate(ids):
        if token in stop_ids:
            return ids[:pos]
    return ids


def measure_generation(model: Any, prompts: list[list[Message]], *, max_new_tokens: int = 32) -> float:
    """Decode throughput of one batch of `prompts`: rows × decode steps per second (greedy).

    A batch decodes until its longest row stops, so rows × steps is what evaluation pays for.
    """
    import time

    loaded = load_for_eval(model)
    started = time.perf_counter()
    ids = generate_token_ids(loaded, prompts, max_new_tokens=max_new_tokens, batch_size=len(prompts))
    seconds = time.perf_counter() - started
    return round(len(prompts) * max(1, max(len(row) for row in ids)) / max(seconds, 1e-6), 1)
