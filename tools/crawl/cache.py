"""The on-disk page cache: body plus validators (ETag, Last-Modified) per normalised URL, written atomically."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from memory.workspace import atomic_write_bytes


@dataclass
class CacheEntry:
    """What the last successful fetch of one URL returned."""

    url: str
    final_url: str
    status: int
    content_type: str
    etag: str | None
    last_modified: str | None
    fetched_at: str
    truncated: bool
    body_file: str
    """File name of the body in the cache folder; named by its own hash, so a new body never overwrites the one
    the current entry points at."""


class PageCache:
    """A folder of `<key>.json` entries and `<key>-<body hash>.body` files; the entry is written last, so it is
    the commit: an interrupted write leaves the previous entry and its body intact."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    @staticmethod
    def key(url: str) -> str:
        return hashlib.sha256(url.encode()).hexdigest()[:32]

    def get(self, url: str) -> tuple[CacheEntry, bytes] | None:
        path = self.folder / f"{self.key(url)}.json"
        try:
            entry = CacheEntry(**json.loads(path.read_text(encoding="utf-8")))
            return entry, (self.folder / entry.body_file).read_bytes()
        except (OSError, ValueError, TypeError):
            return None  # no entry, or one from an older layout: fetch afresh

    def put(self, entry: CacheEntry, body: bytes) -> None:
        key = self.key(entry.url)
        previous = self.get(entry.url)
        entry.body_file = f"{key}-{hashlib.sha256(body).hexdigest()[:16]}.body"
        atomic_write_bytes(self.folder / entry.body_file, body)
        atomic_write_bytes(self.folder / f"{key}.json", json.dumps(asdict(entry), indent=1).encode())
        if previous and previous[0].body_file != entry.body_file:
            (self.folder / previous[0].body_file).unlink(missing_ok=True)
