"""Shared fixtures: a private workspace per test, a tiny random model, and the real SmolLM2 default."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# The real model is converted once per machine into this cache, not once per test.
SHARED_MODEL_CACHE = Path(os.environ.get("INGRAIN_TEST_MODEL_CACHE", REPO / ".cache" / "models"))


@pytest.fixture(autouse=True)
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Every test gets its own INGRAIN_HOME; the base-model cache is shared."""
    from memory.workspace import Workspace

    home = tmp_path / "ingrain-home"
    monkeypatch.setenv("INGRAIN_HOME", str(home))
    monkeypatch.setenv("INGRAIN_MODEL_CACHE", str(SHARED_MODEL_CACHE))
    for var in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "INGRAIN_AGENT_MODEL"):
        monkeypatch.delenv(var, raising=False)
    return Workspace(home).ensure()


@pytest.fixture(scope="session")
def tiny_model_dir() -> Path:
    """A randomly initialised 2-layer Llama with a 512-token BPE vocabulary and ChatML template."""
    from tools.models import build_tiny_model

    return build_tiny_model(SHARED_MODEL_CACHE / "tiny-llama")


@pytest.fixture(scope="session")
def smollm2_dir() -> Path:
    """The real default base model, converted from the packaged GGUF once into the shared cache."""
    from tools.models import convert_smollm2

    return convert_smollm2(SHARED_MODEL_CACHE / "smollm2-135m")
