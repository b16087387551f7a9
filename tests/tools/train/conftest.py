"""Shared training fixtures: a small repetitive chat data set the tiny model learns quickly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


def chat(user: str, answer: str) -> dict:
    return {"messages": [{"role": "system", "content": "you are a helpful model"},
                         {"role": "user", "content": user}, {"role": "assistant", "content": answer}]}


def write_split(folder: Path, name: str, rows: list[dict]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


@pytest.fixture()
def repetitive_data(tmp_path):
    rows = [chat(f"what is the summary of paper {i}?", "- the method is good\n- the result is a list")
            for i in range(32)]
    return write_split(tmp_path / "data", "train", rows), write_split(tmp_path / "data", "val", rows[:4])
