"""`ingrain data crawl`: a summary table or one JSON document, exit 1 with a plain message when nothing is saved.

Also gather with a `url` source: the crawl is a traced tool call and its pages become the run's documents.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from langgraph.runtime import Runtime
from typer.testing import CliRunner

from agent.cli.data import data_app
from agent.context import Context
from agent.nodes import data as data_node
from agent.state import State
from memory import Store, Workspace
from tests.tools.test_crawl import Site, page, running
from tools.crawl import CrawlConfig, CrawlError
from tools.data import ingest

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


def gather_with_url(url: str, workspace: Workspace) -> tuple[dict, list[dict], Context]:
    with Store.open(workspace) as store:
        run_id = store.create_run(f"learn from {url}", "auto")
    context = Context(run_id, str(workspace.root), policy="auto", progress=False)
    state = State(goal=f"learn from {url}", spec={"sources": [{"kind": "url", "location": url}]})
    try:
        update = data_node.gather(state, Runtime(context=context))
    finally:
        with Store.open(workspace) as store:
            events = store.events(run_id)
    return update, events, context


def prose(topic: str) -> str:
    return f"<h1>{topic}</h1><p>{topic} is explained here in a sentence long enough to be kept as a document.</p>"


def test_gather_crawls_a_url_source_into_the_run_and_reads_its_pages(workspace: Workspace,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    site = Site(pages={"/": page(prose("Index") + '<a href="/tides">tides</a> <a href="/moons">moons</a>'),
                       "/tides": page(prose("Tides")), "/moons": page(prose("Moons"))})
    with running(site):
        # The test server is on loopback, which the node's crawl refuses; only this one host:port is let through.
        monkeypatch.setattr(data_node, "GATHER_CRAWL", CrawlConfig(max_pages=50, max_depth=2, min_interval_s=0,
                                                                   allow_hosts=(f"127.0.0.1:{site.port}",)))
        update, events, context = gather_with_url(site.url + "/", workspace)
    documents = ingest.read_documents(update["documents"]["path"])
    assert sorted(d.title for d in documents) == ["Index", "Moons", "Tides"]
    assert all(d.source.startswith(str(context.run_dir / "crawl" / "pages")) for d in documents)
    call = next(e for e in events if e["kind"] == "tool_call" and e["name"] == "crawl")
    assert call["data"]["result"]["pages_saved"] == 3 and call["data"]["result"]["fetched"] == 3
    assert (context.run_dir / "crawl" / "manifest.jsonl").is_file()


def test_gather_refuses_a_loopback_url_with_the_reason(workspace: Workspace) -> None:
    site = Site(pages={"/": page(prose("Index"))})
    with running(site), pytest.raises(CrawlError, match="loopback address"):
        gather_with_url(site.url + "/", workspace)
    assert site.log == []
