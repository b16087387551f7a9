"""Gather documents from local folders, files and built-in corpora into one deduplicated documents.jsonl."""

from __future__ import annotations

import hashlib
import html
import json
import re
from dataclasses import asdict, dataclass, field
from html.parser import HTMLParser
from pathlib import Path

from memory.workspace import atomic_write_text
from tools.data.pii import scrub_pii
from tools.data.sources import DOCUMENT_SUFFIXES, is_document_file, is_unreadable_document
from tools.errors import ToolError

BUILTIN_CORPORA = {"pydoc_data": "the Python reference topics that ship with Python (pydoc_data.topics)"}


@dataclass
class Document:
    """One source document, cleaned to plain text."""

    id: str
    """Content hash; equal texts share an id and are kept once."""
    title: str
    """Heading or file name."""
    text: str
    """Plain text, PII-scrubbed."""
    source: str
    """Where it came from (a path, or builtin:NAME)."""


@dataclass
class DocumentSet:
    """What `collect_documents` gathered and what it dropped."""

    path: str
    n_documents: int
    n_words: int
    dropped: dict[str, int] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    """What was skipped and why, said for the person reading the trace."""

    def to_dict(self) -> dict:
        return asdict(self)


def collect_documents(sources: list[dict], out_path: Path, *, min_words: int = 8,
                      max_words: int = 20000) -> DocumentSet:
    """Read every folder, file and built-in corpus in `sources` (dicts with kind and location)."""
    docs: list[Document] = []
    unreadable: list[Path] = []
    for source in sources:
        kind, location = source["kind"], source["location"]
        if kind == "builtin":
            docs += builtin_documents(location)
        elif kind in ("folder", "file"):
            readable, skipped = document_files(Path(location))
            docs += [file_document(file) for file in readable]
            unreadable += skipped
        elif kind in ("url", "crawl_topic"):
            raise ToolError(f"Cannot fetch {location!r}: this machine has no web access for crawling. "
                            "Save the pages into a folder and name that folder in the goal or with --data.")
    kept: dict[str, Document] = {}
    dropped = {"duplicate": 0, "too_short": 0, "too_long": 0, "unreadable": len(unreadable)}
    notes = [_unreadable_note(unreadable)] if unreadable else []
    for doc in docs:
        words = len(doc.text.split())
        if words < min_words:
            dropped["too_short"] += 1
        elif words > max_words:
            dropped["too_long"] += 1
        elif doc.id in kept:
            dropped["duplicate"] += 1
        else:
            kept[doc.id] = doc
    if not kept:
        raise ToolError("Found no usable documents in " + ", ".join(s["location"] for s in sources)
                        + f" (dropped: {dropped}). " + "".join(note + " " for note in notes)
                        + f"Point the goal at a folder of {'/'.join(sorted(DOCUMENT_SUFFIXES))} files.")
    lines = "".join(json.dumps(asdict(d), ensure_ascii=False) + "\n" for d in kept.values())
    atomic_write_text(out_path, lines)
    return DocumentSet(str(out_path), len(kept), sum(len(d.text.split()) for d in kept.values()), dropped,
                       [s["location"] for s in sources], notes)


def read_documents(path: Path | str) -> list[Document]:
    with open(path, encoding="utf-8") as fh:
        return [Document(**json.loads(line)) for line in fh if line.strip()]


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
    """The files under `path` ingest reads as text, and the documents (PDF, Word, ...) it has to skip.

    A file named on its own is read as text whatever its suffix, unless it is such a document.
    """
    if not path.exists():
        raise ToolError(f"{path} does not exist: check the path in the goal or --data.")
    if path.is_file():
        return ([], [path]) if is_unreadable_document(path) else ([path], [])
    files = sorted(p for p in path.rglob("*") if p.is_file() and not any(x.startswith(".") for x in p.parts))
    return [p for p in files if is_document_file(p)], [p for p in files if is_unreadable_document(p)]


def file_document(file: Path) -> Document:
    raw = file.read_text(encoding="utf-8", errors="replace")
    text = html_to_text(raw) if file.suffix.lower() in (".html", ".htm") else raw
    title = first_heading(text) or file.stem.replace("-", " ").replace("_", " ")
    return make_document(title, text, str(file))


def _unreadable_note(files: list[Path]) -> str:
    kinds = ", ".join(sorted({f.suffix.lower() for f in files}))
    names = ", ".join(f.name for f in files[:3]) + (f" and {len(files) - 3} more" if len(files) > 3 else "")
    return (f"Skipped {len(files)} file(s) ingrain cannot read as text ({kinds}): {names}; "
            "convert them to .txt or .md to use them.")


def make_document(title: str, text: str, source: str) -> Document:
    clean = scrub_pii(text.strip())
    return Document(hashlib.sha256(clean.encode()).hexdigest()[:16], title.strip(), clean, source)


def split_sections(text: str) -> list[tuple[str, str]]:
    """Split reStructuredText-style text on underlined headings (*** / ===)."""
    lines = text.splitlines()
    sections: list[tuple[str, list[str]]] = [("", [])]
    for i, line in enumerate(lines):
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        underline = re.fullmatch(r"[*=\-~^]{3,}", nxt.strip() or "x")
        if line.strip() and underline and len(nxt.strip()) >= len(line.strip()) - 2:
            sections.append((line.strip(), []))
        elif re.fullmatch(r"[*=\-~^]{3,}", line.strip()):
            continue
        else:
            sections[-1][1].append(line)
    return [(title, "\n".join(body).strip()) for title, body in sections if "\n".join(body).strip()]


def first_heading(text: str) -> str | None:
    for line in text.splitlines()[:20]:
        match = re.match(r"#{1,3}\s+(.+)", line)
        if match:
            return match.group(1).strip()
    return None


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self.skip = 0

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag in ("script", "style", "nav", "footer", "header"):
            self.skip += 1
        elif tag in ("p", "br", "li", "h1", "h2", "h3", "h4", "div", "tr"):
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "nav", "footer", "header") and self.skip:
            self.skip -= 1

    def handle_data(self, data: str) -> None:
        if not self.skip:
            self.parts.append(data)


def html_to_text(raw: str) -> str:
    parser = _TextExtractor()
    parser.feed(raw)
    text = html.unescape("".join(parser.parts))
    return re.sub(r"\n\s*\n+", "\n\n", text).strip()
