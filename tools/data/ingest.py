"""Gather documents from folders, files and built-in corpora into one clean documents.jsonl; cut them into chunks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tools.data.chunk import Chunk, ChunkConfig, chunk_document, sections
from tools.data.clean import CLEAN_REASONS, CleanConfig, clean_documents, duplicate_reasons
from tools.data.dedup import NEAR_DUPLICATE_JACCARD
from tools.data.extract import REFUSAL_REASONS, Document, extract_files, make_document
from tools.data.sources import (
    DOCUMENT_SUFFIXES,
    UNREADABLE_DOCUMENT_SUFFIXES,
    is_document_file,
    is_unreadable_document,
)
from tools.data.split import read_jsonl, write_jsonl
from tools.errors import ToolError
from tools.progress import Progress

__all__ = ["BUILTIN_CORPORA", "DROP_REASONS", "Chunk", "ChunkSet", "Document", "DocumentSet", "chunk_documents",
           "collect_documents", "read_chunks", "read_documents"]

BUILTIN_CORPORA = {"pydoc_data": "the Python reference topics that ship with Python (pydoc_data.topics)"}
DROP_REASONS = {**REFUSAL_REASONS, **CLEAN_REASONS,
                "unreadable": f"a format not read as text ({', '.join(sorted(UNREADABLE_DOCUMENT_SUFFIXES))})"}
"""Every reason `collect_documents` counts a file or document under in `DocumentSet.dropped`."""


@dataclass
class DocumentSet:
    """What `collect_documents` gathered and what it dropped."""

    path: str
    n_documents: int
    n_words: int
    dropped: dict[str, int] = field(default_factory=dict)
    """reason (a DROP_REASONS key) → documents or files dropped for it (only reasons that occurred)."""
    sources: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    """What was skipped and why, said for the person reading the trace."""
    languages: dict[str, int] = field(default_factory=dict)
    """Detected language → kept documents."""

    def to_dict(self) -> dict:
        return asdict(self)


def collect_documents(sources: list[dict], out_path: Path, *, clean: CleanConfig | None = None,
                      ocr: bool = True, ocr_cache: Path | None = None, progress: Progress | None = None
                      ) -> DocumentSet:
    """Read every folder, file and built-in corpus in `sources` (dicts with kind and location), extract their
    text, clean it (`tools.data.clean`) and write the kept documents to `out_path`, one JSON object a line.

    Every file or document left out is counted by reason; a document of any length is kept whole. With
    `ocr_cache` (a folder) the OCR text of scanned PDF pages is kept there, so reading them again skips the OCR.
    `progress("extract", done, total)` follows the files read.
    """
    docs: list[Document] = []
    files: list[Path] = []
    unsupported: list[Path] = []
    for source in sources:
        kind, location = source["kind"], source["location"]
        if kind == "builtin":
            docs += builtin_documents(location)
        elif kind in ("folder", "file"):
            readable, skipped = document_files(Path(location))
            files += readable
            unsupported += skipped
        elif kind in ("url", "crawl_topic"):
            raise ToolError(f"Cannot fetch {location!r}: this machine has no web access for crawling. "
                            "Save the pages into a folder and name that folder in the goal or with --data.")
    extraction = extract_files(files, ocr=ocr, ocr_cache=ocr_cache, progress=progress)
    cleaned = clean_documents(docs + extraction.documents, clean)
    dropped = {**extraction.counts(), **cleaned.dropped}
    if unsupported:
        dropped["unreadable"] = len(unsupported)
    notes = ([_unreadable_note(unsupported)] if unsupported else []) + extraction.notes()
    if cleaned.dropped:
        notes.append(f"Dropped {sum(cleaned.dropped.values())} document(s) while cleaning: "
                     + ", ".join(f"{n} {reason.replace('_', ' ')}" for reason, n in sorted(cleaned.dropped.items()))
                     + ".")
    if not cleaned.documents:
        raise ToolError("Found no usable documents in " + ", ".join(s["location"] for s in sources)
                        + f" (dropped: {dropped}). " + "".join(note + " " for note in notes)
                        + f"Point the goal at a folder of {'/'.join(sorted(DOCUMENT_SUFFIXES))} files.")
    write_jsonl(out_path, [asdict(d) for d in cleaned.documents])
    return DocumentSet(str(out_path), len(cleaned.documents), sum(len(d.text.split()) for d in cleaned.documents),
                       dict(sorted(dropped.items())), [s["location"] for s in sources], notes, cleaned.languages)


@dataclass
class ChunkSet:
    """What `chunk_documents` cut: the passages, and the ones dropped by reason."""

    chunks: list[Chunk]
    n_documents: int
    n_tokens: int
    dropped: dict[str, int] = field(default_factory=dict)
    """reason (duplicate, near_duplicate) → passages dropped for it."""
    path: str | None = None
    """The chunks.jsonl written, when an out_path was given."""

    @property
    def n_chunks(self) -> int:
        return len(self.chunks)

    def to_dict(self) -> dict:
        """The counts and path without the passages themselves (small enough for the run's state and trace)."""
        return {"path": self.path, "n_chunks": self.n_chunks, "n_documents": self.n_documents,
                "n_tokens": self.n_tokens, "dropped": self.dropped}


def chunk_documents(documents: list[Document], config: ChunkConfig | None = None, *,
                    count_tokens: Callable[[str], int] | None = None,
                    near_duplicate_threshold: float = NEAR_DUPLICATE_JACCARD,
                    out_path: Path | None = None) -> ChunkSet:
    """Passages of every document (`tools.data.chunk`), with passages repeated across documents dropped.

    `count_tokens` is the base model's token counter (e.g. `lambda s: len(tokenizer(s).input_ids)`); without it
    tokens are estimated from words. With `out_path` the passages are also written there as JSON lines.
    """
    chunks = [chunk for doc in documents for chunk in chunk_document(doc, config, count_tokens)]
    dropped: dict[str, int] = {}
    kept = []
    for chunk, reason in zip(chunks, duplicate_reasons([c.text for c in chunks], near_duplicate_threshold),
                             strict=True):
        if reason:
            dropped[reason] = dropped.get(reason, 0) + 1
        else:
            kept.append(chunk)
    path = None
    if out_path is not None:
        write_jsonl(out_path, [c.to_dict() for c in kept])
        path = str(out_path)
    return ChunkSet(kept, len(documents), sum(c.n_tokens for c in kept), dropped, path)


def read_chunks(path: Path | str) -> list[Chunk]:
    return [Chunk(**row) for row in read_jsonl(path)]


def read_documents(path: Path | str) -> list[Document]:
    return [Document(**row) for row in read_jsonl(path)]


def builtin_documents(name: str) -> list[Document]:
    """Documents from a corpus that ships with Python, split into titled sections."""
    if name != "pydoc_data":
        raise ToolError(f"Unknown built-in corpus {name!r}; available: {', '.join(BUILTIN_CORPORA)}.")
    from pydoc_data.topics import topics

    docs = []
    for key, text in topics.items():
        for title, body in split_sections(text):
            docs.append(make_document(title or key, body, f"builtin:pydoc_data/{key}"))
    return docs


def document_files(path: Path) -> tuple[list[Path], list[Path]]:
    """The files under `path` ingest reads, and the documents (old Word, OpenDocument, ...) it has to skip.

    A file named on its own is read (as text, for an unknown suffix) unless it is such a document.
    """
    if not path.exists():
        raise ToolError(f"{path} does not exist: check the path in the goal or --data.")
    if path.is_file():
        return ([], [path]) if is_unreadable_document(path) else ([path], [])
    files = sorted(p for p in path.rglob("*") if p.is_file() and not any(x.startswith(".") for x in p.parts))
    return [p for p in files if is_document_file(p)], [p for p in files if is_unreadable_document(p)]


def _unreadable_note(files: list[Path]) -> str:
    kinds = ", ".join(sorted({f.suffix.lower() for f in files}))
    names = ", ".join(f.name for f in files[:3]) + (f" and {len(files) - 3} more" if len(files) > 3 else "")
    return (f"Skipped {len(files)} file(s) ingrain cannot read as text ({kinds}): {names}; "
            "convert them to .txt or .md to use them.")


def split_sections(text: str) -> list[tuple[str, str]]:
    """(heading, body) per section of underlined (reStructuredText) or `#` headings, nesting flattened."""
    return [(path[-1] if path else "", body.strip()) for path, body in sections(text)]
