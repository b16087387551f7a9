"""Evaluation fixtures: tiny models whose weights were perturbed on purpose, and small chat sets."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


def perturbed_copy(source: Path, target: Path, scale: float, seed: int = 0) -> Path:
    """A copy of a model folder with Gaussian noise added to every weight."""
    import torch

    from tools.models import load_model

    model = load_model(source)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn(param.shape, generator=generator) * scale)
    model.save_pretrained(target)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja"):
        if (source / name).is_file():
            shutil.copy(source / name, target / name)
    return target


@pytest.fixture(scope="session")
def noisy_model_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model with noise large enough that greedy replies depend on the prompt (and rarely stop)."""
    return perturbed_copy(tiny_model_dir, tmp_path_factory.mktemp("noisy-llama"), scale=0.3)


def chat_examples(targets: list[str]) -> list[dict]:
    return [{"messages": [{"role": "user", "content": f"Summarise paper number {i}."},
                          {"role": "assistant", "content": t}]} for i, t in enumerate(targets)]
