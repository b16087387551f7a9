"""HTTP for the crawler: per-host spacing, retries with backoff, redirects followed by hand through the SSRF
guard, bodies streamed up to a cap, and conditional requests answered from the cache."""

from __future__ import annotations

import email.utils
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from tools.crawl.cache import CacheEntry, PageCache
from tools.crawl.config import CrawlConfig
from tools.crawl.guard import Refused, Unresolvable, check_host
from tools.crawl.urls import DEFAULT_PORTS, normalize_url, origin

if TYPE_CHECKING:  # httpx loads when a crawl starts, not when the agent graph imports tools.crawl
    import httpx

REDIRECTS = frozenset({301, 302, 303, 307, 308})


@dataclass
class Fetched:
    """One URL's response after redirects: fresh from the network or, on a 304, the cached body."""

    url: str
    final_url: str
    status: int
    content_type: str
    body: bytes
    fetched_at: str
    from_cache: bool = False
    truncated: bool = False
    downloaded: int = 0
    """Bytes that came over the wire (0 for a 304)."""
    retries: int = 0
    """Requests repeated after a 429, 5xx or timeout (redirect hops are not retries)."""
    skipped_type: bool = False
    """The content type was not one asked for, so the body was never read."""


class FetchFailed(Exception):
    """A URL could not be fetched; `kind` is the counter it goes under (timeout, dns, refused, redirect_loop...)."""

    def __init__(self, kind: str, url: str, detail: str, *, retries: int = 0, gave_up: bool = False) -> None:
        super().__init__(f"{url}: {detail}")
        self.kind, self.url, self.detail, self.retries, self.gave_up = kind, url, detail, retries, gave_up


class HostLimiter:
    """Spaces the requests to each origin: with an interval, one request to a host is in flight at a time and
    the next starts `interval` after the previous one finished, so the server sees them at least that far apart
    however late a busy thread sends; `defer` pushes the host's next start out (Retry-After, backoff)."""

    def __init__(self, default_interval: float, stopping: threading.Event) -> None:
        self.default_interval, self.stopping = default_interval, stopping
        self._lock = threading.Lock()
        self._next: dict[str, float] = {}
        self._ended: dict[str, float] = {}
        self._interval: dict[str, float] = {}
        self._gates: dict[str, threading.Lock] = {}

    def set_interval(self, host: str, seconds: float) -> None:
        with self._lock:
            self._interval[host] = interval = max(self.default_interval, seconds)
            # The request that fetched robots.txt counts too: the next one waits the new interval after it.
            if host in self._ended:
                self._next[host] = max(self._next.get(host, 0.0), self._ended[host] + interval)

    def interval(self, host: str) -> float:
        with self._lock:
            return self._interval.get(host, self.default_interval)

    @contextmanager
    def turn(self, host: str) -> Iterator[None]:
        """Hold `host`'s turn for one request: waits until the host may be asked again (a Ctrl-C ends the wait
        at once; the caller checks `stopping`), and on leaving starts the host's interval."""
        with self._lock:
            gate = self._gates.setdefault(host, threading.Lock())
            spaced = self._interval.get(host, self.default_interval) > 0
        with gate if spaced else nullcontext():
            with self._lock:
                now = time.monotonic()
                start = max(now, self._next.get(host, 0.0))
            self.stopping.wait(start - now)
            try:
                yield
            finally:
                with self._lock:
                    self._ended[host] = ended = time.monotonic()
                    interval = self._interval.get(host, self.default_interval)
                    self._next[host] = max(self._next.get(host, 0.0), ended + interval)

    def defer(self, host: str, seconds: float) -> None:
        with self._lock:
            self._next[host] = max(self._next.get(host, 0.0), time.monotonic() + seconds)


Permit = Callable[[str], None]
"""Raises FetchFailed when a redirect target may not be followed (robots.txt, scope)."""


class Fetcher:
    """Fetches URLs for one crawl over one pooled httpx client; safe to call from several threads."""

    def __init__(self, config: CrawlConfig, cache: PageCache) -> None:
        import httpx

        self.config, self.cache = config, cache
        self.stopping = threading.Event()
        """Set on Ctrl-C: requests not yet sent are dropped, so the crawl stops within one timeout."""
        self.limiter = HostLimiter(config.min_interval_s, self.stopping)
        # trust_env=False: a proxy from the environment would make the connection, not us, so the SSRF guard
        # would be checking an address nobody connects to.
        self.client = httpx.Client(
            headers={"User-Agent": config.user_agent}, timeout=httpx.Timeout(config.timeout_s),
            follow_redirects=False, trust_env=False,
            limits=httpx.Limits(max_connections=config.concurrency * 2, max_keepalive_connections=config.concurrency))

    def close(self) -> None:
        self.client.close()

    def get(self, url: str, *, permit: Permit | None = None, accept: tuple[str, ...] = ()) -> Fetched:
        """GET `url` (normalised), following redirects by hand: each hop passes the SSRF guard and `permit`.
        `accept` lists content-type prefixes whose body is read; another type comes back with skipped_type."""
        hops: list[str] = [url]
        try:
            return self._follow(hops, permit, accept)
        except FetchFailed as exc:
            if exc.url == url:
                raise
            # Reported under the URL that was asked for, with where its redirects led.
            raise FetchFailed(exc.kind, url, f"redirected to {exc.url}: {exc.detail}", retries=exc.retries,
                              gave_up=exc.gave_up) from None

    def _follow(self, hops: list[str], permit: Permit | None, accept: tuple[str, ...]) -> Fetched:
        url, retries = hops[0], 0
        while True:
            current = hops[-1]
            self._guard(current, retries)
            if permit and len(hops) > 1:  # the caller vetted the first URL; each redirect target is vetted here
                permit(current)
            cached = self.cache.get(current)
            status, headers, body, truncated, downloaded, used = self._with_retries(current, cached, accept, retries)
            retries += used - 1
            if status in REDIRECTS and headers.get("location"):
                target = normalize_url(headers["location"], current)
                if not target:
                    raise FetchFailed("bad_redirect", url, f"{current} redirects to {headers['location']!r}",
                                      retries=retries)
                if target in hops:
                    raise FetchFailed("redirect_loop", url, "redirect loop: " + " → ".join([*hops, target]),
                                      retries=retries)
                if len(hops) > self.config.max_redirects:
                    raise FetchFailed("too_many_redirects", url, f"more than {self.config.max_redirects} "
                                      "redirects", retries=retries)
                hops.append(target)
                continue
            now = datetime.now(UTC).isoformat(timespec="seconds")
            ctype = headers.get("content-type", "")
            if status == 304 and cached:
                entry, cached_body = cached
                return Fetched(url, current, entry.status, entry.content_type, cached_body, now, from_cache=True,
                               truncated=entry.truncated, retries=retries)
            fetched = Fetched(url, current, status, ctype, body, now, truncated=truncated, downloaded=downloaded,
                              retries=retries, skipped_type=status == 200 and not _accepted(ctype, accept))
            if status == 200 and not fetched.skipped_type:
                self.cache.put(CacheEntry(current, current, status, ctype, headers.get("etag"),
                                          headers.get("last-modified"), now, truncated, ""), body)
            return fetched

    def _guard(self, url: str, retries: int) -> None:
        parts = urlsplit(url)
        host = parts.hostname or ""
        try:
            check_host(host, parts.port or DEFAULT_PORTS[parts.scheme], allow_private=self.config.allow_private,
                       allow_hosts=self.config.allow_hosts)
        except Refused as exc:
            raise FetchFailed("refused", url, f"refused: {exc}", retries=retries) from None
        except Unresolvable as exc:
            raise FetchFailed("dns", url, str(exc), retries=retries) from None

    def _with_retries(self, url: str, cached: tuple[CacheEntry, bytes] | None, accept: tuple[str, ...],
                      retries_before: int) -> tuple[int, httpx.Headers, bytes, bool, int, int]:
        import httpx

        host = origin(url)
        kind = detail = ""
        for attempt in range(1, self.config.max_tries + 1):
            retry_after = 0.0
            try:
                with self.limiter.turn(host):
                    if self.stopping.is_set():
                        raise FetchFailed("interrupted", url, "the crawl was interrupted",
                                          retries=retries_before + attempt - 1)
                    status, headers, body, truncated, downloaded = self._once(url, cached, accept)
            except httpx.TimeoutException:
                kind, detail = "timeout", f"no response within {self.config.timeout_s:g}s"
            except httpx.ConnectError as exc:
                raise FetchFailed("unreachable", url, f"cannot connect: {exc or 'connection refused'}",
                                  retries=retries_before + attempt - 1) from None
            except httpx.RemoteProtocolError as exc:
                if "location header" in str(exc).lower():  # httpx parses Location even when not following it
                    raise FetchFailed("bad_redirect", url, str(exc), retries=retries_before + attempt - 1) from None
                kind, detail = "network", f"{type(exc).__name__}: {exc}"
            except httpx.TransportError as exc:
                kind, detail = "network", f"{type(exc).__name__}: {exc}"
            except (httpx.HTTPError, httpx.InvalidURL) as exc:  # a body that does not decode, a URL httpx rejects
                raise FetchFailed("bad_response", url, f"{type(exc).__name__}: {exc}",
                                  retries=retries_before + attempt - 1) from None
            else:
                if status != 429 and status < 500:
                    return status, headers, body, truncated, downloaded, attempt
                kind, detail = f"http_{status}", f"HTTP {status}"
                retry_after = _retry_after(headers.get("retry-after"))
            if attempt == self.config.max_tries:
                break
            wait = max(self.config.backoff_s * 2 ** (attempt - 1), retry_after)
            # The whole host waits, not only this URL: a 429 or a 503 is about the server, not the page.
            self.limiter.defer(host, min(wait, self.config.max_backoff_s))
        raise FetchFailed(kind, url, f"{detail}; gave up after {self.config.max_tries} tries",
                          retries=retries_before + self.config.max_tries - 1, gave_up=True)

    def _once(self, url: str, cached: tuple[CacheEntry, bytes] | None,
              accept: tuple[str, ...]) -> tuple[int, httpx.Headers, bytes, bool, int]:
        headers = {}
        if cached and cached[0].etag:
            headers["If-None-Match"] = cached[0].etag
        if cached and cached[0].last_modified:
            headers["If-Modified-Since"] = cached[0].last_modified
        with self.client.stream("GET", url, headers=headers) as response:
            status, got = response.status_code, response.headers
            if status != 200 or not _accepted(got.get("content-type", ""), accept):
                return status, got, b"", False, 0
            chunks: list[bytes] = []
            size, truncated, cap = 0, False, self.config.max_page_bytes
            for chunk in response.iter_bytes():
                if size + len(chunk) > cap:
                    chunks.append(chunk[: cap - size])
                    size, truncated = cap, True
                    break  # leaving the block closes the connection: the rest is never read
                chunks.append(chunk)
                size += len(chunk)
            return status, got, b"".join(chunks), truncated, response.num_bytes_downloaded


def _accepted(content_type: str, accept: tuple[str, ...]) -> bool:
    kind = content_type.split(";")[0].strip().lower()
    return not accept or any(kind.startswith(prefix) for prefix in accept)


def _retry_after(value: str | None) -> float:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date); 0 when absent or unreadable."""
    if not value:
        return 0.0
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return 0.0
