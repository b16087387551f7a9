"""Grounded answers for knowledge goals: the sentences of the sources, embedded once, and the few nearest a
request put in front of it, the same way when training, evaluating and serving.

A 135M model trained on questions about a folder learns which page a question is about, but often not which of
the page's sentences holds the fact. A static sentence embedder (WordLlama, offline from its wheel) finds that
sentence far more often, so a knowledge deployment carries this index: a request whose nearest sentence is close
enough gets the top few as excerpts above it, and the model is trained to answer from them.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tools.errors import ToolError

if TYPE_CHECKING:  # the knowledge package is heavy; the endpoint imports this module
    from tools.data.knowledge.config import ChunkLike

HEADER = "Excerpts from the sources:"
CONFIG_FILE, PASSAGES_FILE, VECTORS_FILE = "grounding.json", "passages.jsonl", "vectors.npy"


@dataclass(frozen=True)
class GroundingConfig:
    """How many excerpts a request gets, and how close the nearest must be for it to get any."""

    k: int = field(default=3, metadata={"help": "Excerpts put above a request (the nearest first)."})
    threshold: float = field(default=0.3, metadata={
        "help": "Cosine similarity the nearest sentence needs; below it the request is left as it is. WordLlama "
                "puts questions about a handbook at 0.32-0.85 from their sentence and general prompts at 0.1-0.4."})
    embedder: str = "wordllama"

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ToolError(f"grounding k={self.k}: at least one excerpt per request.")
        if not 0.0 <= self.threshold < 1.0:
            raise ToolError(f"grounding threshold={self.threshold}: use a cosine similarity in [0, 1).")


@dataclass
class GroundingIndex:
    """Sentences of the sources (each with its page title and source) and their unit vectors, one row each."""

    passages: list[dict[str, str]]
    vectors: np.ndarray
    config: GroundingConfig
    cache_dir: Path

    @classmethod
    def build(cls, chunks: Sequence[ChunkLike], cache_dir: Path,
              config: GroundingConfig | None = None) -> GroundingIndex:
        """Every prose sentence of every chunk, once, titled with its page."""
        from tools.data.knowledge.facts import split_sentences

        passages, seen = [], set()
        for chunk in chunks:
            title = (chunk.title or chunk.heading).strip()
            for sentence in split_sentences(chunk.text):
                if (title, sentence) not in seen:
                    seen.add((title, sentence))
                    passages.append({"title": title, "text": sentence, "source": chunk.source})
        if not passages:
            raise ToolError("The sources hold no prose sentence to ground answers on.")
        index = cls(passages, np.zeros((0, 0), dtype=np.float32), config or GroundingConfig(), Path(cache_dir))
        index.vectors = index.embed([index.passage_text(p) for p in passages])
        return index

    @staticmethod
    def passage_text(passage: dict[str, str]) -> str:
        return f"{passage['title']}: {passage['text']}" if passage["title"] else passage["text"]

    def embed(self, texts: list[str]) -> np.ndarray:
        from tools.patterns.embed import load_wordllama

        try:
            model = load_wordllama(str(self.cache_dir))
        except Exception as exc:  # a broken wheel: say so, never download
            raise ToolError(f"WordLlama could not load offline ({exc}); reinstall wordllama==0.4.0.post1.") from exc
        return np.asarray(model.embed(texts, norm=True, batch_size=512), dtype=np.float32)

    def search(self, queries: list[str]) -> list[list[tuple[int, float]]]:
        """The k nearest passages of each query with their cosine similarity, nearest first."""
        if not queries:
            return []
        sims = self.embed(queries) @ self.vectors.T
        k = min(self.config.k, sims.shape[1])
        top = np.argsort(-sims, axis=1, kind="stable")[:, :k]
        return [[(int(j), float(row[j])) for j in order] for row, order in zip(sims, top, strict=True)]

    def ground(self, chats: list[list[dict[str, str]]]) -> list[list[dict[str, str]]]:
        """Each chat with excerpts above its last user turn when that turn is close enough to the sources."""
        last = [max((i for i, m in enumerate(chat) if m.get("role") == "user"), default=None) for chat in chats]
        asked = [i for i, at in enumerate(last) if at is not None]
        # A turn grounded before (a resumed step) is grounded again from its question, never twice.
        questions = {i: question_of(chats[i][last[i]]["content"]) for i in asked}
        found = dict(zip(asked, self.search([questions[i] for i in asked]), strict=True))
        out = []
        for i, chat in enumerate(chats):
            hits = found.get(i)
            if hits is None:
                out.append(chat)
                continue
            content = questions[i]
            if hits[0][1] >= self.config.threshold:
                lines = "\n".join(f"- {self.passage_text(self.passages[j])}" for j, _ in hits)
                content = f"{HEADER}\n{lines}\n\n{content}"
            out.append([*chat[:last[i]], {**chat[last[i]], "content": content}, *chat[last[i] + 1:]])
        return out

    def ground_examples(self, examples: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Chat examples with their prompt grounded (the reply turn untouched); text examples as they are."""
        chats = [ex["messages"] for ex in examples if "messages" in ex]
        prompts = self.ground([m[:-1] if m and m[-1].get("role") == "assistant" else m for m in chats])
        grounded = iter(prompts)
        out = []
        for ex in examples:
            if "messages" not in ex:
                out.append(ex)
                continue
            messages, prompt = ex["messages"], next(grounded)
            tail = messages[len(prompt):]
            out.append({**ex, "messages": [*prompt, *tail]})
        return out

    def save(self, directory: Path) -> Path:
        """Write the index into `directory` whole or not at all (a temp folder renamed into place)."""
        directory = Path(directory)
        directory.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}-", dir=directory.parent))
        (staging / CONFIG_FILE).write_text(json.dumps({**asdict(self.config), "n_passages": len(self.passages)}))
        (staging / PASSAGES_FILE).write_text("".join(json.dumps(p) + "\n" for p in self.passages))
        np.save(staging / VECTORS_FILE, self.vectors)
        if directory.exists():
            old = directory.with_name(f".{directory.name}-old-{os.getpid()}")
            directory.rename(old)
            staging.rename(directory)
            for path in old.iterdir():
                path.unlink()
            old.rmdir()
        else:
            staging.rename(directory)
        return directory

    def ground_files(self, paths: list[Path]) -> None:
        """Rewrite JSONL example files with their prompts grounded (each file replaced whole)."""
        from tools.data.split import read_jsonl, write_jsonl

        for path in paths:
            write_jsonl(path, self.ground_examples(read_jsonl(path)))

    @classmethod
    def load(cls, directory: Path, cache_dir: Path) -> GroundingIndex:
        directory = Path(directory)
        try:
            settings = json.loads((directory / CONFIG_FILE).read_text())
            passages = [json.loads(line) for line in (directory / PASSAGES_FILE).read_text().splitlines() if line]
            vectors = np.load(directory / VECTORS_FILE)
        except (OSError, ValueError) as exc:
            raise ToolError(f"The grounding index in {directory} cannot be read ({exc}); deploy the run again "
                            "to rebuild it.") from exc
        if len(passages) != len(vectors):
            raise ToolError(f"The grounding index in {directory} has {len(passages)} passages but "
                            f"{len(vectors)} vectors; deploy the run again to rebuild it.")
        config = GroundingConfig(**{k: settings[k] for k in ("k", "threshold", "embedder") if k in settings})
        return cls(passages, vectors, config, Path(cache_dir))


def load_grounding(directory: str | Path | None, cache_dir: Path | None = None) -> GroundingIndex | None:
    """The index kept in `directory`, or None when there is none (a style or task model). Its embedder is loaded
    now, so a broken one fails the model's load with a clear error rather than the first request. `cache_dir`
    defaults to the workspace's WordLlama cache."""
    if directory is None or not (Path(directory) / CONFIG_FILE).exists():
        return None
    if cache_dir is None:
        from tools.patterns.embed import wordllama_cache

        cache_dir = wordllama_cache()
    index = GroundingIndex.load(Path(directory), cache_dir)
    index.embed(["ready"])
    return index


def question_of(content: str) -> str:
    """A grounded turn's request without its excerpts (what the user asked)."""
    if not content.startswith(HEADER + "\n"):
        return content
    _, _, rest = content.partition("\n\n")
    return rest
