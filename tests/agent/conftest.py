"""Fixtures for driving the real compiled graph on the tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

TOPICS = ["cats", "rivers", "engines", "apples", "clouds", "trains", "maps", "songs", "bread", "stars"]


@pytest.fixture
def style_data(tmp_path: Path) -> Path:
    """A small dataset in a rigid house style a tiny random model learns in a few dozen steps: two fixed bullets."""
    rows = []
    for i in range(80):
        topic = TOPICS[i % len(TOPICS)]
        rows.append({"messages": [
            {"role": "user", "content": f"Summarize note {i} about {topic}."},
            {"role": "assistant", "content": "- noted\n- that is all"},
        ]})
    path = tmp_path / "notes.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path
