"""The serving tests' store: the tiny model registered and promoted, so the endpoint serves it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from memory.store import Store


@pytest.fixture
def store(workspace, tiny_model_dir) -> Iterator[Store]:
    s = Store.open(workspace)
    s.register_model("tiny-v1", base=str(tiny_model_dir), kind="full", path=str(tiny_model_dir))
    s.promote("tiny-v1")
    yield s
    s.close()
