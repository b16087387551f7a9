"""`ingrain data crawl`: a summary table or one JSON document, exit 1 with a plain message when nothing is saved."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from agent.cli.data import data_app
from tests.tools.test_crawl import Site, page, running

runner = CliRunner()
WIDE = {"COLUMNS": "200", "NO_COLOR": "1"}


def small_site() -> Site:
    return Site(pages={"/": page('<a href="/one">one</a> <a href="/private/x">x</a> <a href="/two">two</a>'),
                       "/one": page("<p>one</p>"), "/two": page("<p>two</p>"), "/private/x": page("<p>x</p>")},
                robots="User-agent: *\nDisallow: /private/\n")


def invoke(*args: str):
    return runner.invoke(data_app, ["crawl", *args], env=WIDE)


def test_crawl_prints_a_summary_and_saves_pages(tmp_path: Path) -> None:
    with running(small_site()) as site:
        result = invoke(site.url + "/", "--out", str(tmp_path / "out"), "--delay", "0", "--allow-private")
    assert result.exit_code == 0, result.output
    table = {line.split("│")[1].strip(): line.split("│")[2].strip() for line in result.stdout.splitlines()
             if line.count("│") == 3}
    assert table["pages saved"] == "3" and table["skipped by robots.txt"] == "1"
    assert "ok: 3 pages" in result.stdout
    assert len(list((tmp_path / "out" / "pages").glob("*.html"))) == 3
    assert "/private/x" not in site.paths()


def test_json_is_one_document_with_the_counts(tmp_path: Path) -> None:
    with running(small_site()) as site:
        result = invoke(site.url + "/", "--out", str(tmp_path / "out"), "--delay", "0", "--allow-private",
                        "--max-pages", "2", "--json")
        again = invoke(site.url + "/", "--out", str(tmp_path / "out"), "--delay", "0", "--allow-private",
                       "--max-pages", "2", "--json")
    assert result.exit_code == 0, result.output
    first, second = json.loads(result.stdout), json.loads(again.stdout)
    assert first["pages_saved"] == 2 and first["fetched"] == 2
    assert second["from_cache"] == 2 and second["fetched"] == 0


def test_depth_zero_saves_the_start_page_only(tmp_path: Path) -> None:
    with running(small_site()) as site:
        result = invoke(site.url + "/", "--out", str(tmp_path / "out"), "--delay", "0", "--allow-private",
                        "--depth", "0", "--json")
    assert json.loads(result.stdout)["pages_saved"] == 1
    assert site.paths() <= {"/robots.txt", "/"}


def test_loopback_without_allow_private_fails_plainly_in_a_real_process(tmp_path: Path) -> None:
    with running(small_site()) as site:
        plain = subprocess.run([sys.executable, "-m", "agent.cli", "data", "crawl", site.url + "/", "--out",
                                str(tmp_path / "out")], capture_output=True, text=True, timeout=120,
                               env={**os.environ, **WIDE})
        as_json = subprocess.run([sys.executable, "-m", "agent.cli", "data", "crawl", site.url + "/", "--out",
                                  str(tmp_path / "out"), "--json"], capture_output=True, text=True, timeout=120,
                                 env={**os.environ, **WIDE})
    assert plain.returncode == 1 and "Traceback" not in plain.stderr
    assert "loopback address" in plain.stderr and "--allow-private" in plain.stderr
    document = json.loads(as_json.stdout)
    assert as_json.returncode == 1 and document["error"]["type"] == "CrawlError"
    assert document["summary"]["refused"] == 1
    assert site.log == []


def test_robots_disallowing_everything_is_an_error(tmp_path: Path) -> None:
    site = Site(pages={"/": page("<p>hidden</p>")}, robots="User-agent: ingrain-crawler\nDisallow: /\n")
    with running(site):
        result = invoke(site.url + "/", "--out", str(tmp_path / "out"), "--delay", "0", "--allow-private")
    assert result.exit_code == 1
    assert "disallows the whole site for ingrain-crawler" in result.output
    assert site.paths() == {"/robots.txt"}


def test_bad_url_is_an_error_not_a_traceback(tmp_path: Path) -> None:
    result = invoke("not-a-url", "--out", str(tmp_path / "out"))
    assert result.exit_code == 1 and "Not an http(s) URL" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
