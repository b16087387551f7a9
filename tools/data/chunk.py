"""Documents into overlapping, token-sized passages that each carry their heading path ("Handbook > Leave")."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from tools.data.extract import Document
from tools.errors import ToolError

HEADING_SEPARATOR = " > "
_ATX = re.compile(r"^ {0,3}(#{1,6})\s+(.+?)\s*#*\s*$")
_UNDERLINE = re.compile(r"^([=\-~^*+#\"'`:._])\1{2,}\s*$")
_FENCE = re.compile(r"^ {0,3}(```|~~~)")
_SENTENCE_END = re.compile(r"[.!?:;][\"')\]]*$")


@dataclass(frozen=True)
class ChunkConfig:
    """How documents are cut into passages."""

    max_tokens: int = field(default=256, metadata={"help": "tokens per passage at most; smaller = more, "
                                                              "narrower passages for questions"})
    overlap_tokens: int = field(default=32, metadata={"help": "tokens a passage repeats from the end of the one "
                                                                  "before, so no fact is cut in two"})

    def __post_init__(self) -> None:
        if self.max_tokens < 8 or not 0 <= self.overlap_tokens <= self.max_tokens // 2:
            raise ToolError(f"ChunkConfig: max_tokens must be at least 8 (got {self.max_tokens}) and overlap_tokens "
                            f"between 0 and half of it (got {self.overlap_tokens}).")


@dataclass
class Chunk:
    """One passage of a document, small enough to ask questions about."""

    text: str
    """The passage as written (line breaks kept), without its heading lines."""
    source: str
    """The document's source (a path, or builtin:NAME)."""
    title: str
    """The document's title."""
    heading: str
    """Heading path from the document title down to the passage's section, joined by " > "."""
    index: int
    """Position of the passage in its document, from 0."""
    n_tokens: int
    """Tokens in the passage (the base tokenizer's count when one was given, else an estimate)."""
    doc_id: str
    """The id of the document it came from."""

    def to_dict(self) -> dict:
        return asdict(self)


def approx_tokens(text: str) -> int:
    """A cheap token estimate: one per word plus one per 8 characters of a word (SmolLM2 averages ~1.3 per word)."""
    return sum(1 + len(word) // 8 for word in text.split())


def sections(text: str) -> list[tuple[list[str], str]]:
    """(heading path, body) per section, on Markdown headings (`#` lines; `===` and `---` underlines are levels
    1 and 2) and reStructuredText's underlined or overlined ones, ranked in the order their styles first appear."""
    lines = text.splitlines()
    markdown = any(_ATX.match(line) for line in lines)
    styles: list[tuple[str, bool]] = []
    path: list[tuple[int, str]] = []
    found: list[tuple[list[str], list[str]]] = [([], [])]
    fenced, i = False, 0
    while i < len(lines):
        line = lines[i]
        if _FENCE.match(line):
            fenced = not fenced
        heading = None if fenced else _heading_at(lines, i, styles, markdown)
        if heading is None:
            found[-1][1].append(line)
            i += 1
            continue
        level, title, used = heading
        path = [(lv, t) for lv, t in path if lv < level] + [(level, title)]
        found.append(([t for _, t in path], []))
        i += used
    return [(headings, "\n".join(body).strip("\n")) for headings, body in found if "\n".join(body).strip()]


def _heading_at(lines: list[str], i: int, styles: list[tuple[str, bool]],
                markdown: bool) -> tuple[int, str, int] | None:
    """(level, title, lines used) when a heading starts at line i."""
    line = lines[i]
    atx = _ATX.match(line)
    if atx:
        return len(atx.group(1)), atx.group(2).strip(), 1
    nxt = lines[i + 1] if i + 1 < len(lines) else ""
    over = bool(_UNDERLINE.match(line)) and i + 2 < len(lines) and lines[i + 2].strip() == line.strip()
    title = nxt if over else line
    under = lines[i + 2] if over else nxt
    plain = title.strip() and not _UNDERLINE.match(title) and not title.lstrip().startswith(("- ", "* ", "|", ">"))
    if not (plain and _UNDERLINE.match(under)):
        return None
    if under.strip()[0] not in "=-" and len(under.strip()) < len(title.strip()) - 2:  # Markdown's may be short
        return None
    if not over and i > 0 and lines[i - 1].strip():  # a line inside a paragraph: "---" is a rule, not a heading
        return None
    style = (under.strip()[0], over)
    if markdown and style in (("=", False), ("-", False)):
        return (1 if style[0] == "=" else 2), title.strip(), 2
    if style not in styles:
        styles.append(style)
    # In a Markdown file any other underline style ranks below the six `#` levels.
    return (7 if markdown else 1) + styles.index(style), title.strip(), 3 if over else 2


def chunk_document(doc: Document, config: ChunkConfig | None = None,
                   count_tokens: Callable[[str], int] | None = None) -> list[Chunk]:
    """Every word of the document in some passage: sections split on headings, then into overlapping windows."""
    config = config or ChunkConfig()
    count = count_tokens or approx_tokens
    chunks: list[Chunk] = []
    for headings, body in sections(doc.text):
        if not headings or headings[0].casefold() != doc.title.casefold():
            headings = [doc.title, *headings] if doc.title else headings
        heading = HEADING_SEPARATOR.join(headings)
        for text in windows(body, config, count):
            chunks.append(Chunk(text, doc.source, doc.title, heading, len(chunks), count(text), doc.id))
    return chunks


def windows(body: str, config: ChunkConfig, count: Callable[[str], int] = approx_tokens) -> list[str]:
    """Slices of `body` of at most `config.max_tokens` (a single longer word stands alone), each starting with
    the last up-to-`overlap_tokens` of the one before, and ending at a sentence end when one is near."""
    spans = [m.span() for m in re.finditer(r"\S+", body)]
    costs = [count(body[s:e]) for s, e in spans]
    out: list[str] = []
    start = 0
    while start < len(spans):
        end, total = start, 0
        while end < len(spans) and (end == start or total + costs[end] <= config.max_tokens):
            total += costs[end]
            end += 1
        if end < len(spans):
            # Prefer to stop after a sentence in the last quarter of the window, so a sentence is rarely split.
            for j in range(end - 1, start + (end - start) * 3 // 4, -1):
                if _SENTENCE_END.search(body[spans[j][0]:spans[j][1]]) or "\n\n" in body[spans[j][1]:spans[j + 1][0]]:
                    end = j + 1
                    break
        out.append(body[spans[start][0]:spans[end - 1][1]])
        if end >= len(spans):
            break
        back, overlap = end, 0
        while back - 1 > start and overlap + costs[back - 1] <= config.overlap_tokens:
            back -= 1
            overlap += costs[back]
        start = back
    return out
