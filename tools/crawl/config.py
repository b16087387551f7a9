"""CrawlConfig: every limit the crawler keeps, with its help text and validation."""

from __future__ import annotations

from dataclasses import dataclass, field

from tools.errors import ToolError

ROBOTS_TOKEN = "ingrain-crawler"
"""The name robots.txt groups are matched against (`User-agent: ingrain-crawler`)."""
USER_AGENT = f"{ROBOTS_TOKEN}/0.1 (+https://github.com/ingrain; respects robots.txt)"


class CrawlError(ToolError):
    """The crawl saved nothing (or could not start); the message says why and what to change."""

    def __init__(self, message: str, summary: dict | None = None) -> None:
        super().__init__(message)
        self.summary = summary
        """The crawl's summary as a dict when it ran at all, so a caller can still report its counts."""


@dataclass
class CrawlConfig:
    """The limits of one crawl. Defaults suit a documentation site; tests shrink the delays."""

    max_pages: int = field(default=50, metadata={"help": "Pages to save at most (from the cache or fetched)."})
    max_depth: int = field(default=2, metadata={"help": "Link hops from a start URL; 0 saves the start URLs only. "
                                                       "Sitemap entries count as depth 1."})
    max_page_bytes: int = field(default=2_000_000, metadata={"help": "A longer body is cut here (streamed, the "
                                                                      "rest is never read)."})
    max_total_bytes: int = field(default=50_000_000, metadata={"help": "Stop scheduling pages past this many "
                                                                        "saved bytes."})
    concurrency: int = field(default=4, metadata={"help": "Requests in flight at once across all hosts; "
                                                           "one host is further held to min_interval_s."})
    min_interval_s: float = field(default=1.0, metadata={"help": "Seconds from the end of one request to a "
                                                                  "host to the start of the next (one at a time); "
                                                                  "robots.txt Crawl-delay raises it, never lowers."})
    timeout_s: float = field(default=15.0, metadata={"help": "Seconds to wait for a response (connect, read)."})
    max_tries: int = field(default=4, metadata={"help": "Attempts on 429, 5xx, timeouts before giving up."})
    backoff_s: float = field(default=0.5, metadata={"help": "First retry wait; doubles each try "
                                                             "(Retry-After wins when larger)."})
    max_backoff_s: float = field(default=30.0, metadata={"help": "Longest wait between tries, Retry-After too."})
    max_redirects: int = field(default=5, metadata={"help": "Redirect hops per URL; a loop fails earlier."})
    allow_private: bool = field(default=False, metadata={"help": "Allow private, loopback and link-local addresses "
                                                                  "(an intranet, a test server). Cloud metadata "
                                                                  "addresses stay refused."})
    allow_hosts: tuple[str, ...] = field(default=(), metadata={"help": "host or host:port allowed even though it "
                                                                       "resolves to a private address."})
    same_site: bool = field(default=True, metadata={"help": "Follow links only to a start URL's host "
                                                             "(www. ignored, any port)."})
    use_sitemap: bool = field(default=True, metadata={"help": "Read sitemaps named in robots.txt, "
                                                               "else /sitemap.xml."})
    user_agent: str = USER_AGENT
    progress: bool = field(default=False, metadata={"help": "Show a live rich progress line on stderr."})

    def __post_init__(self) -> None:
        for name in ("max_pages", "concurrency", "max_tries", "max_page_bytes", "max_total_bytes"):
            if getattr(self, name) < 1:
                raise CrawlError(f"CrawlConfig.{name} must be at least 1 (got {getattr(self, name)}).")
        for name in ("max_depth", "max_redirects", "min_interval_s", "backoff_s", "max_backoff_s"):
            if getattr(self, name) < 0:
                raise CrawlError(f"CrawlConfig.{name} cannot be negative (got {getattr(self, name)}).")
        if self.timeout_s <= 0:
            raise CrawlError(f"CrawlConfig.timeout_s must be positive (got {self.timeout_s}).")
        self.allow_hosts = tuple(h.lower() for h in self.allow_hosts)
