"""The polite crawler against a real HTTP server on loopback that logs every request it receives.

The server's own log is the evidence: disallowed paths never requested, requests spaced by the crawl-delay,
no body sent twice for an unchanged page, the huge page abandoned mid-stream, the 429 retried after Retry-After.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tools.crawl import CrawlConfig, CrawlError, CrawlSummary, address_problem, check_host, crawl, normalize_url
from tools.crawl.guard import Refused
from tools.crawl.urls import same_site

REPO = Path(__file__).resolve().parents[2]
HUGE_BYTES = 20_000_000
PAGE_CAP = 100_000
DELAY = 0.2
# A crawl in its own process, so that it can be killed or interrupted like a real one.
CHILD_CRAWL = [sys.executable, "-c", "import sys; from tools.crawl import crawl, CrawlConfig; crawl([sys.argv[1]], "
               "sys.argv[2], CrawlConfig(min_interval_s=0, allow_private=True, concurrency=1))"]


@dataclass
class Hit:
    path: str
    at: float
    status: int
    sent: int = 0
    """Body bytes the handler managed to write before the client went away."""


@dataclass
class Site:
    """A small site on 127.0.0.1; `pages` maps a path to (content type, body) or to a handler function."""

    pages: dict[str, tuple[str, bytes] | Callable[[BaseHTTPRequestHandler], None]]
    robots: str = ""
    log: list[Hit] = field(default_factory=list)
    port: int = 0
    calls: dict[str, int] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def hits(self, path: str) -> list[Hit]:
        return [hit for hit in self.log if hit.path == path]

    def paths(self) -> set[str]:
        return {hit.path for hit in self.log}


def page(body: str, *, title: str = "A page", etag: bool = True,
         last_modified: bool = False) -> tuple[str, bytes, dict[str, str]]:
    data = f"<html><head><title>{title}</title></head><body>{body}</body></html>".encode()
    headers = {"ETag": f'"{hashlib.md5(data).hexdigest()}"'} if etag else {}
    if last_modified:
        headers["Last-Modified"] = "Wed, 01 Jan 2025 00:00:00 GMT"
    return "text/html; charset=utf-8", data, headers


@contextlib.contextmanager
def running(site: Site) -> Iterator[Site]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(site))
    server.daemon_threads = True
    site.port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield site
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def serve() -> Iterator[Callable[[Site], Site]]:
    with contextlib.ExitStack() as stack:
        yield lambda site: stack.enter_context(running(site))


def _handler(site: Site) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        served = site

        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            site.calls[self.path] = site.calls.get(self.path, 0) + 1
            hit = Hit(self.path, time.monotonic(), 0)
            site.log.append(hit)
            target = site.pages.get(self.path)
            if self.path == "/robots.txt" and site.robots:
                target = ("text/plain", site.robots.replace("PORT", str(site.port)).encode(), {})
            if target is None:
                return self.reply(hit, 404, "text/html", b"<h1>not found</h1>")
            if callable(target):
                return target(self, hit)
            ctype, body, headers = target
            etag, since = headers.get("ETag"), headers.get("Last-Modified")
            if (etag and self.headers.get("If-None-Match") == etag) or (
                    since and self.headers.get("If-Modified-Since") == since):
                return self.reply(hit, 304, ctype, b"", headers)
            return self.reply(hit, 200, ctype, body.replace(b"PORT", str(site.port).encode()), headers)

        def reply(self, hit: Hit, status: int, ctype: str, body: bytes, headers: dict | None = None) -> None:
            hit.status = status
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)
            hit.sent = len(body)

    return Handler


def redirect(location: str) -> Callable:
    def handle(handler: BaseHTTPRequestHandler, hit: Hit) -> None:
        hit.status = 302
        handler.send_response(302)
        handler.send_header("Location", location.replace("PORT", str(handler.served.port)))  # type: ignore
        handler.send_header("Content-Length", "0")
        handler.end_headers()
    return handle


def flaky(handler: BaseHTTPRequestHandler, hit: Hit) -> None:
    """429 with Retry-After: 1 the first time, then the page."""
    if handler.served.calls["/flaky"] == 1:  # type: ignore[attr-defined]
        hit.status = 429
        handler.send_response(429)
        handler.send_header("Retry-After", "1")
        handler.send_header("Content-Length", "0")
        handler.end_headers()
        return
    ctype, body, headers = page("flaky page, second time lucky")
    handler.reply(hit, 304 if handler.headers.get("If-None-Match") == headers["ETag"] else 200,  # type: ignore
                  ctype, b"" if handler.headers.get("If-None-Match") == headers["ETag"] else body, headers)


def slow(handler: BaseHTTPRequestHandler, hit: Hit) -> None:
    time.sleep(1.5)
    with_suppressed_disconnect(lambda: handler.reply(hit, 200, "text/html", b"<p>late</p>"))  # type: ignore


def huge(handler: BaseHTTPRequestHandler, hit: Hit) -> None:
    etag = '"huge-v1"'
    if handler.headers.get("If-None-Match") == etag:
        return handler.reply(hit, 304, "text/html", b"", {"ETag": etag})  # type: ignore[attr-defined]
    hit.status = 200
    handler.send_response(200)
    handler.send_header("Content-Type", "text/html")
    handler.send_header("Content-Length", str(HUGE_BYTES))
    handler.send_header("ETag", etag)
    handler.end_headers()
    chunk = b"<p>" + b"x" * 65_530 + b"</p>"

    def stream() -> None:
        while hit.sent < HUGE_BYTES:
            handler.wfile.write(chunk)
            hit.sent += len(chunk)
    with_suppressed_disconnect(stream)


def with_suppressed_disconnect(fn: Callable[[], None]) -> None:
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        fn()


def main_site() -> Site:
    p = "http://127.0.0.1:PORT"
    index = (
        "<h1>Index</h1>"
        '<a href="/a">a</a> <a href="/a#section">a again</a> <a href="a?">a once more</a>'
        '<a href="/page?b=2&a=1">p1</a> <a href="/page?a=1&b=2#frag">p2</a> '
        f'<a href="{p}/page?a=1&b=2">p3</a>'
        '<a href="/private/secret">secret</a> <a href="/redirect-1">moved</a> <a href="/loop-a">loop</a>'
        '<a href="/flaky">flaky</a> <a href="/slow">slow</a> <a href="/huge">huge</a> <a href="/gone">gone</a>'
        '<a href="/missing">missing</a> <a href="/to-metadata">metadata</a> <a href="/logo.png">logo</a>'
        '<a href="mailto:someone@example.org">mail</a> <a href="http://example.org/elsewhere">elsewhere</a>'
        '<a href="/since">since</a>'
    )
    site = Site(pages={
        "/": page(index, title="The   index"),
        "/a": page('<p>page a</p><a href="/b">b</a>'),
        "/b": page('<p>page b at depth two</p><a href="/c">c</a>'),
        "/c": page("<p>page c is at depth three</p>"),
        "/page?a=1&b=2": page("<p>the query page</p>"),
        "/private/secret": page("<p>never to be read</p>"),
        "/private/in-sitemap": page("<p>never to be read either</p>"),
        "/from-sitemap": page("<p>only the sitemap knows me</p>"),
        "/since": page("<p>dated page</p>", etag=False, last_modified=True),
        "/redirect-1": redirect("/redirect-2"),
        "/redirect-2": redirect(f"{p}/moved-here"),
        "/moved-here": page("<p>the page that moved</p>"),
        "/loop-a": redirect("/loop-b"),
        "/loop-b": redirect("/loop-a"),
        "/to-metadata": redirect("http://169.254.169.254/latest/meta-data/"),
        "/gone": lambda h, hit: h.reply(hit, 410, "text/html", b"gone"),
        "/logo.png": ("image/png", b"\x89PNG" + b"\0" * 5000, {}),
        "/flaky": flaky,
        "/slow": slow,
        "/huge": huge,
        "/sitemap.xml": ("application/xml", (
            '<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
            f"<url><loc>{p}/from-sitemap</loc></url><url><loc>{p}/private/in-sitemap</loc></url>"
            f"<url><loc>{p}/a</loc></url></urlset>").encode(), {}),
    }, robots=f"User-agent: *\nDisallow: /private/\nCrawl-delay: {DELAY}\nSitemap: {p}/sitemap.xml\n")
    return site


def manifest(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


def fast_config(**overrides: object) -> CrawlConfig:
    settings: dict = {"max_pages": 50, "max_depth": 2, "max_page_bytes": PAGE_CAP, "timeout_s": 0.5,
                      "max_tries": 2, "backoff_s": 0.1, "min_interval_s": 0.0, "allow_private": True}
    return CrawlConfig(**{**settings, **overrides})


@pytest.fixture(scope="module")
def twice(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Site, list[Hit], CrawlSummary, CrawlSummary,
                                                                       Path]]:
    """The main site crawled twice into one folder (once for all the tests that read it: it takes seconds)."""
    out = tmp_path_factory.mktemp("crawl") / "out"
    with running(main_site()) as site:
        first = crawl([site.url + "/"], out, fast_config())
        first_log = list(site.log)
        site.log.clear()
        second = crawl([site.url + "/"], out, fast_config())
        yield site, first_log, first, second, out


def test_first_crawl_saves_pages_and_obeys_robots_delay_and_scope(twice: tuple) -> None:
    site, log, summary, _, out = twice
    paths = {hit.path for hit in log}
    # robots.txt: nothing under /private/ was ever asked for, from a link or from the sitemap
    assert not any(p.startswith("/private/") for p in paths)
    assert summary.skipped_robots == 2
    assert any("crawl-delay of 0.2s" in note for note in summary.notes)
    # the server received every request after robots.txt at least the crawl-delay after the one before, however
    # late a busy client thread sent the earlier one (the delay runs from the end of the previous response)
    gaps = [b.at - a.at for a, b in itertools.pairwise(log)]
    assert min(gaps) >= DELAY, gaps
    # one request per page however the links spell it (fragment, empty query, query order, absolute form)
    assert len(site.hits("/a")) == 1 and [h.path for h in log].count("/page?a=1&b=2") == 1
    assert "/page?b=2&a=1" not in paths
    # depth 2: /b is two hops from the start, /c three
    assert "/b" in paths and "/c" not in paths
    # the sitemap brought a page no link leads to
    assert "/from-sitemap" in paths
    by_url = {row["url"]: row for row in manifest(out)}
    assert by_url[site.url + "/"]["title"] == "The index"
    moved = by_url[site.url + "/redirect-1"]
    assert moved["final_url"] == site.url + "/moved-here" and moved["status"] == 200
    for row in manifest(out):
        saved = out / row["path"]
        assert saved.is_file() and saved.stat().st_size == row["bytes"]
    assert summary.pages_saved == len(manifest(out)) == summary.fetched
    assert json.loads((out / "summary.json").read_text())["pages_saved"] == summary.pages_saved


def test_failures_are_counted_by_kind_not_raised(twice: tuple) -> None:
    _, log, summary, _, _ = twice
    assert summary.errors["redirect_loop"] == 1
    assert summary.errors["http_410"] == 1 and summary.errors["http_404"] >= 1
    assert summary.errors["timeout"] == 1 and summary.gave_up == 1
    assert len([h for h in log if h.path == "/slow"]) == 2  # max_tries
    assert summary.skipped_type == 1  # the PNG: headers read, body never
    # the redirect to the cloud metadata address was refused before any connection, even with allow_private
    assert summary.refused == 1
    refused = next(f for f in summary.failures if f["kind"] == "refused")
    assert refused["url"].endswith("/to-metadata")
    assert "169.254.169.254" in refused["detail"] and "metadata" in refused["detail"]
    # links off the site are not followed
    assert not any("elsewhere" in f["url"] for f in summary.failures)


def test_429_is_retried_after_retry_after_and_saved(twice: tuple) -> None:
    _, log, summary, _, _ = twice
    flaky_hits = [h for h in log if h.path == "/flaky"]
    assert [h.status for h in flaky_hits] == [429, 200]
    assert flaky_hits[1].at - flaky_hits[0].at >= 1.0
    assert summary.retries == 2  # the 429 and the first /slow timeout; redirect hops are not retries


def test_huge_page_is_cut_at_the_cap_and_not_read_to_the_end(twice: tuple) -> None:
    _, log, summary, _, out = twice
    row = next(r for r in manifest(out) if r["url"].endswith("/huge"))
    assert row["bytes"] == PAGE_CAP and row["truncated"]
    assert (out / row["path"]).stat().st_size == PAGE_CAP
    # the server could not write its 20 MB: the crawler closed the connection after the cap
    assert next(h for h in log if h.path == "/huge").sent < HUGE_BYTES / 2
    assert summary.truncated == 1


def test_second_crawl_revalidates_and_downloads_no_unchanged_body(twice: tuple) -> None:
    site, _, first, second, out = twice
    saved_paths = {urlsplit(row["final_url"]).path + (f"?{urlsplit(row['final_url']).query}" if "?" in
                   row["final_url"] else "") for row in manifest(out)}
    assert len(saved_paths) == first.pages_saved
    for path in saved_paths:
        statuses = [h.status for h in site.hits(path)]
        assert statuses == [304], (path, statuses)
    assert second.pages_saved == first.pages_saved
    assert second.from_cache == first.pages_saved and second.fetched == 0
    assert second.bytes_downloaded == 0
    assert all(row["from_cache"] for row in manifest(out))
    # /since has no ETag: its Last-Modified went back as If-Modified-Since
    assert site.hits("/since")[0].status == 304


def test_5xx_is_retried_and_a_failing_robots_txt_keeps_the_crawler_out(tmp_path: Path,
                                                                        serve: Callable[[Site], Site]) -> None:
    def unsteady(handler: BaseHTTPRequestHandler, hit: Hit) -> None:
        if handler.served.calls["/"] <= 2:  # type: ignore[attr-defined]
            return handler.reply(hit, 503, "text/html", b"busy")  # type: ignore[attr-defined]
        ctype, body, headers = page("<p>up again</p>")
        return handler.reply(hit, 200, ctype, body, headers)  # type: ignore[attr-defined]

    site = serve(Site(pages={"/": unsteady}))
    summary = crawl([site.url + "/"], tmp_path / "a", fast_config(max_tries=3))
    assert [h.status for h in site.hits("/")] == [503, 503, 200]
    assert summary.pages_saved == 1 and summary.retries == 2 and summary.gave_up == 0

    down = serve(Site(pages={"/": page("<p>hi</p>"),
                             "/robots.txt": lambda h, hit: h.reply(hit, 500, "text/plain", b"oops")}))
    with pytest.raises(CrawlError, match=r"robots.txt at \S+ could not be read \(HTTP 500.*the host is left alone\.$"):
        crawl([down.url + "/"], tmp_path / "b", fast_config())
    assert [h.path for h in down.log] == ["/robots.txt", "/robots.txt"]  # retried, then nothing else asked


def test_private_link_refused_without_allow_private(tmp_path: Path, serve: Callable[[Site], Site]) -> None:
    site = serve(Site(pages={"/": page('<a href="http://127.0.0.1:9/admin">admin</a> <a href="/ok">ok</a>'),
                              "/ok": page("<p>fine</p>")}))
    # The test server itself is on loopback, so it is named in allow_hosts; the link to another loopback port is
    # on the same site (the port does not change the site) yet may not be reached.
    summary = crawl([site.url + "/"], tmp_path / "out", fast_config(allow_private=False,
                                                                     allow_hosts=(f"127.0.0.1:{site.port}",)))
    assert summary.pages_saved == 2
    assert summary.refused == 1 and "unreachable" not in summary.errors
    failure = summary.failures[0]
    assert failure["url"] == "http://127.0.0.1:9/admin" and "loopback" in failure["detail"]


def test_loopback_start_is_refused_with_a_clear_message(tmp_path: Path, serve: Callable[[Site], Site]) -> None:
    site = serve(Site(pages={"/": page("<p>hi</p>")}))
    with pytest.raises(CrawlError, match="loopback address.*--allow-private") as caught:
        crawl([site.url + "/"], tmp_path / "out", fast_config(allow_private=False))
    assert site.log == []  # refused before any connection
    assert caught.value.summary and caught.value.summary["refused"] == 1


def test_robots_disallowing_everything_is_said_plainly(tmp_path: Path, serve: Callable[[Site], Site]) -> None:
    site = serve(Site(pages={"/": page("<a href='/x'>x</a>")}, robots="User-agent: *\nDisallow: /\n"))
    with pytest.raises(CrawlError, match="disallows the whole site"):
        crawl([site.url + "/"], tmp_path / "out", fast_config())
    assert site.paths() <= {"/robots.txt"}


def test_unreachable_and_unresolvable_starts_are_errors_not_tracebacks(tmp_path: Path) -> None:
    with pytest.raises(CrawlError, match="cannot connect"):
        crawl(["http://127.0.0.1:9/"], tmp_path / "a", fast_config())
    with pytest.raises(CrawlError, match="cannot resolve"):
        crawl(["http://no-such-host.invalid/"], tmp_path / "b", fast_config())
    with pytest.raises(CrawlError, match="Not an http"):
        crawl(["ftp://example.org/"], tmp_path / "c", fast_config())


def test_max_pages_and_total_bytes_caps(tmp_path: Path, serve: Callable[[Site], Site]) -> None:
    links = "".join(f'<a href="/p{i}">p{i}</a>' for i in range(20))
    site = serve(Site(pages={"/": page(links), **{f"/p{i}": page(f"<p>{'word ' * 200}{i}</p>") for i in range(20)}}))
    capped = crawl([site.url + "/"], tmp_path / "pages", fast_config(max_pages=5))
    assert capped.pages_saved == 5 and len(list((tmp_path / "pages" / "pages").iterdir())) == 5
    assert len([h for h in site.log if h.path.startswith("/p")]) == 4
    by_bytes = crawl([site.url + "/"], tmp_path / "bytes", fast_config(max_total_bytes=3000, concurrency=1))
    assert 3000 <= by_bytes.bytes_saved < 3000 + 1200 and by_bytes.pages_saved < 10


def test_killed_crawl_continues_from_the_cache(tmp_path: Path, serve: Callable[[Site], Site]) -> None:
    links = "".join(f'<a href="/p{i}">p{i}</a>' for i in range(12))
    site = serve(Site(pages={"/": page(links), **{f"/p{i}": page(f"<p>page {i}</p>") for i in range(12)}},
                       robots="User-agent: *\nCrawl-delay: 0.2\n"))
    out = tmp_path / "out"
    child = subprocess.Popen([*CHILD_CRAWL, site.url + "/", str(out)], cwd=REPO,
                             env={**os.environ, "PYTHONPATH": str(REPO)})
    deadline = time.monotonic() + 30
    while len(list((out / ".cache").glob("*.json"))) < 5 and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    cached_before = {h.path for h in site.log if h.status == 200}
    assert 4 <= len(cached_before) < 13, "the child was killed mid-crawl"
    site.log.clear()
    summary = crawl([site.url + "/"], out, fast_config(concurrency=1))
    assert summary.pages_saved == 13 and not summary.interrupted
    for path in cached_before - {"/robots.txt"}:
        assert [h.status for h in site.hits(path)] == [304], path
    assert summary.from_cache >= len(cached_before) - 2 and summary.fetched == 13 - summary.from_cache


def test_ctrl_c_stops_soon_and_leaves_the_cache_and_a_summary(tmp_path: Path, serve: Callable[[Site], Site]) -> None:
    links = "".join(f'<a href="/p{i}">p{i}</a>' for i in range(30))
    site = serve(Site(pages={"/": page(links), **{f"/p{i}": page(f"<p>page {i}</p>") for i in range(30)}},
                      robots="User-agent: *\nCrawl-delay: 2\n"))
    out = tmp_path / "out"
    child = subprocess.Popen([*CHILD_CRAWL, site.url + "/", str(out)], cwd=REPO, stderr=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONPATH": str(REPO)})
    deadline = time.monotonic() + 30
    while len(list((out / ".cache").glob("*.json"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    interrupted_at = time.monotonic()
    child.send_signal(signal.SIGINT)
    _, stderr = child.communicate(timeout=30)
    # Stopped well within one 2 s crawl-delay, not after the 28 pages still queued.
    assert time.monotonic() - interrupted_at < 1.5
    assert child.returncode != 0 and "KeyboardInterrupt" in stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["interrupted"] and summary["pages_saved"] == len(manifest(out)) >= 1
    assert not summary["errors"]
    for entry in (out / ".cache").glob("*.json"):
        meta = json.loads(entry.read_text())
        assert (out / ".cache" / meta["body_file"]).is_file()
    assert not list((out / ".cache").glob(".*.tmp"))


def test_normalize_url_gives_one_spelling() -> None:
    assert normalize_url("HTTP://Example.COM:80/a/./b/../c?b=2&a=1#frag") == "http://example.com/a/c?a=1&b=2"
    assert normalize_url("https://example.com:443") == "https://example.com/"
    assert normalize_url("https://user:pw@example.com:8443/x") == "https://example.com:8443/x"
    assert normalize_url("../up?q=a b", "https://example.com/docs/page/") == "https://example.com/docs/up?q=a b"
    assert normalize_url("/caf%C3%A9 menu", "http://example.com/") == "http://example.com/caf%C3%A9%20menu"
    assert normalize_url("https://bücher.example/") == "https://xn--bcher-kva.example/"
    for not_http in ("mailto:a@example.com", "javascript:void(0)", "ftp://example.com/", "http://:80/",
                     "http://example.com:99999/"):
        assert normalize_url(not_http) is None
    assert same_site("https://www.example.com:8443/x", ["https://example.com/"])
    assert not same_site("https://blog.example.com/", ["https://docs.example.com/"])


def test_guard_refuses_every_private_kind() -> None:
    import ipaddress

    for address, kind in (("127.0.0.1", "loopback"), ("10.1.2.3", "private"), ("192.168.0.1", "private"),
                          ("169.254.10.10", "link-local"), ("224.0.0.1", "multicast"), ("0.0.0.0", "unspecified"),
                          ("::1", "loopback"), ("fe80::1", "link-local"), ("::ffff:10.0.0.1", "private"),
                          ("100.64.0.1", "not a public"), ("240.0.0.1", "reserved")):
        assert kind in (address_problem(ipaddress.ip_address(address)) or ""), address
    assert address_problem(ipaddress.ip_address("93.184.216.34")) is None
    assert address_problem(ipaddress.ip_address("10.0.0.1"), allow_private=True) is None
    for metadata in ("169.254.169.254", "fd00:ec2::254", "168.63.129.16"):
        assert "metadata" in address_problem(ipaddress.ip_address(metadata), allow_private=True), metadata
    with pytest.raises(Refused, match="localhost resolves to"):
        check_host("localhost", 80)
    assert check_host("localhost", 8080, allow_hosts=("localhost:8080",))


def test_importing_the_crawler_loads_no_http_client_robots_parser_or_progress_bar() -> None:
    # agent.nodes.data imports tools.crawl with the graph; httpx, protego and rich load when a crawl runs.
    code = "import sys, tools.crawl; print(sorted({'httpx', 'protego', 'rich.progress'} & set(sys.modules)))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "[]\n"
