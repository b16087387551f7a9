"""Which model the endpoint answers with: loading a registered version and hot-swapping on promote/rollback."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from memory.errors import StoreError
from memory.store import Store
from tools.deploy import GGUF_FILE, GROUNDING_DIR
from tools.errors import ToolError
from tools.grounding import GroundingIndex, load_grounding
from tools.models import DEFAULT_BASE, adapter_tokenizer_dir, load_merged, load_model, load_tokenizer, resolve_base

log = logging.getLogger("ingrain.serve")

RETRY_FAILED_LOAD_SECONDS = 30.0


BACKENDS = ("auto", "llamacpp", "torch")
LLAMACPP_CONTEXT = 4096
"""Tokens of KV cache per llama.cpp sequence (SmolLM2: 23 KB each, so 8 sequences take 750 MB)."""


@dataclass(frozen=True)
class RunnerOptions:
    """How loaded models run: which backend and how many sequences llama.cpp decodes together."""

    backend: str = "auto"
    """auto = llama.cpp when it is installed and the model has a GGUF file, else torch."""
    max_batch: int = 8

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ToolError(f"--backend {self.backend!r} is not one of {', '.join(BACKENDS)}.")
        if not 1 <= self.max_batch <= 64:
            raise ToolError(f"--max-batch {self.max_batch} must be within 1-64.")


@dataclass(frozen=True)
class LoadedModel:
    """A model in memory, ready to generate; requests hold on to it, so a swap never pulls it away."""

    name: str
    """The version name clients see as `model`."""
    kind: str
    """base | adapter | merged | full."""
    model: Any
    """The transformers model (None when llama.cpp runs the GGUF copy instead)."""
    tokenizer: Any
    context_length: int
    """Longest prompt + completion, in tokens."""
    eos_ids: frozenset[int]
    """Token ids that end a reply."""
    runner: Any = None
    """The Runner that computes next-token logits (tools/serve/runners.py)."""
    created: int = field(default_factory=lambda: int(time.time()))
    grounding: GroundingIndex | None = None
    """A knowledge version's excerpt index: requests close to its sources are answered with excerpts above them,
    as the version was trained and evaluated."""

    def prompt_chat(self, chat: list[dict[str, str]]) -> list[dict[str, str]]:
        """The chat the model is given: grounded when the version carries an index, else as sent."""
        return self.grounding.ground([chat])[0] if self.grounding is not None else chat

    @property
    def backend(self) -> str:
        return self.runner.backend if self.runner is not None else "none"


def _eos_ids(generation_config: Any, tokenizer: Any) -> frozenset[int]:
    ids: set[int] = set()
    configured = generation_config.eos_token_id if generation_config is not None else None
    for value in (configured, tokenizer.eos_token_id):
        if isinstance(value, int):
            ids.add(value)
        elif value:
            ids.update(int(v) for v in value)
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    if isinstance(im_end, int) and im_end != tokenizer.unk_token_id:
        ids.add(im_end)
    return frozenset(ids)


def _load(name: str, kind: str, folder: Path, tokenizer_dir: Path, gguf: Path, options: RunnerOptions, *,
          adapter: Path | None = None, context_cap: int | None = None) -> LoadedModel:
    """Load for serving: llama.cpp on the GGUF copy at `gguf` when chosen, else the transformers weights."""
    from tools.serve.llamacpp import LlamaCppRunner, llamacpp_available
    from tools.serve.runners import TorchRunner
    from tools.train.threads import usable_cores

    tokenizer = load_tokenizer(tokenizer_dir)
    config = json.loads((folder / "config.json").read_text())
    context = int(config.get("max_position_embeddings") or 2048)
    if context_cap:
        context = min(context, context_cap)
    use_llamacpp = options.backend == "llamacpp" or (options.backend == "auto" and gguf.is_file()
                                                     and llamacpp_available())
    if use_llamacpp:
        if not llamacpp_available():
            raise ToolError("--backend llamacpp needs llama-cpp-python: run scripts/bootstrap.sh (it builds it) or "
                            "pip install 'ingrain-agent[llamacpp]'; or serve with --backend torch.")
        if not gguf.is_file():
            raise ToolError(f"{name} has no GGUF copy for llama.cpp at {gguf}: write one with `ingrain models "
                            f"export {name} --format gguf --out {gguf}`, or serve it with --backend torch.")
        from transformers import GenerationConfig

        try:
            generation = GenerationConfig.from_pretrained(folder)
        except OSError:
            generation = None
        context = min(context, LLAMACPP_CONTEXT)
        runner = LlamaCppRunner(gguf, context_length=context, max_batch=options.max_batch, threads=usable_cores())
        return LoadedModel(name, kind, None, tokenizer, context, _eos_ids(generation, tokenizer), runner)
    model = load_merged(folder, adapter) if adapter is not None else load_model(folder)
    model.eval()
    return LoadedModel(name, kind, model, tokenizer, context, _eos_ids(model.generation_config, tokenizer),
                       TorchRunner(model))


def version_gguf(row: dict[str, Any]) -> Path:
    """Where a registered version's GGUF copy is (deploy writes it beside the version's files)."""
    return Path(row["path"]).parent / GGUF_FILE


def base_gguf(base_name: str, folder: Path, *, write: bool = True) -> Path:
    """Where a base's f16 GGUF copy is; with `write`, a cached base converted from a GGUF file gets it once.

    The f16 copy rather than the original file: the packaged SmolLM2 is Q4_1, and llama.cpp's quantised
    arithmetic on it changed answers that the dequantised fp32 weights (what training and evaluation
    use) got right. Other base folders have no copy unless one is exported there.
    """
    from tools.deploy import write_serving_gguf
    from tools.export.gguf import original_gguf

    target = folder / f"{folder.name}-f16.gguf"
    if write and not target.is_file() and original_gguf(folder) is not None:
        try:
            write_serving_gguf(folder, target, name=base_name, base_dir=folder)
        except OSError as exc:  # a read-only cache: serve with transformers rather than fail
            log.warning("could not write %s (%s); serving %s with transformers", target, exc, base_name)
    return target


def load_version(row: dict[str, Any], options: RunnerOptions | None = None) -> LoadedModel:
    """Load a model-registry row: adapters are merged into their base once, so generation runs at full speed."""
    options = options or RunnerOptions()
    path = Path(row["path"])
    if not path.exists():
        raise ToolError(f"Model version {row['name']} points at {path}, which is missing; "
                        "`ingrain models rollback` returns to the previous version.")
    grounding = load_grounding(path.parent / GROUNDING_DIR)
    if row["kind"] == "adapter":
        base = resolve_base(row["base"])
        loaded = _load(row["name"], "adapter", base.path, adapter_tokenizer_dir(base.path, path),
                       version_gguf(row), options, adapter=path)
    else:
        loaded = _load(row["name"], row["kind"], path, path, version_gguf(row), options)
    return replace(loaded, grounding=grounding) if grounding is not None else loaded


def load_base(name: str | Path, options: RunnerOptions | None = None) -> LoadedModel:
    """Load a base model by built-in name or folder (what the endpoint serves when nothing is deployed)."""
    from tools.serve.llamacpp import llamacpp_available

    options = options or RunnerOptions()
    base = resolve_base(name)
    # Writing the f16 copy is worth it only when llama.cpp will read it.
    gguf = base_gguf(base.name, base.path, write=options.backend != "torch" and llamacpp_available())
    return _load(base.name, "base", base.path, base.path, gguf, options, context_cap=base.context_length)


def load_named(store: Store, name: str | None, options: RunnerOptions | None = None) -> LoadedModel:
    """A registered version by name, else a base model name or folder; None means production or the default."""
    if name is None:
        row = store.production_model()
        return load_version(row, options) if row else load_base(DEFAULT_BASE, options)
    try:
        row = store.model(name)
    except StoreError:
        return load_base(name, options)
    return load_version(row, options)


def _load_production(db_path: Path, options: RunnerOptions) -> LoadedModel:
    # A thread of its own needs a connection of its own.
    with Store(db_path) as store:
        return load_named(store, None, options)


class ModelSlot:
    """The model being served. Unless pinned, it follows the store's production version.

    `refresh()` runs before each request: one indexed read tells whether production changed; if it did,
    the new version loads in a worker thread and replaces the reference only once it is complete.
    Requests already admitted keep the `LoadedModel` they were given.
    """

    def __init__(self, db_path: Path, pinned: str | None = None, *, check_seconds: float = 0.0,
                 options: RunnerOptions | None = None) -> None:
        self.store = Store(db_path)
        self.options = options or RunnerOptions()
        self.pinned = pinned
        self.check_seconds = check_seconds
        self.current: LoadedModel | None = None
        self.swaps = 0
        self._checked = 0.0
        self._lock = asyncio.Lock()
        self._failed: dict[str, float] = {}

    def load_initial(self) -> LoadedModel:
        self.current = load_named(self.store, self.pinned, self.options)
        return self.current

    def wanted(self) -> str:
        """The version that should be served now."""
        if self.pinned:
            return self.current.name if self.current else self.pinned
        row = self.store.production_model()
        return row["name"] if row else DEFAULT_BASE

    async def refresh(self) -> LoadedModel:
        assert self.current is not None, "load_initial() first"
        now = time.monotonic()
        if self.pinned or now - self._checked < self.check_seconds:
            return self.current
        self._checked = now
        wanted = self.wanted()
        if wanted == self.current.name or now - self._failed.get(wanted, -1e9) < RETRY_FAILED_LOAD_SECONDS:
            return self.current
        async with self._lock:
            if wanted != self.current.name:
                try:
                    loaded = await asyncio.to_thread(_load_production, self.store.path, self.options)
                except Exception as exc:
                    # Keep answering with the old version rather than failing every request.
                    self._failed[wanted] = time.monotonic()
                    log.error("could not load %s, still serving %s: %s", wanted, self.current.name, exc)
                    return self.current
                log.info("now serving %s (was %s)", loaded.name, self.current.name)
                self.current = loaded
                self.swaps += 1
        return self.current

    def close(self) -> None:
        self.store.close()
