"""A llama.cpp runner for the endpoint: a GGUF model, several sequences decoded in one batch.

llama.cpp runs a 135M model about three times faster per token than eager PyTorch on two CPU cores
(`bench/serve_throughput.py`), because the time goes to per-token overhead, not arithmetic. One
context holds up to `max_batch` sequences, each with its own slice of the KV cache; a step puts one
token of every live sequence into one `llama_decode` call, so concurrent clients share that overhead.
Prompts are tokenized by the transformers tokenizer, whose ids are the GGUF vocabulary's.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import threading
from pathlib import Path
from typing import Any

from tools.errors import ToolError

_backend_lock = threading.Lock()
_backend_ready = False


def llamacpp_available() -> bool:
    """Whether llama-cpp-python is installed (`pip install 'ingrain-agent[llamacpp]'`)."""
    return importlib.util.find_spec("llama_cpp") is not None


def _init_backend() -> Any:
    global _backend_ready
    import llama_cpp
    from llama_cpp._logger import set_verbose

    with _backend_lock:
        if not _backend_ready:
            set_verbose(False)  # llama.cpp's load report would otherwise go to stderr line by line
            llama_cpp.llama_backend_init()
            _backend_ready = True
    return llama_cpp


class LlamaCppRunner:
    """Next-token logits for up to `max_batch` sequences of one GGUF model, decoded together."""

    backend = "llama.cpp"

    def __init__(self, gguf_path: Path | str, *, context_length: int, max_batch: int = 8, threads: int = 2,
                 prefill_chunk: int = 128) -> None:
        lib = self._lib = _init_backend()
        path = Path(gguf_path)
        if not path.is_file():
            raise ToolError(f"GGUF file {path} does not exist; export one with "
                            "`ingrain models export NAME --format gguf`.")
        self.path = path
        self.max_batch = max_batch
        self.context_length = context_length
        self.prefill_chunk = prefill_chunk
        self._model = lib.llama_model_load_from_file(str(path).encode(), lib.llama_model_default_params())
        if not self._model:
            raise ToolError(f"llama.cpp could not load {path}: is it a GGUF model file of a supported architecture?")
        params = lib.llama_context_default_params()
        params.n_ctx = context_length * max_batch
        params.n_seq_max = max_batch
        params.n_batch = params.n_ubatch = max(prefill_chunk, max_batch)
        params.n_threads = params.n_threads_batch = threads
        params.kv_unified = False  # each sequence gets its own context_length slice
        params.no_perf = True
        # Flash attention on a CPU drifted from the reference math (greedy replies differed from llama.cpp's
        # own API and from transformers after a few tokens); the plain path matches both.
        params.flash_attn_type = lib.LLAMA_FLASH_ATTN_TYPE_DISABLED
        self._ctx = lib.llama_init_from_model(self._model, params)
        if not self._ctx:
            lib.llama_model_free(self._model)
            raise ToolError(f"llama.cpp could not create a context of {params.n_ctx} tokens for {path}; "
                            "lower --max-batch or the context length.")
        self._memory = lib.llama_get_memory(self._ctx)
        self.vocab_size = lib.llama_vocab_n_tokens(lib.llama_model_get_vocab(self._model))
        self._batch = lib.llama_batch_init(params.n_batch, 0, 1)
        self._free = list(range(max_batch - 1, -1, -1))
        self._positions: dict[int, int] = {}

    def start(self, prompt_ids: list[int]) -> tuple[int, Any]:
        if not self._free:
            raise ToolError(f"All {self.max_batch} sequences are in use; the engine admits at most max_batch.")
        if not prompt_ids or len(prompt_ids) >= self.context_length:
            raise ToolError(f"A prompt of {len(prompt_ids)} tokens does not fit a {self.context_length}-token "
                            "context.")
        seq = self._free.pop()
        self._positions[seq] = 0
        try:
            for begin in range(0, len(prompt_ids), self.prefill_chunk):
                chunk = prompt_ids[begin:begin + self.prefill_chunk]
                last = begin + len(chunk) == len(prompt_ids)
                self._decode([(seq, token, last and i == len(chunk) - 1) for i, token in enumerate(chunk)])
            return seq, self._logits(-1)
        except Exception:
            self.release(seq)
            raise

    def step(self, items: list[tuple[int, int]]) -> list[Any]:
        self._decode([(seq, token, True) for seq, token in items])
        return [self._logits(i) for i in range(len(items))]

    def release(self, handle: int) -> None:
        if handle in self._positions:
            self._lib.llama_memory_seq_rm(self._memory, handle, -1, -1)
            del self._positions[handle]
            self._free.append(handle)

    def close(self) -> None:
        if self._ctx:
            self._lib.llama_batch_free(self._batch)
            self._lib.llama_free(self._ctx)
            self._lib.llama_model_free(self._model)
            self._ctx = self._model = None

    def __del__(self) -> None:
        # At interpreter shutdown the library may be unloaded already.
        with contextlib.suppress(Exception):
            self.close()

    def _decode(self, tokens: list[tuple[int, int, bool]]) -> None:
        """One llama_decode over (sequence, token, wants logits) entries; positions advance per sequence."""
        batch = self._batch
        for i, (seq, token, wants) in enumerate(tokens):
            batch.token[i] = token
            batch.pos[i] = self._positions[seq]
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = seq
            batch.logits[i] = wants
            self._positions[seq] += 1
        batch.n_tokens = len(tokens)
        code = self._lib.llama_decode(self._ctx, batch)
        if code != 0:
            raise ToolError(f"llama_decode failed with code {code} (1: no room in the KV cache; <0: error).")

    def _logits(self, index: int) -> Any:
        """The logits after the batch's index-th token (-1: the last one that asked), copied out of llama.cpp."""
        import numpy as np

        pointer = self._lib.llama_get_logits_ith(self._ctx, index)
        return np.ctypeslib.as_array(ctypes.cast(pointer, ctypes.POINTER(ctypes.c_float)),
                                     shape=(self.vocab_size,)).copy()
