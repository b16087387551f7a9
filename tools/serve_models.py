"""Which model the endpoint answers with: loading a registered version and hot-swapping on promote/rollback."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from memory.errors import StoreError
from memory.store import Store
from tools.errors import ToolError
from tools.models import DEFAULT_BASE, load_model, load_tokenizer, resolve_base

log = logging.getLogger("ingrain.serve")

RETRY_FAILED_LOAD_SECONDS = 30.0


@dataclass(frozen=True)
class LoadedModel:
    """A model in memory, ready to generate; requests hold on to it, so a swap never pulls it away."""

    name: str
    """The version name clients see as `model`."""
    kind: str
    """base | adapter | merged | full."""
    model: Any
    tokenizer: Any
    context_length: int
    """Longest prompt + completion, in tokens."""
    eos_ids: frozenset[int]
    """Token ids that end a reply."""
    created: int = field(default_factory=lambda: int(time.time()))


def _eos_ids(model: Any, tokenizer: Any) -> frozenset[int]:
    ids: set[int] = set()
    configured = model.generation_config.eos_token_id if model.generation_config else None
    for value in (configured, tokenizer.eos_token_id):
        if isinstance(value, int):
            ids.add(value)
        elif value:
            ids.update(int(v) for v in value)
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    if isinstance(im_end, int) and im_end != tokenizer.unk_token_id:
        ids.add(im_end)
    return frozenset(ids)


def _finish(name: str, kind: str, model: Any, tokenizer: Any) -> LoadedModel:
    model.eval()
    context = int(getattr(model.config, "max_position_embeddings", 0) or 2048)
    return LoadedModel(name, kind, model, tokenizer, context, _eos_ids(model, tokenizer))


def load_version(row: dict[str, Any]) -> LoadedModel:
    """Load a model-registry row: adapters are merged into their base once, so generation runs at full speed."""
    path = Path(row["path"])
    if not path.exists():
        raise ToolError(f"Model version {row['name']} points at {path}, which is missing; "
                        "`ingrain models rollback` returns to the previous version.")
    if row["kind"] == "adapter":
        from peft import PeftModel

        base = resolve_base(row["base"])
        model = PeftModel.from_pretrained(load_model(base.path), str(path)).merge_and_unload()
        tokenizer_dir = path if (path / "tokenizer_config.json").is_file() else base.path
        return _finish(row["name"], "adapter", model, load_tokenizer(tokenizer_dir))
    return _finish(row["name"], row["kind"], load_model(path), load_tokenizer(path))


def load_base(name: str | Path) -> LoadedModel:
    """Load a base model by built-in name or folder (what the endpoint serves when nothing is deployed)."""
    base = resolve_base(name)
    loaded = _finish(base.name, "base", load_model(base.path), load_tokenizer(base.path))
    return LoadedModel(loaded.name, "base", loaded.model, loaded.tokenizer,
                       min(loaded.context_length, base.context_length), loaded.eos_ids)


def load_named(store: Store, name: str | None) -> LoadedModel:
    """A registered version by name, else a base model name or folder; None means production or the default."""
    if name is None:
        row = store.production_model()
        return load_version(row) if row else load_base(DEFAULT_BASE)
    try:
        row = store.model(name)
    except StoreError:
        return load_base(name)
    return load_version(row)


def _load_production(db_path: Path) -> LoadedModel:
    # A thread of its own needs a connection of its own.
    with Store(db_path) as store:
        return load_named(store, None)


class ModelSlot:
    """The model being served. Unless pinned, it follows the store's production version.

    `refresh()` runs before each request: one indexed read tells whether production changed; if it did,
    the new version loads in a worker thread and replaces the reference only once it is complete.
    Requests already admitted keep the `LoadedModel` they were given.
    """

    def __init__(self, db_path: Path, pinned: str | None = None, *, check_seconds: float = 0.0) -> None:
        self.store = Store(db_path)
        self.pinned = pinned
        self.check_seconds = check_seconds
        self.current: LoadedModel | None = None
        self.swaps = 0
        self._checked = 0.0
        self._lock = asyncio.Lock()
        self._failed: dict[str, float] = {}

    def load_initial(self) -> LoadedModel:
        self.current = load_named(self.store, self.pinned)
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
                    loaded = await asyncio.to_thread(_load_production, self.store.path)
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
