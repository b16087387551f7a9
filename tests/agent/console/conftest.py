"""Console fixtures: the app over the test's workspace, runs paused at the plan gate on the tiny model, a live
uvicorn server on 127.0.0.1, and a headless Debian chromium driven by Selenium."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from agent import runner
from agent.console.app import standalone
from memory import Store
from memory.keys import create_key

GOAL = "Write notes in the house style, lr 1e-2, 2 trials"
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def pause_of(html: str) -> str:
    return re.search(r'name="pause" value="([^"]*)"', html).group(1)


def wait_for(check, timeout: float = 90.0, every: float = 0.2, what: str = "condition"):
    """Poll `check` until it returns something truthy; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def run_row(run_id: int) -> dict:
    with Store.open() as store:
        return store.run(run_id)


@pytest.fixture
def client() -> Iterator[TestClient]:
    """The console as `ingrain console` serves it on loopback, over the test's INGRAIN_HOME."""
    with TestClient(standalone(loopback=True), base_url="http://127.0.0.1") as test_client:
        yield test_client


@pytest.fixture
def api_key() -> str:
    with Store.open() as store:
        return create_key(store, "tester")


@pytest.fixture
def pause_run(style_data: Path, tiny_model_dir: Path):
    """Start runs the way `ingrain run` does; each stops at the plan gate (interactive policy) in ~4 s."""
    def start() -> int:
        outcome = runner.start(GOAL, data_paths=[str(style_data)], base=str(tiny_model_dir), policy="interactive",
                               budget_minutes=20)
        assert (outcome.status, outcome.gate) == ("paused", "plan"), outcome.message
        return outcome.run_id

    return start


@pytest.fixture
def two_versions(tmp_path: Path) -> list[str]:
    with Store.open() as store:
        for name in ("v1", "v2"):
            (tmp_path / name).mkdir()
            store.register_model(name, base="tiny", kind="merged", path=str(tmp_path / name),
                                 metrics={"primary_metric": "style_conformance", "tuned_metric": 0.9})
    return ["v1", "v2"]


@pytest.fixture
def live_console() -> Iterator[str]:
    """A real uvicorn server on 127.0.0.1 and a free port, serving `ingrain console`'s app; yields its base URL."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(standalone(loopback=True), host="127.0.0.1", port=0,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, 30, 0.02, "the console to start")
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory):
    """Debian's chromium through its own chromedriver: the paths are given, so Selenium Manager fetches nothing."""
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.fail("chromium and chromium-driver are not installed: scripts/bootstrap.sh installs them "
                    "(apt-get install chromium chromium-driver).")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1440,1000",
                 f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()
