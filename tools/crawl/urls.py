"""URL normalisation, the same-site scope, links and titles from HTML, and <loc> entries from sitemaps."""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser
from urllib.parse import quote, urljoin, urlsplit, urlunsplit

DEFAULT_PORTS = {"http": 80, "https": 443}
# Characters RFC 3986 allows unescaped in a path; anything else (spaces, non-ASCII) is percent-encoded, and
# existing %XX escapes are kept as they are, so one page never gets two spellings.
_PATH_SAFE = "/%:@!$&'()*+,;=-._~"
_LOC = re.compile(rb"<loc>\s*(.*?)\s*</loc>", re.IGNORECASE | re.DOTALL)


def normalize_url(url: str, base: str | None = None) -> str | None:
    """One spelling per page: `url` (resolved against `base`) with a lowercase scheme and host, no default port,
    no credentials, no fragment, dot segments removed and query parameters in sorted order.

    None when it is not an http(s) URL with a host (mailto:, javascript:, a bad port, ...).
    """
    try:
        parts = urlsplit(urljoin(base, url.strip()) if base else url.strip())
        scheme = parts.scheme.lower()
        host = (parts.hostname or "").rstrip(".")
        port = parts.port
    except ValueError:
        return None
    if scheme not in DEFAULT_PORTS or not host:
        return None
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            return None
    netloc = f"[{host}]" if ":" in host else host
    if port is not None and port != DEFAULT_PORTS[scheme]:
        netloc += f":{port}"
    path = quote(_remove_dot_segments(parts.path or "/"), safe=_PATH_SAFE)
    # Sorting the raw pieces keeps each value byte for byte (no re-encoding), yet a=1&b=2 and b=2&a=1 are one URL.
    query = "&".join(sorted(piece for piece in parts.query.split("&") if piece))
    return urlunsplit((scheme, netloc, path, query, ""))


def _remove_dot_segments(path: str) -> str:
    out: list[str] = []
    for segment in path.split("/")[1:] if path.startswith("/") else path.split("/"):
        if segment == "..":
            if out:
                out.pop()
        elif segment != ".":
            out.append(segment)
    trailing = "/" if path.endswith(("/.", "/..")) else ""
    return "/" + "/".join(out) + trailing


def origin(url: str) -> str:
    """scheme://host[:port] of a normalised URL: what robots.txt and the rate limit apply to."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def site_host(url: str) -> str:
    """The host a scope compares: lowercase, without a leading `www.` and without the port."""
    host = (urlsplit(url).hostname or "").lower()
    return host[4:] if host.startswith("www.") else host


def same_site(url: str, start_urls: list[str]) -> bool:
    """Whether `url` is on a start URL's host. `www.` and the port are ignored; other subdomains are other sites
    (no public-suffix list is consulted, so docs.example.com does not bring in blog.example.com)."""
    return site_host(url) in {site_host(start) for start in start_urls}


class PageLinks(HTMLParser):
    """The <title> and every followable link of one HTML page, resolved against its URL (or its <base href>)."""

    def __init__(self, url: str) -> None:
        super().__init__(convert_charrefs=True)
        self.base = url
        self.links: list[str] = []
        self.title = ""
        self.nofollow = False
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "base" and values.get("href"):
            self.base = urljoin(self.base, values["href"])
        elif tag in ("a", "area") and values.get("href") and "nofollow" not in values.get("rel", "").lower():
            link = normalize_url(values["href"], self.base)
            if link:
                self.links.append(link)
        elif tag == "meta" and values.get("name", "").lower() in ("robots", "ingrain-crawler"):
            self.nofollow = self.nofollow or "nofollow" in values.get("content", "").lower()
        elif tag == "title":
            self._in_title = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False

    def handle_data(self, data: str) -> None:
        if self._in_title and len(self.title) < 300:
            self.title += data


def page_links(url: str, body: bytes, charset: str | None = None) -> tuple[str, list[str]]:
    """(title, links) of an HTML page; no links when the page says `<meta name="robots" content="nofollow">`."""
    parser = PageLinks(url)
    parser.feed(body.decode(charset or "utf-8", errors="replace"))
    parser.close()
    links = [] if parser.nofollow else list(dict.fromkeys(parser.links))
    return " ".join(parser.title.split()), links


def sitemap_locations(body: bytes) -> list[str]:
    """Every <loc> of a sitemap or sitemap index. A regex, not an XML parser: no entity expansion, and a
    namespace or a broken tag elsewhere costs nothing."""
    found = (normalize_url(html.unescape(m.group(1).decode("utf-8", errors="replace"))) for m in _LOC.finditer(body))
    return list(dict.fromkeys(url for url in found if url))
