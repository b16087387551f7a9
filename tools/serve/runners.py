"""Next-token logits for the endpoint: the runner interface and its PyTorch implementation.

A runner owns the model's forward pass and its KV caches. The engine starts a sequence with its prompt,
then asks for one more token's logits for every live sequence at once; a runner that can batch
(llama.cpp, tools/serve/llamacpp.py) runs them in one forward pass, the PyTorch runner one by one.
"""

from __future__ import annotations

from typing import Any, Protocol


class Runner(Protocol):
    """What the engine needs from a model."""

    max_batch: int
    """Sequences that can be live at once (each holds a KV cache)."""
    backend: str

    def start(self, prompt_ids: list[int]) -> tuple[Any, Any]:
        """Read a prompt into a new sequence: (handle, logits of the next token)."""

    def step(self, items: list[tuple[Any, int]]) -> list[Any]:
        """Append one token to each (handle, token) sequence: the next-token logits of each, in order."""

    def release(self, handle: Any) -> None:
        """Free a sequence's cache."""

    def close(self) -> None:
        """Free the model."""


class TorchRunner:
    """transformers forward passes with a per-sequence KV cache, one sequence per step.

    Batching sequences of different lengths in eager PyTorch needs padded caches and gives little on a
    CPU where a 135M model's step is per-token overhead, so this runner keeps one sequence live and the
    engine queues the rest.
    """

    backend = "torch"
    max_batch = 1

    def __init__(self, model: Any) -> None:
        self.model = model

    def start(self, prompt_ids: list[int]) -> tuple[Any, Any]:
        import torch

        with torch.inference_mode():
            out = self.model(input_ids=torch.tensor([prompt_ids]), use_cache=True)
        return _TorchSequence(out.past_key_values), out.logits[0, -1]

    def step(self, items: list[tuple[Any, int]]) -> list[Any]:
        import torch

        logits = []
        with torch.inference_mode():
            for handle, token in items:
                out = self.model(input_ids=torch.tensor([[token]]), past_key_values=handle.cache, use_cache=True)
                handle.cache = out.past_key_values
                logits.append(out.logits[0, -1])
        return logits

    def release(self, handle: Any) -> None:
        handle.cache = None

    def close(self) -> None:
        self.model = None


class _TorchSequence:
    __slots__ = ("cache",)

    def __init__(self, cache: Any) -> None:
        self.cache = cache
