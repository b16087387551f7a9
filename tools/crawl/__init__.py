"""The polite crawler: robots.txt, per-host rate limits, a revalidating cache and an SSRF guard, pages saved raw."""

from tools.crawl.config import USER_AGENT, CrawlConfig, CrawlError
from tools.crawl.crawler import CrawlSummary, crawl
from tools.crawl.guard import address_problem, check_host
from tools.crawl.urls import normalize_url, same_site

__all__ = ["USER_AGENT", "CrawlConfig", "CrawlError", "CrawlSummary", "address_problem", "check_host", "crawl",
           "normalize_url", "same_site"]
