"""crawl(): start URLs → raw pages in a folder, a manifest and a summary, breadth first inside the limits."""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import threading
import time
import zlib
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from memory.workspace import atomic_write_bytes, atomic_write_text
from tools.crawl.cache import PageCache
from tools.crawl.config import ROBOTS_TOKEN, CrawlConfig, CrawlError
from tools.crawl.fetch import Fetched, Fetcher, FetchFailed
from tools.crawl.urls import normalize_url, origin, page_links, same_site, sitemap_locations
from tools.data.split import write_jsonl

if TYPE_CHECKING:  # protego and rich load when a crawl runs, not when the agent graph is imported
    from protego import Protego

PAGE_TYPES = ("text/html", "application/xhtml+xml", "text/plain", "text/markdown")
"""Content types saved as pages; anything else (PDF, images, ...) is skipped before its body is read."""
_EXTENSIONS = {"text/html": ".html", "application/xhtml+xml": ".html", "text/plain": ".txt", "text/markdown": ".md"}
_MAX_SITEMAPS = 10
_MAX_FAILURES_LISTED = 200
_KEEP_OUT = "User-agent: *\nDisallow: /\n"


@dataclass
class CrawlSummary:
    """What one crawl did, counted; written beside the pages as summary.json."""

    out_dir: str
    pages_dir: str
    manifest_path: str
    pages_saved: int = 0
    """Pages in pages_dir and the manifest: fetched + from_cache."""
    fetched: int = 0
    """Pages whose body was downloaded."""
    from_cache: int = 0
    """Pages the server answered 304 Not Modified for: body reused from the cache, nothing downloaded."""
    skipped_robots: int = 0
    skipped_type: int = 0
    duplicates: int = 0
    """URLs that redirected to a page already saved."""
    refused: int = 0
    """URLs (or redirect targets) the SSRF guard refused."""
    errors: dict[str, int] = field(default_factory=dict)
    """Failures by kind: timeout, unreachable, dns, redirect_loop, http_404, http_429, ..."""
    retries: int = 0
    gave_up: int = 0
    """URLs still failing (429, 5xx, timeout) after the last try."""
    truncated: int = 0
    bytes_saved: int = 0
    bytes_downloaded: int = 0
    elapsed_s: float = 0.0
    interrupted: bool = False
    notes: list[str] = field(default_factory=list)
    """Things a person should know: robots.txt rules, crawl delays, start URLs that failed."""
    failures: list[dict[str, str]] = field(default_factory=list)
    """url, kind and detail of each failure (the first 200)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def crawl(start_urls: list[str], out_dir: Path | str, config: CrawlConfig | None = None) -> CrawlSummary:
    """Crawl from `start_urls` into `out_dir`: pages/ (raw bodies), manifest.jsonl, summary.json and .cache/.

    A manifest row: url (as linked), final_url (after redirects), status (of the saved body, so 200),
    content_type, fetched_at, title, path (relative to out_dir), bytes, from_cache (the server said 304),
    truncated (cut at max_page_bytes) and depth. Running it again over the same out_dir revalidates the cache.

    Raises CrawlError when a start URL is not an http(s) URL, or when no page at all could be saved (robots.txt
    forbids the site, the guard refused it, the host is unreachable ...), with the reasons in the message.
    """
    starts = [normalize_url(url) for url in start_urls]
    bad = [url for url, norm in zip(start_urls, starts, strict=True) if not norm]
    if bad or not starts:
        raise CrawlError(f"Not an http(s) URL: {', '.join(map(repr, bad))}. Write start URLs in full, "
                         "e.g. https://docs.example.com/." if bad else "No start URL given.")
    summary = _Crawl([s for s in dict.fromkeys(starts) if s], Path(out_dir), config or CrawlConfig()).run()
    if summary.pages_saved == 0:
        # Start URLs that failed, and what robots.txt said, are in the notes already.
        reasons = summary.notes + [f"{f['url']}: {f['detail']}" for f in summary.failures[:5]
                                   if f["kind"] != "robots" and f"start URL {f['url']}" not in " ".join(summary.notes)]
        raise CrawlError(f"Saved no pages from {', '.join(start_urls)}. " + " ".join(
            r if r.endswith(".") else r + "." for r in reasons or ["Nothing in scope was found."]), summary.to_dict())
    return summary


class _Crawl:
    """One crawl's state: the fetcher, robots rules per origin, counters (under a lock) and the manifest rows."""

    def __init__(self, starts: list[str], out_dir: Path, config: CrawlConfig) -> None:
        self.starts, self.out_dir, self.config = starts, out_dir, config
        self.pages_dir = out_dir / "pages"
        self.pages_dir.mkdir(parents=True, exist_ok=True)
        self.fetcher = Fetcher(config, PageCache(out_dir / ".cache"))
        self.summary = CrawlSummary(str(out_dir), str(self.pages_dir), str(out_dir / "manifest.jsonl"))
        self.rows: list[dict[str, Any]] = []
        self.saved_finals: set[str] = set()
        self.robots: dict[str, Protego] = {}
        self.robots_locks: dict[str, threading.Lock] = {}
        self.lock = threading.Lock()

    def run(self) -> CrawlSummary:
        started = time.monotonic()
        frontier: deque[tuple[str, int]] = deque((url, 0) for url in self.starts)
        seen = set(self.starts)
        pool = ThreadPoolExecutor(self.config.concurrency, thread_name_prefix="crawl")
        try:
            with self._progress() as update:
                for host in dict.fromkeys(map(origin, self.starts)):
                    self._rules(host)
                    if self.config.use_sitemap and self.config.max_depth >= 1:
                        for url in self._sitemap_urls(host):
                            if url not in seen and self._in_scope(url):
                                seen.add(url)
                                frontier.append((url, 1))
                while frontier and not self._full():
                    room = self.config.max_pages - self.summary.pages_saved
                    batch = [frontier.popleft() for _ in range(min(room, len(frontier)))]
                    futures = {pool.submit(self._visit, url, depth): depth for url, depth in batch}
                    for future in as_completed(futures):
                        depth = futures[future]
                        for link in future.result():
                            if depth < self.config.max_depth and link not in seen and self._in_scope(link):
                                seen.add(link)
                                frontier.append((link, depth + 1))
                        update(self.summary, started)
        except KeyboardInterrupt:
            self.summary.interrupted = True
            self.fetcher.stopping.set()
            raise
        finally:
            # Requests in flight finish (each bounded by the timeout); queued ones are dropped. The cache only
            # ever holds complete entries, so a rerun continues from it.
            pool.shutdown(wait=True, cancel_futures=True)
            self.fetcher.close()
            self.summary.elapsed_s = round(time.monotonic() - started, 2)
            self._write_outputs()
        return self.summary

    def _visit(self, url: str, depth: int) -> list[str]:
        if self.fetcher.stopping.is_set() or self._full():
            return []
        try:
            if not self._allowed(url):
                raise FetchFailed("robots", url, "disallowed by robots.txt")
            got = self.fetcher.get(url, permit=self._permit, accept=PAGE_TYPES)
        except FetchFailed as exc:
            self._fail(exc)
            return []
        with self.lock:
            self.summary.retries += got.retries
            self.summary.bytes_downloaded += got.downloaded
        if got.skipped_type:
            with self.lock:
                self.summary.skipped_type += 1
            return []
        if got.status != 200:
            self._fail(FetchFailed(f"http_{got.status}", url, f"HTTP {got.status}", retries=got.retries))
            return []
        return self._save(got, depth)

    def _save(self, got: Fetched, depth: int) -> list[str]:
        html = got.content_type.split(";")[0].strip().lower() in ("text/html", "application/xhtml+xml")
        title, links = page_links(got.final_url, got.body, _charset(got.content_type)) if html else ("", [])
        with self.lock:
            if got.final_url in self.saved_finals:
                self.summary.duplicates += 1
                return []
            self.saved_finals.add(got.final_url)
        path = self.pages_dir / _page_name(got.final_url, got.content_type)
        atomic_write_bytes(path, got.body)
        with self.lock:
            self.rows.append({"url": got.url, "final_url": got.final_url, "status": got.status,
                              "content_type": got.content_type, "fetched_at": got.fetched_at, "title": title,
                              "path": str(path.relative_to(self.out_dir)), "bytes": len(got.body),
                              "from_cache": got.from_cache, "truncated": got.truncated, "depth": depth})
            s = self.summary
            s.pages_saved += 1
            s.from_cache += got.from_cache
            s.fetched += not got.from_cache
            s.truncated += got.truncated
            s.bytes_saved += len(got.body)
        return links

    def _fail(self, exc: FetchFailed) -> None:
        if exc.kind == "interrupted":
            return
        with self.lock:
            s = self.summary
            if exc.kind == "robots":
                s.skipped_robots += 1
            elif exc.kind == "refused":
                s.refused += 1
            else:
                s.errors[exc.kind] = s.errors.get(exc.kind, 0) + 1
            s.gave_up += exc.gave_up
            s.retries += exc.retries
            if len(s.failures) < _MAX_FAILURES_LISTED:
                s.failures.append({"url": exc.url, "kind": exc.kind, "detail": exc.detail})
            if exc.url in self.starts and exc.kind != "robots":
                s.notes.append(f"start URL {exc.url} could not be fetched: {exc.detail}")

    def _permit(self, target: str) -> None:
        """A redirect may lead only where a link could: in scope and allowed by that host's robots.txt."""
        if not self._in_scope(target):
            raise FetchFailed("offsite_redirect", target, "redirects off the site to " + target)
        if not self._allowed(target):
            raise FetchFailed("robots", target, "redirect target disallowed by robots.txt")

    def _in_scope(self, url: str) -> bool:
        return not self.config.same_site or same_site(url, self.starts)

    def _allowed(self, url: str) -> bool:
        return self._rules(origin(url)).can_fetch(url, ROBOTS_TOKEN)

    def _full(self) -> bool:
        return (self.summary.pages_saved >= self.config.max_pages
                or self.summary.bytes_saved >= self.config.max_total_bytes)

    def _rules(self, host: str) -> Protego:
        """The robots.txt rules of one origin, fetched once; its Crawl-delay sets the host's interval."""
        with self.lock:
            lock = self.robots_locks.setdefault(host, threading.Lock())
        with lock:
            if host not in self.robots:
                self.robots[host] = self._fetch_robots(host)
            return self.robots[host]

    def _fetch_robots(self, host: str) -> Protego:
        from protego import Protego

        note = None
        try:
            got = self.fetcher.get(host + "/robots.txt")
            if got.status == 200:
                rules = Protego.parse(got.body.decode("utf-8", errors="replace"))
            elif got.status >= 500:
                rules = Protego.parse(_KEEP_OUT)
                note = f"robots.txt at {host} answered HTTP {got.status}; the host is left alone until it can be read"
            else:  # 4xx: no robots.txt, everything is allowed
                rules = Protego.parse("")
        except FetchFailed as exc:
            # A server that fails on robots.txt is treated as saying keep out; an unreachable or refused host fails
            # the same way for its pages, which report it.
            if exc.kind in ("refused", "dns", "unreachable"):
                return Protego.parse("")
            rules = Protego.parse(_KEEP_OUT)
            note = f"robots.txt at {host} could not be read ({exc.detail}); the host is left alone"
        delay = rules.crawl_delay(ROBOTS_TOKEN) or 0.0
        rate = rules.request_rate(ROBOTS_TOKEN)
        interval = max(float(delay), rate.seconds / rate.requests if rate and rate.requests else 0.0)
        self.fetcher.limiter.set_interval(host, interval)
        notes = [note] if note else []
        if delay:
            notes.append(f"robots.txt at {host} asks for a crawl-delay of {delay:g}s; requests there are spaced "
                         f"{self.fetcher.limiter.interval(host):g}s apart")
        # A note already says the host is left alone; otherwise say what robots.txt keeps out.
        if not note and not rules.can_fetch(host + "/", ROBOTS_TOKEN):
            notes.append(f"robots.txt at {host} disallows the whole site for {ROBOTS_TOKEN}: no page there is fetched")
        elif not note:
            notes += [f"robots.txt at {host} disallows start URL {url}" for url in self.starts
                      if origin(url) == host and not rules.can_fetch(url, ROBOTS_TOKEN)]
        with self.lock:
            self.summary.notes += notes
        return rules

    def _sitemap_urls(self, host: str) -> list[str]:
        """Page URLs from the sitemaps robots.txt names (else /sitemap.xml), following sitemap indexes."""
        listed = [u for u in (normalize_url(s) for s in self.robots[host].sitemaps) if u]
        queue = deque(listed or [host + "/sitemap.xml"])
        found: list[str] = []
        done = 0
        while queue and done < _MAX_SITEMAPS and len(found) < self.config.max_pages * 4:
            url = queue.popleft()
            if not self._in_scope(url) or not self._allowed(url):
                continue
            done += 1
            try:
                got = self.fetcher.get(url)
            except FetchFailed as exc:
                if listed:
                    self.summary.notes.append(f"sitemap {url} could not be read: {exc.detail}")
                continue
            if got.status != 200:
                continue
            body = got.body
            if body[:2] == b"\x1f\x8b":  # sitemap.xml.gz; decompressed no further than a page may be long
                with contextlib.suppress(zlib.error):
                    body = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(body, self.config.max_page_bytes)
            locations = sitemap_locations(body)
            (queue.extend if b"<sitemapindex" in body[:2000].lower() else found.extend)(locations)
        return found

    def _write_outputs(self) -> None:
        write_jsonl(self.out_dir / "manifest.jsonl", self.rows)
        atomic_write_text(self.out_dir / "summary.json", json.dumps(self.summary.to_dict(), indent=2) + "\n")
        if not self.summary.interrupted:
            # Pages an earlier crawl saved and this one no longer reached would otherwise reach the dataset.
            keep = {Path(row["path"]).name for row in self.rows}
            for stale in self.pages_dir.iterdir():
                if stale.is_file() and stale.name not in keep:
                    stale.unlink()

    @contextlib.contextmanager
    def _progress(self) -> Iterator[Any]:
        if not self.config.progress:
            yield lambda summary, started: None
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        columns = (TextColumn("[bold]crawl[/]"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[counts]}"),
                   TimeElapsedColumn(), TimeRemainingColumn())
        with Progress(*columns, console=Console(stderr=True), transient=False) as progress:
            task = progress.add_task("crawl", total=self.config.max_pages, counts="")

            def update(s: CrawlSummary, started: float) -> None:
                rate = s.pages_saved / max(time.monotonic() - started, 1e-6)
                progress.update(task, completed=s.pages_saved, counts=(
                    f"{s.fetched} new · {s.from_cache} cached · {s.skipped_robots} robots · {s.refused} refused · "
                    f"{sum(s.errors.values())} errors · {rate:.1f} pages/s"))

            yield update


def _charset(content_type: str) -> str | None:
    match = re.search(r"charset=[\"']?([\w.:-]+)", content_type, re.IGNORECASE)
    return match.group(1) if match else None


def _page_name(url: str, content_type: str) -> str:
    """A readable, unique file name: host and path as a slug, a hash of the full URL, the type's extension."""
    parts = urlsplit(url)
    slug = re.sub(r"[^A-Za-z0-9]+", "-", f"{parts.hostname}{parts.path}").strip("-")[:80]
    digest = hashlib.sha256(url.encode()).hexdigest()[:10]
    return f"{slug}-{digest}{_EXTENSIONS.get(content_type.split(';')[0].strip().lower(), '.txt')}"
